"""A throwaway copy of the pipeline (git + DVC, its own cache) to run real `dvc repro` in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ml.numeric_env import FOREIGN_PREFIXES, SWITCH

# What `dvc repro` needs from the checkout; dvc.lock is left out so the copy starts fresh.
PIPELINE_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    "data/raw/README.md",
    "policies/schemas/model_card.schema.json",
)
STAGES = ("prepare", "validate", "train", "evaluate", "package")


@dataclass
class DvcRun:
    returncode: int
    output: str

    @property
    def stages_run(self) -> list[str]:
        return [stage for stage in STAGES if f"Running stage '{stage}'" in self.output]


class PipelineCopy:
    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.cache = cache
        # Numeric settings the machine would set for itself (OPENBLAS_CORETYPE, ...): the
        # caller's own are dropped first, so a test states every one it runs under.
        self.ambient: dict[str, str] = {}

    @classmethod
    def create(cls, source: Path, root: Path, cache: Path) -> PipelineCopy:
        root.mkdir(parents=True)
        for name in PIPELINE_FILES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, root / name)
        shutil.copytree(
            source / "ml",
            root / "ml",
            ignore=shutil.ignore_patterns("__pycache__", "serve", "drift.py"),
        )
        copy = cls(root, cache)
        copy.run("git", "init", "-q")
        copy.dvc("init", "-q")
        # The committed config (default remote in the user's cache); machine-specific settings
        # go to .dvc/config.local, as the README tells users to do.
        shutil.copyfile(source / ".dvc" / "config", root / ".dvc" / "config")
        copy.dvc("cache", "dir", "--local", str(cache))
        return copy

    def commit_all(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run(
            "git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message
        )

    def clone(self, root: Path, cache: Path) -> PipelineCopy:
        """A fresh `git clone` of this copy with its own empty DVC cache (nothing to pull)."""
        self.run("git", "clone", "-q", str(self.root), str(root))
        clone = PipelineCopy(root, cache)
        clone.dvc("cache", "dir", "--local", str(cache))
        return clone

    def git_changes(self) -> str:
        return self.run("git", "status", "--porcelain").output.strip()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Stage commands say `python`: make it this interpreter (the venv's).
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["DVC_NO_ANALYTICS"] = "1"
        env.pop("PYTHONPATH", None)
        for key in [key for key in env if key.startswith(FOREIGN_PREFIXES) or key == SWITCH]:
            del env[key]
        env.update(self.ambient)
        return env

    def run(self, *command: str, check: bool = True) -> DvcRun:
        result = subprocess.run(
            command,
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        run = DvcRun(result.returncode, result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{run.output}")
        return run

    def dvc(self, *args: str, check: bool = True) -> DvcRun:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def set_param(self, dotted: str, value: object) -> None:
        path = self.root / "params.yaml"
        with path.open(encoding="utf-8") as handle:
            params = yaml.safe_load(handle)
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
        with path.open("w", encoding="utf-8") as handle:
            yaml.safe_dump(params, handle, sort_keys=False)
