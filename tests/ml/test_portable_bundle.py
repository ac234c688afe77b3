"""The same bytes on every machine: real `dvc repro` under the numeric settings machines set.

OpenBLAS's kernel (OPENBLAS_CORETYPE), its thread count, its blocking (OPENBLAS_L2_SIZE) and
numpy's SIMD dispatch (NPY_DISABLE_CPU_FEATURES) are what differs between a laptop, a CI runner
and this workplace's machines. Under each, every estimator must give byte-identical
model.joblib, model.onnx and bundle digest, and the default model the committed dvc.lock and
the digest that staging and prod pin.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from ml.bundle import sha256_file, verify_bundle
from tests.ml.dvc_repo import PipelineCopy

pytestmark = pytest.mark.slow

AMBIENT: dict[str, dict[str, str]] = {
    "nothing set": {},
    "SkylakeX, 2 threads": {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
    },
    "Sandybridge, L2 size, numpy AVX2 off": {
        "OPENBLAS_CORETYPE": "Sandybridge",
        "OPENBLAS_L2_SIZE": "262144",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3",
    },
    "Prescott, 2 threads": {"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "2"},
}
ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")


def _fingerprint(copy: PipelineCopy) -> dict[str, str]:
    bundle = copy.root / "bundle"
    return {
        "model.joblib": sha256_file(bundle / "model.joblib"),
        "model.onnx": sha256_file(bundle / "model.onnx"),
        "digest": verify_bundle(bundle),
        "dvc.lock": (copy.root / "dvc.lock").read_text(encoding="utf-8"),
    }


def _pinned_digest(repo_root: Path, stack: str) -> str:
    path = repo_root / "stacks" / f"Pulumi.{stack}.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["config"]["liftlock:bundleDigest"]


def _numeric_env(copy: PipelineCopy) -> dict:
    manifest = json.loads((copy.root / "bundle" / "bundle.json").read_text(encoding="utf-8"))
    return manifest["numeric_env"]


def test_the_default_model_reproduces_the_committed_lock_and_the_pinned_digest(
    repo_root: Path, tmp_path: Path
) -> None:
    """`dvc repro -f` from an empty cache under each setting: the committed dvc.lock, unchanged,
    and the digest staging and prod pin."""
    copy = PipelineCopy.create(repo_root, tmp_path / "repo", tmp_path / "cache-0")
    committed_lock = (repo_root / "dvc.lock").read_text(encoding="utf-8")
    pinned = {stack: _pinned_digest(repo_root, stack) for stack in ("staging", "prod")}
    for index, (label, ambient) in enumerate(AMBIENT.items()):
        copy.dvc("cache", "dir", "--local", str(tmp_path / f"cache-{index}"))
        copy.ambient = ambient
        copy.dvc("repro", "-f")
        found = _fingerprint(copy)
        assert found["dvc.lock"] == committed_lock, f"under {label}: dvc.lock changed"
        for stack, digest in pinned.items():
            assert found["digest"] == digest, f"under {label}: not the digest {stack} pins"
        facts = _numeric_env(copy)
        assert facts["portable"] is True, f"under {label}: {facts}"
        assert {(lib["kernel"], lib["threads"]) for lib in facts["blas"]} == {("Haswell", 1)}


@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_every_estimator_gives_the_same_bytes_under_every_setting(
    repo_root: Path, tmp_path: Path, estimator: str
) -> None:
    """One real `dvc repro`, then the three float stages re-run by their dvc.yaml commands
    under each other setting (DVC's own bookkeeping is the default model's test above)."""
    copy = PipelineCopy.create(repo_root, tmp_path / "repo", tmp_path / "cache")
    copy.set_param("train.estimator", estimator)
    first_label, *others = AMBIENT
    copy.ambient = AMBIENT[first_label]
    copy.dvc("repro")
    expected = _fingerprint(copy)
    for label in others:
        copy.ambient = AMBIENT[label]
        for stage in ("train", "evaluate", "package"):
            copy.run(sys.executable, "-m", f"ml.{stage}")
        found = _fingerprint(copy)
        for key in ("model.joblib", "model.onnx", "digest"):
            assert found[key] == expected[key], f"{estimator} under {label}: {key} differs"


def test_switching_the_pin_off_says_the_digest_is_not_portable(
    repo_root: Path, tmp_path: Path
) -> None:
    copy = PipelineCopy.create(repo_root, tmp_path / "repo", tmp_path / "cache")
    copy.ambient = {"LIFTLOCK_NUMERIC_PIN": "off", "OPENBLAS_CORETYPE": "Sandybridge"}
    run = copy.dvc("repro")
    assert "digest NOT portable: the numeric pin was switched off" in run.output
    facts = _numeric_env(copy)
    assert facts["portable"] is False and facts["pinned"] == {}
    assert {lib["kernel"] for lib in facts["blas"]} == {"Sandybridge"}
