"""Gate verdicts per stack: `liftlock gate <stack> --json`, reduced to what the comment shows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liftlock.preview.report import GateVerdict

#: Finding verdicts as the comment words them.
_FINDING_VERDICTS = {"fail": "fail", "warn": "advisory", "advisory": "advisory"}


def parse_gate_output(stack: str, data: Any, exit_code: int) -> GateVerdict:
    """A verdict from the gate's JSON and exit code (1 = a mandatory rule failed)."""
    findings: list[Any] = []
    if isinstance(data, Mapping):
        findings = data.get("findings") or []
    elif isinstance(data, list):
        findings = data
    failed = [f for f in findings if isinstance(f, Mapping) and f.get("verdict") == "fail"]
    warned = [
        f
        for f in findings
        if isinstance(f, Mapping) and _FINDING_VERDICTS.get(str(f.get("verdict"))) == "advisory"
    ]
    if exit_code == 1 or failed:
        verdict = "fail"
    elif exit_code != 0:
        verdict = "error"
    elif warned:
        verdict = "advisory"
    else:
        verdict = "pass"
    names = tuple(dict.fromkeys(str(f.get("rule", "?")) for f in (failed or warned)))
    message = ""
    if failed or warned:
        first = (failed or warned)[0]
        message = f"{first.get('rule', '?')}: {first.get('message', '')}".strip()
    elif isinstance(data, Mapping) and data.get("message"):
        message = str(data["message"])
    return GateVerdict(stack=stack, verdict=verdict, failed_rules=names, message=message)


def gate_command(stack: str, *, bundle: Path | None, engine_preview: bool) -> list[str]:
    command = [sys.executable, "-m", "liftlock.cli", "gate", stack, "--json"]
    if bundle is not None:
        command += ["--bundle", str(bundle)]
    if not engine_preview:
        command.append("--no-preview")
    return command


def run_gate(
    stack: str,
    root: Path,
    env: Mapping[str, str],
    *,
    bundle: Path | None = None,
    engine_preview: bool = False,
    timeout_s: float = 900,
) -> GateVerdict:
    """Run `liftlock gate <stack> --json` in the checkout (its own process, as CI would).

    By default with `--no-preview`: the preview has just run the same policy pack through the
    engine (the "policy pack" column), so the gate adds the ML rules and the rules on rendered
    manifests without a second engine run per stack.
    """
    command = gate_command(stack, bundle=bundle, engine_preview=engine_preview)
    try:
        completed = subprocess.run(
            command,
            cwd=root,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return GateVerdict(stack, "error", message=f"liftlock gate {stack} timed out")
    try:
        data = json.loads(completed.stdout) if completed.stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    if data is None:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        return GateVerdict(
            stack,
            "error",
            message=f"liftlock gate {stack} --json exited {completed.returncode}: "
            + " ".join(tail),
        )
    return parse_gate_output(stack, data, completed.returncode)
