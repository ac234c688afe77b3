"""The one place that sets the Pulumi engine's environment.

Used by the Makefile (`liftlock env`), the tests and every liftlock command that runs `pulumi`.
The engine finds its "bundled" plugins (the Python language host, the dynamic-provider launcher)
beside the real `pulumi` executable, so `.tools/bin` holds the engine, the host and the launcher
together; provider plugins (kubernetes) live in the plugin cache.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from liftlock.errors import ConfigError, ToolMissingError

#: Passphrase of the embedded default stacks only. It protects nothing: it exists so that
#: `make demo` runs with no set-up. Real stacks set PULUMI_CONFIG_PASSPHRASE(_FILE) or use a KMS.
EMBEDDED_DEFAULT_PASSPHRASE = "liftlock-embedded-default"

#: Folder of the local file:// backend, inside the checkout and git-ignored.
STATE_DIRNAME = ".pulumi-state"
TOOLS_BIN = Path(".tools") / "bin"


def find_project_root(start: Path | None = None) -> Path:
    """The checkout root: $LIFTLOCK_ROOT, else the nearest folder upwards holding Pulumi.yaml."""
    explicit = os.environ.get("LIFTLOCK_ROOT")
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    raise ConfigError(
        f"no liftlock checkout found at or above {here} "
        "(looked for Pulumi.yaml beside pyproject.toml)",
        hint="run the command inside the repository, or set LIFTLOCK_ROOT",
    )


def engine_environment(
    root: Path, base: Mapping[str, str] | None = None, *, backend_dir: Path | None = None
) -> dict[str, str]:
    """The environment under which `pulumi` runs for the checkout at `root`.

    Values the user already set win, except PATH, which gets the tools and the venv in front.
    `backend_dir` points the file:// backend elsewhere (tests use throwaway backends).
    """
    env = dict(os.environ if base is None else base)
    venv_bin = Path(sys.executable).parent
    front = [str(root / TOOLS_BIN), str(venv_bin)]
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in front]
    env["PATH"] = os.pathsep.join(front + rest)
    if backend_dir is not None:
        env["PULUMI_BACKEND_URL"] = backend_dir.resolve().as_uri()
    else:
        env.setdefault("PULUMI_BACKEND_URL", (root / STATE_DIRNAME).as_uri())
    if "PULUMI_CONFIG_PASSPHRASE" not in env and "PULUMI_CONFIG_PASSPHRASE_FILE" not in env:
        env["PULUMI_CONFIG_PASSPHRASE"] = EMBEDDED_DEFAULT_PASSPHRASE
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    env["LIFTLOCK_ROOT"] = str(root)
    return env


def pulumi_executable(
    env: Mapping[str, str],
    *,
    hint: str = 'run `make toolchain`, or `eval "$(.venv/bin/liftlock env)"`',
) -> str:
    """The `pulumi` that the PATH of `env` (an engine environment) finds."""
    found = shutil.which("pulumi", path=env.get("PATH"))
    if not found:
        raise ToolMissingError("the Pulumi engine is not on PATH (.tools/bin/pulumi)", hint=hint)
    return found


def run_pulumi(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 1800,
) -> subprocess.CompletedProcess[str]:
    """`pulumi <args> --non-interactive` in `cwd` under `env`, output captured as text.

    The caller judges the exit code: a failed preview can still carry the verdicts it wants.
    """
    return subprocess.run(
        [pulumi_executable(env), *args, "--non-interactive"],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ensure_local_backend(env: Mapping[str, str]) -> None:
    """Create the folder of a file:// backend: the engine refuses `stack init` on a missing one."""
    url = urlsplit(env.get("PULUMI_BACKEND_URL", ""))
    if url.scheme == "file":
        Path(unquote(url.netloc + url.path)).expanduser().mkdir(parents=True, exist_ok=True)


def shell_exports(env: Mapping[str, str], names: list[str] | None = None) -> str:
    """`export K=V` lines for the variables the engine environment sets (for `eval`)."""
    keys = names or [
        "PATH",
        "PULUMI_BACKEND_URL",
        "PULUMI_CONFIG_PASSPHRASE",
        "PULUMI_SKIP_UPDATE_CHECK",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING",
        "LIFTLOCK_ROOT",
    ]
    return "\n".join(f"export {k}={shlex.quote(env[k])}" for k in keys if k in env)
