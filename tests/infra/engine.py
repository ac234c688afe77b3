"""Run the real `pulumi` on a throwaway copy of the project with a throwaway file:// backend.

The copy holds Pulumi.yaml, infra/, stacks/ and a bundle (and, for the docker target, what the
image build reads), so renders and stack-file edits never touch the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from liftlock.engine.env import engine_environment
from tests.helpers.stacks import without_apply_to

PULUMI_TIMEOUT_SECONDS = 600
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


class PulumiFailed(AssertionError):
    pass


@dataclass
class PulumiProject:
    root: Path
    backend: Path
    repo_root: Path

    @classmethod
    def copy_of(
        cls, repo_root: Path, workdir: Path, *, extra: tuple[str, ...] = ()
    ) -> PulumiProject:
        """Copy the program and stacks (and `extra` paths) of `repo_root` into `workdir`/project."""
        root = workdir / "project"
        root.mkdir(parents=True)
        shutil.copy2(repo_root / "Pulumi.yaml", root / "Pulumi.yaml")
        # policies/: the program checks each mandatory stack's pins against policies/gates.yaml
        # and its signed promotion records before it declares anything.
        for folder in ("infra", "stacks", "policies", *extra):
            source = repo_root / folder
            if source.is_dir():
                shutil.copytree(source, root / folder, ignore=IGNORE, symlinks=True)
            elif source.is_file():
                (root / folder).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / folder)
        # A fresh trust root: record_pins() signs with this project's own key, the first signer
        # of each stack (the committed signers are the maintainers' keys; records stay behind).
        shutil.rmtree(root / "policies" / "allowed_signers", ignore_errors=True)
        without_apply_to(root)
        # Pulumi.yaml names the virtualenv `.venv` relative to the project.
        (root / ".venv").symlink_to(repo_root / ".venv")
        backend = workdir / "backend"
        backend.mkdir()
        return cls(root=root, backend=backend, repo_root=repo_root)

    def environment(self) -> dict[str, str]:
        env = engine_environment(self.repo_root, backend_dir=self.backend)
        env["LIFTLOCK_ROOT"] = str(self.root)
        env.pop("PULUMI_CONFIG", None)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = PULUMI_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.repo_root / ".tools" / "bin" / "pulumi"), *args, "--non-interactive"],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PulumiFailed(
                f"pulumi {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
            )
        return result

    # --- stacks -------------------------------------------------------------------------------

    def stack_file(self, stack: str) -> Path:
        return self.root / "stacks" / f"Pulumi.{stack}.yaml"

    def write_stack_values(self, stack: str, values: dict[str, Any]) -> None:
        """Replace the `liftlock:` values of a stack file (keeping its encryption salt)."""
        path = self.stack_file(stack)
        document: dict[str, Any] = {}
        if path.is_file():
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        config = {k: v for k, v in (document.get("config") or {}).items() if ":" in k}
        config = {k: v for k, v in config.items() if not k.startswith("liftlock:")}
        config.update({f"liftlock:{key}": value for key, value in values.items()})
        document["config"] = config
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    def init(self, stack: str) -> None:
        self.run("stack", "init", stack)

    def record_pins(self, stack: str) -> None:
        """Sign a promotion record for what the stack file pins now, unless one exists.

        `pulumi up` of a mandatory stack refuses pins without a valid signed record; these tests
        are about what the program declares, not about the gate (tests/cli covers that), so the
        record is written directly, signed with a key of this project's own.
        """
        from datetime import UTC, datetime

        from liftlock.errors import ConfigError
        from liftlock.records import record_path, write_signed_record
        from liftlock.stackfile import read_stack_values
        from policies.promotion import RECORD_KIND, check_pinned

        try:
            values = read_stack_values(self.stack_file(stack))
        except ConfigError:
            return  # a broken stack file is what such a test is about: the program says so
        digest, image = values.get("bundleDigest"), values.get("image")
        if not digest or check_pinned(self.root, stack, digest, image).ok:
            return
        now = datetime.now(UTC)
        data = {
            "kind": RECORD_KIND, "from": "test", "to": stack, "bundleDigest": digest,
            "image": image, "passed": True, "signer": "infra-tests@liftlock.local",
            "time": now.isoformat(timespec="microseconds"),
        }  # fmt: skip
        path = record_path(self.root, stack, digest, now).with_suffix(f".{now.microsecond}.json")
        key = self.backend.parent / "keys" / "promotion_ed25519"
        write_signed_record(self.root, path, data, log=lambda _line: None, key=key)

    def up(self, stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
        self.record_pins(stack)
        return self.run("up", "--stack", stack, "--yes", "--skip-preview", *extra)

    def preview(
        self, stack: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        self.record_pins(stack)
        return self.run("preview", "--stack", stack, *extra, check=check)

    def destroy(self, stack: str) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--stack", stack, "--yes", "--skip-preview")

    def outputs(self, stack: str) -> dict[str, Any]:
        result = self.run("stack", "output", "--stack", stack, "--json")
        return dict(json.loads(result.stdout))

    def preview_steps(self, stack: str) -> list[dict[str, Any]]:
        """The steps of `pulumi preview --json` that change something (op other than same)."""
        self.record_pins(stack)
        result = self.run("preview", "--stack", stack, "--json")
        steps = json.loads(result.stdout).get("steps", [])
        return [step for step in steps if step.get("op") != "same"]


def rendered_manifests(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every object in the YAML files under `directory`."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(directory.rglob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            found.extend((path, doc) for doc in yaml.safe_load_all(handle) if doc)
    return found
