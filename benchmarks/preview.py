"""Benchmark: `liftlock preview` of three stacks on a fresh clone with no backend state, against
the slowest single stack's engine preview (`pulumi preview` of one stack) in the same clone.

    .venv/bin/python benchmarks/preview.py [--runs 1]

The clone is `git clone` of the checkout's HEAD with its own empty file:// backend, the venv and
the engine linked in and the DVC outputs checked out from the checkout's cache. The change is a
comment in infra/__main__.py: it affects every stack and no model input, so the figures are the
infrastructure side's (gates left out). The preview renders staging and prod (two throwaway
worktrees and backends, `pulumi up` each) and previews dev with the engine, at most 2 at once;
the baseline is `pulumi preview --stack <s>` of each stack on a fresh backend, the slowest
taken. Results: benchmarks/results/preview.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from liftlock.engine.env import TOOLS_BIN, engine_environment
from liftlock.engine.preview import run_preview

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "preview.json"
STACKS = ("dev", "staging", "prod")
VENV_BIN = Path(sys.executable).parent


def step(line: str) -> None:
    print(f"[bench] {line}", flush=True)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def fresh_clone(workdir: Path) -> tuple[Path, str]:
    """A clone of HEAD with its outputs, and the base commit of a change every stack sees."""
    clone = workdir / "clone"
    run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], workdir)
    for key, value in (("user.name", "liftlock-bench"), ("user.email", "bench@liftlock")):
        run(["git", "config", key, value], clone)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    (clone / ".tools").mkdir()
    (clone / TOOLS_BIN).symlink_to(REPO_ROOT / TOOLS_BIN)
    with (clone / ".git" / "info" / "exclude").open("a", encoding="utf-8") as handle:
        handle.write("/.venv\n/.tools\n")
    dvc = str(VENV_BIN / "dvc")
    cache = run([dvc, "cache", "dir"], REPO_ROOT).strip()
    run([dvc, "cache", "dir", "--local", cache], clone)
    run([dvc, "checkout", "--quiet"], clone)
    base = run(["git", "rev-parse", "HEAD"], clone).strip()
    with (clone / "infra" / "__main__.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# benchmark: a change every stack is built from\n")
    run(["git", "commit", "--quiet", "-am", "bench: head"], clone)
    return clone, base


def environment(clone: Path, backend: Path) -> dict[str, str]:
    backend.mkdir(parents=True, exist_ok=True)
    env = engine_environment(clone, os.environ, backend_dir=backend)
    env["PYTHONPATH"] = str(clone)
    return env


def engine_preview(clone: Path, stack: str, backend: Path) -> float:
    """Seconds for `pulumi preview --stack <stack>` on a fresh backend (stack init not counted)."""
    env = environment(clone, backend)
    project = backend.parent / f"project-{stack}"  # stack init would rewrite the stack file
    project.mkdir()
    (project / "Pulumi.yaml").write_bytes((clone / "Pulumi.yaml").read_bytes())
    run(
        [str(clone / TOOLS_BIN / "pulumi"), "stack", "init", stack, "--non-interactive"],
        project,
        env,
    )
    config = backend.parent / f"Pulumi.{stack}.yaml"
    config.write_bytes((clone / "stacks" / f"Pulumi.{stack}.yaml").read_bytes())
    result = run_preview(clone, stack, env, config_file=config)
    if result.returncode != 0:
        raise SystemExit(f"pulumi preview --stack {stack} failed: {result.output_tail}")
    return result.duration_s


def liftlock_preview(clone: Path, base: str, backend: Path) -> tuple[float, dict]:
    env = environment(clone, backend)
    env["LIFTLOCK_ROOT"] = str(clone)
    started = time.perf_counter()
    out = run(
        [sys.executable, "-m", "liftlock.cli", "preview", "--base", base, "--no-gates",
         "--format", "json"],
        clone,
        env,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    report = json.loads(out)
    failed = {s["stack"]: s["errors"] for s in report["stacks"] if s["status"] == "error"}
    if failed:
        raise SystemExit(f"liftlock preview failed: {failed}")
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per measurement (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liftlock-bench-preview-") as scratch:
        workdir = Path(scratch)
        step("fresh clone, DVC outputs from the checkout's cache ...")
        clone, base = fresh_clone(workdir)
        single: dict[str, float] = {}
        for stack in STACKS:
            times = []
            for index in range(args.runs):
                step(f"pulumi preview --stack {stack} (fresh backend) ...")
                times.append(engine_preview(clone, stack, workdir / f"b-{stack}-{index}" / "state"))
            single[stack] = statistics.median(times)
            step(f"  {stack}: {single[stack]:.1f} s")
        together, report = [], {}
        for index in range(args.runs):
            step("liftlock preview, three stacks (fresh backend) ...")
            seconds, report = liftlock_preview(clone, base, workdir / f"p-{index}" / "state")
            together.append(seconds)
        three = statistics.median(together)
    slowest = max(single.values())
    per_stack = {s["stack"]: round(s["duration_s"], 2) for s in report.get("stacks", [])}
    result = {
        "runs": args.runs,
        "cores": os.cpu_count(),
        "engine_preview_single_stack_s": {k: round(v, 2) for k, v in single.items()},
        "liftlock_preview_three_stacks_s": round(three, 2),
        "liftlock_preview_per_stack_s": per_stack,
        "ratio_three_vs_slowest_single": round(three / slowest, 2),
        "changes": {s["stack"]: s["counts"] for s in report.get("stacks", [])},
    }
    for stack, seconds in single.items():
        print(f"pulumi preview --stack {stack:8s} {seconds:6.1f} s")
    print(f"liftlock preview, 3 stacks    {three:6.1f} s  (per stack: {per_stack})")
    print(f"ratio 3 stacks / slowest single engine preview: {three / slowest:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
