"""Flux on the embedded cluster without the cluster: the read-only git server (real git, real
HTTP on 127.0.0.1), the sync objects, how a Kustomization's status is read, the stacks it syncs,
and the errors when a piece is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from liftlock.cluster import flux, git_http
from liftlock.cluster.layout import Layout
from liftlock.cluster.process import ClusterError, Component
from tests.serve.server_process import free_port

SHA = "0123456789abcdef0123456789abcdef01234567"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "deploy" / "staging").mkdir(parents=True)
    (repo / "deploy" / "staging" / "cm.yaml").write_text("kind: ConfigMap\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def served(tmp_path: Path, repository: Path) -> Iterator[str]:
    port = free_port()
    server = Component("git-server", tmp_path / "run")
    server.start(
        [sys.executable, "-m", "liftlock.cluster.git_http", f"--git-dir={repository / '.git'}",
         f"--port={port}"]
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}{git_http.REPO_PATH}"
    try:
        server.wait_until(
            lambda: httpx.get(f"{url}/info/refs?service=git-upload-pack").status_code == 200,
            what="serving",
            timeout=20,
        )
        yield url
    finally:
        server.stop()


def test_the_git_server_serves_clones_and_refuses_pushes(
    tmp_path: Path, repository: Path, served: str
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", served, str(clone))
    assert git(clone, "rev-parse", "HEAD") == git(repository, "rev-parse", "HEAD")
    (clone / "new.txt").write_text("x")
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "second")
    pushed = subprocess.run(
        ["git", "push", "-q", "origin", "HEAD:main"], cwd=clone, capture_output=True, text=True
    )
    assert pushed.returncode != 0 and "403" in pushed.stderr, pushed.stderr
    assert git(repository, "log", "--format=%s") == "first", "a push must never land"
    # A new commit in the served repository is what the next fetch sees.
    (repository / "deploy" / "staging" / "cm.yaml").write_text("kind: ConfigMap # 2\n")
    git(repository, "commit", "-q", "-am", "third")
    git(clone, "fetch", "-q", "origin")
    assert git(clone, "rev-parse", "origin/main") == git(repository, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("method", "path", "query", "allowed"),
    [
        ("GET", "/liftlock.git/info/refs", "service=git-upload-pack", True),
        ("POST", "/liftlock.git/git-upload-pack", "", True),
        ("GET", "/liftlock.git/info/refs", "service=git-receive-pack", False),
        ("POST", "/liftlock.git/git-receive-pack", "", False),
        ("GET", "/liftlock.git/HEAD", "", False),
        ("GET", "/other.git/info/refs", "service=git-upload-pack", False),
    ],
)
def test_only_the_fetch_side_is_routed(method: str, path: str, query: str, allowed: bool) -> None:
    assert git_http.is_fetch(method, path, query) is allowed


def test_a_cgi_answer_keeps_status_headers_and_body() -> None:
    status, headers, body = git_http.cgi_response(
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope"
    )
    assert (status, headers, body) == (404, [("Content-Type", "text/plain")], b"nope")


def test_the_sync_objects() -> None:
    source = flux.git_repository_document("http://127.0.0.1:1/liftlock.git", "main")
    assert source["metadata"] == {"name": "liftlock", "namespace": "flux-system"}
    assert source["spec"]["ref"] == {"branch": "main"}
    stack = flux.GitOpsStack(stack="staging", namespace="liftlock-staging")
    spec = flux.kustomization_document(stack)["spec"]
    assert spec["path"] == "./deploy/staging" and spec["targetNamespace"] == "liftlock-staging"
    assert spec["prune"] is True and spec["wait"] is True
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "liftlock"}


def kustomization(revision: str, ready: str, generation: int = 2, observed: int = 2) -> Any:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "lastAppliedRevision": revision,
            "conditions": [{"type": "Ready", "status": ready, "message": "m"}],
        },
    }


def test_applied_needs_the_commit_ready_and_the_generation_observed() -> None:
    assert flux.applied(kustomization(f"main@sha1:{SHA}", "True"), SHA)
    assert flux.applied(kustomization(f"main@sha1:{SHA}", "True"), SHA[:12])
    assert not flux.applied(kustomization(f"main@sha1:{SHA}", "False"), SHA)
    assert not flux.applied(kustomization("main@sha1:" + "f" * 40, "True"), SHA)
    assert not flux.applied(kustomization(f"main@sha1:{SHA}", "True", 3, 2), SHA)
    assert not flux.applied(None, SHA)
    assert flux.revision_sha(f"main@sha1:{SHA}") == SHA
    assert flux.revision_sha(f"main/{SHA}") == SHA


def test_the_committed_render_stacks_are_synced_by_flux(repo_root: Path) -> None:
    stacks = {s.stack: s.namespace for s in flux.gitops_stacks(repo_root)}
    assert stacks == {"staging": "liftlock-staging", "prod": "liftlock-prod"}


def test_a_stack_on_argocd_is_not_synced_by_flux(tmp_path: Path, repo_root: Path) -> None:
    (tmp_path / "stacks").mkdir()
    text = (repo_root / "stacks" / "Pulumi.staging.yaml").read_text()
    text = text.replace("    revision: main", "    revision: main\n    controller: argocd")
    (tmp_path / "stacks" / "Pulumi.staging.yaml").write_text(text)
    assert flux.gitops_stacks(tmp_path) == []


def test_up_refuses_without_the_cluster(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="API server is not running") as caught:
        flux.up(Layout(state_dir=tmp_path), lambda line: None, root=tmp_path)
    assert caught.value.hint == "liftlock cluster up --gitops"


def test_a_missing_controller_names_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(flux.kubernetes, "tools_bin", lambda: Path("/nonexistent/bin"))
    with pytest.raises(ClusterError, match="source-controller: not built") as caught:
        flux.binary("source-controller")
    assert caught.value.hint and "toolchain/build.sh flux" in caught.value.hint
    with pytest.raises(ClusterError, match="Flux CRDs: none in /nonexistent/flux-crds"):
        flux.crd_files()


def test_a_detached_head_is_refused(repository: Path) -> None:
    git(repository, "checkout", "-q", "--detach")
    with pytest.raises(flux.GitOpsError, match="HEAD is detached"):
        flux.current_branch(repository)


def test_gitops_needs_the_cluster_not_only_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from liftlock.cli import main

    assert main(["cluster", "up", "--gitops", "--registry-only"]) == 2
    assert "--gitops needs the cluster" in capsys.readouterr().err
