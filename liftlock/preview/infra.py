"""Engine previews (docker and cluster targets), summarised per resource.

`liftlock.engine.preview` runs `pulumi preview` and parses its event stream; this module turns
its steps (or a recorded `--json` digest's) into the report's per-resource changes with field
paths and old/new values, and its policy events into the report's violations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liftlock.engine.preview import (
    SECRET_SIGNATURE,
    UNKNOWN_VALUE,
    parse_event_lines,
    policy_events,
    policy_pack_loaded,
    run_preview,
    steps_from_events,
)
from liftlock.engine.preview import error_diagnostics as engine_errors
from liftlock.preview.report import PolicyViolation, PropertyChange, ResourceChange, StackPreview

#: Engine step operation -> what the summary calls it (None: no change to show).
STEP_OPS: dict[str, str | None] = {
    "same": None,
    "read": None,
    "refresh": None,
    "read-replacement": None,
    "remove-pending-replace": None,
    "create": "create",
    "import": "create",
    "update": "update",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "import-replacement": "replace",
    "discard-replaced": "replace",
    "delete": "delete",
    "discard": "delete",
}
_OP_RANK = {"create": 1, "update": 2, "delete": 3, "replace": 4}

_PATH_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_property_path(path: str) -> list[str | int]:
    """`spec.containers[0].env["A.B"]` -> ["spec", "containers", 0, "env", "A.B"]."""
    tokens: list[str | int] = []
    for name, index, quoted in _PATH_TOKEN.findall(path):
        if index:
            tokens.append(int(index))
        elif quoted:
            tokens.append(json.loads(f'"{quoted}"'))
        else:
            tokens.append(name)
    return tokens


_MISSING = object()


def value_at(document: Any, path: str) -> Any:
    """The value at a property path, or the module's _MISSING sentinel."""
    node = document
    for token in parse_property_path(path):
        if isinstance(token, int):
            if not (isinstance(node, list) and token < len(node)):
                return _MISSING
            node = node[token]
        else:
            if not (isinstance(node, Mapping) and token in node):
                return _MISSING
            node = node[token]
    return node


def display_value(value: Any) -> Any:
    """Unknowns and secrets as words; everything else unchanged."""
    if value is _MISSING:
        return None
    if value == UNKNOWN_VALUE:
        return "(known after up)"
    if isinstance(value, Mapping) and SECRET_SIGNATURE in value:
        return "[secret]"
    return value


def split_urn(urn: str) -> tuple[str, str]:
    """`urn:pulumi:dev::liftlock::a:b:C$k8s:apps/v1:Deployment::model` -> (type, name)."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    type_chain, name = parts[2], "::".join(parts[3:])
    return type_chain.split("$")[-1], name


def _property_changes(step: Mapping[str, Any]) -> tuple[PropertyChange, ...]:
    old = step.get("oldState") or {}
    new = step.get("newState") or {}
    detailed = step.get("detailedDiff")
    changes = []
    if detailed:
        for path in sorted(detailed):
            entry = detailed[path]
            # The digest names it `kind`, the streamed events `diffKind`.
            kind = str(entry.get("diffKind") or entry.get("kind") or "update")
            base_kind = kind.removesuffix("-replace")
            old_doc = old.get("inputs") if entry.get("inputDiff") else old.get("outputs")
            changes.append(
                PropertyChange(
                    path=path,
                    kind=base_kind,
                    old=None if base_kind == "add" else display_value(value_at(old_doc, path)),
                    new=None
                    if base_kind == "delete"
                    else display_value(value_at(new.get("inputs"), path)),
                    forces_replacement=kind.endswith("-replace"),
                )
            )
        return tuple(changes)
    replacing = set(step.get("replaceReasons") or [])
    for key in sorted(set(step.get("diffReasons") or []) | replacing):
        changes.append(
            PropertyChange(
                path=key,
                kind="update",
                old=display_value(value_at(old.get("inputs"), key)),
                new=display_value(value_at(new.get("inputs"), key)),
                forces_replacement=key in replacing,
            )
        )
    return tuple(changes)


def summarise_steps(steps: Iterable[Mapping[str, Any]]) -> tuple[list[ResourceChange], int]:
    """Per-resource changes (one entry per URN, the strongest op wins) and the unchanged count.

    The stack's own root resource is left out: its only "changes" are its outputs.
    """
    changed: dict[str, ResourceChange] = {}
    unchanged: set[str] = set()
    for step in steps:
        urn = str(step.get("urn", ""))
        rtype, name = split_urn(urn)
        if rtype == "pulumi:pulumi:Stack":
            continue
        op = STEP_OPS.get(str(step.get("op")), "update")
        if op is None:
            unchanged.add(urn)
            continue
        candidate = ResourceChange(
            urn=urn, type=rtype, name=name, op=op, properties=_property_changes(step)
        )
        current = changed.get(urn)
        if current is None or _OP_RANK[op] > _OP_RANK[current.op]:
            if current is not None and not candidate.properties:
                candidate = ResourceChange(urn, rtype, name, op, current.properties)
            changed[urn] = candidate
    unchanged -= set(changed)
    ordered = sorted(changed.values(), key=lambda r: (-_OP_RANK[r.op], r.type, r.name))
    return ordered, len(unchanged)


def read_event_log(path: Path) -> list[dict[str, Any]]:
    """Events recorded to a file (the streamed `--json` output of a preview)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return parse_event_lines(handle)


def policy_results(events: Iterable[Mapping[str, Any]]) -> tuple[list[PolicyViolation], bool]:
    """Violations from the event log, and whether a policy pack was loaded at all."""
    events = list(events)
    violations = [
        PolicyViolation(
            policy=v.policy, pack=v.pack, enforcement=v.enforcement, message=v.message, urn=v.urn
        )
        for v in policy_events(events)
    ]
    return violations, policy_pack_loaded(events)


def error_diagnostics(digest: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Error messages from the digest (or, when the engine printed none, the event log)."""
    found = [
        str(d.get("message", "")).strip()
        for d in digest.get("diagnostics") or []
        if d.get("severity") == "error"
    ]
    return [m for m in dict.fromkeys(found) if m] or engine_errors(events)


def summarise_preview(
    stack: str,
    affected_by: Sequence[str],
    digest: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    policy_pack_requested: bool = True,
) -> StackPreview:
    """A StackPreview from a `--json` digest and/or the streamed events of one run."""
    steps = digest.get("steps") or steps_from_events(events)
    resources, unchanged = summarise_steps(steps)
    violations, loaded = policy_results(events)
    finished = any("summaryEvent" in e for e in events) or "changeSummary" in digest
    errors = error_diagnostics(digest, events)
    preview = StackPreview(
        stack=stack,
        affected_by=list(affected_by),
        status="error" if errors else "ok",
        resources=resources,
        unchanged=unchanged,
        policy_violations=violations,
        policies_checked=policy_pack_requested and (loaded or finished),
        errors=errors,
    )
    return preview


@dataclass(frozen=True)
class PreviewRun:
    """How to run `pulumi preview` for one stack."""

    root: Path
    stack: str
    affected_by: tuple[str, ...]
    env: Mapping[str, str]
    workdir: Path  # scratch space (the no-passphrase config copies)
    policy_pack: Path | None = None
    config_file: Path | None = None
    timeout_s: float = 900.0


def run_stack_preview(run: PreviewRun) -> StackPreview:
    """Run the engine's preview for one stack; failures become a StackPreview with errors."""
    engine = run_preview(
        run.root,
        run.stack,
        run.env,
        policy_pack=run.policy_pack,
        config_file=run.config_file,
        timeout_s=run.timeout_s,
    )
    if engine.timed_out:
        return StackPreview(
            stack=run.stack,
            affected_by=list(run.affected_by),
            status="error",
            errors=[engine.output_tail],
            duration_s=engine.duration_s,
        )
    preview = summarise_preview(
        run.stack,
        run.affected_by,
        {},
        engine.events,
        policy_pack_requested=run.policy_pack is not None,
    )
    preview.duration_s = engine.duration_s
    mandatory = any(v.enforcement == "mandatory" for v in preview.policy_violations)
    if engine.returncode != 0 and not preview.errors and not mandatory:
        preview.errors.append(
            f"pulumi preview --stack {run.stack} exited {engine.returncode}: "
            + (engine.output_tail or "no output")
        )
    if engine.returncode != 0 and not engine.finished and not mandatory:
        preview.status = "error"
    elif preview.errors and mandatory:
        # A mandatory violation makes the engine fail the preview; that is a verdict, not an error.
        preview.errors = [e for e in preview.errors if "policy" not in e.lower()]
        preview.status = "error" if preview.errors else "ok"
    return preview
