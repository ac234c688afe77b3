"""`pulumi-resource-pulumi-python`: the provider plugin behind Python dynamic resources.

The engine starts it like any provider plugin; it replaces itself with `python -u -m
pulumi.dynamic <args>`, which serves the provider whose code the program serialised into each
resource. That code must unpickle in the program's environment, so the interpreter is the
project's virtualenv when the engine passes one (PULUMI_RUNTIME_VIRTUALENV, from Pulumi.yaml
`runtime.options.virtualenv`), else this launcher's own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def project_interpreter(environ: dict[str, str], cwd: Path) -> Path:
    """The Python that must run the dynamic provider."""
    venv_option = environ.get("PULUMI_RUNTIME_VIRTUALENV", "").rstrip("/")
    if not venv_option:
        return Path(sys.executable)
    venv = Path(venv_option)
    if not venv.is_absolute():
        # Relative to the project root (the folder of Pulumi.yaml), at or above the plugin's cwd.
        roots = [d for d in (cwd, *cwd.parents) if (d / "Pulumi.yaml").is_file()]
        venv = (roots[0] if roots else cwd) / venv
    return venv / "bin" / "python"


def main() -> None:
    python = project_interpreter(dict(os.environ), Path.cwd())
    if not python.exists():
        sys.stderr.write(
            f"pulumi-resource-pulumi-python: {python} does not exist; create the virtualenv named "
            "by Pulumi.yaml runtime.options.virtualenv (python3 -m venv <dir>) and install the "
            "program's requirements into it\n"
        )
        sys.exit(1)
    argv = [str(python), "-u", "-m", "pulumi.dynamic", *sys.argv[1:]]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
