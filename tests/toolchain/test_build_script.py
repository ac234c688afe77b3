"""toolchain/build.sh: fixed build order, errors naming the culprit, cache reuse across checkouts.

Each test runs the script from a copy of toolchain/ in a throwaway checkout (its own .tools/bin),
with LIFTLOCK_TOOLCHAIN_CACHED_ONLY=1 so a test never starts a multi-minute Go build: what is not
cached fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Build order and the version each component reports in its step lines.
COMPONENTS = {
    "pulumi": "v3.274.1",
    "kubernetes": "4.25.0",
    "kube-apiserver": "v1.37.2",
    "etcd": "v3.6.6",
    "flux": "v1.9.6",
    "actionlint": "1.7.12",
    "kube-score": "v1.20.0",
    "gitleaks": "8.30.1",
}
LINKED = (
    "pulumi", "kube-apiserver", "kube-controller-manager", "kubelet", "kubectl", "etcd",
    "source-controller", "kustomize-controller", "actionlint", "kube-score", "gitleaks",
)  # fmt: skip


def _checkout(tmp_path: Path) -> Path:
    """A throwaway checkout holding the toolchain folder as it is in this one."""
    root = tmp_path / "checkout"
    shutil.copytree(
        REPO_ROOT / "toolchain",
        root / "toolchain",
        ignore=shutil.ignore_patterns("*-embed.json", "*.tmp"),
    )
    return root


def _build(
    root: Path, *components: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LIFTLOCK_TOOLCHAIN_CACHED_ONLY": "1", **(env or {})}
    full_env.pop("LIFTLOCK_SYSTEM_PULUMI", None)
    return subprocess.run(
        ["bash", str(root / "toolchain" / "build.sh"), *components],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unknown_component_is_named(tmp_path: Path) -> None:
    result = _build(_checkout(tmp_path), "pulumi", "kubectl")
    assert result.returncode == 2
    assert "no component 'kubectl'" in result.stderr
    assert "pulumi kubernetes kube-apiserver etcd flux actionlint kube-score" in result.stderr
    assert not (tmp_path / "checkout" / ".tools" / "bin" / "pulumi").exists()


def test_component_folder_missing_from_the_build_order_is_named(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    extra = root / "toolchain" / "kubectl"
    extra.mkdir()
    (extra / "build.env").write_text("BINARY=kubectl\n")
    result = _build(root)
    assert result.returncode == 2
    assert "component 'kubectl' is missing from ORDER" in result.stderr


def test_a_changed_pin_is_not_served_from_the_cache(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    with (root / "toolchain" / "actionlint" / "go.mod").open("a") as handle:
        handle.write("\n// a changed pin\n")
    result = _build(root, "actionlint")
    assert result.returncode == 4
    assert "actionlint 1.7.12: not in the cache" in result.stderr
    # Before compiling anything the script says what it will build and about how long it takes.
    assert "cold builds ahead: actionlint (~1 min); about 1 min in all" in result.stdout


def test_every_component_has_an_expected_cold_build_time() -> None:
    listed = {
        line.split()[0]
        for line in (REPO_ROOT / "toolchain" / "cold-build-minutes").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert listed == set(COMPONENTS)


@pytest.mark.slow
def test_another_checkout_reuses_every_cached_build_in_order(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    result = _build(root)
    assert result.returncode == 0, result.stderr
    cached = re.findall(r"^\[toolchain\] (\S+) (\S+): cached ", result.stdout, re.MULTILINE)
    assert cached == list(COMPONENTS.items()), result.stdout
    assert "compiling" not in result.stdout
    assert "kubernetes 4.25.0: plugin installed" in result.stdout
    tools = root / ".tools" / "bin"
    for name in LINKED:
        assert os.access(tools / name, os.X_OK), f"{name} not linked into {tools}"
    # The engine finds the provider in its plugin cache; on PATH it would warn on every run.
    assert not (tools / "pulumi-resource-kubernetes").exists()
    # Flux's CRDs, copied from the controllers' modules at build time, for offline apply.
    crds = sorted(p.name for p in (root / ".tools" / "flux-crds").glob("*.yaml"))
    assert "kustomize.toolkit.fluxcd.io_kustomizations.yaml" in crds, crds
    assert "source.toolkit.fluxcd.io_gitrepositories.yaml" in crds, crds


@pytest.mark.slow
def test_provider_install_into_an_empty_plugin_cache_then_skipped(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    env = {"PULUMI_HOME": str(tmp_path / "pulumi-home")}
    # Named in reverse: pulumi is still built (linked) first, since the install step needs it.
    first = _build(root, "kubernetes", "pulumi", env=env)
    assert first.returncode == 0, first.stderr
    assert "kubernetes 4.25.0: plugin installed into" in first.stdout
    installed = tmp_path / "pulumi-home" / "plugins" / "resource-kubernetes-v4.25.0"
    assert (installed / "pulumi-resource-kubernetes").is_file()

    again = _build(root, "pulumi", "kubernetes", env=env)
    assert again.returncode == 0, again.stderr
    assert f"kubernetes 4.25.0: plugin installed ({installed})" in again.stdout
