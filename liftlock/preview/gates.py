"""Gate verdicts per stack: `liftlock.gate.run_gate` called in-process, reduced to the comment's
words. The gate runs without its own engine preview: the preview has just run the engine (or
rendered the program) for the stack, and hands a render stack's fresh manifests to the gate."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from liftlock.errors import DomainError
from liftlock.preview.report import GateVerdict, PolicyViolation

if TYPE_CHECKING:  # liftlock.gate loads the policies: imported when a gate runs
    from policies.evaluate import Finding

#: Finding verdicts as the comment words them.
_FINDING_VERDICTS = {"fail": "fail", "warn": "advisory", "advisory": "advisory"}


def verdict_of(stack: str, findings: Iterable[Finding]) -> GateVerdict:
    """pass / advisory / fail, the failing (else warning) rules, and the first one's message."""
    found = list(findings)
    failed = [f for f in found if f.verdict.value == "fail"]
    warned = [f for f in found if _FINDING_VERDICTS.get(f.verdict.value) == "advisory"]
    verdict = "fail" if failed else "advisory" if warned else "pass"
    shown = failed or warned
    names = tuple(dict.fromkeys(f.rule for f in shown))
    message = f"{shown[0].rule}: {shown[0].message}".strip() if shown else ""
    return GateVerdict(stack=stack, verdict=verdict, failed_rules=names, message=message)


def infra_violations(findings: Iterable[Finding], source: str) -> list[PolicyViolation]:
    """The infrastructure findings that did not pass, as the policy-pack column shows them."""
    return [
        PolicyViolation(
            policy=f.rule,
            pack=source,
            enforcement="mandatory" if f.verdict.value == "fail" else "advisory",
            message=f"{f.message} (fix: {f.fix})" if f.fix else f.message,
            urn=f.subject,
        )
        for f in findings
        if f.domain != "ml" and f.verdict.value in ("fail", "warn")
    ]


def run_gate(
    stack: str,
    root: Path,
    *,
    bundle: Path | None = None,
    manifests: Path | None = None,
) -> tuple[GateVerdict, list[Finding]]:
    """The gate's verdict for `stack` on what it would deploy: the bundle the head pins, fetched
    by the hash its signed record names (or `bundle`, judged as a candidate), and its findings.
    A domain error (a broken bundle, gates.yaml, stack file, an unrecorded pin) is "error"."""
    from liftlock.gate import run_gate as judge
    from liftlock.gate import stored_candidate

    try:
        if bundle is None:
            report = judge(root, stack, preview=False, manifests=manifests)
        else:
            with stored_candidate(root, bundle, origin=f"candidate {bundle}") as candidate:
                report = judge(root, stack, candidate, preview=False, manifests=manifests)
    except DomainError as error:
        return GateVerdict(stack, "error", message=str(error)), []
    return verdict_of(stack, report.findings), list(report.findings)
