"""SmokeCheck: after a rollout on a cluster, one prediction through `kubectl port-forward`.

The network rule: nothing talks to a pod address; `kubectl port-forward` (through the API server
and the kubelet) gives a port on 127.0.0.1, and the check posts one reference row of the bundle
there and expects the bundle's digest back as the model that answered. A dynamic provider: it
runs on create and whenever the image or the bundle changes, and fails `pulumi up` with the
server's answer (or the port-forward's error) in the message.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

FORWARD_TIMEOUT_SECONDS = 30.0
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


class PortForwardError(RuntimeError):
    """`kubectl port-forward` did not give a local port."""


@contextlib.contextmanager
def port_forward(
    *,
    kubeconfig: str,
    context: str,
    namespace: str,
    target: str,
    port: int,
    kubectl: str | None = None,
) -> Iterator[int]:
    """A 127.0.0.1 port forwarded to `target` (svc/NAME or pod/NAME) port `port` (`kubectl`:
    the binary to run; default the one on PATH)."""
    kubectl = kubectl or shutil.which("kubectl")
    if kubectl is None:
        raise PortForwardError("kubectl not found (bash toolchain/build.sh kube-apiserver)")
    process = subprocess.Popen(
        [
            kubectl, f"--kubeconfig={kubeconfig}", f"--context={context}", "-n", namespace,
            "port-forward", "--address", "127.0.0.1", target, f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + FORWARD_TIMEOUT_SECONDS
        seen: list[str] = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
            match = _FORWARDING.search(line)
            if match:
                yield int(match.group(1))
                return
        raise PortForwardError(
            f"kubectl port-forward {target} -n {namespace}: no local port "
            f"({' | '.join(seen[-5:]) or 'no output'})"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reference_row(bundle_dir: Path) -> dict[str, float]:
    header, first = (bundle_dir / "reference.csv").read_text(encoding="utf-8").splitlines()[:2]
    return {
        name: float(value) for name, value in zip(header.split(","), first.split(","), strict=True)
    }


def predict_through(url: str, row: dict[str, float]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/v1/predict",
        data=json.dumps({"row": row}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as answer:
        return dict(json.loads(answer.read()))


def smoke_predict(props: dict[str, Any]) -> str:
    """One prediction through a port-forward to the Service; the model digest that answered."""
    row = reference_row(Path(props["bundle_dir"]))
    last = ""
    for _ in range(5):  # a just-rolled-out Service may not list its endpoints yet
        try:
            with port_forward(
                kubeconfig=props["kubeconfig"],
                context=props["context"],
                namespace=props["namespace"],
                target=f"svc/{props['service']}",
                port=int(props["port"]),
            ) as local_port:
                answer = predict_through(f"http://127.0.0.1:{local_port}", row)
        except (PortForwardError, OSError, ValueError) as error:
            last = str(error)
            time.sleep(2)
            continue
        if answer.get("model") != props["bundle_digest"]:
            raise RuntimeError(
                f"smoke prediction: svc/{props['service']} answered for model "
                f"{answer.get('model')!r}, not the bundle {props['bundle_digest']}"
            )
        return str(answer["model"])
    raise RuntimeError(
        f"smoke prediction through kubectl port-forward svc/{props['service']} -n "
        f"{props['namespace']} failed: {last}"
    )


class SmokeCheckProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["service"], outs={**props, "answered": smoke_predict(props)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("image", "bundle_digest", "namespace", "service", "context")
        changed = any(olds.get(key) != news.get(key) for key in keys)
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "answered": smoke_predict(news)})


@dataclass(frozen=True, kw_only=True)
class SmokeCheckArgs:
    kubeconfig: str
    context: str
    namespace: pulumi.Input[str]
    service: pulumi.Input[str]
    port: int
    image: str
    bundle_digest: str
    bundle_dir: Path


class _SmokeCheckResource(pulumi.dynamic.Resource, module="liftlock", name="SmokeCheck"):
    answered: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(SmokeCheckProvider(), name, {**props, "answered": None}, opts)


class SmokeCheck(pulumi.ComponentResource):
    answered: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: SmokeCheckArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:ml:SmokeCheck", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        check = _SmokeCheckResource(
            f"{name}-predict",
            {
                "kubeconfig": args.kubeconfig,
                "context": args.context,
                "namespace": args.namespace,
                "service": args.service,
                "port": args.port,
                "image": args.image,
                "bundle_digest": args.bundle_digest,
                "bundle_dir": str(args.bundle_dir),
            },
            child,
        )
        self.answered = check.answered
        self.register_outputs({"answered": self.answered})
