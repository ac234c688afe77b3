"""Benchmark: `pulumi up` with no changes and `pulumi preview`, per stack, against the engine's
floor (the same commands on an empty Python program), median of several runs.

    .venv/bin/python benchmarks/infra.py [--runs 5] [--stacks staging prod dev]

Runs on a throwaway copy of the project and a throwaway file:// backend; the checkout's deploy/
and .pulumi-state/ are not touched. dev needs the local Docker engine and the serving base image.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from liftlock.engine.env import engine_environment

REPO_ROOT = Path(__file__).resolve().parents[1]

PULUMI = REPO_ROOT / ".tools" / "bin" / "pulumi"
EMPTY_PROGRAM = "import pulumi\n\npulumi.export('empty', True)\n"
EMPTY_PROJECT = """name: liftlock-empty
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: .venv
"""


class Changed(Exception):
    """A no-change command found changes (dev: someone edited the server's sources meanwhile)."""


def pulumi(cwd: Path, backend: Path, *args: str) -> float:
    """Run one pulumi command; return its wall time in seconds (fail loudly)."""
    env = engine_environment(REPO_ROOT, backend_dir=backend)
    env["LIFTLOCK_ROOT"] = str(cwd)
    started = time.perf_counter()
    result = subprocess.run(
        [str(PULUMI), *args, "--non-interactive"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        if "no changes were expected" in result.stdout + result.stderr:
            raise Changed(" ".join(args))
        raise SystemExit(
            f"pulumi {' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-2000:]}"
        )
    return elapsed


def no_change_run(cwd: Path, backend: Path, stack: str, *args: str) -> float:
    """Time of one no-change command. If the stack changed under us (the dev image hashes the
    checkout's sources, which others may be editing), catch up with an `up` and measure again."""
    for _ in range(3):
        try:
            return pulumi(cwd, backend, *args)
        except Changed:
            print(f"  ({stack}: sources changed meanwhile; catching up, then measuring again)")
            pulumi(cwd, backend, "up", "--stack", stack, "--yes", "--skip-preview")
    raise SystemExit(f"{stack}: still changing after 3 catch-ups; measure on a quiet checkout")


def interleaved_medians(
    runs: int, floor: Path, project: Path, backend: Path, stack: str
) -> dict[str, float]:
    """Medians of no-change `up` and `preview`, the floor's run right before the stack's each
    time, so both see the same load (the machine is shared)."""
    commands = {
        "up": ("up", "--yes", "--expect-no-changes"),
        "preview": ("preview", "--expect-no-changes"),
    }
    times: dict[str, list[float]] = {
        f"{who} {what}": [] for who in ("floor", stack) for what in commands
    }
    for _ in range(runs):
        for what, args in commands.items():
            times[f"floor {what}"].append(
                no_change_run(floor, backend, "floor", args[0], "--stack", "floor", *args[1:])
            )
            times[f"{stack} {what}"].append(
                no_change_run(project, backend, stack, args[0], "--stack", stack, *args[1:])
            )
    return {key: statistics.median(values) for key, values in times.items()}


def copy_project(workdir: Path) -> Path:
    root = workdir / "project"
    root.mkdir()
    shutil.copy2(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("infra", "stacks", "bundle", "deploy", "ml", "liftlock", "wheelhouse"):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(REPO_ROOT / folder, root / folder, ignore=ignore, symlinks=True)
    for name in ("pyproject.toml",):
        shutil.copy2(REPO_ROOT / name, root / name)
    (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    return root


def empty_project(workdir: Path) -> Path:
    root = workdir / "empty"
    root.mkdir()
    (root / "Pulumi.yaml").write_text(EMPTY_PROJECT, encoding="utf-8")
    (root / "__main__.py").write_text(EMPTY_PROGRAM, encoding="utf-8")
    (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median reported)")
    parser.add_argument(
        "--stacks", nargs="+", default=["staging", "prod", "dev"], help="stacks to measure"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liftlock-bench-infra-") as scratch:
        workdir = Path(scratch)
        backend = workdir / "backend"
        backend.mkdir()
        empty = empty_project(workdir)
        pulumi(empty, backend, "stack", "init", "floor")
        pulumi(empty, backend, "up", "--stack", "floor", "--yes")
        project = copy_project(workdir)
        print(
            f"{'stack':<8} {'up (no change)':>15} {'floor':>7} {'ratio':>6}"
            f" {'preview':>9} {'floor':>7} {'ratio':>6}"
        )
        try:
            # Its own image tag, container name and port: the checkout's dev keeps running.
            dev_file = project / "stacks" / "Pulumi.dev.yaml"
            document = yaml.safe_load(dev_file.read_text(encoding="utf-8"))
            document["config"]["liftlock:imageRepository"] = "liftlock-bench"
            document["config"]["liftlock:hostPort"] = 18797
            dev_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
            for stack in options.stacks:
                pulumi(project, backend, "stack", "init", stack)
                pulumi(project, backend, "up", "--stack", stack, "--yes")
                m = interleaved_medians(options.runs, empty, project, backend, stack)
                up, floor_up = m[f"{stack} up"], m["floor up"]
                preview, floor_preview = m[f"{stack} preview"], m["floor preview"]
                print(
                    f"{stack:<8} {up:>14.2f}s {floor_up:>6.2f}s {up / floor_up:>5.2f}x"
                    f" {preview:>8.2f}s {floor_preview:>6.2f}s {preview / floor_preview:>5.2f}x",
                    flush=True,
                )
        finally:
            for stack in options.stacks:
                if stack == "dev":
                    # Removes the container and the image tag this run created.
                    subprocess.run(
                        [str(PULUMI), "destroy", "--stack", stack, "--yes", "--non-interactive"],
                        cwd=project,
                        env={
                            **engine_environment(REPO_ROOT, backend_dir=backend),
                            "LIFTLOCK_ROOT": str(project),
                        },
                        capture_output=True,
                        check=False,
                    )
        print(
            f"median of {options.runs} runs each, floor and stack interleaved; floor = the same "
            "command on an empty Python program (same engine, backend, language host)"
        )


if __name__ == "__main__":
    main()
