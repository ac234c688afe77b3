"""Serving benchmark: liftlock's server against MLServer, a minimal FastAPI server, in-process.

    .venv/bin/python benchmarks/serve.py [--bundle bundle] [--duration 8] [--skip-mlserver]

One run measures, with wrk on 127.0.0.1 (`apt-get install -y wrk`), throughput and p50/p99
latency for single rows at concurrency 1 and 16 and 100-row batches at concurrency 1, for:

- liftlock: `python -m ml.serve` (ONNX Runtime, raw-ASGI predict path) on uvicorn, on /v1 and on
  V2 REST (`liftlock-v2`: the very request bytes MLServer gets, FP64 tensor [rows, n]);
- MLServer 1.7.1 + mlserver-sklearn on the same model.joblib (V2 inference protocol), installed
  in its own venv, ~/.cache/liftlock/bench-venv (it pins versions that conflict with ours);
- V2 gRPC, single row, sequential calls (grpcio, raw_input_contents): liftlock and MLServer;
- a minimal FastAPI + pydantic server calling the same sklearn Pipeline (what one writes first);
- in-process predict (no HTTP): the ONNX session, and liftlock's parse -> predict -> encode.

It also sends two bad payloads (a "NaN" string, 2 columns instead of all) to each server and
prints the status codes, then the ratios liftlock / other measured in the same run.
Without --bundle, a fixture bundle (tests/serve/fixture_bundle.py) is built in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = Path.home() / ".cache" / "liftlock" / "bench-venv"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
SCENARIOS = (("single c1", 1, 1), ("single c16", 1, 16), ("batch100 c1", 100, 1))

WRK_SCRIPT = """
local f = io.open(os.getenv("BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Result:
    server: str
    scenario: str
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    # server CPU (all its processes) per request: what the load costs, whatever else runs here
    cpu_us: float = float("nan")


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}: not ready after {timeout:.0f}s")


def start(command: list[str], ready_url: str, log: Path, **kwargs) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, **kwargs)
    wait_ready(ready_url, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_bench_venv() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not (BENCH_VENV / "bin" / "mlserver").exists():
        print(f"[bench] installing {' '.join(MLSERVER_PINS)} into {BENCH_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        sklearn = _installed_version("scikit-learn")
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                *MLSERVER_PINS,
                f"scikit-learn=={sklearn}",
            ],
            check=True,
        )
    return BENCH_VENV / "bin" / "mlserver"


def _installed_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


MINIMAL_FASTAPI = '''
"""What one writes first: FastAPI + pydantic, sklearn predict, default JSON encoding."""
import json, os
import joblib
from fastapi import FastAPI
from pydantic import create_model

features = json.load(open(os.environ["BUNDLE"] + "/bundle.json"))["features"]
model = joblib.load(os.environ["BUNDLE"] + "/model.joblib")
Row = create_model("Row", **{name: (float, ...) for name in features})
Batch = create_model("Batch", rows=(list[Row], ...))
app = FastAPI()

@app.post("/predict")
def predict(batch: Batch):
    x = [[getattr(row, name) for name in features] for row in batch.rows]
    return {"predictions": model.predict(x).tolist(),
            "probabilities": model.predict_proba(x).tolist()}

@app.get("/ready")
def ready():
    return {"ok": True}
'''


# --- load --------------------------------------------------------------------------------------


def wrk(url: str, body: Path, connections: int, duration: float, work: Path) -> dict[str, float]:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY": str(body)}
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return {
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": float(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (MLServer runs worker processes)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(
    url: str, body: Path, connections: int, duration: float, work: Path, pid: int
) -> dict[str, float]:
    before = cpu_seconds(pid)
    measured = wrk(url, body, connections, duration, work)
    measured["cpu_us"] = (cpu_seconds(pid) - before) / max(1.0, measured["requests"]) * 1e6
    return measured


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def in_app_latency(metrics_url: str) -> dict[str, float]:
    """Share of /v1/predict requests the app answered within each latency bucket (its own
    histogram: request start to response sent, without wrk's or the kernel's queueing)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    pattern = (
        r'liftlock_http_request_duration_seconds_bucket\{le="([^"]+)",route="/v1/predict"\} (\S+)'
    )
    buckets = {le: float(count) for le, count in re.findall(pattern, text)}
    total = buckets.get("+Inf", 0.0) or 1.0
    return {
        le: count / total for le, count in buckets.items() if le in ("0.0005", "0.001", "0.002")
    }


def status_of(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# --- bodies per server --------------------------------------------------------------------------


def liftlock_body(features: list[str], x: np.ndarray) -> bytes:
    rows = [dict(zip(features, map(float, row), strict=True)) for row in x]
    return json.dumps({"row": rows[0]} if len(rows) == 1 else {"rows": rows}).encode()


def minimal_body(features: list[str], x: np.ndarray) -> bytes:
    return json.dumps(
        {"rows": [dict(zip(features, map(float, r), strict=True)) for r in x]}
    ).encode()


def mlserver_body(features: list[str], x: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "predict",
                    "shape": list(x.shape),
                    "datatype": "FP64",
                    "data": x.ravel().tolist(),
                }
            ]
        }
    ).encode()


def bad_bodies(features: list[str], x: np.ndarray, kind: str) -> dict[str, bytes]:
    if kind == "mlserver":
        nan = json.loads(mlserver_body(features, x[:1]))
        nan["inputs"][0]["data"][0] = "NaN"
        two = {
            "inputs": [{"name": "predict", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]
        }
        return {"NaN string": json.dumps(nan).encode(), "2 columns": json.dumps(two).encode()}
    row = dict(zip(features, map(float, x[0]), strict=True))
    wrap = (lambda r: {"row": r}) if kind == "liftlock" else (lambda r: {"rows": [r]})
    return {
        "NaN string": json.dumps(wrap({**row, features[0]: "NaN"})).encode(),
        "2 columns": json.dumps(wrap(dict(list(row.items())[:2]))).encode(),
    }


# --- in-process -----------------------------------------------------------------------------


def in_process(bundle: Path, features: list[str], x: np.ndarray) -> list[Result]:
    import orjson

    from ml.serve.app import ServeApp
    from ml.serve.model import load_bundle
    from ml.serve.settings import ServeSettings

    loaded = load_bundle(bundle)
    app = ServeApp(ServeSettings(bundle=bundle), loaded)
    results = []
    for label, rows in (("single", 1), ("batch100", 100)):
        matrix = x[:rows]
        body = liftlock_body(features, matrix)

        def full_path(body: bytes = body) -> None:
            parsed = app.parser.parse(body)
            labels, probabilities = loaded.predictor.predict(parsed)
            orjson.dumps(
                {"predictions": labels, "probabilities": probabilities},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            app.metrics.observe_rows(parsed, labels)

        for name, call in (
            ("in-process ONNX predict", lambda m=matrix: loaded.predictor.predict(m)),
            ("in-process parse+predict+encode", full_path),
        ):
            times = []
            for _ in range(200):
                call()
            for _ in range(3000 if rows == 1 else 1000):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            per_call = float(np.mean(times))
            results.append(
                Result(
                    name, f"{label} c1", 1 / per_call, rows / per_call,
                    float(np.percentile(times, 50)) * 1e3, float(np.percentile(times, 99)) * 1e3, 0,
                    float(np.median(times)) * 1e6,
                )
            )  # fmt: skip
    return results


# --- main ---------------------------------------------------------------------------------------


def run_http(
    name: str,
    url: str,
    body_for,
    features: list[str],
    x: np.ndarray,
    duration: float,
    work: Path,
    pid: int,
) -> list[Result]:
    results = []
    for scenario, rows, connections in SCENARIOS:
        body = work / f"{name}-{rows}.json"
        body.write_bytes(body_for(features, x[:rows]))
        wrk(url, body, connections, 2, work)  # warm-up
        measured = measure(url, body, connections, duration, work, pid)
        results.append(
            Result(
                name, scenario, measured["rps"], measured["rps"] * rows, measured["p50"],
                measured["p99"], int(measured["errors"]), measured["cpu_us"],
            )
        )  # fmt: skip
        print(f"[bench] {name:<10} {scenario:<12} {measured['rps']:>9.0f} req/s", flush=True)
    return results


def measure_server(
    name: str,
    url: str,
    body_for,
    features: list[str],
    x: np.ndarray,
    duration: float,
    work: Path,
    pid: int,
    kind: str | None = None,
) -> tuple[list[Result], dict[str, int]]:
    """Load one server with the standard workloads, then probe it with every bad payload
    (`kind` names the payload family: liftlock (/v1), mlserver (V2), fastapi)."""
    results = run_http(name, url, body_for, features, x, duration, work, pid)
    statuses = {k: status_of(url, v) for k, v in bad_bodies(features, x, kind or name).items()}
    return results, statuses


def grpc_single_row(address: str, model: str, row: np.ndarray, calls: int = 3000) -> Result:
    """Sequential V2 ModelInfer calls with one FP64 row as raw_input_contents (c=1)."""
    import grpc

    from ml.serve.v2 import open_inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="predict", datatype="FP64", shape=[1, len(row)])
    request.raw_input_contents.append(np.asarray(row, dtype="<f8").tobytes())
    with grpc.insecure_channel(address) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for _ in range(200):
            infer(request, timeout=10)
        times = []
        started_all = time.perf_counter()
        for _ in range(calls):
            started = time.perf_counter()
            infer(request, timeout=10)
            times.append(time.perf_counter() - started)
        elapsed = time.perf_counter() - started_all
    rate = calls / elapsed
    p50, p99 = (float(np.percentile(times, q)) * 1e3 for q in (50, 99))
    return Result("", "grpc single c1", rate, rate, p50, p99, 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: a fixture bundle)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--skip-mlserver", action="store_true", help="leave MLServer out")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="liftlock-bench-"))
    sys.path.insert(0, str(ROOT))
    if args.bundle is None:
        from tests.serve.fixture_bundle import build_fixture_bundle

        bundle = build_fixture_bundle(work / "bundle").path
    else:
        bundle = args.bundle.resolve()
    manifest = json.loads((bundle / "bundle.json").read_text())
    features = manifest["features"]
    reference = np.genfromtxt(bundle / "reference.csv", delimiter=",", skip_header=1)
    x = np.nan_to_num(reference[:100], nan=float(np.nanmean(reference)))

    results: list[Result] = []
    bad: dict[str, dict[str, int]] = {}

    model_name = json.loads((bundle / "model_card.json").read_text()).get("name") or "model"
    port, grpc_port = free_port(), free_port()
    process = start(
        [sys.executable, "-m", "ml.serve", "--bundle", str(bundle), "--port", str(port),
         "--grpc-port", str(grpc_port)],
        f"http://127.0.0.1:{port}/readyz", work / "liftlock.log", cwd=ROOT,
    )  # fmt: skip
    try:
        # V2 REST first: the same request bytes MLServer gets below
        url = f"http://127.0.0.1:{port}/v2/models/{model_name}/infer"
        measured_runs, bad["liftlock-v2"] = measure_server(
            "liftlock-v2", url, mlserver_body, features, x, args.duration, work, process.pid,
            kind="mlserver",
        )  # fmt: skip
        results += measured_runs
        grpc_result = grpc_single_row(f"127.0.0.1:{grpc_port}", model_name, x[0])
        grpc_result.server = "liftlock-v2"
        results.append(grpc_result)
        url = f"http://127.0.0.1:{port}/v1/predict"
        measured_runs, bad["liftlock"] = measure_server(
            "liftlock", url, liftlock_body, features, x, args.duration, work, process.pid
        )
        results += measured_runs
        server_side = in_app_latency(f"http://127.0.0.1:{port}/metrics")
        # the compact form: rows as arrays in feature order (no keys to parse)
        body = work / "liftlock-arrays.json"
        body.write_bytes(json.dumps({"rows": x.tolist()}).encode())
        wrk(url, body, 1, 2, work)
        measured = measure(url, body, 1, args.duration, work, process.pid)
        results.append(
            Result(
                "liftlock", "batch100 arrays c1", measured["rps"], measured["rps"] * 100,
                measured["p50"], measured["p99"], int(measured["errors"]), measured["cpu_us"],
            )
        )  # fmt: skip
    finally:
        stop(process)

    if not args.skip_mlserver:
        mlserver = ensure_bench_venv()
        model_dir = work / "mlserver"
        model_dir.mkdir()
        shutil.copy(bundle / "model.joblib", model_dir / "model.joblib")
        port, grpc, metrics = free_port(), free_port(), free_port()
        (model_dir / "settings.json").write_text(
            json.dumps(
                {"host": "127.0.0.1", "http_port": port, "grpc_port": grpc, "metrics_port": metrics}
            )
        )
        (model_dir / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "model",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        process = start(
            [str(mlserver), "start", str(model_dir)],
            f"http://127.0.0.1:{port}/v2/models/model/ready", work / "mlserver.log", cwd=model_dir,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/v2/models/model/infer"
            measured_runs, bad["mlserver"] = measure_server(
                "mlserver", url, mlserver_body, features, x, args.duration, work, process.pid
            )
            results += measured_runs
            grpc_result = grpc_single_row(f"127.0.0.1:{grpc}", "model", x[0])
            grpc_result.server = "mlserver"
            results.append(grpc_result)
        finally:
            stop(process)

    app_file = work / "minimal_fastapi.py"
    app_file.write_text(textwrap.dedent(MINIMAL_FASTAPI))
    port = free_port()
    process = start(
        [sys.executable, "-m", "uvicorn", "minimal_fastapi:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        f"http://127.0.0.1:{port}/ready", work / "minimal.log", cwd=work,
        env={**os.environ, "BUNDLE": str(bundle)},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/predict"
        measured_runs, bad["fastapi"] = measure_server(
            "fastapi", url, minimal_body, features, x, args.duration, work, process.pid
        )
        results += measured_runs
    finally:
        stop(process)

    results += in_process(bundle, features, x)
    report(results, bad)
    print("\nliftlock in-app latency of /v1/predict (its /metrics histogram, all scenarios):")
    for le, share in server_side.items():
        print(f"  <= {float(le) * 1e3:g} ms: {share:.2%} of requests")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def report(results: list[Result], bad: dict[str, dict[str, int]]) -> None:
    header = ("server", "scenario", "req/s", "rows/s", "p50 ms", "p99 ms", "non-2xx", "CPU us/req")
    print(f"\n{header[0]:<32} {header[1]:<19} " + " ".join(f"{h:>9}" for h in header[2:]))
    for r in results:
        print(
            f"{r.server:<32} {r.scenario:<19} {r.requests_per_s:>9.0f} {r.rows_per_s:>9.0f} "
            f"{r.p50_ms:>9.3f} {r.p99_ms:>9.3f} {r.errors:>9} {r.cpu_us:>10.0f}"
        )
    print("\nbad payloads (HTTP status):")
    for server, codes in bad.items():
        print(f"  {server:<10} " + ", ".join(f"{k}: {v}" for k, v in codes.items()))
    by = {(r.server, r.scenario): r for r in results}
    print("\nratios (liftlock / other, same run; liftlock-v2 / mlserver on the same V2 bytes):")
    for scenario, _, _ in SCENARIOS:
        for me, other in (("liftlock-v2", "mlserver"), ("liftlock", "mlserver"),
                          ("liftlock", "fastapi")):  # fmt: skip
            mine = by.get((me, scenario))
            theirs = by.get((other, scenario))
            if mine and theirs:
                speedup = mine.rows_per_s / theirs.rows_per_s
                print(
                    f"  {me:<11} {scenario:<12} vs {other:<9} throughput x{speedup:.1f}, "
                    f"p99 {theirs.p99_ms / mine.p99_ms:.1f}x lower, "
                    f"server CPU per request {theirs.cpu_us / mine.cpu_us:.1f}x lower"
                )
    c1, c16, batch = (by.get(("liftlock", s)) for s, _, _ in SCENARIOS)
    print("\nliftlock capacity with one core to itself (1 / server CPU per request):")
    for r in results:
        if r.server == "liftlock" and r.cpu_us > 0:
            capacity = 1e6 / r.cpu_us
            rows = capacity * r.rows_per_s / r.requests_per_s
            print(f"  {r.scenario:<19} {capacity:>7.0f} req/s = {rows:>8.0f} rows/s")
    print("\ntargets:")
    if c1:
        print(f"  single c1 p99 <= 2 ms: {c1.p99_ms:.2f} ms {_verdict(c1.p99_ms <= 2)}")
    if c16:
        print(
            f"  single c16 >= 5000 rows/s: {c16.rows_per_s:.0f} {_verdict(c16.rows_per_s >= 5000)}"
        )
        for other in ("mlserver", "fastapi"):
            theirs = by.get((other, "single c16"))
            if theirs:
                ratio = c16.rows_per_s / theirs.rows_per_s
                print(f"  single c16 >= 8x {other}: x{ratio:.1f} {_verdict(ratio >= 8)}")
    v2_c16, ml_c16 = by.get(("liftlock-v2", "single c16")), by.get(("mlserver", "single c16"))
    if v2_c16 and ml_c16:
        ratio = v2_c16.rows_per_s / ml_c16.rows_per_s
        print(
            f"  V2 REST single c16 >= 8x MLServer (same bytes): x{ratio:.1f} {_verdict(ratio >= 8)}"
        )
    for server in ("liftlock-v2", "mlserver"):
        grpc_result = by.get((server, "grpc single c1"))
        if grpc_result:
            print(
                f"  {server} V2 gRPC single row: p50 {grpc_result.p50_ms:.3f} ms, "
                f"p99 {grpc_result.p99_ms:.3f} ms, {grpc_result.requests_per_s:.0f} calls/s"
            )
    if batch:
        rps = batch.requests_per_s
        print(f"  batch100 c1 >= 1500 req/s: {rps:.0f} {_verdict(rps >= 1500)}")
    arrays = by.get(("liftlock", "batch100 arrays c1"))
    if arrays:
        rps = arrays.requests_per_s
        print(f"  batch100 c1 (array rows) >= 1500 req/s: {rps:.0f} {_verdict(rps >= 1500)}")


if __name__ == "__main__":
    sys.exit(main())
