"""The tiny shared entry point of every stage: time it, print what it did, map MLError to an exit.

A stage's `main()` is `run_stage("train", train_from_params)`; the stage function returns a
one-line summary. The line ends with a warning when the stage could not run under the pinned
numeric environment (ml/numeric_env.py), since its outputs are then not portable.

An MLError prints its message (and fix) on stderr and exits with the error's
`exit_code` — no traceback, since the message already names the file, key or column.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ml.errors import MLError
from ml.numeric_env import stage_note


def run_stage(name: str, stage: Callable[[], str]) -> None:
    started = time.perf_counter()
    try:
        summary = stage()
    except MLError as error:
        elapsed = time.perf_counter() - started
        print(f"[{name}] FAILED after {elapsed:.2f}s: {error}", file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None
    elapsed = time.perf_counter() - started
    print(f"[{name}] {summary} ({elapsed:.2f}s){stage_note()}", flush=True)
