"""`policies/gates.yaml`, read once into a typed, validated `Gates`.

Per stack: the enforcement level of every rule (a stack default, overridable per rule), the
thresholds the rules compare against, and the freeze windows. `defaults` applies to every stack
(a stack's own values are merged over it, key by key) and to stacks the file does not list.
Every error names the file and the key, and says how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from policies.model import FreezeWindow, Level, RuleContext, Thresholds, VerifyThresholds
from policies.rules import rules_by_name

POLICIES_DIR = Path(__file__).resolve().parent
GATES_PATH = POLICIES_DIR / "gates.yaml"
SCHEMA_PATH = POLICIES_DIR / "schemas" / "gates.schema.json"


class GatesError(ValueError):
    """policies/gates.yaml is malformed. `path` and `key` name the culprit."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(
            f"{path}: {key}: {problem}\n  fix: edit {path} "
            f"(keys and allowed values: policies/schemas/gates.schema.json)"
        )


@dataclass(frozen=True, kw_only=True)
class StackGates:
    enforcement: Level
    overrides: Mapping[str, Level]
    thresholds: Thresholds


@dataclass(frozen=True, kw_only=True)
class Gates:
    path: str
    defaults: StackGates
    stacks: Mapping[str, StackGates]

    def for_stack(self, stack: str) -> StackGates:
        return self.stacks.get(stack, self.defaults)

    def level(self, stack: str, rule_name: str) -> Level:
        gates = self.for_stack(stack)
        return gates.overrides.get(rule_name, gates.enforcement)

    def context(self, stack: str, now: datetime | None = None) -> RuleContext:
        return RuleContext(stack=stack, thresholds=self.for_stack(stack).thresholds, now=now)


def _key(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _parse_time(value: str, path: Path, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise GatesError(path, key, f"{value!r} is not an ISO 8601 date-time ({error})") from error
    if moment.tzinfo is None:
        raise GatesError(path, key, f"{value!r} has no UTC offset; write e.g. {value}+00:00")
    return moment.astimezone(UTC)


#: gates.yaml `thresholds.verify` key -> VerifyThresholds field
VERIFY_KEYS = {
    "required": "required",
    "soakSeconds": "soak_seconds",
    "pollSeconds": "poll_seconds",
    "minSoakSeconds": "min_soak_seconds",
    "maxErrorRate": "max_error_rate",
    "maxP99LatencyMs": "max_p99_latency_ms",
    "smokeRows": "smoke_rows",
}


def _verify_thresholds(raw: Mapping[str, Any], *, path: Path, where: str) -> VerifyThresholds:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = VERIFY_KEYS[key]
        values[name] = bool(value) if name == "required" else (
            int(value) if name == "smoke_rows" else float(value)
        )  # fmt: skip
    verify = VerifyThresholds(**values)
    if verify.poll_seconds > verify.soak_seconds and verify.soak_seconds > 0:
        raise GatesError(
            path,
            f"{where}.thresholds.verify.pollSeconds",
            f"{verify.poll_seconds:g} is longer than soakSeconds ({verify.soak_seconds:g}): "
            "the window would hold one sample",
        )
    return verify


def _thresholds(
    raw: Mapping[str, Any], windows: list[FreezeWindow], verify: VerifyThresholds
) -> Thresholds:
    return Thresholds(
        metrics=dict(raw.get("metrics") or {}),
        max_regression=float(raw.get("maxRegression", 0.0)),
        min_replicas=int(raw.get("minReplicas", 1)),
        require_disruption_budget=bool(raw.get("requireDisruptionBudget", False)),
        require_autoscaler=bool(raw.get("requireAutoscaler", False)),
        require_image_digest=bool(raw.get("requireImageDigest", False)),
        allowed_registries=tuple(raw.get("allowedRegistries") or ()),
        allow_public_exposure=bool(raw.get("allowPublicExposure", False)),
        required_labels=tuple(raw.get("requiredLabels") or ()),
        freeze_windows=tuple(windows),
        verify=verify,
    )


def _stack_gates(
    raw: Mapping[str, Any], base: Mapping[str, Any], *, path: Path, where: str
) -> StackGates:
    known = rules_by_name()
    overrides = {**(base.get("overrides") or {}), **(raw.get("overrides") or {})}
    for name in raw.get("overrides") or {}:
        if name not in known:
            raise GatesError(
                path,
                f"{where}.overrides.{name}",
                f"unknown rule {name!r}; known rules: {', '.join(sorted(known))}",
            )
    base_thresholds, own_thresholds = base.get("thresholds") or {}, raw.get("thresholds") or {}
    thresholds = {**base_thresholds, **own_thresholds}
    # verify is merged key by key too: a stack that sets only `required` keeps the defaults' window
    verify_raw = {**(base_thresholds.get("verify") or {}), **(own_thresholds.get("verify") or {})}
    verify = _verify_thresholds(verify_raw, path=path, where=where)
    windows_raw = raw.get("freezeWindows", base.get("freezeWindows")) or []
    windows = []
    for index, window in enumerate(windows_raw):
        key = f"{where}.freezeWindows.{index}"
        start = _parse_time(window["start"], path, f"{key}.start")
        end = _parse_time(window["end"], path, f"{key}.end")
        if end <= start:
            raise GatesError(path, f"{key}.end", "ends before it starts")
        windows.append(FreezeWindow(start=start, end=end, reason=window["reason"]))
    return StackGates(
        enforcement=Level(raw.get("enforcement", base.get("enforcement", Level.MANDATORY))),
        overrides={name: Level(level) for name, level in overrides.items()},
        thresholds=_thresholds(thresholds, windows, verify),
    )


def parse_gates(document: Any, *, path: Path | str) -> Gates:
    """Validate a parsed gates document and build `Gates`; GatesError names the bad key."""
    path = Path(path)
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema = json.load(handle)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(document),
        key=lambda error: list(error.absolute_path),
    )
    if errors:
        first = errors[0]
        raise GatesError(path, _key(first.absolute_path), first.message)
    defaults = _stack_gates(document["defaults"], {}, path=path, where="defaults")
    stacks = {
        name: _stack_gates(raw or {}, document["defaults"], path=path, where=f"stacks.{name}")
        for name, raw in document["stacks"].items()
    }
    return Gates(path=str(path), defaults=defaults, stacks=stacks)


def load_gates(path: Path = GATES_PATH) -> Gates:
    """Read and validate policies/gates.yaml (or another gates file)."""
    if not path.is_file():
        raise GatesError(path, "(file)", "no such file")
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise GatesError(path, where, f"not valid YAML ({error})") from error
    return parse_gates(document, path=path)
