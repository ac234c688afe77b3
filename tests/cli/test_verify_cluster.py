"""`liftlock verify staging` on the real embedded cluster: the image built and pushed to the
embedded registry, promoted into staging (real gate, real DVC, a signed record), `pulumi up
--stack staging` applies it (liftlock:applyTo), and verify — kubectl, a port-forward per pod
on 127.0.0.1, /metrics through the API server's pod proxy — passes and signs a verification.
Then an image built FROM it whose server answers the opposite labels (the right bundle digest,
wrong predictions) is promoted and rolled out: its pods are Ready and its smoke check passes,
but verify fails `predictions` alone, and `liftlock promote staging prod` is refused naming
the record."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from infra.components.image_builder import (
    build_image,
    push_image,
    registry_repository,
)
from liftlock.cluster.layout import CONTEXT_NAME
from liftlock.commands.verify import print_report
from liftlock.verify import VerifyReport, run_verify
from ml.bundle import verify_bundle
from ml.errors import BundleError
from policies.promotion import check_pinned, verification_status
from tests.cli.conftest import REPO, edit_gates
from tests.helpers.embedded_cluster import RunningCluster, running_cluster
from tests.helpers.registry import image_with_entrypoint
from tests.infra.engine import PulumiProject

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker, pytest.mark.cluster]

Run = Callable[..., tuple[int, str]]
T = TypeVar("T")
SOAK_SECONDS = 15
ROLLOUT_TIMEOUT_SECONDS = 90
# The server of the model image, but every label flipped and the probabilities swapped.
WRONG_SERVER = (
    "import runpy, ml.serve.model as m; P = m.OnnxPredictor.predict; "
    "m.OnnxPredictor.predict = lambda self, x: (lambda l, p: (1 - l, p[:, ::-1].copy()))"
    "(*P(self, x)); runpy.run_module('ml.serve', run_name='__main__', alter_sys=True)"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def image(cluster: RunningCluster) -> str:
    try:
        verify_bundle(REPO / "bundle")
    except BundleError as error:
        pytest.fail(f"no model bundle in the checkout ({error}); run `make bundle` (dvc repro)")
    repository = registry_repository(cluster.layout.registry, "liftlock-model")
    built = build_image(REPO / "bundle", repository=repository, log=lambda line: None)
    return push_image(built.tag, log=lambda line: None)


def wrong_predictions_image(image: str, registry: str) -> str:
    """FROM the model image, an entrypoint that serves the opposite of every prediction."""
    return image_with_entrypoint(
        image, registry, ["python", "-c", WRONG_SERVER], "wrong-predictions"
    )


def _apply_to(root: Path, cluster: RunningCluster) -> None:
    """Staging applies to the test's cluster (the lead's stack file may name the default one)."""
    path = root / "stacks" / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["liftlock:applyTo"] = {
        "kubeconfig": str(cluster.layout.kubeconfig),
        "kubeContext": CONTEXT_NAME,
        "rolloutTimeoutSeconds": ROLLOUT_TIMEOUT_SECONDS,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_verify_passes_a_good_rollout_and_fails_wrong_predictions(
    real_clone: Path, run: Run, cluster: RunningCluster, image: str, tmp_path: Path
) -> None:
    root = real_clone
    # The program runs from the clone with the checkout's venv and tools.
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / ".tools").symlink_to(REPO / ".tools")
    _apply_to(root, cluster)
    # The test's registry listens on a free port: the gate must allow it like 127.0.0.1:5000.
    registry = cluster.layout.registry
    edit_gates(root, lambda d: d["defaults"]["thresholds"]["allowedRegistries"].append(registry))
    backend = tmp_path / "backend"
    backend.mkdir()
    project = PulumiProject(root=root, backend=backend, repo_root=REPO)
    project.init("staging")
    timings: dict[str, float] = {}
    measured: dict[str, dict[str, str]] = {}

    def timed(name: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        result = action()
        timings[name] = round(time.monotonic() - started, 1)
        return result

    def up() -> None:
        project.run("up", "--stack", "staging", "--yes", "--skip-preview")

    def verify() -> VerifyReport:
        return run_verify(root, "staging", soak_seconds=SOAK_SECONDS)

    code, out = run("promote", "workspace", "staging", "--no-preview", "--image", image)
    assert code == 0, out
    try:
        timed("up good", up)
        good = timed("verify good", verify)
        measured["good"] = {c.check: c.measured for c in good.checks}
        assert good.passed, [c.to_json() for c in good.checks]
        checks = {c.check: c for c in good.checks}
        assert checks["replicas-ready"].measured.startswith("2/2 Ready")
        assert checks["predictions"].measured == "64/64 rows equal on 2 replica(s)"
        digest = verify_bundle(root / "bundle")
        pinned = check_pinned(root, "staging", digest, image)
        assert pinned.record is not None and verification_status(root, "staging", pinned.record).ok

        bad = wrong_predictions_image(image, cluster.layout.registry)
        code, out = run("promote", "workspace", "staging", "--no-preview", "--image", bad)
        assert code == 0, out
        timed("up wrong", up)  # Ready pods, and the smoke check sees the right bundle digest
        report = timed("verify wrong", verify)
        measured["wrong"] = {c.check: c.measured for c in report.checks}
        print_report(report)
        assert report.failed == ["predictions"], [c.to_json() for c in report.checks]
        detail = {c.check: c for c in report.checks}["predictions"].detail
        assert "predictions differ (row 0: served" in detail, detail

        code, out = run("promote", "staging", "prod", "--no-preview")
        print(out)
        assert code == 1
        assert f"{report.record} failed verification" in out and "predictions" in out
    finally:
        print(f"timings (s): {timings}\nmeasured: {json.dumps(measured, indent=1)}")
        project.run("destroy", "--stack", "staging", "--yes", "--skip-preview", check=False)
