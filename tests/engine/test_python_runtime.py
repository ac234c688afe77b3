"""Pure parts of the engine pieces: plugin versions, plugin requirements, interpreter choice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from liftlock.engine.dynamic_launcher import project_interpreter
from liftlock.engine.python_runtime import (
    PythonRuntime,
    RuntimeSetupError,
    plugin_requirement,
    plugin_version,
)


@pytest.mark.parametrize(
    ("package_version", "expected"),
    [
        ("4.25.0", "4.25.0"),
        ("1.2", "1.2.0"),
        ("3", "3.0.0"),
        ("1.2.3a4", "1.2.3-alpha.4"),
        ("1.2.3b1", "1.2.3-beta.1"),
        ("1.2.3rc2", "1.2.3-rc.2"),
        ("1.2.3.post4", "1.2.3+post4"),
        ("1.2.3.dev5", "1.2.3+dev5"),
        ("1.2.3.post4.dev5", "1.2.3+post4dev5"),
        ("1!1.2.3", None),  # epochs have no plugin version
        ("1.2.3+local", None),
        ("", None),
    ],
)
def test_plugin_version_from_pep440(package_version: str, expected: str | None) -> None:
    assert plugin_version(package_version) == expected


def test_plugin_json_wins_over_the_package_name() -> None:
    requirement = plugin_requirement(
        {
            "name": "pulumi_kubernetes",
            "version": "4.25.0.post1",
            "plugin": {"resource": True, "name": "kubernetes", "version": "4.25.0"},
        }
    )
    assert requirement is not None
    assert (requirement.name, requirement.version) == ("kubernetes", "v4.25.0")


@pytest.mark.parametrize(
    "package",
    [
        {"name": "pulumi-policy", "version": "1.21.0", "plugin": None},
        {"name": "pulumi_esc_sdk", "version": "0.12.0", "plugin": None},
        {"name": "requests", "version": "2.0.0", "plugin": None},
        {"name": "pulumi", "version": "3.272.0", "plugin": None},
        {"name": "pulumi-sdkonly", "version": "1.0.0", "plugin": {"resource": False}},
        {"name": "pulumi-weird", "version": "1.0+local", "plugin": None},
    ],
)
def test_packages_without_a_plugin(package: dict[str, object]) -> None:
    assert plugin_requirement(package) is None


def test_default_interpreter_is_the_hosts_own(tmp_path: Path) -> None:
    runtime = PythonRuntime.resolve(str(tmp_path), str(tmp_path / "infra"), {})
    assert runtime.interpreter == Path(sys.executable)
    assert runtime.virtualenv is None
    assert runtime.is_host_interpreter()


def test_relative_virtualenv_is_under_the_project_root(tmp_path: Path) -> None:
    runtime = PythonRuntime.resolve(str(tmp_path), str(tmp_path / "infra"), {"virtualenv": ".venv"})
    assert runtime.interpreter == tmp_path / ".venv" / "bin" / "python"
    env = runtime.environment({"PATH": "/usr/bin", "PYTHONHOME": "/x"})
    assert env["PATH"].split(":")[0] == str(tmp_path / ".venv" / "bin")
    assert env["VIRTUAL_ENV"] == str(tmp_path / ".venv")
    assert "PYTHONHOME" not in env


def test_virtualenv_option_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(RuntimeSetupError, match="virtualenv must be a path string"):
        PythonRuntime.resolve(str(tmp_path), str(tmp_path), {"virtualenv": 3})


def test_dynamic_provider_uses_the_project_virtualenv(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    program_dir = tmp_path / "infra"
    program_dir.mkdir()
    env = {"PULUMI_RUNTIME_VIRTUALENV": ".venv/"}
    assert project_interpreter(env, program_dir) == tmp_path / ".venv" / "bin" / "python"
    assert project_interpreter({"PULUMI_RUNTIME_VIRTUALENV": "/abs/venv"}, program_dir) == Path(
        "/abs/venv/bin/python"
    )
    assert project_interpreter({}, program_dir) == Path(sys.executable)
