"""`liftlock gate` on the real program through the real engine (a clone, a throwaway backend)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from liftlock.engine.env import EMBEDDED_DEFAULT_PASSPHRASE
from tests.cli.conftest import REPO, git

pytestmark = [pytest.mark.slow, pytest.mark.engine]

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def engine_clone(clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The clone, able to run the program: this venv and the engine linked in, its own backend."""
    if not (REPO / ".tools" / "bin" / "pulumi").exists():
        pytest.fail("the engine is not built: make toolchain")
    (clone / ".venv").symlink_to(Path(sys.prefix))
    (clone / ".tools").symlink_to(REPO / ".tools")
    backend = tmp_path / "backend"
    backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend.as_uri())
    # The stack files carry salts of the embedded default passphrase.
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", EMBEDDED_DEFAULT_PASSPHRASE)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    return clone


def _report(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out[: out.rindex("}") + 1])


IMAGE = "liftlock-model@sha256:" + "c" * 64


def test_gate_prod_runs_the_pack_on_the_real_program(engine_clone: Path, run: Run) -> None:
    code, out = run("promote", "workspace", "prod", "--image", IMAGE)  # its preview too
    assert code == 0, out
    code, out = run("gate", "prod", "--json")
    report = _report(out)
    assert code == 0, out
    assert report["infraSource"] == "pulumi preview --policy-pack policies"
    judged = {f["rule"] for f in report["findings"]}
    assert {"pss-restricted", "no-privileged-containers", "image-pinned-by-digest"} <= judged
    assert {"min-replicas", "disruption-budget-present", "autoscaler-present"} <= judged
    assert git(engine_clone, "status", "--porcelain", "--", "stacks") == "M stacks/Pulumi.prod.yaml"

    # An unpinned image and a public Service in prod: refused, rule and resource named.
    stack_file = engine_clone / "stacks" / "Pulumi.prod.yaml"
    text = stack_file.read_text()
    text = re.sub(r"liftlock:image: .*", "liftlock:image: liftlock-model:latest", text)
    stack_file.write_text(text.replace("liftlock:exposure: internal", "liftlock:exposure: public"))
    code, out = run("gate", "prod", "--json")
    assert code == 1
    failed = [(f["rule"], f["subject"]) for f in _report(out)["findings"] if f["verdict"] == "fail"]
    kinds = {(rule, subject.split("(")[-1].split("/")[0]) for rule, subject in failed}
    assert ("image-pinned-by-digest", "Deployment") in kinds, failed
    assert ("public-exposure-allowed", "Service") in kinds, failed
    assert "gate prod refused: mandatory rule(s) failed: image-pinned-by-digest" in out


def test_status_asks_the_engine_for_pending_changes(engine_clone: Path, run: Run) -> None:
    code, out = run("status")
    assert code == 0, out
    assert out.count("not deployed (no stack in the backend)") == 3, out
    code, out = run("promote", "workspace", "staging", "--image", IMAGE)  # creates the stack
    assert code == 0, out
    code, out = run("status")
    assert code == 0, out
    staging = next(line for line in out.splitlines() if "│ staging" in line)
    assert "to create" in staging and "recorded" in staging, out
