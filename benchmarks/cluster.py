"""Benchmark: the embedded cluster.

1. Cold `liftlock cluster up` (fresh state folder: no etcd data, no images in containerd) to the
   node Ready, then to the first Ready pod (the pause image as a one-replica Deployment), and
   the memory (RSS) of every process the cluster runs once idle.
2. A new image digest onto staging: `pulumi up --stack staging` (render + apply + rollout of
   every replica + smoke prediction) against `kubectl apply` of the same rendered manifests with
   another new digest plus `kubectl rollout status` (the floor), ratio in the same run.

    .venv/bin/python -P benchmarks/cluster.py [--skip-staging]   (-P: benchmarks/infra.py would
    shadow the infra package)

Needs root, the toolchain (kube-apiserver + node, etcd), the Docker engine and bundle/ (dvc
repro); it starts and stops its own cluster in a temporary folder (results go to
benchmarks/results/cluster.json).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from infra.components.image_builder import (
    build_image,
    docker_client,
    push_image,
    registry_repository,
)
from liftlock.cluster import embedded, kubernetes, runtime
from liftlock.cluster.layout import CONTEXT_NAME, Layout
from liftlock.engine.env import engine_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "cluster.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubectl(layout: Layout, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [kubernetes.binary("kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def rss_mib(layout: Layout) -> float:
    """RSS of the cluster's processes: each component, and the shims of its containers."""
    pids = {c.pid() for c in embedded.components(layout)} - {None}
    socket_path = str(runtime.socket_path(layout)).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket_path in argv:
                pids.add(int(proc.name))
    total = 0
    for pid in pids:
        try:
            children = subprocess.run(
                ["ps", "-o", "rss=", "--ppid", str(pid)], capture_output=True, text=True
            ).stdout.split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        total += rss + sum(int(value) for value in children)
    return round(total / 1024, 1)


def pause_deployment(image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "first", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "first"}},
                "template": {
                    "metadata": {"labels": {"app": "first"}},
                    "spec": {"containers": [{"name": "pause", "image": image}]},
                },
            },
        }
    )


def cold_up(layout: Layout) -> dict[str, float]:
    lines: list[str] = []
    started = time.perf_counter()
    embedded.up(layout, lines.append)
    node_ready = time.perf_counter() - started
    pause = next(line.split(": ", 1)[1] for line in lines if line.startswith("[cluster] pause"))
    kubectl(layout, "apply", "-f", "-", stdin=pause_deployment(pause))
    kubectl(layout, "rollout", "status", "deployment/first", "--timeout=300s")
    first_pod = time.perf_counter() - started
    time.sleep(20)  # idle
    print("\n".join(lines), file=sys.stderr)
    return {"node_ready_s": round(node_ready, 1), "first_ready_pod_s": round(first_pod, 1),
            "rss_mib_idle": rss_mib(layout)}  # fmt: skip


def relabelled(image: str, registry: str, label: str) -> str:
    """A new image digest for the same content: the image plus one label."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = f"FROM {image}\nLABEL org.liftlock.benchmark={label}\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = f"{registry_repository(registry, 'liftlock-model')}:bench-{label}"
    docker_client().images.build(fileobj=context, custom_context=True, tag=tag)
    return push_image(tag, log=lambda line: None)


def pulumi(project: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(REPO_ROOT / ".tools" / "bin" / "pulumi"), *args, "--non-interactive"],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"pulumi {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")


def staging_rollouts(layout: Layout, work: Path) -> dict[str, float]:
    from ml.bundle import verify_bundle

    digest = verify_bundle(REPO_ROOT / "bundle")
    built = build_image(
        REPO_ROOT / "bundle",
        repository=registry_repository(layout.registry, "liftlock-model"),
        log=lambda line: None,
    )
    image = push_image(built.tag, log=lambda line: None)
    project = work / "project"
    project.mkdir()
    shutil.copy2(REPO_ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    for folder in ("infra", "stacks", "bundle", "policies"):
        shutil.copytree(REPO_ROOT / folder, project / folder)
    # The program refuses a mandatory stack's pins without a signed promotion record; the
    # benchmark deploys fresh digests of its own and measures the rollout, not the record check.
    gates_file = project / "policies" / "gates.yaml"
    gates = yaml.safe_load(gates_file.read_text())
    gates["stacks"]["staging"].setdefault("overrides", {})["promotion-recorded"] = "disabled"
    gates_file.write_text(yaml.safe_dump(gates, sort_keys=False))
    (project / "deploy").mkdir()
    (project / ".venv").symlink_to(REPO_ROOT / ".venv")
    backend = work / "backend"
    backend.mkdir()
    env = engine_environment(REPO_ROOT, backend_dir=backend)
    env["LIFTLOCK_ROOT"] = str(project)
    stack_file = project / "stacks" / "Pulumi.staging.yaml"

    def set_image(reference: str) -> None:
        document = yaml.safe_load(stack_file.read_text())
        config = document["config"]
        config["liftlock:bundleDigest"] = digest
        config["liftlock:image"] = reference
        config["liftlock:applyTo"] = {"kubeconfig": str(layout.kubeconfig),
                                      "kubeContext": CONTEXT_NAME}  # fmt: skip
        stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    set_image(image)
    pulumi(project, env, "stack", "init", "staging")
    pulumi(project, env, "up", "--stack", "staging", "--yes", "--skip-preview")
    set_image(relabelled(image, layout.registry, "pulumi"))
    started = time.perf_counter()
    pulumi(project, env, "up", "--stack", "staging", "--yes", "--skip-preview")
    pulumi_s = time.perf_counter() - started
    # The floor: the same rendered manifests, another new digest, kubectl apply + rollout status.
    other = relabelled(image, layout.registry, "kubectl")
    manifests = []
    for path in sorted((project / "deploy" / "staging").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    container["image"] = other
            if doc:
                manifests.append(doc)
    namespace = next(d["metadata"]["name"] for d in manifests if d["kind"] == "Namespace")
    started = time.perf_counter()
    kubectl(layout, "apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in manifests))
    kubectl(layout, "-n", namespace, "rollout", "status", "deployment/liftlock-model",
            "--timeout=600s")  # fmt: skip
    kubectl_s = time.perf_counter() - started
    pulumi(project, env, "destroy", "--stack", "staging", "--yes", "--skip-preview")
    return {"pulumi_up_new_digest_s": round(pulumi_s, 1),
            "kubectl_apply_rollout_s": round(kubectl_s, 1),
            "ratio": round(pulumi_s / kubectl_s, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-staging", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "load_average": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="liftlock-bench-cluster-") as scratch:
        layout = Layout(
            state_dir=Path(scratch) / "cluster", registry_port=free_port(),
            apiserver_port=free_port(), etcd_client_port=free_port(),
            etcd_peer_port=free_port(),
        )  # fmt: skip
        try:
            results["cold_up"] = cold_up(layout)
            if not args.skip_staging:
                results["staging"] = staging_rollouts(layout, Path(scratch))
        finally:
            embedded.down(layout, lambda line: print(line, file=sys.stderr))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
