"""Flux on the embedded cluster: `liftlock cluster up --gitops`.

Three processes on this machine, each a Component (PID + start time, log under run/logs):
- `flux-git-server`: the checkout's repository served read-only over git smart HTTP on
  127.0.0.1 (liftlock.cluster.git_http);
- `source-controller` and `kustomize-controller` (toolchain/flux, v1.9.6) against the embedded
  kubeconfig (the admin identity of the embedded PKI: kustomize-controller applies any kind),
  metrics, health and the artifact server on free 127.0.0.1 ports, leader election off,
  watching every namespace.

`up` applies the controllers' CRDs (copied by toolchain/build.sh into .tools/flux-crds) and the
`flux-system` namespace, then one GitRepository (`liftlock`, the served repository at a branch)
and one Kustomization per GitOps stack (`liftlock-<stack>`: `deploy/<stack>/`, prune, wait,
the stack's namespace as target). `down` stops the three processes and removes the artifact
storage; the Flux objects stay in etcd with the rest of the cluster's data.

`wait_for_revision` is what a promotion into a GitOps stack waits on: the Kustomization names
the commit in `status.lastAppliedRevision` with Ready=True (wait: true, so every applied object
is healthy) and the stack's Deployments are rolled out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from liftlock.cluster import kubernetes
from liftlock.cluster.git_http import REPO_PATH
from liftlock.cluster.layout import Layout
from liftlock.cluster.process import ClusterError, Component, Log

FLUX_NAMESPACE = "flux-system"
#: the GitRepository every Kustomization of the embedded cluster pulls from
SOURCE_NAME = "liftlock"
GIT_SERVER = "flux-git-server"
CONTROLLERS = ("source-controller", "kustomize-controller")
COMPONENTS = (GIT_SERVER, *CONTROLLERS)
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
#: how often the controllers look again on their own; wait_for_revision asks at once
SOURCE_INTERVAL = "10s"
KUSTOMIZATION_INTERVAL = "1m"
RETRY_INTERVAL = "10s"
HEALTH_TIMEOUT = "3m"
BUILD_HINT = "bash toolchain/build.sh flux (a cold build takes ~{minutes} min; see README)"


class GitOpsError(ClusterError):
    """Flux did not apply a revision, or the workload it applied did not become Ready."""


@dataclass(frozen=True)
class GitOpsStack:
    """A stack Flux applies: its rendered folder and the namespace its objects go to."""

    stack: str
    namespace: str

    @property
    def path(self) -> str:
        return f"./deploy/{self.stack}"

    @property
    def kustomization(self) -> str:
        return kustomization_name(self.stack)


def kustomization_name(stack: str) -> str:
    return f"liftlock-{stack}"


@dataclass(frozen=True)
class Ports:
    git: int
    storage: int
    source_metrics: int
    source_health: int
    kustomize_metrics: int
    kustomize_health: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*_free_ports(6))

    def health(self, controller: str) -> int:
        return self.source_health if controller == "source-controller" else self.kustomize_health


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def flux_dir(layout: Layout) -> Path:
    return layout.run_dir / "flux"


def _ports_file(layout: Layout) -> Path:
    return flux_dir(layout) / "ports.json"


def storage_dir(layout: Layout) -> Path:
    return flux_dir(layout) / "artifacts"


def load_ports(layout: Layout) -> Ports | None:
    try:
        return Ports(**json.loads(_ports_file(layout).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def enabled(layout: Layout) -> bool:
    """`up --gitops` ran and `down` did not yet."""
    return _ports_file(layout).is_file()


def components(layout: Layout) -> list[Component]:
    return [Component(name, layout.run_dir) for name in COMPONENTS]


def component(layout: Layout, name: str) -> Component:
    return Component(name, layout.run_dir)


def crd_dir() -> Path:
    """The CRDs of the pinned controllers, from their own modules (toolchain/flux/build.env)."""
    return kubernetes.tools_bin().parent / "flux-crds"


def _cold_minutes() -> str:
    table = Path(__file__).resolve().parents[2] / "toolchain" / "cold-build-minutes"
    with contextlib.suppress(OSError):
        for line in table.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "flux":
                return words[1]
    return "?"


def binary(name: str) -> str:
    candidate = kubernetes.tools_bin() / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ClusterError(
        f"{name}: not built (looked in {kubernetes.tools_bin()} and PATH)",
        hint=BUILD_HINT.format(minutes=_cold_minutes()),
    )


def crd_files() -> list[Path]:
    files = sorted(crd_dir().glob("*.yaml"))
    if not files:
        raise ClusterError(
            f"Flux CRDs: none in {crd_dir()}", hint=BUILD_HINT.format(minutes=_cold_minutes())
        )
    return files


def repository_git_dir(root: Path) -> Path:
    """The repository the checkout's commits live in (a worktree's common folder)."""
    from liftlock.git import git_output

    common = Path(git_output(root, "rev-parse", "--git-common-dir"))
    return common if common.is_absolute() else (root / common).resolve()


def current_branch(root: Path) -> str:
    from liftlock.git import git_output

    branch = git_output(root, "rev-parse", "--abbrev-ref", "HEAD")
    if branch == "HEAD":
        raise GitOpsError(
            f"{root}: HEAD is detached; Flux follows a branch",
            hint="check out the branch promotions commit to (git switch <branch>)",
        )
    return branch


def gitops_stacks(root: Path) -> list[GitOpsStack]:
    """Stacks whose config renders for Flux: target render with liftlock:gitops, controller
    flux (the default)."""
    from infra.config import StackConfigError, load_stack_file
    from liftlock.errors import ConfigError

    found = []
    for path in sorted((root / "stacks").glob("Pulumi.*.yaml")):
        try:
            config = load_stack_file(path)
        except StackConfigError as error:
            raise ConfigError(str(error)) from error
        if config.target != "render" or config.gitops is None or config.namespace is None:
            continue
        if config.gitops.controller == "flux":
            found.append(GitOpsStack(stack=config.stack, namespace=config.namespace))
    return found


# ---------------------------------------------------------------------------------------------
# The objects


def namespace_document() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NAMESPACE}}


def git_repository_document(url: str, branch: str) -> dict[str, Any]:
    return {
        "apiVersion": SOURCE_API,
        "kind": "GitRepository",
        "metadata": {"name": SOURCE_NAME, "namespace": FLUX_NAMESPACE},
        "spec": {
            "url": url,
            "ref": {"branch": branch},
            "interval": SOURCE_INTERVAL,
            "timeout": "60s",
            # Only what Kustomizations read: the rendered manifests.
            "ignore": "/*\n!/deploy/\n",
        },
    }


def kustomization_document(stack: GitOpsStack) -> dict[str, Any]:
    return {
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": {"name": stack.kustomization, "namespace": FLUX_NAMESPACE},
        "spec": {
            "interval": KUSTOMIZATION_INTERVAL,
            "retryInterval": RETRY_INTERVAL,
            "path": stack.path,
            "prune": True,
            "wait": True,
            "timeout": HEALTH_TIMEOUT,
            "targetNamespace": stack.namespace,
            "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME},
        },
    }


# ---------------------------------------------------------------------------------------------
# up / down / status


def _kubectl(layout: Layout, *args: str, what: str, timeout: float = 60) -> str:
    done = kubernetes.kubectl(layout, *args, timeout=timeout)
    if done.returncode != 0:
        raise GitOpsError(f"{what}: kubectl {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout


def apply_crds(layout: Layout) -> None:
    files = crd_files()
    args = [f"--filename={f}" for f in files]
    # Server-side: the CRDs are larger than client-side apply's annotation limit.
    _kubectl(
        layout, "apply", "--server-side", "--force-conflicts", "--field-manager=liftlock", *args,
        what="Flux CRDs",
    )  # fmt: skip
    _kubectl(
        layout, "wait", "--for=condition=Established", "--timeout=60s", *args,
        what="Flux CRDs established", timeout=90,
    )  # fmt: skip


def _env(layout: Layout) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "KUBECONFIG": str(layout.kubeconfig),
        "RUNTIME_NAMESPACE": FLUX_NAMESPACE,
    }


def controller_command(layout: Layout, name: str, ports: Ports) -> list[str]:
    common = [
        "--watch-all-namespaces=true", "--enable-leader-election=false",
        "--log-level=info", "--log-encoding=console",
    ]  # fmt: skip
    if name == "source-controller":
        storage = storage_dir(layout)
        return [
            binary(name), *common,
            f"--metrics-addr=127.0.0.1:{ports.source_metrics}",
            f"--health-addr=127.0.0.1:{ports.source_health}",
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{ports.storage}",
            f"--storage-adv-addr=127.0.0.1:{ports.storage}",
        ]  # fmt: skip
    return [
        binary(name), *common,
        f"--metrics-addr=127.0.0.1:{ports.kustomize_metrics}",
        f"--health-addr=127.0.0.1:{ports.kustomize_health}",
        "--no-remote-bases=true",
    ]  # fmt: skip


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1).status_code == 200


def git_url(ports: Ports) -> str:
    return f"http://127.0.0.1:{ports.git}{REPO_PATH}"


def start_git_server(layout: Layout, root: Path, ports: Ports) -> None:
    server = component(layout, GIT_SERVER)
    server.start(
        [
            sys.executable, "-m", "liftlock.cluster.git_http",
            f"--git-dir={repository_git_dir(root)}", f"--port={ports.git}",
        ]
    )  # fmt: skip
    server.wait_until(
        lambda: _http_ok(f"{git_url(ports)}/info/refs?service=git-upload-pack"),
        what=f"serving {git_url(ports)}",
        timeout=30,
    )


def start_controller(layout: Layout, name: str, ports: Ports) -> None:
    controller = component(layout, name)
    if name == "source-controller":
        storage_dir(layout).mkdir(parents=True, exist_ok=True)
    controller.start(controller_command(layout, name, ports), env=_env(layout))
    health = ports.health(name)
    controller.wait_until(
        lambda: _http_ok(f"http://127.0.0.1:{health}/readyz"),
        what=f"ready (127.0.0.1:{health}/readyz)",
        timeout=120,
    )


@dataclass(frozen=True)
class FluxStatus:
    git_url: str
    branch: str
    stacks: list[GitOpsStack]


def up(
    layout: Layout,
    log: Log,
    *,
    root: Path,
    branch: str | None = None,
    stacks: Sequence[GitOpsStack] | None = None,
) -> FluxStatus:
    """Start what is not running, apply the CRDs and the sync objects (idempotent)."""
    started = time.monotonic()
    if not kubernetes.component(layout, "kube-apiserver").running():
        raise GitOpsError(
            "Flux needs the embedded cluster, and its API server is not running",
            hint="liftlock cluster up --gitops",
        )
    for name in CONTROLLERS:
        binary(name)
    branch = branch or current_branch(root)
    selected = list(gitops_stacks(root) if stacks is None else stacks)
    phase = time.monotonic()
    apply_crds(layout)
    kubernetes.apply_documents(layout, [namespace_document()], what="Flux namespace")
    log(f"[flux] CRDs and namespace {FLUX_NAMESPACE}: applied in {time.monotonic() - phase:.1f}s")
    ports = load_ports(layout)
    if ports is None or not any(c.running() for c in components(layout)):
        ports = Ports.free()
        flux_dir(layout).mkdir(parents=True, exist_ok=True)
        _ports_file(layout).write_text(json.dumps(asdict(ports)), encoding="utf-8")
    if component(layout, GIT_SERVER).running():
        log(f"[flux] {GIT_SERVER}: running")
    else:
        phase = time.monotonic()
        start_git_server(layout, root, ports)
        log(f"[flux] {GIT_SERVER}: {git_url(ports)} in {time.monotonic() - phase:.1f}s")
    for name in CONTROLLERS:
        if component(layout, name).running():
            log(f"[flux] {name}: running")
            continue
        phase = time.monotonic()
        start_controller(layout, name, ports)
        log(f"[flux] {name}: ready in {time.monotonic() - phase:.1f}s")
    kubernetes.apply_documents(
        layout,
        [git_repository_document(git_url(ports), branch), *map(kustomization_document, selected)],
        what="Flux GitRepository and Kustomizations",
    )
    names = ", ".join(s.kustomization for s in selected) or "no GitOps stack"
    log(
        f"[flux] up in {time.monotonic() - started:.1f}s: GitRepository {SOURCE_NAME} "
        f"({branch}), {names}"
    )
    return FluxStatus(git_url=git_url(ports), branch=branch, stacks=selected)


def down(layout: Layout, log: Log) -> None:
    """Stop the controllers and the git server by PID; remove the artifact storage."""
    for name in reversed(COMPONENTS):
        pid = component(layout, name).stop()
        if pid is not None:
            log(f"[flux] {name}: stopped (pid {pid})")
    if flux_dir(layout).exists():
        shutil.rmtree(flux_dir(layout), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Waiting for a revision


def _get_json(layout: Layout, *args: str) -> dict[str, Any] | None:
    done = kubernetes.kubectl(layout, "get", *args, "-o", "json", timeout=20)
    if done.returncode != 0:
        return None
    value = json.loads(done.stdout)
    return value if isinstance(value, dict) else None


def condition(document: dict[str, Any] | None, kind: str = "Ready") -> dict[str, Any]:
    for entry in ((document or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def revision_sha(revision: str) -> str:
    """`main@sha1:<sha>` (Flux v1) -> `<sha>`."""
    return revision.rsplit(":", 1)[-1] if "sha1:" in revision else revision.rsplit("/", 1)[-1]


def applied(document: dict[str, Any] | None, commit: str) -> bool:
    """The Kustomization applied `commit` and reports Ready for that generation."""
    if not document:
        return False
    status = document.get("status") or {}
    ready = condition(document)
    return (
        revision_sha(str(status.get("lastAppliedRevision", ""))).startswith(commit)
        and ready.get("status") == "True"
        and status.get("observedGeneration") == document["metadata"].get("generation")
    )


def request_reconcile(layout: Layout, stack: str) -> None:
    """What `flux reconcile` does: the annotation makes both controllers look now."""
    stamp = datetime.now(UTC).isoformat()
    for kind, name in (
        ("gitrepository", SOURCE_NAME),
        ("kustomization", kustomization_name(stack)),
    ):
        kubernetes.kubectl(
            layout, "-n", FLUX_NAMESPACE, "annotate", "--overwrite", f"{kind}/{name}",
            f"reconcile.fluxcd.io/requestedAt={stamp}", timeout=20,
        )  # fmt: skip


def deployments_rolled_out(layout: Layout, namespace: str) -> list[str]:
    """Deployments of `namespace` not rolled out yet (`name: why`); empty when all are."""
    listing = _get_json(layout, "deployments", "-n", namespace) or {}
    pending = []
    for item in listing.get("items", []):
        name = item["metadata"]["name"]
        spec, status = item.get("spec", {}), item.get("status", {})
        wanted = int(spec.get("replicas", 1))
        counts = {k: int(status.get(k, 0)) for k in ("updatedReplicas", "availableReplicas")}
        if status.get("observedGeneration", 0) < item["metadata"].get("generation", 0):
            pending.append(f"{name}: the new generation is not observed yet")
        elif counts["updatedReplicas"] < wanted or counts["availableReplicas"] < wanted:
            pending.append(
                f"{name}: {counts['updatedReplicas']}/{wanted} updated, "
                f"{counts['availableReplicas']}/{wanted} available"
            )
        elif int(status.get("replicas", 0)) > wanted:
            pending.append(f"{name}: old replicas still terminating")
    return pending


def wait_for_revision(
    layout: Layout, stack: str, commit_sha: str, timeout: float, *, namespace: str | None = None
) -> float:
    """Wait until Flux applied `commit_sha` to `stack` and the workload is rolled out; returns
    the seconds it took. GitOpsError on timeout, with the Kustomization's and the source's
    messages and the pods' reasons."""
    started = time.monotonic()
    deadline = started + timeout
    name = kustomization_name(stack)
    request_reconcile(layout, stack)
    asked = time.monotonic()
    document: dict[str, Any] | None = None
    while True:
        document = _get_json(layout, "kustomization", name, "-n", FLUX_NAMESPACE)
        target = namespace or ((document or {}).get("spec") or {}).get("targetNamespace")
        if applied(document, commit_sha) and not (
            target and deployments_rolled_out(layout, target)
        ):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            break
        if time.monotonic() - asked > 15:
            request_reconcile(layout, stack)
            asked = time.monotonic()
        time.sleep(0.5)
    raise GitOpsError(
        _timeout_message(layout, stack, commit_sha, timeout, document, namespace),
        hint=f"kubectl --kubeconfig {layout.kubeconfig} -n {FLUX_NAMESPACE} describe "
        f"kustomization {name}; logs: {component(layout, 'kustomize-controller').log_file}",
    )


def _timeout_message(
    layout: Layout,
    stack: str,
    commit: str,
    timeout: float,
    document: dict[str, Any] | None,
    namespace: str | None,
) -> str:
    name = kustomization_name(stack)
    lines = [f"Flux did not apply {commit[:12]} to stack {stack} within {timeout:.0f}s"]
    if document is None:
        lines.append(f"  Kustomization {FLUX_NAMESPACE}/{name}: not found (liftlock cluster up)")
    else:
        status = document.get("status") or {}
        ready = condition(document)
        lines.append(
            f"  Kustomization {name}: Ready={ready.get('status', '?')} "
            f"({ready.get('reason', '-')}): {ready.get('message', '-')}"
        )
        lines.append(
            f"  last applied revision: {status.get('lastAppliedRevision', 'none')}; "
            f"last attempted: {status.get('lastAttemptedRevision', 'none')}"
        )
    source = _get_json(layout, "gitrepository", SOURCE_NAME, "-n", FLUX_NAMESPACE)
    source_ready = condition(source)
    if source_ready.get("status") != "True":
        lines.append(
            f"  GitRepository {SOURCE_NAME}: Ready={source_ready.get('status', '?')}: "
            f"{source_ready.get('message', 'not found')}"
        )
    else:
        artifact = ((source or {}).get("status") or {}).get("artifact") or {}
        lines.append(f"  GitRepository {SOURCE_NAME}: at {artifact.get('revision', '?')}")
    target = namespace or ((document or {}).get("spec") or {}).get("targetNamespace")
    if target:
        lines += [f"  {line}" for line in deployments_rolled_out(layout, target)]
        lines += [f"  {line}" for line in kubernetes.pod_reasons(layout, target)]
    return "\n".join(lines)
