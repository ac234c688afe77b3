"""A throwaway git repository made from the project, with its own file:// backend.

`git clone` of the checkout's HEAD into a temp folder, the engine linked into its `.tools/bin`
(hard links, so the engine finds its bundled plugins beside itself), the venv linked, the DVC
outputs restored or reproduced with the clone's own cache. Commands run with `run()` under the
engine environment of the clone (its backend, the embedded default passphrase, PYTHONPATH = the
clone, so the clone's code runs, not the checkout's).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from liftlock.engine.env import EMBEDDED_DEFAULT_PASSPHRASE, TOOLS_BIN, engine_environment
from tests.helpers.stacks import without_apply_to

FAKE_IMAGE = "ghcr.io/liftlock/model@sha256:" + "ab" * 32  # an allowed registry


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# A passing record of `stack`'s new pins, signed as `liftlock promote` signs (this machine's key,
# enrolled as the embedded default's demo does when the stack lists other signers).
SIGN_RECORD = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from liftlock.records import enroll_signer, record_path, signing_identity, write_signed_record
from policies.promotion import RECORD_KIND
root, (stack, digest, image) = Path.cwd(), sys.argv[1:4]
enroll_signer(root, stack, log=lambda _line: None)
now = datetime.now(UTC)
data = {"kind": RECORD_KIND, "from": "test", "to": stack, "bundleDigest": digest,
        "image": image, "passed": True, "signer": signing_identity(root),
        "time": now.isoformat(timespec="microseconds")}
write_signed_record(root, record_path(root, stack, digest, now), data, log=lambda _line: None)
"""


class CommandFailed(AssertionError):
    pass


@dataclass
class ProjectClone:
    root: Path
    backend: Path
    source: Path

    @classmethod
    def make(cls, source: Path, workdir: Path) -> ProjectClone:
        root = workdir / "repo"
        subprocess.run(["git", "clone", "--quiet", str(source), str(root)], check=True)
        for key, value in (("user.name", "liftlock-tests"), ("user.email", "tests@liftlock")):
            subprocess.run(["git", "config", key, value], cwd=root, check=True)
        (root / ".venv").symlink_to(source / ".venv")
        # `.venv/` in .gitignore matches folders only; the link is the clone's own business.
        with (root / ".git" / "info" / "exclude").open("a", encoding="utf-8") as handle:
            handle.write("/.venv\n")
        tools = root / TOOLS_BIN
        tools.mkdir(parents=True)
        for entry in (source / TOOLS_BIN).iterdir():
            target = tools / entry.name
            if entry.is_symlink():
                target.symlink_to(os.readlink(entry))
            else:
                try:
                    os.link(entry, target)
                except OSError:
                    shutil.copy2(entry, target)
        backend = workdir / "backend"
        backend.mkdir()
        clone = cls(root=root, backend=backend, source=source)
        without_apply_to(root)
        clone.commit_all("test: staging renders only (no cluster)")
        return clone

    def env(self) -> dict[str, str]:
        env = engine_environment(self.root, os.environ, backend_dir=self.backend)
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        # The stack files carry the salts of the embedded default passphrase.
        env["PULUMI_CONFIG_PASSPHRASE"] = EMBEDDED_DEFAULT_PASSPHRASE
        env["PYTHONPATH"] = str(self.root)
        env["LIFTLOCK_ROOT"] = str(self.root)
        return env

    def run(self, *command: str, check: bool = True, timeout: float = 900) -> str:
        result = subprocess.run(
            list(command),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise CommandFailed(
                f"`{' '.join(command)}` exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
            )
        return result.stdout

    def python(self, *args: str, **kw: object) -> str:
        return self.run(str(self.source / ".venv" / "bin" / "python"), *args, **kw)  # type: ignore[arg-type]

    def liftlock(self, *args: str, **kw: object) -> str:
        return self.python("-m", "liftlock.cli", *args, **kw)

    def dvc(self, *args: str, **kw: object) -> str:
        return self.run(str(self.source / ".venv" / "bin" / "dvc"), *args, **kw)  # type: ignore[arg-type]

    def pulumi(self, *args: str, **kw: object) -> str:
        return self.run(str(self.root / TOOLS_BIN / "pulumi"), *args, "--non-interactive", **kw)  # type: ignore[arg-type]

    def git(self, *args: str) -> str:
        return self.run("git", *args)

    def commit_all(self, message: str) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def bundle_digest(self) -> str:
        return self.python(
            "-c",
            "from pathlib import Path; from ml.bundle import verify_bundle;"
            "print(verify_bundle(Path('bundle')))",
        ).strip()

    def pin(self, stack: str, digest: str, image: str = FAKE_IMAGE) -> None:
        """What `liftlock promote` writes (bundleDigest, image, a signed record), without its
        gate: the program refuses mandatory pins no valid record backs, as it should."""
        self.python(
            "-c",
            "import sys; from pathlib import Path; from liftlock.stackfile import set_stack_values;"
            "set_stack_values(Path(sys.argv[1]), "
            "{'bundleDigest': sys.argv[2], 'image': sys.argv[3]})",
            f"stacks/Pulumi.{stack}.yaml",
            digest,
            image,
        )
        self.python("-c", SIGN_RECORD, stack, digest, image)

    def set_config_number(self, stack: str, key: str, value: int) -> None:
        """Rewrite `liftlock:<key>: N` (quoted or not) in a stack file, keeping the rest."""
        path = self.root / "stacks" / f"Pulumi.{stack}.yaml"
        text = path.read_text(encoding="utf-8")
        pattern = re.compile(rf'^(\s*liftlock:{key}:\s*)"?\d+"?\s*$', re.MULTILINE)
        new, count = pattern.subn(rf"\g<1>{value}", text)
        assert count == 1, f"liftlock:{key} not found once in {path}"
        path.write_text(new, encoding="utf-8")

    def isolate_docker_stack(self, stack: str, repository: str) -> int:
        """Give a docker-target stack its own image repository (hence container name) and a free
        host port, so it cannot collide with the checkout's own dev container."""
        port = free_port()
        self.set_config_number(stack, "hostPort", port)
        path = self.root / "stacks" / f"Pulumi.{stack}.yaml"
        text = path.read_text(encoding="utf-8")
        new, count = re.subn(
            r"^(\s*liftlock:imageRepository:).*$", rf"\g<1> {repository}", text, flags=re.M
        )
        assert count == 1, f"liftlock:imageRepository not found once in {path}"
        path.write_text(new, encoding="utf-8")
        return port

    def set_param(self, dotted_line: str, new_line: str) -> None:
        path = self.root / "params.yaml"
        text = path.read_text(encoding="utf-8")
        assert text.count(dotted_line) == 1, f"{dotted_line!r} not found once in params.yaml"
        path.write_text(text.replace(dotted_line, new_line), encoding="utf-8")

    def dirty(self) -> list[str]:
        """Changed or untracked paths (the linked .venv and .tools aside)."""
        lines = self.git("status", "--porcelain", "--untracked-files=all").splitlines()
        return [line for line in lines if not line[3:].startswith((".venv", ".tools"))]
