"""Benchmark: what DVC costs on top of the same training work.

1. Pipeline wall time: `dvc repro` (five stages, five processes, DVC hashing and lock updates)
   against one plain script doing load -> validate -> fit -> evaluate in one process.
   Measured twice: up to `evaluate` (the same work as the script) and the full pipeline
   (plus `package`: ONNX export + check, model card, bundle).
2. No-op `dvc repro` (everything up to date) against the no-op of a one-stage DVC pipeline:
   what checking five stages costs compared with checking one.
3. The numeric pin (ml/numeric_env.py): the `train` stage under the pin (one BLAS thread, the
   AVX2 kernel) against the same stage with the pin switched off (this machine's own kernel and
   threads): the stage's own time (its line) and the whole process.

Each figure is the median of --repeat runs, measured in temporary copies (own git repo, own DVC
cache) so /work/main is untouched. Run: `.venv/bin/python benchmarks/pipeline.py`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from ml.numeric_env import SWITCH
from tests.ml.dvc_repo import PipelineCopy

REPO_ROOT = Path(__file__).resolve().parents[1]

RESULTS = REPO_ROOT / "benchmarks" / "results" / "pipeline.json"

# The same work as prepare+validate+train+evaluate, in one process, nothing in between.
PLAIN_SCRIPT = textwrap.dedent(
    """
    from pathlib import Path
    from ml.contract import check_data, combine_splits, load_contract
    from ml.evaluate import compute_metrics
    from ml.params import load_params
    from ml.prepare import load_source, split_data
    from ml.train import features_and_labels, fit

    params = load_params()
    frame = load_source(params.prepare.source)
    prep = params.prepare
    train, test = split_data(frame, prep.target, prep.test_size, params.base.seed)
    contract = load_contract(Path(params.validate.contract))
    assert not check_data(combine_splits({"train": train, "test": test}), contract)
    x_train, y_train = features_and_labels(train, contract)
    x_test, y_test = features_and_labels(test, contract)
    model = fit(params.train, params.base.seed, x_train, y_train)
    scores = model.predict_proba(x_test)[:, 1]
    print(compute_metrics(y_test, model.predict(x_test), scores, params.evaluate.positive_label))
    """
)

ONE_STAGE = textwrap.dedent(
    """
    stages:
      count:
        cmd: python -c "open('out.txt','w').write(str(len(open('input.txt').read())))"
        deps:
          - input.txt
        outs:
          - out.txt
    """
)


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def train_seconds(pipeline: PipelineCopy, *, pinned: bool, repeat: int) -> tuple[float, float]:
    """Medians of (the train stage's own seconds, from its line; the whole process)."""
    pipeline.ambient = {} if pinned else {SWITCH: "off"}
    own, whole = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        line = pipeline.run(sys.executable, "-m", "ml.train").output
        whole.append(time.perf_counter() - started)
        own.append(float(re.findall(r"\((\d+\.\d+)s\)", line)[-1]))
    pipeline.ambient = {}
    return statistics.median(own), statistics.median(whole)


def one_stage_copy(workdir: Path) -> PipelineCopy:
    root = workdir / "one-stage"
    root.mkdir()
    (root / "dvc.yaml").write_text(ONE_STAGE, encoding="utf-8")
    (root / "input.txt").write_text("hello\n", encoding="utf-8")
    copy = PipelineCopy(root, workdir / "one-stage-cache")
    copy.run("git", "init", "-q")
    copy.dvc("init", "-q")
    copy.dvc("cache", "dir", str(copy.cache))
    copy.dvc("repro")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="liftlock-bench-") as tmp:
        workdir = Path(tmp)
        pipeline = PipelineCopy.create(REPO_ROOT, workdir / "repo", workdir / "cache")
        fresh_started = time.perf_counter()
        pipeline.dvc("repro")
        fresh = time.perf_counter() - fresh_started
        metrics = json.loads((pipeline.root / "eval" / "metrics.json").read_text())

        script = median_seconds(
            lambda: pipeline.run(sys.executable, "-c", PLAIN_SCRIPT), args.repeat
        )
        to_evaluate = median_seconds(
            lambda: pipeline.dvc("repro", "--force", "evaluate"), args.repeat
        )
        full = median_seconds(lambda: pipeline.dvc("repro", "--force"), args.repeat)
        noop = median_seconds(lambda: pipeline.dvc("repro"), args.repeat + 2)
        one = one_stage_copy(workdir)
        noop_one = median_seconds(lambda: one.dvc("repro"), args.repeat + 2)
        # Interleaved rounds so a change of machine load hits both sides alike.
        pinned_rounds, unpinned_rounds = [], []
        for _ in range(args.repeat):
            pinned_rounds.append(train_seconds(pipeline, pinned=True, repeat=1))
            unpinned_rounds.append(train_seconds(pipeline, pinned=False, repeat=1))
        train_pinned = tuple(statistics.median(side) for side in zip(*pinned_rounds, strict=True))
        train_free = tuple(statistics.median(side) for side in zip(*unpinned_rounds, strict=True))

    results = {
        "plain_script_s": round(script, 2),
        "dvc_repro_to_evaluate_s": round(to_evaluate, 2),
        "dvc_repro_full_s": round(full, 2),
        "dvc_repro_first_run_s": round(fresh, 2),
        "ratio_to_evaluate_vs_script": round(to_evaluate / script, 2),
        "ratio_full_vs_script": round(full / script, 2),
        "noop_five_stages_s": round(noop, 2),
        "noop_one_stage_s": round(noop_one, 2),
        "ratio_noop_five_vs_one": round(noop / noop_one, 2),
        "train_stage_pinned_s": round(train_pinned[0], 3),
        "train_stage_unpinned_s": round(train_free[0], 3),
        "ratio_train_stage_pinned_vs_unpinned": round(train_pinned[0] / train_free[0], 2),
        "train_process_pinned_s": round(train_pinned[1], 2),
        "train_process_unpinned_s": round(train_free[1], 2),
        "ratio_train_process_pinned_vs_unpinned": round(train_pinned[1] / train_free[1], 2),
        "metrics": metrics,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(f"plain script (load/validate/fit/evaluate, 1 process): {script:6.2f}s")
    print(
        f"dvc repro --force evaluate (4 stages):              {to_evaluate:6.2f}s  "
        f"ratio {to_evaluate / script:.2f}x"
    )
    print(
        f"dvc repro --force (5 stages, + package/ONNX):       {full:6.2f}s  "
        f"ratio {full / script:.2f}x"
    )
    print(f"first dvc repro (empty cache, 5 stages):            {fresh:6.2f}s")
    print(
        f"no-op dvc repro, 5 stages: {noop:.2f}s vs 1-stage pipeline {noop_one:.2f}s  "
        f"ratio {noop / noop_one:.2f}x"
    )
    print(
        f"train stage, pinned vs unpinned: {train_pinned[0]:.3f}s vs {train_free[0]:.3f}s "
        f"(ratio {train_pinned[0] / train_free[0]:.2f}x); whole process {train_pinned[1]:.2f}s "
        f"vs {train_free[1]:.2f}s (ratio {train_pinned[1] / train_free[1]:.2f}x)"
    )
    print(
        "default model metrics (test split): " + ", ".join(f"{k} {v}" for k, v in metrics.items())
    )
    print(f"-> {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
