"""`liftlock verify`'s checks on a fake cluster reader: a good rollout passes every check, and
each check fails on its own when only what it watches goes wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from liftlock.verify import (
    CHECKS,
    Check,
    Expected,
    RouteMetrics,
    histogram_quantile,
    judge,
    observe,
    parse_metrics,
    window_delta,
)
from policies.model import VerifyThresholds
from tests.cli.fake_cluster import IMAGE, FakeClock, FakeCluster, deployment, metrics_text, pod

DIGEST = "sha256:" + "b" * 64
LABELS = [0, 1, 1, 0]
PROBABILITIES = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]
EXPECTED = Expected(
    rows=[{"a": float(i)} for i in range(4)],
    labels=LABELS,
    probabilities=PROBABILITIES,
    tolerance=1e-5,
    source="4 rows of the test split",
)
THRESHOLDS = VerifyThresholds(
    soak_seconds=10, poll_seconds=5, max_error_rate=0.01, max_p99_latency_ms=250, smoke_rows=4
)
FAST = 0.003
SLOW = 0.8


def good_answer(_pod: str, rows: Sequence[Mapping[str, float]]) -> tuple[int, dict[str, Any]]:
    """The bundle's answer: the smoke rows, or the first one (the traffic kept up per poll)."""
    assert len(rows) in (1, 4)
    n = len(rows)
    return 200, {"model": DIGEST, "predictions": LABELS[:n], "probabilities": PROBABILITIES[:n]}


def healthy() -> FakeCluster:
    before = metrics_text((200, 10, FAST))
    after = metrics_text((200, 11, FAST))  # the smoke request
    return FakeCluster(
        deploy=deployment(DIGEST),
        timeline=[[pod("model-a"), pod("model-b")]],
        scrapes={"model-a": [before, after], "model-b": [before, after]},
        answer=good_answer,
    )


def verdicts(cluster: FakeCluster, thresholds: VerifyThresholds = THRESHOLDS) -> list[Check]:
    clock = FakeClock()
    observation = observe(cluster, EXPECTED, thresholds, sleep=clock.sleep, clock=clock)
    return judge(observation, EXPECTED, thresholds, digest=DIGEST, image=IMAGE)


def failed(checks: list[Check]) -> list[str]:
    return [check.check for check in checks if check.verdict == "fail"]


def test_a_good_rollout_passes_every_check() -> None:
    cluster = healthy()
    checks = verdicts(cluster)
    assert [c.check for c in checks] == list(CHECKS)
    assert failed(checks) == [], [c.to_json() for c in checks]
    # every replica answered the smoke rows, then a row per poll but the window's last
    assert cluster.asked == ["model-a", "model-b"] * 2
    assert cluster.samples_taken == 3  # +0s, +5s, +10s
    by_name = {c.check: c for c in checks}
    assert by_name["predictions"].measured == "8/8 rows equal on 2 replica(s)"
    assert by_name["error-rate"].measured.startswith("0.00% (0 of 2 requests 5xx)")
    assert by_name["p99-latency"].measured.startswith("5.0 ms (2 requests)")  # 2-5 ms bucket
    assert by_name["replicas-ready"].measured == "2/2 Ready; 3/3 samples all Ready"


def _wrong_image(cluster: FakeCluster) -> None:
    cluster.deploy = deployment(DIGEST, image=IMAGE.replace("c" * 64, "d" * 64))


def _unready_later(cluster: FakeCluster) -> None:
    cluster.timeline = [
        [pod("model-a"), pod("model-b")],
        [pod("model-a"), pod("model-b", ready=False)],
    ]


def _restarted(cluster: FakeCluster) -> None:
    cluster.timeline = [
        [pod("model-a"), pod("model-b", restarts=2)],
        [pod("model-a"), pod("model-b", restarts=3)],
    ]


def _wrong_predictions(cluster: FakeCluster) -> None:
    def flipped(name: str, rows: Sequence[Mapping[str, float]]) -> tuple[int, dict[str, Any]]:
        status, body = good_answer(name, rows)
        if name == "model-b":
            body = {**body, "predictions": [1 - label for label in body["predictions"]]}
        return status, body

    cluster.answer = flipped


def _server_errors(cluster: FakeCluster) -> None:
    before = metrics_text((200, 10, FAST))
    cluster.scrapes["model-a"] = [before, metrics_text((200, 11, FAST), (500, 3, FAST))]


def _slow(cluster: FakeCluster) -> None:
    before = metrics_text((200, 10, FAST))
    cluster.scrapes["model-b"] = [before, metrics_text((200, 10, FAST), (200, 5, SLOW))]


SCENARIOS = {
    "rollout": _wrong_image,
    "replicas-ready": _unready_later,
    "no-restarts": _restarted,
    "predictions": _wrong_predictions,
    "error-rate": _server_errors,
    "p99-latency": _slow,
}


@pytest.mark.parametrize("check", list(SCENARIOS))
def test_each_check_fails_on_its_own(check: str) -> None:
    cluster = healthy()
    SCENARIOS[check](cluster)
    checks = verdicts(cluster)
    assert failed(checks) == [check], [c.to_json() for c in checks]
    detail = {c.check: c for c in checks}[check]
    expected_words = {
        "rollout": "the stack pins " + IMAGE,
        "replicas-ready": "+5s: 2/2 Ready (model-b not Ready",
        "no-restarts": "model-b: 1 restart(s)",
        "predictions": "model-b: 4 of 4 predictions differ (row 0: served 1, the bundle "
        "predicts 0)",
        "error-rate": "500: 3",
        "p99-latency": "liftlock_http_request_duration_seconds",
    }[check]
    assert expected_words in detail.detail, detail.to_json()


def test_a_missing_deployment_fails_rollout_naming_it() -> None:
    cluster = healthy()
    cluster.deploy = None
    checks = {c.check: c for c in verdicts(cluster)}
    assert checks["rollout"].verdict == "fail"
    assert "no Deployment liftlock-model" in checks["rollout"].detail
    assert checks["predictions"].detail == "no Ready replica to ask"


def test_a_replica_replaced_during_the_window_fails_no_restarts() -> None:
    cluster = healthy()
    cluster.timeline = [[pod("model-a"), pod("model-b")], [pod("model-a"), pod("model-c")]]
    check = {c.check: c for c in verdicts(cluster)}["no-restarts"]
    assert check.verdict == "fail"
    assert "model-c appeared at +5s" in check.detail and "model-b went away" in check.detail


def test_an_answer_for_another_model_fails_predictions() -> None:
    cluster = healthy()
    other = "sha256:" + "e" * 64
    cluster.answer = lambda name, rows: (200, {**good_answer(name, rows)[1], "model": other})
    check = {c.check: c for c in verdicts(cluster)}["predictions"]
    assert check.verdict == "fail" and f"answered for model {other}" in check.detail


def test_no_prediction_traffic_in_the_window_cannot_pass() -> None:
    cluster = healthy()
    same = metrics_text((200, 10, FAST))
    cluster.scrapes = {"model-a": [same], "model-b": [same]}
    checks = {c.check: c for c in verdicts(cluster)}
    assert checks["error-rate"].verdict == "fail" and checks["error-rate"].measured == "0 requests"
    assert checks["p99-latency"].verdict == "fail"


def test_probes_are_not_prediction_traffic() -> None:
    parsed = parse_metrics(metrics_text((200, 2, FAST)))
    assert parsed.requests == {"200": 2.0}  # the probes' 503 is not counted


def test_a_counter_reset_counts_the_whole_end_scrape() -> None:
    start = RouteMetrics(requests={"200": 50.0}, buckets={0.005: 50.0, math.inf: 50.0})
    end = RouteMetrics(requests={"200": 3.0}, buckets={0.005: 3.0, math.inf: 3.0})
    assert window_delta(start, end) == end


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.001: 0.0, 0.002: 50.0, 0.005: 100.0, math.inf: 100.0}
    value, above = histogram_quantile(0.99, buckets)
    assert not above and value == pytest.approx(0.002 + 0.003 * 49 / 50)
    value, above = histogram_quantile(0.99, {0.005: 1.0, math.inf: 100.0})
    assert above and value == 0.005
