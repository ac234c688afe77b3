"""`liftlock verify` end to end but for kubectl: the pinned bundle fetched through real DVC by
its record's hash, its test split's predictions recomputed, the smoke rows answered and /metrics
read from the real server (`python -m ml.serve` on 127.0.0.1) behind a fake cluster reader, the
verification signed; a server that serves another bundle fails `predictions` and holds the
promotion from staging."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from liftlock.verify import run_verify
from ml.bundle import bundle_digest
from policies.promotion import check_pinned, verification_status
from tests.cli.fake_cluster import IMAGE, FakeCluster, deployment, pod
from tests.serve.fixture_bundle import build_fixture_bundle
from tests.serve.server_process import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

Run = Any


class ServedCluster(FakeCluster):
    """One replica, `model-a`, that is the real server at `server`."""

    def __init__(self, digest: str, server: RunningServer) -> None:
        super().__init__(
            deploy=deployment(digest, replicas=1),
            timeline=[[pod("model-a")]],
            scrapes={},
            answer=self._forward,
        )
        self.server = server

    def metrics(self, pod: str, port: int) -> str:
        assert (pod, port) == ("model-a", 8080)
        return httpx.get(f"{self.server.url}/metrics", timeout=10).text

    def _forward(
        self, _pod: str, rows: Sequence[Mapping[str, float]]
    ) -> tuple[int, dict[str, Any]]:
        answer = httpx.post(f"{self.server.url}/v1/predict", json={"rows": list(rows)}, timeout=10)
        return answer.status_code, dict(answer.json())


@pytest.fixture
def staging(real_clone: Path, run: Run, tmp_path: Path) -> Path:
    """The real bundle promoted into staging, which names a cluster (applyTo)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    path = real_clone / "stacks" / "Pulumi.staging.yaml"
    path.write_text(
        path.read_text().replace(
            "  liftlock:namespace:",
            f"  liftlock:applyTo:\n    kubeconfig: {kubeconfig}\n    kubeContext: test\n"
            "  liftlock:namespace:",
        )
    )
    code, out = run("promote", "workspace", "staging", "--no-preview", "--image", IMAGE)
    assert code == 0, out
    return real_clone


@pytest.fixture
def server(staging: Path, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(staging / "bundle", tmp_path)
    yield running
    stop_server(running)


def test_verify_passes_on_the_bundles_own_server_and_signs_it(
    staging: Path, server: RunningServer
) -> None:
    digest = bundle_digest(staging / "bundle")
    started = time.monotonic()
    report = run_verify(staging, "staging", soak_seconds=1, reader=ServedCluster(digest, server))
    assert report.passed, [c.to_json() for c in report.checks]
    checks = {c.check: c for c in report.checks}
    assert checks["predictions"].measured == "32/32 rows equal on 1 replica(s)"
    assert checks["error-rate"].measured.startswith("0.00% (0 of 1 requests 5xx)")
    assert time.monotonic() - started >= 1
    assert report.verification is not None and report.verification.is_file()
    pinned = check_pinned(staging, "staging", digest, IMAGE)
    assert pinned.record is not None
    assert verification_status(staging, "staging", pinned.record).ok


def test_a_server_of_another_bundle_fails_predictions_and_holds_promotion(
    staging: Path, run: Run, tmp_path: Path
) -> None:
    other = build_fixture_bundle(tmp_path / "other-bundle")
    wrong = start_server(other.path, tmp_path)
    try:
        digest = bundle_digest(staging / "bundle")
        report = run_verify(staging, "staging", soak_seconds=0, reader=ServedCluster(digest, wrong))
    finally:
        stop_server(wrong)
    assert report.failed == ["predictions"], [c.to_json() for c in report.checks]
    assert f"answered for model {other.digest}" in report.checks[3].detail
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 1
    assert f"{report.record} failed verification" in out and "predictions" in out
