"""Benchmark: `liftlock gate <stack>` for each stack — the rules alone (`--no-preview`) against the
rules plus the engine's `pulumi preview --policy-pack policies`, and the engine's floor (the same
preview without the pack), median of several runs.

    .venv/bin/python benchmarks/gate.py [--runs 3] [--stacks dev staging prod]

Works on the checkout's bundle/ (`dvc repro` first) and a throwaway file:// backend; it writes
nothing into the checkout (results go to benchmarks/results/gate.json).
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

REPO_ROOT = Path(__file__).resolve().parents[1]
LIFTLOCK = Path(sys.executable).parent / "liftlock"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "gate.json"


def timed(command: list[str], env: dict[str, str], *, ok_codes: tuple[int, ...] = (0, 1)) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def median(runs: int, command: list[str], env: dict[str, str]) -> float:
    return statistics.median(timed(command, env) for _ in range(runs))


def gate_timings(stack: str, env: dict[str, str]) -> dict[str, float]:
    """The gate's own split (--json `timings`): facts (bundle check, dvc status), rule functions."""
    result = subprocess.run(
        [str(LIFTLOCK), "gate", stack, "--no-preview", "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    timings: dict[str, float] = json.loads(result.stdout)["timings"]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--stacks", nargs="+", default=["dev", "staging", "prod"])
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    from liftlock.engine.env import engine_environment

    with tempfile.TemporaryDirectory(prefix="liftlock-gate-bench-") as backend:
        env = engine_environment(REPO_ROOT, dict(os.environ), backend_dir=Path(backend))
        pulumi = str(REPO_ROOT / ".tools" / "bin" / "pulumi")
        rows = []
        for stack in args.stacks:
            subprocess.run(
                [pulumi, "stack", "init", stack, "--non-interactive"],
                cwd=REPO_ROOT, env=env, capture_output=True, check=False,
            )  # fmt: skip
            rules = median(args.runs, [str(LIFTLOCK), "gate", stack, "--no-preview"], env)
            floor = median(
                args.runs, [pulumi, "preview", "--stack", stack, "--non-interactive"], env
            )
            full = median(args.runs, [str(LIFTLOCK), "gate", stack], env)
            split = gate_timings(stack, env)
            rows.append(
                {
                    "stack": stack,
                    "rules_s": round(rules, 2),
                    "facts_s": round(split.get("facts", 0.0), 3),
                    "rule_functions_ms": round(split.get("rules", 0.0) * 1000, 2),
                    "preview_floor_s": round(floor, 2),
                    "gate_s": round(full, 2),
                    "gate_over_rules": round(full / rules, 2),
                    "gate_over_preview": round(full / floor, 2),
                }
            )
    print(f"liftlock gate, median of {args.runs} runs (seconds; rule functions in ms)")
    print(f"{'stack':8} {'rules alone':>12} {'(facts':>7} {'rules ms)':>10} {'preview':>9} "
          f"{'gate':>7} {'gate/rules':>11} {'gate/preview':>13}")  # fmt: skip
    for row in rows:
        print(
            f"{row['stack']:8} {row['rules_s']:12.2f} {row['facts_s']:7.2f} "
            f"{row['rule_functions_ms']:10.2f} {row['preview_floor_s']:9.2f} "
            f"{row['gate_s']:7.2f} {row['gate_over_rules']:11.2f} {row['gate_over_preview']:13.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", encoding="utf-8") as handle:
        json.dump({"runs": args.runs, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
