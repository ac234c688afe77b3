"""A fake `ClusterReader` for `liftlock verify`'s checks: the Deployment and its pods as kubectl
would print them, /metrics as the real server's collector renders it (ml.serve.metrics), and
the smoke rows answered by a function (or forwarded to a real server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.serve.metrics import ServeMetrics, render

IMAGE = "127.0.0.1:5000/liftlock-model@sha256:" + "c" * 64
SELECTOR = {"app.kubernetes.io/name": "liftlock-model", "liftlock.io/stack": "staging"}

Predict = Callable[[str, Sequence[Mapping[str, float]]], tuple[int, dict[str, Any]]]


def deployment(
    digest: str, *, image: str = IMAGE, replicas: int = 2, ready: int | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "liftlock-model", "generation": 3},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"annotations": {"liftlock.io/bundle-digest": digest}},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "ports": [
                                {"name": "http", "containerPort": 8080},
                                {"name": "grpc", "containerPort": 8081},
                            ],
                        }
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready is None else ready,
        },
    }


def pod(name: str, *, ready: bool = True, restarts: int = 0, waiting: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name, "labels": SELECTOR},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "model", "ready": ready, "restartCount": restarts, "state": state}
            ],
        },
    }


def metrics_text(*served: tuple[int, int, float]) -> str:
    """What a pod's /metrics says after serving, on /v1/predict, `count` requests answered
    `status` taking `seconds` each, per (status, count, seconds); plus the probes' requests
    (a 503 among them), which verify must not count."""
    metrics = ServeMetrics(["a"], [0, 1], [np.array([0.5])])
    for status, count, seconds in served:
        for _ in range(count):
            metrics.observe_request("/v1/predict", status, seconds)
    for _ in range(7):
        metrics.observe_request("/v2/health/ready", 200, 0.0001)
    metrics.observe_request("/v2/health/ready", 503, 0.0001)
    return render(metrics).decode()


@dataclass
class FakeCluster:
    """Answers take_sample()'s reads: `timeline[i]` are the pods of the i-th sample (the last
    one repeats); `scrapes[pod]` the /metrics texts in scrape order (the last one repeats)."""

    deploy: dict[str, Any] | None
    timeline: list[list[dict[str, Any]]]
    scrapes: dict[str, list[str]]
    answer: Predict
    samples_taken: int = 0
    asked: list[str] = field(default_factory=list)
    scraped: dict[str, int] = field(default_factory=dict)

    def deployment(self, name: str) -> dict[str, Any] | None:
        assert name == "liftlock-model"
        return self.deploy

    def pods(self, selector: str) -> list[dict[str, Any]]:
        assert selector == ",".join(f"{k}={v}" for k, v in sorted(SELECTOR.items()))
        pods = self.timeline[min(self.samples_taken, len(self.timeline) - 1)]
        self.samples_taken += 1
        return pods

    def metrics(self, pod: str, port: int) -> str:
        assert port == 8080
        index = self.scraped.get(pod, 0)
        self.scraped[pod] = index + 1
        texts = self.scrapes.get(pod) or [metrics_text()]  # a new pod: nothing served yet
        return texts[min(index, len(texts) - 1)]

    def predict(
        self, pod: str, port: int, rows: Sequence[Mapping[str, float]]
    ) -> tuple[int, dict[str, Any]]:
        assert port == 8080
        self.asked.append(pod)
        return self.answer(pod, rows)


class FakeClock:
    """time.monotonic and time.sleep for the soak loop, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
