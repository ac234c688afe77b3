"""`liftlock verify <stack>`: is what the stack pins serving well on its cluster? — checks only.

After a rollout, over a soak window from policies/gates.yaml (`thresholds.verify`), it samples
the Deployment `liftlock-model` in the stack's namespace and judges, each as its own verdict:

- `rollout`: the Deployment runs the pinned image and bundle digest, every replica updated;
- `replicas-ready`: every replica Ready in every sample of the window;
- `no-restarts`: no container restarted and no pod was replaced during the window;
- `predictions`: `smokeRows` rows of the bundle's test split, sent to every replica through
  `kubectl port-forward` (127.0.0.1), answered for the pinned bundle and equal to the predictions
  the bundle's own model makes on them (recomputed here from the bundle DVC holds for the pin,
  as the gate recomputes its metrics; probabilities within the bundle's ONNX tolerance);
- `error-rate` and `p99-latency`: of the prediction requests served in the window, read from
  each pod's `/metrics` (through the API server's pod proxy) at the window's start and end.

The cluster is the stack's own: `liftlock:applyTo` (render) or `liftlock:kubeconfig` and
`liftlock:kubeContext` (cluster). The verdicts are written as a signed verification beside the
promotion record of what is deployed (`policies.promotion` reads them; `liftlock promote`
refuses a source whose promotion did not verify). Reading the cluster goes through one
`ClusterReader` (kubectl), so the checks can be judged on a fake one in the tests.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from liftlock.errors import ConfigError, ExternalCommandError, LiftlockError
from policies.model import VerifyThresholds

DEPLOYMENT = "liftlock-model"  # infra/components/model_service.py OBJECT_NAME
HTTP_PORT_NAME = "http"
BUNDLE_ANNOTATION = "liftlock.io/bundle-digest"
CHECKS = ("rollout", "replicas-ready", "no-restarts", "predictions", "error-rate", "p99-latency")
REQUESTS_METRIC = "liftlock_http_requests"
LATENCY_METRIC = "liftlock_http_request_duration_seconds"
# File names sort in time order: to the microsecond, since one record may verify twice a second.
TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"

Verdict = Literal["pass", "fail", "skipped"]


class ClusterReadError(ExternalCommandError):
    """The stack's cluster could not be read (kubectl failed, a port-forward gave no port)."""


# ---------------------------------------------------------------------------------------------
# Reading the cluster


class ClusterReader(Protocol):
    """What verify reads from the stack's namespace (kubectl on the real cluster)."""

    def deployment(self, name: str) -> dict[str, Any] | None: ...

    def pods(self, selector: str) -> list[dict[str, Any]]: ...

    def metrics(self, pod: str, port: int) -> str: ...

    def predict(
        self, pod: str, port: int, rows: Sequence[Mapping[str, float]]
    ) -> tuple[int, dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True)
class KubectlReader:
    """The real cluster, through kubectl with the stack's kubeconfig and context."""

    kubeconfig: str
    context: str
    namespace: str
    kubectl: str

    def _kubectl(self, *args: str, what: str, timeout: float = 30) -> Any:
        from liftlock.run import run_command

        return run_command(
            [
                self.kubectl, f"--kubeconfig={self.kubeconfig}", f"--context={self.context}",
                "-n", self.namespace, *args,
            ],
            what=what,
            missing_hint="bash toolchain/build.sh kube-apiserver (kubectl)",
            timeout=timeout,
            check=False,
        )  # fmt: skip

    def _json(self, *args: str, what: str) -> dict[str, Any] | None:
        import json

        done = self._kubectl("get", *args, "-o", "json", what=what)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            if "NotFound" in said:
                return None
            raise ClusterReadError(
                f"could not {what} (context {self.context}, kubeconfig {self.kubeconfig}): "
                f"{said.splitlines()[-1] if said else f'kubectl exited {done.returncode}'}",
                hint="is the cluster up? `liftlock cluster status`",
            )
        return dict(json.loads(done.stdout))

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self._json("deployment", name, what=f"read deployment {self.namespace}/{name}")

    def pods(self, selector: str) -> list[dict[str, Any]]:
        found = self._json("pods", "-l", selector, what=f"list the pods of {self.namespace}")
        return list((found or {}).get("items") or [])

    def metrics(self, pod: str, port: int) -> str:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/metrics"
        done = self._kubectl("get", "--raw", path, what=f"read /metrics of pod {pod}")
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterReadError(
                f"/metrics of pod {pod} (API server proxy): {said[-1] if said else 'no answer'}"
            )
        return str(done.stdout)

    def predict(
        self, pod: str, port: int, rows: Sequence[Mapping[str, float]]
    ) -> tuple[int, dict[str, Any]]:
        import httpx

        from infra.components.smoke_check import PortForwardError, port_forward

        try:
            with port_forward(
                kubeconfig=self.kubeconfig,
                context=self.context,
                namespace=self.namespace,
                target=f"pod/{pod}",
                port=port,
                kubectl=self.kubectl,
            ) as local:
                answer = httpx.post(
                    f"http://127.0.0.1:{local}/v1/predict", json={"rows": list(rows)}, timeout=30
                )
        except (PortForwardError, httpx.HTTPError) as error:
            raise ClusterReadError(f"pod {pod}: {error}") from error
        try:
            body = answer.json()
        except ValueError:
            body = {"error": answer.text[:300]}
        return answer.status_code, body if isinstance(body, dict) else {"answer": body}


# ---------------------------------------------------------------------------------------------
# Samples of the Deployment and its pods


@dataclass(frozen=True, kw_only=True)
class PodState:
    name: str
    ready: bool
    restarts: Mapping[str, int]  # container -> restartCount
    reason: str  # why it is not Ready ("" when it is)


@dataclass(frozen=True, kw_only=True)
class Sample:
    offset: float  # seconds since the window started
    found: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    generation: int = 0
    observed: int = 0
    images: tuple[str, ...] = ()
    bundle_digest: str | None = None
    http_port: int | None = None
    selector: str = ""
    pods: tuple[PodState, ...] = ()


def _pod_state(pod: Mapping[str, Any]) -> PodState | None:
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return None  # going away (an old ReplicaSet's): not a replica of this rollout
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    containers = status.get("containerStatuses") or []
    reasons = []
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.append(f"{container.get('name')}: {waiting['reason']}")
    ready = conditions.get("Ready") == "True"
    return PodState(
        name=str(metadata.get("name")),
        ready=ready,
        restarts={str(c.get("name")): int(c.get("restartCount") or 0) for c in containers},
        reason="" if ready else (", ".join(reasons) or f"phase {status.get('phase', '?')}"),
    )


def take_sample(reader: ClusterReader, offset: float) -> Sample:
    deployment = reader.deployment(DEPLOYMENT)
    if deployment is None:
        return Sample(offset=offset, found=False)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    template = spec.get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    port = None
    for container in containers[:1]:
        for item in container.get("ports") or []:
            if item.get("name") == HTTP_PORT_NAME:
                port = int(item["containerPort"])
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    pods = [state for pod in reader.pods(selector) if (state := _pod_state(pod)) is not None]
    return Sample(
        offset=offset,
        found=True,
        desired=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        generation=int((deployment.get("metadata") or {}).get("generation") or 0),
        observed=int(status.get("observedGeneration") or 0),
        images=tuple(str(c.get("image")) for c in containers),
        bundle_digest=((template.get("metadata") or {}).get("annotations") or {}).get(
            BUNDLE_ANNOTATION
        ),
        http_port=port,
        selector=selector,
        pods=tuple(sorted(pods, key=lambda p: p.name)),
    )


# ---------------------------------------------------------------------------------------------
# /metrics: the prediction routes' request counts and latency histogram


def is_prediction_route(route: str) -> bool:
    return route == "/v1/predict" or route.endswith("/infer")


@dataclass(frozen=True, kw_only=True)
class RouteMetrics:
    """Counters of the prediction routes of one pod (or their sum, or a window's delta)."""

    requests: Mapping[str, float] = field(default_factory=dict)  # status -> count
    buckets: Mapping[float, float] = field(default_factory=dict)  # le (s) -> cumulative count

    @property
    def total(self) -> float:
        return sum(self.requests.values())

    @property
    def errors(self) -> float:
        return sum(count for status, count in self.requests.items() if status.startswith("5"))


def parse_metrics(text: str) -> RouteMetrics:
    """The prediction routes' counters in a pod's Prometheus text (ml/serve/metrics.py)."""
    from prometheus_client.parser import text_string_to_metric_families

    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == REQUESTS_METRIC:
            for sample in family.samples:
                if sample.name.endswith("_total") and is_prediction_route(
                    sample.labels.get("route", "")
                ):
                    status = sample.labels.get("status", "?")
                    requests[status] = requests.get(status, 0.0) + sample.value
        elif family.name == LATENCY_METRIC:
            for sample in family.samples:
                if sample.name.endswith("_bucket") and is_prediction_route(
                    sample.labels.get("route", "")
                ):
                    le = float(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
    return RouteMetrics(requests=requests, buckets=buckets)


def window_delta(start: RouteMetrics | None, end: RouteMetrics) -> RouteMetrics:
    """What a pod served between two scrapes; a counter that went down means the process
    restarted, so the end scrape is all of it."""
    if start is None:
        return end
    keys = set(start.requests) | set(end.requests)
    if any(end.requests.get(k, 0.0) < start.requests.get(k, 0.0) for k in keys):
        return end
    return RouteMetrics(
        requests={k: end.requests.get(k, 0.0) - start.requests.get(k, 0.0) for k in keys},
        buckets={le: count - start.buckets.get(le, 0.0) for le, count in end.buckets.items()},
    )


def add_metrics(parts: Sequence[RouteMetrics]) -> RouteMetrics:
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for part in parts:
        for key, count in part.requests.items():
            requests[key] = requests.get(key, 0.0) + count
        for le, count in part.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + count
    return RouteMetrics(requests=requests, buckets=buckets)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> tuple[float, bool]:
    """(the q-quantile in seconds, whether it lies above the highest finite bucket), linearly
    interpolated within its bucket as Prometheus' histogram_quantile does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan, False
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower, True
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0), False
        lower, below = le, count
    return lower, True


# ---------------------------------------------------------------------------------------------
# The bundle's own predictions on its test split


@dataclass(frozen=True, kw_only=True)
class Expected:
    rows: list[dict[str, float]]
    labels: list[Any]
    probabilities: list[list[float]]
    tolerance: float
    source: str


def expected_predictions(candidate: Any, count: int) -> Expected:
    """The first `count` rows of the bundle's test split and what its model predicts on them.

    The rows are rounded to float32 as the server's ONNX model reads them; the package stage
    checked that ONNX and the model agree on every test row there (ml/onnx_export.py).
    """
    import joblib
    import numpy as np

    from liftlock.gate import test_split
    from ml.dataset import read_split

    test_csv, problem = test_split(candidate)
    if test_csv is None:
        raise ConfigError(f"cannot compute the bundle's predictions: {problem}")
    manifest = _manifest(candidate.bundle_dir)
    features = [str(name) for name in manifest["features"]]
    frame = read_split(test_csv).head(count)
    x = frame[features].astype("float64").to_numpy().astype(np.float32).astype(np.float64)
    model = joblib.load(candidate.bundle_dir / "model.joblib")
    labels = model.predict(x)
    probabilities = model.predict_proba(x)
    tolerance = float((manifest.get("onnx") or {}).get("tolerance", 1e-5))
    return Expected(
        rows=[dict(zip(features, map(float, row), strict=True)) for row in x],
        labels=labels.tolist(),
        probabilities=probabilities.tolist(),
        tolerance=tolerance,
        source=f"{len(x)} rows of the test split ({test_csv.name})",
    )


def _manifest(bundle_dir: Path) -> dict[str, Any]:
    import json

    with (bundle_dir / "bundle.json").open(encoding="utf-8") as handle:
        return dict(json.load(handle))


# ---------------------------------------------------------------------------------------------
# The checks


@dataclass(frozen=True, kw_only=True)
class Check:
    check: str
    verdict: Verdict
    measured: str
    threshold: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "verdict": self.verdict,
            "measured": self.measured,
            "threshold": self.threshold,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One replica's answer to the smoke rows (or why there was none)."""

    pod: str
    status: int | None
    body: Mapping[str, Any]
    error: str = ""


def check_rollout(first: Sample, digest: str, image: str | None) -> Check:
    threshold = f"image {image or '(any)'}, bundle {digest[:19]}…, every replica updated"
    if not first.found:
        return Check(
            check="rollout", verdict="fail", measured="no Deployment", threshold=threshold,
            detail=f"no Deployment {DEPLOYMENT} in the namespace: not deployed yet? "
            "(`pulumi up --stack <stack>`, or wait for Flux to apply it)",
        )  # fmt: skip
    problems = []
    if image and list(first.images) != [image]:
        problems.append(f"runs image {', '.join(first.images)}, the stack pins {image}")
    if first.bundle_digest != digest:
        problems.append(f"pod template says bundle {first.bundle_digest}, the stack pins {digest}")
    if first.observed < first.generation:
        problems.append(f"generation {first.generation} not yet observed ({first.observed})")
    if first.updated < first.desired:
        problems.append(f"{first.updated}/{first.desired} replicas updated")
    measured = (
        f"{first.updated}/{first.desired} updated, image "
        f"{first.images[0].rpartition('@')[2][:19] if first.images else '?'}…"
    )
    return Check(
        check="rollout",
        verdict="fail" if problems else "pass",
        measured=measured,
        threshold=threshold,
        detail="; ".join(problems),
    )


def check_replicas_ready(samples: Sequence[Sample]) -> Check:
    threshold = "every replica Ready in every sample"
    bad: list[str] = []
    for sample in samples:
        if not sample.found:
            bad.append(f"+{sample.offset:.0f}s: the Deployment is gone")
            continue
        unready = [p for p in sample.pods if not p.ready]
        if sample.desired < 1 or sample.ready < sample.desired or unready:
            pods = "; ".join(f"{p.name} not Ready ({p.reason})" for p in unready)
            where = f"+{sample.offset:.0f}s: {sample.ready}/{sample.desired} Ready"
            bad.append(f"{where} ({pods})" if pods else where)
    good = len(samples) - len(bad)
    last = samples[-1]
    return Check(
        check="replicas-ready",
        verdict="fail" if bad else "pass",
        measured=f"{last.ready}/{last.desired} Ready; {good}/{len(samples)} samples all Ready",
        threshold=threshold,
        detail="; ".join(bad[:3]) + (f"; … {len(bad) - 3} more" if len(bad) > 3 else ""),
    )


def check_no_restarts(samples: Sequence[Sample]) -> Check:
    first = {pod.name: pod for pod in samples[0].pods}
    restarts: dict[str, int] = {}
    appeared: set[str] = set()
    gone: set[str] = set()
    replaced: list[str] = []
    for sample in samples[1:]:
        if not sample.found:
            continue
        for pod in sample.pods:
            if pod.name in first:
                base = first[pod.name].restarts
                grown = sum(max(0, n - base.get(c, 0)) for c, n in pod.restarts.items())
                restarts[pod.name] = max(restarts.get(pod.name, 0), grown)
            elif pod.name not in appeared:
                appeared.add(pod.name)
                replaced.append(f"{pod.name} appeared at +{sample.offset:.0f}s")
        names = {pod.name for pod in sample.pods}
        for name in first:
            if name not in names and name not in gone:
                gone.add(name)
                replaced.append(f"{name} went away by +{sample.offset:.0f}s")
    total = sum(restarts.values())
    detail = [f"{name}: {count} restart(s)" for name, count in sorted(restarts.items()) if count]
    detail += replaced
    return Check(
        check="no-restarts",
        verdict="fail" if total or replaced else "pass",
        measured=f"{total} restart(s), {len(replaced)} pod(s) replaced",
        threshold="0 restarts, 0 pods replaced during the window",
        detail="; ".join(detail),
    )


def _gap(served: Sequence[Any], expected: Sequence[float]) -> float:
    pairs = zip(served, expected, strict=False)
    return max((abs(float(a) - float(b)) for a, b in pairs), default=0.0)


def check_predictions(answers: Sequence[Answer], expected: Expected, digest: str) -> Check:
    threshold = (
        f"every replica: model {digest[:19]}…, labels equal to the bundle's, probabilities "
        f"within {expected.tolerance:g}"
    )
    n = len(expected.rows)
    problems: list[str] = []
    equal_total = 0
    for answer in answers:
        if answer.error or answer.status != 200:
            said = answer.error or f"HTTP {answer.status}: {str(dict(answer.body))[:200]}"
            problems.append(f"{answer.pod}: {said}")
            continue
        model = answer.body.get("model")
        labels = list(answer.body.get("predictions") or [])
        probabilities = list(answer.body.get("probabilities") or [])
        if model != digest:
            problems.append(f"{answer.pod}: answered for model {model}, not {digest}")
        if len(labels) != n:
            problems.append(f"{answer.pod}: {len(labels)} predictions for {n} rows")
            continue
        differ = [i for i in range(n) if labels[i] != expected.labels[i]]
        far = [
            i
            for i in range(min(n, len(probabilities)))
            if i not in differ
            and _gap(probabilities[i], expected.probabilities[i]) > expected.tolerance
        ]
        equal_total += n - len(differ) - len(far)
        if differ:
            i = differ[0]
            problems.append(
                f"{answer.pod}: {len(differ)} of {n} predictions differ (row {i}: served "
                f"{labels[i]!r}, the bundle predicts {expected.labels[i]!r})"
            )
        if far:
            problems.append(
                f"{answer.pod}: probabilities of {len(far)} row(s) beyond {expected.tolerance:g}"
            )
    if not answers:
        problems.append("no Ready replica to ask")
    return Check(
        check="predictions",
        verdict="fail" if problems else "pass",
        measured=f"{equal_total}/{n * len(answers)} rows equal on {len(answers)} replica(s)",
        threshold=threshold,
        detail="; ".join(problems),
    )


def check_error_rate(window: RouteMetrics | None, unread: str, limit: float) -> Check:
    threshold = f"≤ {limit:.2%} of prediction requests 5xx"
    if window is None or unread:
        return Check(
            check="error-rate", verdict="fail", measured="unknown", threshold=threshold,
            detail=unread or "no /metrics read",
        )  # fmt: skip
    if window.total <= 0:
        return Check(
            check="error-rate", verdict="fail", measured="0 requests", threshold=threshold,
            detail="no prediction request was served in the window: nothing to judge",
        )  # fmt: skip
    rate = window.errors / window.total
    return Check(
        check="error-rate",
        verdict="fail" if rate > limit else "pass",
        measured=f"{rate:.2%} ({window.errors:.0f} of {window.total:.0f} requests 5xx)",
        threshold=threshold,
        detail=", ".join(f"{code}: {count:.0f}" for code, count in sorted(window.requests.items())),
    )


def check_p99_latency(window: RouteMetrics | None, unread: str, limit_ms: float) -> Check:
    threshold = f"≤ {limit_ms:g} ms"
    if window is None or unread:
        return Check(
            check="p99-latency", verdict="fail", measured="unknown", threshold=threshold,
            detail=unread or "no /metrics read",
        )  # fmt: skip
    seconds, above = histogram_quantile(0.99, window.buckets)
    if math.isnan(seconds):
        return Check(
            check="p99-latency", verdict="fail", measured="0 requests", threshold=threshold,
            detail="no prediction request was served in the window: nothing to judge",
        )  # fmt: skip
    ms = seconds * 1000
    measured = f"> {ms:g} ms" if above else f"{ms:.1f} ms"
    return Check(
        check="p99-latency",
        verdict="fail" if above or ms > limit_ms else "pass",
        measured=f"{measured} ({window.total:.0f} requests)",
        threshold=threshold,
        detail="from liftlock_http_request_duration_seconds of /v1/predict and V2 infer",
    )


# ---------------------------------------------------------------------------------------------
# The window


@dataclass(kw_only=True)
class Observation:
    """What one soak window saw (all the checks need)."""

    samples: list[Sample]
    answers: list[Answer]
    window: RouteMetrics | None
    unread: str  # why some /metrics could not be read ("" when all were)
    started: datetime
    ended: datetime


def observe(
    reader: ClusterReader,
    expected: Expected,
    verify: VerifyThresholds,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda _line: None,
) -> Observation:
    """Sample, scrape, send the smoke rows to every Ready replica, soak, sample, scrape."""
    started_at = datetime.now(UTC)
    t0 = clock()
    first = take_sample(reader, 0.0)
    samples = [first]
    answers: list[Answer] = []
    start_metrics: dict[str, RouteMetrics] = {}
    unread: list[str] = []
    if first.found and first.http_port is not None:
        port = first.http_port
        for pod in first.pods:
            if not pod.ready:
                continue
            try:
                start_metrics[pod.name] = parse_metrics(reader.metrics(pod.name, port))
            except LiftlockError as error:
                unread.append(str(error))
        for pod in first.pods:
            if not pod.ready:
                continue
            try:
                status, body = reader.predict(pod.name, port, expected.rows)
                answers.append(Answer(pod=pod.name, status=status, body=body))
            except LiftlockError as error:
                answers.append(Answer(pod=pod.name, status=None, body={}, error=str(error)))
        log(f"[verify] smoke rows sent to {len(answers)} replica(s); soak {verify.soak_seconds:g}s")
    elif first.found:
        unread.append(f"the Deployment's container has no port named {HTTP_PORT_NAME!r}")
    while clock() - t0 < verify.soak_seconds:
        sleep(min(verify.poll_seconds, max(0.0, verify.soak_seconds - (clock() - t0))))
        sample = take_sample(reader, clock() - t0)
        samples.append(sample)
        if first.http_port is not None and clock() - t0 < verify.soak_seconds:
            _keep_traffic(reader, sample, first.http_port, expected.rows[:1])
    if len(samples) == 1:
        samples.append(take_sample(reader, clock() - t0))
    window: RouteMetrics | None = None
    if first.found and first.http_port is not None:
        last = samples[-1]
        parts = []
        for pod in last.pods if last.found else ():
            try:
                end = parse_metrics(reader.metrics(pod.name, first.http_port))
            except LiftlockError as error:
                unread.append(str(error))
                continue
            parts.append(window_delta(start_metrics.get(pod.name), end))
        window = add_metrics(parts) if parts else None
    return Observation(
        samples=samples,
        answers=answers,
        window=window,
        unread="; ".join(unread),
        started=started_at,
        ended=datetime.now(UTC),
    )


def _keep_traffic(
    reader: ClusterReader, sample: Sample, port: int, rows: Sequence[Mapping[str, float]]
) -> None:
    """One row to every Ready replica per poll, so the window's error rate and latency judge
    traffic spread over it, not only the smoke request. Their answers are /metrics' to judge
    (a failure to reach a pod shows in readiness and restarts)."""
    for pod in sample.pods if sample.found else ():
        if pod.ready:
            with contextlib.suppress(LiftlockError):
                reader.predict(pod.name, port, rows)


def judge(
    observation: Observation,
    expected: Expected,
    verify: VerifyThresholds,
    *,
    digest: str,
    image: str | None,
) -> list[Check]:
    samples = observation.samples
    return [
        check_rollout(samples[0], digest, image),
        check_replicas_ready(samples),
        check_no_restarts(samples),
        check_predictions(observation.answers, expected, digest),
        check_error_rate(observation.window, observation.unread, verify.max_error_rate),
        check_p99_latency(observation.window, observation.unread, verify.max_p99_latency_ms),
    ]


# ---------------------------------------------------------------------------------------------
# The command's logic


@dataclass(kw_only=True)
class VerifyReport:
    stack: str
    namespace: str
    cluster: str
    bundle_digest: str
    image: str | None
    record: str  # the promotion record judged, relative to the root
    soak_seconds: float
    checks: list[Check]
    started: datetime
    ended: datetime
    samples: int
    expected: str
    verification: Path | None = None  # the signed verification written (None: not written)
    written: list[Path] = field(default_factory=list)
    # why the verification could not be written (an unlisted signing key, ...): the verdicts
    # are still shown, then the command fails with it
    record_error: LiftlockError | None = None

    @property
    def passed(self) -> bool:
        return all(check.verdict == "pass" for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.check for check in self.checks if check.verdict == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "bundleDigest": self.bundle_digest,
            "image": self.image,
            "record": self.record,
            "passed": self.passed,
            "failed": self.failed,
            "soakSeconds": self.soak_seconds,
            "window": {"start": _utc(self.started), "end": _utc(self.ended)},
            "samples": self.samples,
            "smoke": self.expected,
            "checks": [check.to_json() for check in self.checks],
            "verification": str(self.verification) if self.verification else None,
        }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the stack runs: the cluster to read, the namespace, what it pins."""

    stack: str
    kubeconfig: str
    context: str
    namespace: str
    digest: str
    image: str | None


def stack_target(root: Path, stack: str) -> Target:
    """The stack's cluster (liftlock:applyTo, or the cluster target's kubeconfig) and pins."""
    from liftlock.promote import load_config

    config = load_config(root, stack)
    where = f"stacks/Pulumi.{stack}.yaml"
    if config.target == "cluster" and config.kubeconfig and config.kube_context:
        kubeconfig, context = config.kubeconfig, config.kube_context
    elif config.apply_to is not None:
        kubeconfig, context = config.apply_to.kubeconfig, config.apply_to.kube_context
    else:
        raise ConfigError(
            f"{where}: {stack} names no cluster to verify on (target {config.target}, no "
            "liftlock:applyTo)",
            hint="give the render stack `liftlock:applyTo: {kubeconfig: ..., kubeContext: ...}` "
            "(the embedded cluster: ~/.cache/liftlock/cluster/kubeconfig, liftlock-embedded), "
            "or verify a stack that runs on a cluster",
        )
    if not config.bundle_digest or not config.namespace:
        missing = "liftlock:bundleDigest" if not config.bundle_digest else "liftlock:namespace"
        raise ConfigError(f"{where}: {missing} is not set: nothing to verify")
    kubeconfig = str(Path(kubeconfig).expanduser())
    if not Path(kubeconfig).is_file():
        raise ConfigError(
            f"{where}: kubeconfig {kubeconfig} does not exist",
            hint="start the cluster (`liftlock cluster up`) or fix the kubeconfig path",
        )
    return Target(
        stack=stack,
        kubeconfig=kubeconfig,
        context=context,
        namespace=config.namespace,
        digest=config.bundle_digest,
        image=config.image,
    )


def verification_path(root: Path, stack: str, digest: str, when: datetime) -> Path:
    from liftlock.records import digest12
    from policies.promotion import verifications_dir

    stamp = when.astimezone(UTC).strftime(TIME_FORMAT)
    return verifications_dir(root, stack) / f"{stamp}-{digest12(digest)}.json"


def write_verification(
    root: Path, report: VerifyReport, record_path: Path, *, log: Callable[[str], None] = print
) -> list[Path]:
    """The signed verification of `record_path` (never over another): what was judged, how."""
    from liftlock.records import signing_identity, write_signed_record
    from policies.promotion import VERIFICATION_KIND, record_sha256

    data = {
        "kind": VERIFICATION_KIND,
        "stack": report.stack,
        "record": record_path.name,
        "recordSha256": record_sha256(record_path),
        "bundleDigest": report.bundle_digest,
        "image": report.image,
        "namespace": report.namespace,
        "cluster": report.cluster,
        "passed": report.passed,
        "failed": report.failed,
        "checks": [check.to_json() for check in report.checks],
        "soakSeconds": report.soak_seconds,
        "window": {"start": _utc(report.started), "end": _utc(report.ended)},
        "signer": signing_identity(root),
        "time": _utc(report.ended),
    }
    path = verification_path(root, report.stack, report.bundle_digest, report.ended)
    return write_signed_record(root, path, data, log=log, stack=report.stack)


def run_verify(
    root: Path,
    stack: str,
    *,
    soak_seconds: float | None = None,
    record: bool = True,
    reader: ClusterReader | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> VerifyReport:
    """Verify what `stack` pins on its cluster; write the signed verification (unless `record`
    is False). Returns the report; the caller exits non-zero when it did not pass."""
    from dataclasses import replace

    from liftlock.gate import pinned_candidate, read_gates
    from policies.promotion import check_pinned

    target = stack_target(root, stack)
    verify = read_gates(root).for_stack(stack).thresholds.verify
    if soak_seconds is not None:
        if soak_seconds < 0:
            raise ConfigError(f"--soak {soak_seconds:g}: must be 0 or more seconds")
        verify = replace(verify, soak_seconds=soak_seconds)
    pinned = check_pinned(root, stack, target.digest, target.image)
    if not pinned.ok or pinned.record is None:
        raise ConfigError(
            f"nothing verifiable: {pinned.message}",
            hint=f"promote through the gate first (`liftlock promote <from> {stack}`)",
        )
    if reader is None:
        from liftlock.cluster.kubernetes import binary

        reader = KubectlReader(
            kubeconfig=target.kubeconfig,
            context=target.context,
            namespace=target.namespace,
            kubectl=binary("kubectl"),
        )
    with pinned_candidate(root, stack) as candidate:
        expected = expected_predictions(candidate, verify.smoke_rows)
    log(
        f"[verify] {stack}: deployment {target.namespace}/{DEPLOYMENT} on {target.context}, "
        f"bundle {target.digest[7:19]}, {expected.source}"
    )
    observation = observe(reader, expected, verify, sleep=sleep, log=log)
    checks = judge(observation, expected, verify, digest=target.digest, image=target.image)
    report = VerifyReport(
        stack=stack,
        namespace=target.namespace,
        cluster=f"{target.context} ({target.kubeconfig})",
        bundle_digest=target.digest,
        image=target.image,
        record=_relative(root, pinned.record.path),
        soak_seconds=verify.soak_seconds,
        checks=checks,
        started=observation.started,
        ended=observation.ended,
        samples=len(observation.samples),
        expected=expected.source,
    )
    if record:
        try:
            written = write_verification(root, report, pinned.record.path, log=log)
        except LiftlockError as error:
            report.record_error = error
            return report
        report.written = written
        report.verification = next(p for p in written if p.suffix == ".json")
    return report


def _relative(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
