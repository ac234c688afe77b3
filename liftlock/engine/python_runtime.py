"""Which Python runs a Pulumi program, and which Pulumi packages it has installed.

A Pulumi.yaml names its interpreter with `runtime.options.virtualenv` (relative to the project
root); without it the host's own interpreter runs the program. Plugin requirements come from the
installed packages' `pulumi-plugin.json` (or, for first-party `pulumi-*` packages without one,
from the package name and version), so the engine can name a missing provider before it runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liftlock.engine import package_scan

#: Packages named pulumi-* that have no provider plugin.
PACKAGES_WITHOUT_PLUGIN = frozenset({"pulumi-policy", "pulumi-esc-sdk"})
SUPPORTED_OPTIONS = frozenset({"virtualenv", "toolchain", "typechecker"})


class RuntimeSetupError(Exception):
    """The project's Python runtime cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class PythonRuntime:
    """The interpreter of one project (or plugin) and the folders it runs in."""

    root: Path
    program_dir: Path
    interpreter: Path
    virtualenv: Path | None

    @classmethod
    def resolve(
        cls,
        root: str,
        program_dir: str,
        options: Mapping[str, Any],
        *,
        fallback_dir: str = "",
    ) -> PythonRuntime:
        """From a ProgramInfo's fields; `fallback_dir` stands in for missing directories."""
        root_path = Path(root or program_dir or fallback_dir or os.getcwd()).resolve()
        program_path = Path(program_dir or root or fallback_dir or os.getcwd()).resolve()
        toolchain = options.get("toolchain", "pip")
        if toolchain != "pip":
            raise RuntimeSetupError(
                f"Pulumi.yaml runtime.options.toolchain is {toolchain!r}; liftlock's Python "
                "language host supports only 'pip' (a virtualenv). Set `toolchain: pip`."
            )
        venv_option = options.get("virtualenv")
        if venv_option in (None, ""):
            return cls(root_path, program_path, Path(sys.executable), None)
        if not isinstance(venv_option, str):
            raise RuntimeSetupError(
                f"Pulumi.yaml runtime.options.virtualenv must be a path string, got {venv_option!r}"
            )
        venv = Path(venv_option)
        venv = venv if venv.is_absolute() else root_path / venv
        return cls(root_path, program_path, venv / "bin" / "python", venv)

    def require_interpreter(self) -> None:
        """Fail with the fix when the virtualenv named in Pulumi.yaml is missing."""
        if self.interpreter.exists():
            return
        raise RuntimeSetupError(
            f"the virtualenv {self.virtualenv} named by Pulumi.yaml runtime.options.virtualenv "
            f"has no interpreter ({self.interpreter} is missing). Create it with "
            f"`python3 -m venv {self.virtualenv}` and install the program's requirements "
            f"(`{self.virtualenv}/bin/pip install -r requirements.txt`), or run `pulumi install`."
        )

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with the virtualenv activated, as `source activate` would."""
        env = dict(os.environ if base is None else base)
        if self.virtualenv is not None:
            env["VIRTUAL_ENV"] = str(self.virtualenv)
            env["PATH"] = os.pathsep.join(
                [str(self.virtualenv / "bin"), *filter(None, env.get("PATH", "").split(os.pathsep))]
            )
            env.pop("PYTHONHOME", None)
        return env

    def is_host_interpreter(self) -> bool:
        """True when the program runs in the host's own environment (no separate venv)."""
        if self.virtualenv is None:
            return True
        return Path(sys.prefix).resolve() == self.virtualenv.resolve()

    def installed_packages(self) -> list[dict[str, Any]]:
        """package_scan's answer for this interpreter (in-process when it is the host's own)."""
        if self.is_host_interpreter():
            return package_scan.scan()
        self.require_interpreter()
        completed = subprocess.run(
            [str(self.interpreter), package_scan.__file__],
            capture_output=True,
            text=True,
            env=self.environment(),
            cwd=self.program_dir if self.program_dir.is_dir() else None,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeSetupError(
                f"listing the packages of {self.interpreter} failed "
                f"(exit {completed.returncode}): {completed.stderr.strip()[-2000:]}"
            )
        packages: list[dict[str, Any]] = json.loads(completed.stdout)
        return packages


@dataclass(frozen=True)
class PluginRequirement:
    """A provider plugin a program needs, as the engine's PackageDependency describes it."""

    name: str
    version: str
    server: str = ""
    parameterization: Mapping[str, Any] | None = None


def is_pulumi_package(package: Mapping[str, Any]) -> bool:
    name = package_scan.canonical_name(package["name"])
    return package.get("plugin") is not None or name.startswith("pulumi-")


def plugin_requirement(package: Mapping[str, Any]) -> PluginRequirement | None:
    """The plugin a package needs, or None (no plugin, or a version that maps to no plugin)."""
    name = package_scan.canonical_name(package["name"])
    if name in PACKAGES_WITHOUT_PLUGIN or not is_pulumi_package(package):
        return None
    plugin = package.get("plugin") or {}
    if plugin and not plugin.get("resource", False):
        return None
    plugin_name = plugin.get("name") or name.removeprefix("pulumi-")
    version = plugin.get("version") or plugin_version(package["version"])
    if version is None:
        return None
    if not version.startswith("v"):
        version = "v" + version
    return PluginRequirement(
        name=plugin_name,
        version=version,
        server=plugin.get("server", "") or "",
        parameterization=plugin.get("parameterization"),
    )


_PEP440 = re.compile(
    r"^(?P<release>\d+(?:\.\d+)*)"
    r"(?:(?P<pre_kind>a|b|rc)(?P<pre_num>\d+))?"
    r"(?:\.post(?P<post>\d+))?"
    r"(?:\.dev(?P<dev>\d+))?$"
)
_PRE_KIND = {"a": "alpha", "b": "beta", "rc": "rc"}


def plugin_version(package_version: str) -> str | None:
    """A PEP 440 package version as the plugin's semver (1.2 -> 1.2.0, 1.2.3a4 -> 1.2.3-alpha.4).

    None when there is no faithful translation (epochs, local versions, other forms).
    """
    match = _PEP440.match(package_version.strip())
    if not match:
        return None
    release = match["release"].split(".")
    release += ["0"] * (3 - len(release))
    version = ".".join(release)
    if match["pre_kind"]:
        version += f"-{_PRE_KIND[match['pre_kind']]}.{match['pre_num']}"
    build = []
    if match["post"] is not None:
        build.append(f"post{match['post']}")
    if match["dev"] is not None:
        build.append(f"dev{match['dev']}")
    if build:
        version += "+" + "".join(build)
    return version


def required_plugins(packages: list[dict[str, Any]]) -> list[PluginRequirement]:
    found = (plugin_requirement(p) for p in packages)
    return sorted((r for r in found if r is not None), key=lambda r: r.name)


def top_level_packages(packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Packages no other installed package requires (what `pip list --not-required` shows)."""
    required = {name for p in packages for name in p.get("requires", [])}
    return [p for p in packages if package_scan.canonical_name(p["name"]) not in required]
