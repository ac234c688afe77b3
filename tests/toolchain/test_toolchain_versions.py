"""The tools toolchain/build.sh put in .tools/bin (and the plugin cache) are the pinned versions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from liftlock.engine.env import engine_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def _run_tool(name: str, *args: str) -> str:
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `bash toolchain/build.sh`")
    result = subprocess.run(
        [str(path), *args],
        env=engine_environment(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{name} {' '.join(args)} failed: {result.stderr}"
    return result.stdout


@pytest.mark.engine
def test_pulumi_reports_the_pinned_version() -> None:
    # An unstamped build prints an empty version, which breaks the engine's plugin checks.
    assert _run_tool("pulumi", "version").strip() == "v3.274.1"


@pytest.mark.engine
def test_kubernetes_provider_is_in_the_plugin_cache_not_on_path() -> None:
    plugins = json.loads(_run_tool("pulumi", "plugin", "ls", "--json") or "[]")
    kubernetes = [(p["kind"], p["version"]) for p in plugins if p["name"] == "kubernetes"]
    assert ("resource", "4.25.0") in kubernetes, f"kubernetes 4.25.0 not installed: {plugins}"
    # On PATH it would make the engine warn "using ... from $PATH" on every run.
    assert not (TOOLS_BIN / "pulumi-resource-kubernetes").exists()


def test_actionlint_reports_the_pinned_version() -> None:
    assert _run_tool("actionlint", "-version").splitlines()[0] == "1.7.12"


def test_etcd_reports_the_pinned_version() -> None:
    assert "etcd Version: 3.6.6" in _run_tool("etcd", "--version").splitlines()


@pytest.mark.parametrize(
    "name", ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"]
)
def test_kubernetes_binaries_report_the_pinned_version(name: str) -> None:
    assert _run_tool(name, "--version").strip() == "Kubernetes v1.37.2"


def test_kubectl_reports_the_pinned_version() -> None:
    assert "Client Version: v1.37.2" in _run_tool("kubectl", "version", "--client")


def test_kube_score_reports_the_pinned_version() -> None:
    assert _run_tool("kube-score", "version").startswith("kube-score version: v1.20.0")
