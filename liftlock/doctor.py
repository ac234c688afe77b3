"""`liftlock doctor`: is every tool the loop needs installed, which version, and how to fix it.

Each check is one named function returning a `Check`; the command renders them as a table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from liftlock.engine.env import TOOLS_BIN

PULUMI_VERSION = "v3.274.1"
KUBERNETES_PROVIDER_VERSION = "4.25.0"


@dataclass(frozen=True)
class Check:
    tool: str
    ok: bool
    version: str = ""
    path: str = ""
    problem: str = ""
    fix: str = ""
    required: bool = True


def _run(argv: list[str], env: Mapping[str, str], timeout: float = 30) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return 1, str(error)
    return done.returncode, (done.stdout + done.stderr).strip()


def _tool_path(root: Path, name: str) -> Path:
    return root / TOOLS_BIN / name


def check_pulumi(root: Path, env: Mapping[str, str]) -> Check:
    path = _tool_path(root, "pulumi")
    if not path.is_file():
        return Check(
            "pulumi",
            False,
            path=str(path),
            problem="not built",
            fix="make toolchain  (builds the pinned CLI from the Go module proxy)",
        )
    code, out = _run([str(path), "version"], env)
    if code != 0:
        return Check("pulumi", False, path=str(path), problem=out[-200:], fix="make toolchain")
    if out != PULUMI_VERSION:
        return Check(
            "pulumi", False, out, str(path), f"expected {PULUMI_VERSION}", fix="make toolchain"
        )
    return Check("pulumi", True, out, str(path))


def _bundled_plugin(root: Path, name: str, title: str, module: str) -> Check:
    # The engine looks for bundled plugins beside the real pulumi executable.
    path = _tool_path(root, name)
    if not path.exists():
        return Check(
            title,
            False,
            path=str(path),
            problem="not beside the pulumi executable (.tools/bin)",
            fix="make toolchain  (links the plugin from the venv)",
        )
    target = path.resolve()
    if not os.access(target, os.X_OK):
        return Check(
            title,
            False,
            path=str(path),
            problem=f"{target} is not executable",
            fix="make venv && make toolchain",
        )
    if importlib.util.find_spec(module) is None:
        return Check(
            title,
            False,
            path=str(path),
            problem=f"module {module} is not installed",
            fix="make venv",
        )
    from liftlock import __version__

    return Check(title, True, __version__, str(path))


def check_language_host(root: Path, env: Mapping[str, str]) -> Check:
    return _bundled_plugin(
        root, "pulumi-language-python", "language host (python)", "liftlock.engine.language_host"
    )


def check_dynamic_launcher(root: Path, env: Mapping[str, str]) -> Check:
    return _bundled_plugin(
        root,
        "pulumi-resource-pulumi-python",
        "dynamic-provider launcher",
        "liftlock.engine.dynamic_launcher",
    )


def check_kubernetes_provider(root: Path, env: Mapping[str, str]) -> Check:
    title = "kubernetes provider"
    pulumi = _tool_path(root, "pulumi")
    if not pulumi.is_file():
        return Check(
            title, False, problem="cannot list plugins: pulumi is missing", fix="make toolchain"
        )
    code, out = _run([str(pulumi), "plugin", "ls", "--json"], env)
    plugins = []
    if code == 0:
        try:
            plugins = json.loads(out or "[]")
        except json.JSONDecodeError:
            plugins = []
    for plugin in plugins or []:
        if (plugin.get("name"), plugin.get("kind"), plugin.get("version")) == (
            "kubernetes",
            "resource",
            KUBERNETES_PROVIDER_VERSION,
        ):
            return Check(title, True, plugin["version"], plugin.get("path", ""))
    return Check(
        title,
        False,
        problem=f"resource plugin kubernetes {KUBERNETES_PROVIDER_VERSION} not installed",
        fix="make toolchain  (builds it and runs `pulumi plugin install`)",
    )


def _version_of(argv: list[str], env: Mapping[str, str]) -> tuple[bool, str]:
    code, out = _run(argv, env)
    first = out.splitlines()[0] if out else ""
    return code == 0, first


def check_dvc(root: Path, env: Mapping[str, str]) -> Check:
    path = shutil.which("dvc", path=env.get("PATH"))
    if not path:
        return Check("dvc", False, problem="not on PATH", fix="make venv")
    ok, out = _version_of([path, "--version"], env)
    return Check("dvc", ok, out if ok else "", path, "" if ok else out, "" if ok else "make venv")


def check_docker_engine(root: Path, env: Mapping[str, str]) -> Check:
    title = "docker engine"
    client = shutil.which("docker", path=env.get("PATH"))
    if not client:
        return Check(
            title,
            False,
            problem="docker client not installed",
            fix="make dockerd  (apt-get install docker.io, starts dockerd)",
        )
    code, out = _run([client, "version", "--format", "{{.Server.Version}}"], env, timeout=15)
    if code != 0 or not re.match(r"^\d", out):
        return Check(
            title,
            False,
            path=client,
            problem="no Docker engine answers",
            fix="make dockerd  (starts dockerd as root)",
        )
    return Check(title, True, out, client)


def _optional_tool(
    name: str, version_args: list[str]
) -> Callable[[Path, Mapping[str, str]], Check]:
    def check(root: Path, env: Mapping[str, str]) -> Check:
        path = _tool_path(root, name)
        if not path.is_file():
            return Check(
                name,
                False,
                path=str(path),
                problem="not built (tests only)",
                fix=f"bash toolchain/build.sh {name}",
                required=False,
            )
        ok, out = _version_of([str(path), *version_args], env)
        return Check(name, ok, out, str(path), "" if ok else out, required=False)

    check.__name__ = f"check_{name.replace('-', '_')}"
    return check


CHECKS: list[Callable[[Path, Mapping[str, str]], Check]] = [
    check_pulumi,
    check_language_host,
    check_dynamic_launcher,
    check_kubernetes_provider,
    check_dvc,
    check_docker_engine,
    _optional_tool("kube-apiserver", ["--version"]),
    _optional_tool("etcd", ["--version"]),
    _optional_tool("actionlint", ["-version"]),
]


def run_checks(root: Path, env: Mapping[str, str]) -> list[Check]:
    return [check(root, env) for check in CHECKS]
