"""DVC by hash, on a tiny real DVC project: store a bundle, fetch it back by its hash, and the
lineage facts (what dvc.lock recorded, `dvc status`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from liftlock.dvcstore import checkout_by_hash
from liftlock.errors import BundleError
from liftlock.gate import collect_lineage, stored_candidate
from ml.bundle import bundle_digest, verify_bundle
from tests.policies.bundles import make_bundle

pytestmark = pytest.mark.slow

STAGE = textwrap.dedent(
    f"""\
    stages:
      package:
        cmd: {sys.executable} make_bundle.py
        deps:
          - make_bundle.py
        outs:
          - bundle
    """
)
MAKER = textwrap.dedent(
    """\
    from pathlib import Path
    from tests.policies.bundles import make_bundle
    make_bundle(Path("bundle"))
    """
)


def _dvc(root: Path, *args: str) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, *args], cwd=root, check=True, capture_output=True, timeout=300)


def test_store_fetch_by_hash_and_lineage(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text(STAGE)
    (root / "make_bundle.py").write_text(MAKER)
    _dvc(root, "init", "--no-scm")
    _dvc(root, "repro")
    bundle = root / "bundle"
    digest = bundle_digest(bundle)

    with stored_candidate(root, bundle, origin="workspace", push=True) as candidate:
        assert candidate.digest == digest and candidate.pinned_by is None
        assert "no default DVC remote" in str(candidate.store_problem)
        lineage = collect_lineage(root, candidate)
        stored_hash = candidate.dvc["bundle"]
    assert lineage == {
        "lock_found": True,
        "bundle_in_lock": True,
        "mismatched": [],
        "stale": {},
        "status_error": None,
    }
    assert stored_hash in (root / "dvc.lock").read_text()  # DVC's own hash of the folder

    fetched = checkout_by_hash(root, {"bundle": stored_hash}, tmp_path / "fetched")
    assert verify_bundle(fetched["bundle"]) == digest

    # Edited after `dvc repro`: a different hash than dvc.lock's, and `dvc status` says so.
    make_bundle(bundle, tag="edited")
    with stored_candidate(root, bundle, origin="workspace") as candidate:
        changed = collect_lineage(root, candidate)
    (problem,) = changed["mismatched"]
    assert "is not the one dvc.lock records" in problem
    assert list(changed["stale"]) == ["package"]

    missing = "0" * 32 + ".dir"
    with pytest.raises(BundleError) as caught:
        checkout_by_hash(root, {"bundle": missing}, tmp_path / "nowhere")
    assert f"DVC has no copy of bundle {missing}" in str(caught.value)
    assert "dvc push" in str(caught.value)
