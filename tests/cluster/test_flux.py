"""Flux on the real embedded cluster: the committed, rendered deploy/staging (image swapped for
the test's model image, pushed by digest to the embedded registry) is committed to a scratch
git repository; `flux.up` serves it read-only on 127.0.0.1 and runs source- and
kustomize-controller as processes. Flux applies the commit and the pods get Ready; a new commit
(one replica instead of two, a label) is applied and `wait_for_revision` returns; its revert
brings the previous revision back; an unpullable image makes `wait_for_revision` fail naming
the pods' reason, and its revert heals the stack; `down` stops every Flux process.

Measured (printed with -s): controller start, commit -> applied latency per step."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from infra.components.image_builder import build_image, push_image, registry_repository
from liftlock.cluster import flux, kubernetes
from liftlock.cluster.layout import Layout
from liftlock.cluster.process import start_time
from tests.helpers.embedded_cluster import RunningCluster, running_cluster
from tests.serve.fixture_bundle import build_fixture_bundle

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.docker]

STACK = "staging"
NAMESPACE = "liftlock-staging"
DEPLOYMENT = "liftlock-model"
#: one rollout on this 2-core node: pull, start, readiness; generous for a loaded machine
ROLLOUT_TIMEOUT = 300
IMAGE_LINE = re.compile(r"^(\s*image: ).*$", re.MULTILINE)


@dataclass
class Synced:
    cluster: RunningCluster
    repo: Path
    image: str
    lines: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return self.cluster.layout


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=liftlock-test", "-c", "user.email=t@liftlock.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def deployment_file(repo: Path) -> Path:
    return next((repo / "deploy" / STACK).rglob("apps_v1-deployment-*.yaml"))


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def scratch_repository(repo_root: Path, folder: Path, image: str) -> Path:
    """A new repository holding a copy of the committed deploy/staging, pulling `image`."""
    shutil.copytree(repo_root / "deploy" / STACK, folder / "deploy" / STACK)
    for manifest in (folder / "deploy" / STACK).rglob("*.yaml"):
        text = manifest.read_text(encoding="utf-8")
        manifest.write_text(IMAGE_LINE.sub(rf"\g<1>{image}", text), encoding="utf-8")
    git(folder.parent, "init", "-q", "-b", "main", str(folder))
    commit_all(folder, "render staging")
    return folder


def deployment(layout: Layout) -> dict[str, object]:
    done = kubernetes.kubectl(
        layout, "-n", NAMESPACE, "get", "deployment", DEPLOYMENT, "-o", "json", timeout=30
    )
    assert done.returncode == 0, done.stderr
    value = json.loads(done.stdout)
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Synced]:
    for name in flux.CONTROLLERS:
        flux.binary(name)  # fails naming toolchain/build.sh flux
    with running_cluster(tmp_path_factory.mktemp("flux-cluster")) as cluster:
        bundle = build_fixture_bundle(tmp_path_factory.mktemp("flux-bundle") / "bundle")
        repository = registry_repository(cluster.layout.registry, "liftlock-model")
        built = build_image(bundle.path, repository=repository, log=lambda line: None)
        image = push_image(built.tag, log=lambda line: None)
        repo = scratch_repository(repo_root, tmp_path_factory.mktemp("flux-repo") / "repo", image)
        state = Synced(cluster=cluster, repo=repo, image=image)
        started = time.monotonic()
        flux.up(
            cluster.layout,
            state.lines.append,
            root=repo,
            branch="main",
            stacks=[flux.GitOpsStack(stack=STACK, namespace=NAMESPACE)],
        )
        state.figures["flux up (CRDs, git server, both controllers ready)"] = (
            time.monotonic() - started
        )
        try:
            yield state
        finally:
            figures = [f"{what}: {seconds:.1f}s" for what, seconds in state.figures.items()]
            print("\n".join(["", *state.lines, *figures]))


def test_flux_applies_the_committed_render_and_the_pods_get_ready(synced: Synced) -> None:
    layout = synced.layout
    head = git(synced.repo, "rev-parse", "HEAD")
    took = flux.wait_for_revision(layout, STACK, head, ROLLOUT_TIMEOUT)
    synced.figures["first commit -> applied, 2/2 Ready"] = took
    status = deployment(layout)["status"]
    assert isinstance(status, dict)
    assert status.get("readyReplicas") == 2, status
    pods = kubernetes.kubectl(layout, "-n", NAMESPACE, "get", "pods", "-o", "json").stdout
    images = {c["image"] for p in json.loads(pods)["items"] for c in p["spec"]["containers"]}
    assert images == {synced.image}, images
    assert kubernetes.pod_reasons(layout, NAMESPACE) == []


def test_a_new_commit_is_applied_and_its_revert_brings_the_previous_revision_back(
    synced: Synced,
) -> None:
    layout = synced.layout
    first = git(synced.repo, "rev-parse", "HEAD")
    flux.wait_for_revision(layout, STACK, first, ROLLOUT_TIMEOUT)

    manifest = deployment_file(synced.repo)
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert document["spec"]["replicas"] == 2
    document["spec"]["replicas"] = 1
    document["metadata"]["labels"]["liftlock.io/test-change"] = "one-replica"
    manifest.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    second = commit_all(synced.repo, "staging: one replica")
    synced.figures["change commit -> applied"] = flux.wait_for_revision(
        layout, STACK, second, ROLLOUT_TIMEOUT
    )
    applied = deployment(layout)
    assert applied["spec"]["replicas"] == 1, applied["spec"]  # type: ignore[index]
    labels = applied["metadata"]["labels"]  # type: ignore[index]
    assert labels["liftlock.io/test-change"] == "one-replica"

    git(synced.repo, "revert", "--no-edit", "HEAD")
    reverted = git(synced.repo, "rev-parse", "HEAD")
    synced.figures["revert commit -> applied"] = flux.wait_for_revision(
        layout, STACK, reverted, ROLLOUT_TIMEOUT
    )
    back = deployment(layout)
    assert back["spec"]["replicas"] == 2  # type: ignore[index]
    assert back["status"]["readyReplicas"] == 2  # type: ignore[index]
    assert "liftlock.io/test-change" not in back["metadata"]["labels"]  # type: ignore[index]


def test_an_unpullable_image_fails_the_wait_naming_the_pods_reason_and_a_revert_heals(
    synced: Synced,
) -> None:
    layout = synced.layout
    manifest = deployment_file(synced.repo)
    missing = synced.image.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
    manifest.write_text(
        IMAGE_LINE.sub(rf"\g<1>{missing}", manifest.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    bad = commit_all(synced.repo, "staging: an image the registry does not have")
    with pytest.raises(flux.GitOpsError) as caught:
        flux.wait_for_revision(layout, STACK, bad, 60)
    message = str(caught.value)
    assert f"Flux did not apply {bad[:12]} to stack {STACK} within 60s" in message
    assert "Kustomization liftlock-staging: Ready=" in message
    assert re.search(r"ErrImagePull|ImagePullBackOff", message), message
    assert "kustomize-controller" in (caught.value.hint or "")
    # The old pods kept serving (maxUnavailable 0); the revert rolls the bad ReplicaSet away.
    git(synced.repo, "revert", "--no-edit", "HEAD")
    healed = git(synced.repo, "rev-parse", "HEAD")
    synced.figures["revert of a failed rollout -> applied"] = flux.wait_for_revision(
        layout, STACK, healed, ROLLOUT_TIMEOUT
    )
    assert kubernetes.pod_reasons(layout, NAMESPACE) == []


def test_down_stops_every_flux_process(synced: Synced) -> None:
    layout = synced.layout
    running = {c.name: (c.pid(), c.pid_file) for c in flux.components(layout)}
    assert all(pid for pid, _ in running.values()), running
    started = {name: start_time(pid) for name, (pid, _) in running.items() if pid}
    flux.down(layout, synced.lines.append)
    for name, (pid, pid_file) in running.items():
        assert pid is not None
        assert start_time(pid) != started[name], f"{name} (pid {pid}) still runs"
        assert not pid_file.exists(), pid_file
    assert not flux.flux_dir(layout).exists(), "artifact storage left behind"
    assert not flux.enabled(layout)
    # up again is what the module's cluster keeps for the fixture's down (idempotent start).
    flux.up(
        layout,
        synced.lines.append,
        root=synced.repo,
        branch="main",
        stacks=[flux.GitOpsStack(stack=STACK, namespace=NAMESPACE)],
    )
    assert all(c.running() for c in flux.components(layout))
