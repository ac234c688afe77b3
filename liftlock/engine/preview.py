"""`pulumi preview` as a stream of engine events: the one place that runs it and parses them.

`pulumi preview --json` prints a digest that drops policy events. With
`PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true` the same command streams every engine event instead
(one JSON object per line): `resourcePreEvent`s carry the step facts (op, old and new state,
`diffs`, `detailedDiff`), `policyEvent`s the violations and `policyAnalyzeSummaryEvent`s the
policies that passed, so one run gives both. Like the language host beside it, this module
knows nothing of liftlock's programs: it runs any stack of any Pulumi project.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftlock.engine.env import pulumi_executable

#: The engine's placeholder for a value known only after `pulumi up`.
UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
#: Key marking a secret value in serialised state.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
#: Pulumi's enforcement levels, one spelling each (older engines say "warning" for advisory).
ENFORCEMENT_LEVELS = {
    "warning": "advisory",
    "advisory": "advisory",
    "mandatory": "mandatory",
    "remediate": "remediate",
    "disabled": "disabled",
}


def parse_event_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Engine events, one JSON object per line (other lines, e.g. a torn last one, ignored)."""
    events = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line when the engine stops early
        if isinstance(event, dict):
            events.append(event)
    return events


def _state(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    return {"type": meta.get("type"), "inputs": meta.get("inputs"), "outputs": meta.get("outputs")}


def steps_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Digest-shaped steps (`op`, `urn`, `oldState`, `newState`, `diffReasons`,
    `replaceReasons`, `detailedDiff`) from the streamed `resourcePreEvent`s."""
    steps = []
    for event in events:
        pre = event.get("resourcePreEvent")
        if not pre:
            continue
        meta = pre.get("metadata") or {}
        steps.append(
            {
                "op": meta.get("op"),
                "urn": meta.get("urn"),
                "provider": meta.get("provider"),
                "oldState": _state(meta.get("old")),
                "newState": _state(meta.get("new")),
                "diffReasons": meta.get("diffs") or [],
                "replaceReasons": meta.get("keys") or [],
                "detailedDiff": meta.get("detailedDiff"),
            }
        )
    return steps


@dataclass(frozen=True)
class PolicyEvent:
    """One violation the policy pack reported."""

    policy: str
    pack: str
    enforcement: str  # one of ENFORCEMENT_LEVELS' values
    message: str
    urn: str = ""


def policy_events(events: Iterable[Mapping[str, Any]]) -> list[PolicyEvent]:
    found = []
    for event in events:
        policy = event.get("policyEvent")
        if not policy:
            continue
        level = str(policy.get("enforcementLevel", "advisory"))
        found.append(
            PolicyEvent(
                policy=str(policy.get("policyName", "")),
                pack=str(policy.get("policyPackName", "")),
                enforcement=ENFORCEMENT_LEVELS.get(level, level),
                message=str(policy.get("message", "")).strip(),
                urn=str(policy.get("resourceUrn", "")),
            )
        )
    return found


def passed_policies(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Policy name -> how many resources (or stacks) it passed on, from the analyze summaries."""
    passed: dict[str, int] = {}
    for event in events:
        for key in ("policyAnalyzeSummaryEvent", "policyAnalyzeStackSummaryEvent"):
            for name in (event.get(key) or {}).get("passed") or []:
                passed[name] = passed.get(name, 0) + 1
    return passed


def policy_pack_loaded(events: Iterable[Mapping[str, Any]]) -> bool:
    keys = ("policyLoadEvent", "policyAnalyzeSummaryEvent", "policyEvent")
    return any(key in event for event in events for key in keys)


def error_diagnostics(events: Iterable[Mapping[str, Any]]) -> list[str]:
    found = []
    for event in events:
        diag = event.get("diagnosticEvent")
        if diag and diag.get("severity") == "error":
            found.append(str(diag.get("message", "")).strip())
    return [m for m in dict.fromkeys(found) if m]


def finished(events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the engine got to its summary (a program error stops it before)."""
    return any("summaryEvent" in event for event in events)


@dataclass
class EnginePreview:
    """What one `pulumi preview` run said."""

    stack: str
    returncode: int
    events: list[dict[str, Any]] = field(default_factory=list)
    output_tail: str = ""  # the last lines of stderr (else stdout), for error messages
    timed_out: bool = False
    duration_s: float = 0.0

    @property
    def steps(self) -> list[dict[str, Any]]:
        return steps_from_events(self.events)

    @property
    def policy_violations(self) -> list[PolicyEvent]:
        return policy_events(self.events)

    @property
    def errors(self) -> list[str]:
        return error_diagnostics(self.events)

    @property
    def finished(self) -> bool:
        return finished(self.events)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_preview(
    project: Path,
    stack: str,
    env: Mapping[str, str],
    *,
    policy_pack: Path | None = None,
    policy_pack_config: Path | None = None,
    config_file: Path | None = None,
    timeout_s: float = 900.0,
) -> EnginePreview:
    """`pulumi preview` of `stack` in `project`, its events streamed as JSON; never raises for
    the engine's own failures (the caller judges `returncode`, `errors` and the verdicts)."""
    command = [pulumi_executable(env), "preview", "--stack", stack, "--cwd", str(project)]
    command += ["--json", "--non-interactive", "--color", "never"]
    if policy_pack is not None:
        command += ["--policy-pack", str(policy_pack)]
    if policy_pack_config is not None:
        command += ["--policy-pack-config", str(policy_pack_config)]
    if config_file is not None:
        command += ["--config-file", str(config_file)]
    environment = dict(env)
    environment["PULUMI_ENABLE_STREAMING_JSON_PREVIEW"] = "true"
    started = time.monotonic()
    try:
        completed = subprocess.run(
            command,
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return EnginePreview(
            stack=stack,
            returncode=-1,
            output_tail=f"pulumi preview --stack {stack} timed out after {timeout_s:.0f} s",
            timed_out=True,
            duration_s=time.monotonic() - started,
        )
    return EnginePreview(
        stack=stack,
        returncode=completed.returncode,
        events=parse_event_lines(completed.stdout.splitlines()),
        output_tail=_tail(completed.stderr) or _tail(completed.stdout),
        duration_s=time.monotonic() - started,
    )
