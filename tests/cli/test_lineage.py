"""Lineage facts from a tiny real DVC project: what dvc.lock recorded, and `dvc status`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from liftlock.gate import collect_lineage

pytestmark = pytest.mark.slow

STAGE = textwrap.dedent(
    """\
    stages:
      package:
        cmd: python make_bundle.py
        deps:
          - make_bundle.py
        outs:
          - bundle
    """
)
MAKER = textwrap.dedent(
    """\
    from pathlib import Path
    Path("bundle").mkdir(exist_ok=True)
    Path("bundle/model.onnx").write_bytes(b"model")
    Path("bundle/bundle.json").write_text('{"files": {}}')
    """
)


def _dvc(root: Path, *args: str) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, *args], cwd=root, check=True, capture_output=True, timeout=300)


def test_lineage_follows_dvc_lock_and_status(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text(STAGE)
    (root / "make_bundle.py").write_text(MAKER)
    _dvc(root, "init", "--no-scm")
    _dvc(root, "repro")
    bundle = root / "bundle"

    clean = collect_lineage(root, bundle)
    assert clean == {
        "lock_found": True,
        "bundle_in_lock": True,
        "mismatched": [],
        "stale": {},
        "status_error": None,
    }

    (bundle / "model.onnx").write_bytes(b"tampered")
    (bundle / "extra.txt").write_text("x")
    changed = collect_lineage(root, bundle)
    assert changed["mismatched"] == ["extra.txt (not in dvc.lock)", "model.onnx"]
    assert list(changed["stale"]) == ["package"]

    elsewhere = collect_lineage(root, tmp_path / "other")
    assert elsewhere["bundle_in_lock"] is False
    (root / "dvc.lock").unlink()
    assert collect_lineage(root, bundle)["lock_found"] is False
