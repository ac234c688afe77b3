"""The preview report: one typed structure behind both the markdown comment and the JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Operations a resource summary can show, in display order.
OPS = ("create", "update", "replace", "delete")


@dataclass(frozen=True)
class PropertyChange:
    """One changed property of a resource (a path like `spec.replicas`)."""

    path: str
    kind: str  # add | update | delete
    old: Any = None
    new: Any = None
    forces_replacement: bool = False


@dataclass(frozen=True)
class ResourceChange:
    """What the engine plans for one resource."""

    urn: str
    type: str
    name: str
    op: str  # one of OPS
    properties: tuple[PropertyChange, ...] = ()
    file: str = ""  # the manifest file, for render stacks (their diff is of files, not state)


@dataclass(frozen=True)
class PolicyViolation:
    policy: str
    pack: str
    enforcement: str  # advisory | mandatory | remediate | disabled
    message: str
    urn: str = ""


@dataclass
class StackPreview:
    """The infrastructure preview of one stack."""

    stack: str
    affected_by: list[str]
    status: str = "ok"  # ok | error | not-affected
    resources: list[ResourceChange] = field(default_factory=list)
    unchanged: int = 0
    policy_violations: list[PolicyViolation] = field(default_factory=list)
    policies_checked: bool = False
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown_values: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    target: str = ""  # docker | cluster | render
    #: What the changes are measured against: the base commit's committed render, or the
    #: engine's state (which backend), or nothing ("showing the desired state only").
    diff_source: str = ""
    #: Render stacks: is the committed deploy/<stack>/ what the program renders?
    rendered_in_sync: bool | None = None
    manifests_verdict: str | None = None  # in-sync | rendered-at-merge | out-of-sync
    manifest_differences: list[dict[str, Any]] = field(default_factory=list)
    manifest_problems: list[str] = field(default_factory=list)  # what fails the check
    #: The render this preview saw, which the deploy workflow must apply (`sha256:` of the
    #: sha256sum listing of `rendered_files`, path -> sha256 hex).
    rendered_digest: str | None = None
    rendered_files: dict[str, str] = field(default_factory=dict)
    render_folders: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = {op: 0 for op in OPS}
        for resource in self.resources:
            found[resource.op] += 1
        return found

    @property
    def policy_verdict(self) -> str:
        """pass | advisory | fail | error | not run."""
        if self.status == "not-affected":
            return "not run"
        if any(v.enforcement == "mandatory" for v in self.policy_violations):
            return "fail"
        if self.status == "error":
            return "error"
        if self.policy_violations:
            return "advisory"
        return "pass" if self.policies_checked else "not run"


@dataclass(frozen=True)
class GateVerdict:
    """`liftlock gate <stack>`'s answer, reduced to what the comment shows."""

    stack: str
    verdict: str  # pass | advisory | fail | error | not run
    failed_rules: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class ParamChange:
    file: str
    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class MetricDelta:
    file: str
    name: str
    old: Any
    new: Any
    diff: float | None


@dataclass
class MLDiff:
    """Params and metrics between base and head, and where each side's numbers came from."""

    params: list[ParamChange] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    base_source: str = ""  # e.g. "git (metrics committed)", "dvc checkout", "dvc repro", ...
    head_source: str = ""
    base_metrics_available: bool = True
    head_metrics_available: bool = True
    notes: list[str] = field(default_factory=list)
    #: "model unchanged (bit-identical)" / "re-trained: ..." (ml.reproduction's vocabulary)
    model_verdict: str = ""
    charts: list[str] = field(default_factory=list)  # Mermaid xychart blocks (base vs head)
    #: DVC's plots of both sides (preview.charts.PlotData by plot id), for the HTML report;
    #: not part of the JSON (the rows are the plots' CSVs).
    plots: dict[str, Any] = field(default_factory=dict)

    def delta_summary(self, limit: int = 3) -> str:
        """`accuracy +0.012, roc_auc -0.003` for the summary table."""
        if not self.base_metrics_available:
            return "base metrics unavailable"
        if not self.head_metrics_available:
            return "head metrics unavailable"
        changed = [m for m in self.metrics if m.diff not in (None, 0, 0.0)]
        if not changed:
            return "no change"
        parts = [f"{m.name} {m.diff:+.4g}" for m in changed[:limit] if m.diff is not None]
        if len(changed) > limit:
            parts.append(f"+{len(changed) - limit} more")
        return ", ".join(parts)


@dataclass
class PreviewReport:
    base: str
    base_commit: str
    head_commit: str
    changed_files: list[str]
    affected: dict[str, list[str]]  # stack -> reasons (changed paths / rules)
    stacks: list[StackPreview]
    gates: dict[str, GateVerdict]
    ml: MLDiff | None  # None when no ML input changed
    secrets_available: bool = True
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the same facts as the markdown, plus computed verdicts and counts."""
        data = asdict(self)
        for stack_data, stack in zip(data["stacks"], self.stacks, strict=True):
            stack_data["counts"] = stack.counts()
            stack_data["policy_verdict"] = stack.policy_verdict
        if self.ml is not None:
            data["ml"]["delta_summary"] = self.ml.delta_summary()
            data["ml"].pop("plots", None)
        return data
