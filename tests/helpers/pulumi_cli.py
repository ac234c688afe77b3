"""Run the real `pulumi` CLI (.tools/bin/pulumi) on a throwaway file:// backend.

Shared by the engine, infra and policy tests. Use the `pulumi_cli` fixture (tests/conftest.py):

    def test_something(pulumi_cli, tmp_path):
        project = write_python_project(tmp_path / "p", "import pulumi\\npulumi.export('x', 1)\\n")
        pulumi = pulumi_cli(project)  # stack "test" created and selected
        pulumi("up", "--yes")  # raises PulumiCommandError (with the output) on failure
        result = pulumi("preview", "--json", check=False)
        assert result.returncode == 0, result.output

Every command runs under `liftlock.engine.env.engine_environment` with the backend in the test's
tmp folder and a test passphrase, and fails if the engine printed a "using ... from $PATH"
warning (the bundled plugins must be found beside the engine, providers in the plugin cache).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftlock.engine.env import TOOLS_BIN, engine_environment

TEST_PASSPHRASE = "liftlock-tests"
PATH_WARNING = "from $PATH"


class PulumiCommandError(AssertionError):
    """A pulumi command failed (or warned where it must not); the message holds its output."""


@dataclass(frozen=True)
class PulumiResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        """stdout parsed as JSON (for commands run with --json)."""
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"`pulumi {' '.join(self.args)}` exited {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class PulumiCLI:
    """`pulumi` for one project directory on one throwaway backend."""

    repo_root: Path
    project_dir: Path
    backend_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def executable(self) -> Path:
        return self.repo_root / TOOLS_BIN / "pulumi"

    def missing_engine(self) -> str | None:
        """Why the engine cannot run here (and the fix), or None when it can."""
        if not self.executable.exists():
            return (
                f"{self.executable} is missing: build the engine with "
                f"`LIFTLOCK_VENV_BIN={Path(sys.executable).parent} bash toolchain/build.sh`"
            )
        return None

    def environment(self) -> dict[str, str]:
        self.backend_dir.mkdir(parents=True, exist_ok=True)
        env = engine_environment(self.repo_root, backend_dir=self.backend_dir)
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        env["PULUMI_CONFIG_PASSPHRASE"] = TEST_PASSPHRASE
        env.update(self.extra_env)
        return env

    def __call__(
        self,
        *args: str,
        check: bool = True,
        allow_path_warnings: bool = False,
        timeout: float = 600,
        env: Mapping[str, str] | None = None,
    ) -> PulumiResult:
        """Run `pulumi ARGS --non-interactive --color never` in the project directory."""
        full_env = self.environment()
        full_env.update(env or {})
        started = time.monotonic()
        completed = subprocess.run(
            [str(self.executable), *args, "--non-interactive", "--color", "never"],
            cwd=self.project_dir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = PulumiResult(
            tuple(args),
            completed.returncode,
            completed.stdout,
            completed.stderr,
            time.monotonic() - started,
        )
        if check and result.returncode != 0:
            raise PulumiCommandError(result.describe())
        if not allow_path_warnings and PATH_WARNING in result.output:
            raise PulumiCommandError(
                "the engine took a plugin from $PATH instead of beside itself or from the plugin "
                "cache (re-run toolchain/build.sh to link the bundled plugins):\n"
                + result.describe()
            )
        return result

    def set_config(self, values: Mapping[str, str], *, secret: bool = False) -> None:
        for key, value in values.items():
            self("config", "set", *(["--secret"] if secret else []), key, value)


def write_python_project(
    project_dir: Path,
    program: str,
    *,
    name: str = "test-project",
    files: Mapping[str, str] | None = None,
    main: str = "infra/",
) -> Path:
    """A Pulumi project like liftlock's own: Pulumi.yaml (runtime python with this test run's
    virtualenv, `main: infra/`), `program` as infra/__main__.py and `files` beside it."""
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / "Pulumi.yaml").write_text(
        f"name: {name}\n"
        "runtime:\n"
        "  name: python\n"
        "  options:\n"
        "    toolchain: pip\n"
        f"    virtualenv: {sys.prefix}\n"
        f"main: {main}\n"
    )
    program_dir = project_dir / main
    program_dir.mkdir(parents=True, exist_ok=True)
    (program_dir / "__main__.py").write_text(textwrap.dedent(program))
    for relative, text in (files or {}).items():
        path = program_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return project_dir


def write_policy_pack(pack_dir: Path, source: str) -> Path:
    """A Python CrossGuard pack (PulumiPolicy.yaml + __main__.py) run by the host's interpreter."""
    pack_dir.mkdir(parents=True, exist_ok=True)
    (pack_dir / "PulumiPolicy.yaml").write_text("runtime: python\ndescription: test policy pack\n")
    (pack_dir / "__main__.py").write_text(textwrap.dedent(source))
    return pack_dir
