"""`liftlock repro-check`: does re-running the pipeline give back the bundle of record?

Two throwaway git worktrees of the commit: one gets the bundle of record from DVC (`dvc pull
bundle` through this checkout's cache and remote: the bundle dvc.lock records), the other re-runs
`dvc repro` from an empty cache, as a new machine would. ml.reproduction then says
bit-identical, equivalent or different, and names the first file that differs and why. The
checkout itself is never touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liftlock.dvc import run_dvc
from liftlock.errors import LiftlockError
from liftlock.git import detached_worktree, git_output
from ml.numeric_env import SWITCH
from ml.reproduction import Reproduction, Verdict

BUNDLE = Path("bundle")
TEST_SPLIT = Path("data/prepared/test.csv")


class NotReproducible(LiftlockError):
    """Re-running the pipeline gave a bundle that is not the one of record."""

    exit_code = 1


@dataclass(frozen=True)
class ReproCheck:
    commit: str
    pinned: bool
    reproduction: Reproduction
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "numeric_pin": "on" if self.pinned else "off",
            "seconds": round(self.seconds, 1),
            **self.reproduction.to_json(),
        }


def stage_environment(base: Mapping[str, str], *, pinned: bool) -> dict[str, str]:
    """The environment `dvc repro` runs in: this venv's python first (stage commands say
    `python`), and the numeric pin switched off only when asked."""
    env = dict(base)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop(SWITCH, None)
    if not pinned:
        env[SWITCH] = "off"
    return env


def repro_check(
    root: Path,
    *,
    rev: str = "HEAD",
    pinned: bool = True,
    base_env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> ReproCheck:
    """Re-run the pipeline of `rev` from an empty cache; compare with its bundle of record."""
    from ml.reproduction import compare_bundles

    started = time.perf_counter()
    commit = git_output(root, "rev-parse", "--verify", f"{rev}^{{commit}}")
    env = stage_environment(os.environ if base_env is None else base_env, pinned=pinned)
    shared_cache = run_dvc(["cache", "dir"], root, env).strip() or str(root / ".dvc" / "cache")
    with tempfile.TemporaryDirectory(prefix="liftlock-repro-") as scratch:
        work = Path(scratch)
        with (
            detached_worktree(root, work / "record", commit) as record,
            detached_worktree(root, work / "rerun", commit) as rerun,
        ):
            log(f"[repro-check] bundle of record of {commit[:12]}: dvc pull {BUNDLE} ...")
            run_dvc(["cache", "dir", "--local", shared_cache], record, env)
            run_dvc(["pull", "--quiet", str(BUNDLE)], record, env)
            log(
                f"[repro-check] dvc repro from an empty cache (numeric pin "
                f"{'on' if pinned else 'off'}) ..."
            )
            run_dvc(["cache", "dir", "--local", str(work / "empty-cache")], rerun, env)
            repro_started = time.perf_counter()
            run_dvc(["repro", "--quiet"], rerun, env)
            log(f"[repro-check] reproduced in {time.perf_counter() - repro_started:.1f}s")
            features = _test_features(rerun, record / BUNDLE)
            reproduction = compare_bundles(record / BUNDLE, rerun / BUNDLE, features)
    return ReproCheck(commit, pinned, reproduction, time.perf_counter() - started)


def require_reproducible(check: ReproCheck, *, strict: bool) -> None:
    """NotReproducible for `different` (and, with `strict`, for `equivalent` too)."""
    verdict = check.reproduction.verdict
    if verdict is Verdict.DIFFERENT or (strict and verdict is Verdict.EQUIVALENT):
        raise NotReproducible(
            f"commit {check.commit[:12]}: {check.reproduction.summary()}",
            hint="run `dvc repro` on this machine and compare bundle.json's numeric_env with "
            "the bundle of record's; see README, 'Reproducible on every machine'",
        )


def _test_features(tree: Path, bundle: Path) -> Any:
    from ml.bundle import read_manifest
    from ml.dataset import read_split

    features = read_manifest(bundle)["features"]
    return read_split(tree / TEST_SPLIT)[features].astype("float64").to_numpy()
