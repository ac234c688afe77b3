"""Benchmark: `liftlock preview` of a change that affects all three stacks, against the slowest
single-stack preview of the same change (and against the stacks one after another).

    .venv/bin/python benchmarks/preview.py [--runs 3]

Works on a throwaway clone of the checkout's HEAD with its own file:// backend: staging and prod
pinned to the bundle, all three stacks deployed (dev builds its image on the local Docker engine,
under its own repository and port), then a comment-only change to infra/ (affects every stack,
touches no model input, so the numbers are the engine's). Gates are left out (`--no-gates`).
The ratio "3 stacks / slowest single stack" is 1.0 for perfect overlap and 3.0 for none; with 2
cores the preview runs at most 2 stacks at once. Results: benchmarks/results/preview.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.preview.project_clone import ProjectClone

REPO_ROOT = Path(__file__).resolve().parents[1]

RESULTS = REPO_ROOT / "benchmarks" / "results" / "preview.json"
STACKS = ("dev", "staging", "prod")


def prepare(workdir: Path) -> tuple[ProjectClone, str]:
    clone = ProjectClone.make(REPO_ROOT, workdir)
    print("[bench] clone ready; dvc repro --pull ...", flush=True)
    clone.dvc("repro", "--pull", timeout=1800)
    digest = clone.bundle_digest()
    for stack in ("staging", "prod"):
        clone.pin(stack, digest)
    clone.isolate_docker_stack("dev", "liftlock-model-bench")
    clone.commit_all("bench: pins")
    for stack in STACKS:
        print(f"[bench] pulumi up {stack} ...", flush=True)
        clone.pulumi("stack", "init", stack)
        clone.pulumi("up", "--yes", "--stack", stack, timeout=1800)
    base = clone.commit_all("bench: base")
    main = clone.root / "infra" / "__main__.py"
    with main.open("a", encoding="utf-8") as handle:
        handle.write("\n# benchmark: a change every stack is built from\n")
    clone.commit_all("bench: head")
    return clone, base


def timed_preview(clone: ProjectClone, base: str, *args: str) -> float:
    """Seconds for one preview; a stack whose preview failed stops the benchmark."""
    started = time.perf_counter()
    out = clone.liftlock("preview", "--base", base, "--no-gates", "--format", "json", *args)
    elapsed = time.perf_counter() - started
    report = json.loads(out)
    failed = {s["stack"]: s["errors"] for s in report["stacks"] if s["status"] == "error"}
    if failed:
        raise SystemExit(f"preview {' '.join(args)} failed: {failed}")
    if not any(s["status"] == "ok" for s in report["stacks"]):
        raise SystemExit(f"preview {' '.join(args)} previewed no stack: {report['affected']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liftlock-bench-preview-") as scratch:
        clone, base = prepare(Path(scratch))
        try:
            timed_preview(clone, base, "--stack", "staging")  # warm caches (plugins, bytecode)
            single = {
                stack: statistics.median(
                    timed_preview(clone, base, "--stack", stack) for _ in range(args.runs)
                )
                for stack in STACKS
            }
            together = statistics.median(timed_preview(clone, base) for _ in range(args.runs))
            one_by_one = statistics.median(
                timed_preview(clone, base, "--jobs", "1") for _ in range(args.runs)
            )
        finally:
            clone.pulumi("destroy", "--yes", "--stack", "dev", check=False, timeout=900)
    slowest = max(single.values())
    result = {
        "runs": args.runs,
        "cores": os.cpu_count(),
        "single_stack_s": {k: round(v, 2) for k, v in single.items()},
        "three_stacks_s": round(together, 2),
        "three_stacks_jobs1_s": round(one_by_one, 2),
        "ratio_three_vs_slowest_single": round(together / slowest, 2),
        "ratio_three_vs_sequential": round(together / one_by_one, 2),
    }
    for stack, seconds in single.items():
        print(f"preview --stack {stack:8s} {seconds:6.1f} s")
    print(f"preview, 3 stacks (2 at once) {together:6.1f} s")
    print(f"preview, 3 stacks (--jobs 1)  {one_by_one:6.1f} s")
    print(f"ratio 3 stacks / slowest single stack: {together / slowest:.2f}")
    print(f"ratio 3 stacks / one after another:    {together / one_by_one:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
