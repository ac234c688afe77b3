"""`liftlock repro-check` on a real pipeline, and a team sharing bundles through a DVC remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from liftlock.reproduce import NotReproducible, repro_check, require_reproducible
from ml.bundle import verify_bundle
from ml.reproduction import Verdict
from tests.ml.dvc_repo import PipelineCopy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def committed(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineCopy:
    """A pipeline reproduced once and committed with its dvc.lock: the bundle of record."""
    base = tmp_path_factory.mktemp("repro-check")
    copy = PipelineCopy.create(repo_root, base / "repo", base / "cache")
    copy.dvc("repro")
    copy.commit_all("bundle of record")
    return copy


def test_a_pinned_rerun_from_an_empty_cache_is_bit_identical(committed: PipelineCopy) -> None:
    committed.ambient = {"OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_NUM_THREADS": "2"}
    lines: list[str] = []
    check = repro_check(committed.root, base_env=committed.env(), log=lines.append)
    assert check.reproduction.verdict is Verdict.BIT_IDENTICAL, check.to_json()
    assert check.reproduction.summary() == "model unchanged (bit-identical)"
    assert check.reproduction.candidate_digest == verify_bundle(committed.root / "bundle")
    assert any("dvc repro from an empty cache" in line for line in lines)
    require_reproducible(check, strict=True)
    assert committed.git_changes() == "", "repro-check touched the checkout"


def test_an_unpinned_rerun_under_another_kernel_is_equivalent_not_changed(
    committed: PipelineCopy,
) -> None:
    committed.ambient = {"OPENBLAS_CORETYPE": "Sandybridge"}
    check = repro_check(committed.root, pinned=False, base_env=committed.env())
    result = check.reproduction
    assert result.verdict is Verdict.EQUIVALENT, check.to_json()
    assert result.summary().startswith("re-trained: equivalent (model.joblib: last-bit")
    assert [d.name for d in result.differences][:1] == ["model.joblib"]
    assert result.checks["sklearn_predictions_differing"] == 0
    assert result.checks["metrics_max_diff"] <= 1e-9
    require_reproducible(check, strict=False)
    with pytest.raises(NotReproducible, match="re-trained: equivalent"):
        require_reproducible(check, strict=True)


def test_a_teammate_pulls_the_bundle_from_the_team_remote_instead_of_retraining(
    committed: PipelineCopy, tmp_path: Path
) -> None:
    """The README's team setup: a shared remote in the committed .dvc/config; CI and teammates
    `dvc pull` and `dvc repro` then has nothing to run."""
    shared = tmp_path / "team-remote"  # stands in for a shared folder or an S3 bucket
    author = committed.clone(tmp_path / "author", committed.cache)
    author.dvc("remote", "add", "--default", "team", str(shared))
    author.dvc("push")
    author.commit_all("use the team remote")

    teammate = author.clone(tmp_path / "teammate", tmp_path / "teammate-cache")
    teammate.dvc("pull")
    assert verify_bundle(teammate.root / "bundle") == verify_bundle(committed.root / "bundle")
    repro = teammate.dvc("repro")
    assert repro.stages_run == [], repro.output
    assert "Data and pipelines are up to date." in teammate.dvc("status").output
