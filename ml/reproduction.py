"""Is a re-executed bundle the same as the one of record? bit-identical, equivalent or different.

- **bit-identical**: the same bundle digest (so every file, the params and the data are equal).
- **equivalent**: trained on the same data and params; on the test split both bundles give the
  same predictions (sklearn and ONNX), probabilities within the bundle's recorded ONNX
  tolerance, and metrics equal to 1e-9. Last-bit float differences, say, from another kernel.
- **different**: anything else; the first file that differs is named, with why.

The gate's reproducibility facts and the PR preview speak this vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ml.bundle import MANIFEST, read_manifest, verify_bundle

METRIC_TOLERANCE = 1e-9
# bundle.json keys that must be equal for two bundles to be re-trainings of the same thing.
_SAME_INPUTS = ("data", "params", "features", "target", "classes")


class Verdict(StrEnum):
    BIT_IDENTICAL = "bit-identical"
    EQUIVALENT = "equivalent"
    DIFFERENT = "different"


@dataclass(frozen=True)
class FileDifference:
    name: str
    why: str


@dataclass(frozen=True)
class Reproduction:
    verdict: Verdict
    reference_digest: str
    candidate_digest: str
    differences: list[FileDifference] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def first_difference(self) -> FileDifference | None:
        return self.differences[0] if self.differences else None

    def summary(self) -> str:
        """One line: 'model unchanged (bit-identical)', 're-trained: equivalent (...)', ..."""
        if self.verdict is Verdict.BIT_IDENTICAL:
            return "model unchanged (bit-identical)"
        first = self.first_difference
        detail = f"{first.name}: {first.why}" if first else "bundle.json differs"
        if self.verdict is Verdict.EQUIVALENT:
            return f"re-trained: equivalent ({detail})"
        return f"re-trained: different ({detail})"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "summary": self.summary(),
            "reference_digest": self.reference_digest,
            "candidate_digest": self.candidate_digest,
            "differences": [asdict(difference) for difference in self.differences],
            "checks": self.checks,
        }


def compare_bundles(reference: Path, candidate: Path, test_features: np.ndarray) -> Reproduction:
    """Compare `candidate` with `reference` (both verified first) on the test split's features."""
    reference_digest = verify_bundle(reference)
    candidate_digest = verify_bundle(candidate)
    if reference_digest == candidate_digest:
        return Reproduction(Verdict.BIT_IDENTICAL, reference_digest, candidate_digest)
    ours, theirs = read_manifest(reference), read_manifest(candidate)
    differing = _differing_files(ours, theirs)
    inputs = [key for key in _SAME_INPUTS if ours.get(key) != theirs.get(key)]
    if inputs:
        why = f"trained on other inputs (bundle.json {', '.join(inputs)} differ)"
        return Reproduction(
            Verdict.DIFFERENT,
            reference_digest,
            candidate_digest,
            [FileDifference(MANIFEST, why), *differing],
        )
    checks = _behaviour(reference, candidate, test_features, float(ours["onnx"]["tolerance"]))
    checks["metrics_max_diff"] = _metrics_max_diff(ours["metrics"], theirs["metrics"])
    failed = _failed_checks(checks)
    explained = [_explain(difference, checks, failed) for difference in differing]
    # Facts bundle.json records beside the files (the numeric environment, versions, ...).
    keys = sorted(k for k in set(ours) | set(theirs) - {"files"} if ours.get(k) != theirs.get(k))
    if keys:
        explained.append(FileDifference(MANIFEST, f"recorded {', '.join(keys)} differ"))
    verdict = Verdict.DIFFERENT if failed else Verdict.EQUIVALENT
    return Reproduction(verdict, reference_digest, candidate_digest, explained, checks)


def _differing_files(ours: dict[str, Any], theirs: dict[str, Any]) -> list[FileDifference]:
    names = sorted(set(ours["files"]) | set(theirs["files"]))
    found = []
    for name in names:
        if name not in theirs["files"]:
            found.append(FileDifference(name, "missing from the re-executed bundle"))
        elif name not in ours["files"]:
            found.append(FileDifference(name, "not in the bundle of record"))
        elif ours["files"][name] != theirs["files"][name]:
            found.append(FileDifference(name, "content differs"))
    return found


def _behaviour(
    reference: Path, candidate: Path, features: np.ndarray, tolerance: float
) -> dict[str, Any]:
    """Predictions and probabilities of both bundles' sklearn and ONNX models on `features`."""
    import joblib

    from ml.onnx_export import run_onnx

    checks: dict[str, Any] = {"rows": len(features), "tolerance": tolerance}
    for kind in ("sklearn", "onnx"):
        outputs = []
        for bundle in (reference, candidate):
            if kind == "sklearn":
                model = joblib.load(bundle / "model.joblib")
                outputs.append((model.predict(features), model.predict_proba(features)))
            else:
                outputs.append(run_onnx((bundle / "model.onnx").read_bytes(), features))
        (labels_a, probs_a), (labels_b, probs_b) = outputs
        checks[f"{kind}_predictions_differing"] = int(np.count_nonzero(labels_a != labels_b))
        checks[f"{kind}_max_prob_diff"] = float(np.max(np.abs(probs_a - probs_b), initial=0.0))
    return checks


def _metrics_max_diff(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    keys = set(ours) | set(theirs)
    if any(key not in ours or key not in theirs for key in keys):
        return float("inf")
    return max((abs(float(ours[key]) - float(theirs[key])) for key in keys), default=0.0)


def _failed_checks(checks: dict[str, Any]) -> list[str]:
    failed = []
    for kind in ("sklearn", "onnx"):
        if checks[f"{kind}_predictions_differing"]:
            failed.append(
                f"{checks[f'{kind}_predictions_differing']} of {checks['rows']} test predictions "
                f"differ ({kind})"
            )
        if checks[f"{kind}_max_prob_diff"] > checks["tolerance"]:
            failed.append(
                f"probabilities differ by up to {checks[f'{kind}_max_prob_diff']:.2g} ({kind}), "
                f"past the bundle's tolerance {checks['tolerance']:g}"
            )
    if checks["metrics_max_diff"] > METRIC_TOLERANCE:
        failed.append(f"metrics differ by up to {checks['metrics_max_diff']:.2g}")
    return failed


def _explain(
    difference: FileDifference, checks: dict[str, Any], failed: list[str]
) -> FileDifference:
    if difference.why != "content differs":
        return difference
    if difference.name in {"model.joblib", "model.onnx"}:
        kind = "sklearn" if difference.name == "model.joblib" else "onnx"
        relevant = [line for line in failed if f"({kind})" in line]
        if relevant:
            return FileDifference(difference.name, "; ".join(relevant))
        return FileDifference(
            difference.name,
            f"last-bit differences: same {checks['rows']} test predictions, probabilities "
            f"within {checks[f'{kind}_max_prob_diff']:.2g}",
        )
    if difference.name == "metrics.json":
        return FileDifference(
            difference.name, f"metrics differ by up to {checks['metrics_max_diff']:.2g}"
        )
    return difference
