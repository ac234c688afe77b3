"""On the real engine: a pin without a valid signed record is not deployed; a killed update is
recovered; a secret set the issue's way ends up nowhere.

A clone with the real bundle (tests/cli/conftest.py `real_clone`), this venv and the engine linked
in, a throwaway file:// backend. `pulumi` runs as a user would run it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from liftlock.engine.env import EMBEDDED_DEFAULT_PASSPHRASE, engine_environment
from tests.cli.conftest import REPO, git

pytestmark = [pytest.mark.slow, pytest.mark.engine]

Run = Callable[..., tuple[int, str]]
TOKEN = (
    "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zQc"
)  # the shape of a GitHub token: gitleaks knows it


@pytest.fixture
def engine(real_clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The engine environment of the clone (its own backend), as `liftlock env` would export."""
    if not (REPO / ".tools" / "bin" / "pulumi").exists():
        pytest.fail("the engine is not built: make toolchain")
    (real_clone / ".venv").symlink_to(Path(sys.prefix))
    (real_clone / ".tools").symlink_to(REPO / ".tools")
    backend = tmp_path / "backend"
    backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend.as_uri())
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", EMBEDDED_DEFAULT_PASSPHRASE)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    env = engine_environment(real_clone, os.environ)
    for stack in ("staging", "prod"):
        pulumi(real_clone, env, "stack", "init", stack)
    git(real_clone, "checkout", "--", "stacks")  # stack init may requote the stack files
    return env


def pulumi(root: Path, env: dict[str, str], *args: str, check: bool = True) -> tuple[int, str]:
    result = subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = result.stdout + result.stderr
    assert not check or result.returncode == 0, out
    return result.returncode, out


def _image(root: Path, stack: str) -> str:
    text = (root / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    found = re.search(r"liftlock:image: (\S+)", text)
    assert found
    return found.group(1)


def _promote(root: Path, run: Run, *stacks: str) -> None:
    for stack in stacks:
        code, out = run(
            "promote", "workspace", stack, "--no-preview", "--image", _image(root, stack)
        )
        assert code == 0 or "already promoted" in out, out


def _our_providers(backend_url: str) -> list[int]:
    """pulumi plugin processes started for this test's backend (their environment says so)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"pulumi-" in cmdline and backend_url.encode() in environ:
            found.append(int(proc.name))
    return found


def test_a_hand_edited_pin_is_not_deployed(
    real_clone: Path, engine: dict[str, str], run: Run
) -> None:
    # Without a record, the committed pins are not deployed to the mandatory stacks.
    code, out = pulumi(real_clone, engine, "up", "--yes", "--stack", "prod", check=False)
    assert code != 0 and "refusing to deploy prod: [promotion-recorded] unrecorded" in out, out
    assert "liftlock promote <from> prod" in out and "Traceback" not in out

    _promote(real_clone, run, "prod")
    pulumi(real_clone, engine, "up", "--yes", "--stack", "prod")

    # Another bundle in bundle/ (its model card edited), pinned in prod by hand.
    bundle = real_clone / "bundle"
    card = json.loads((bundle / "model_card.json").read_text())
    card["intended_use"] = card["intended_use"] + " (edited)"
    (bundle / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    from ml.bundle import manifest_digest, sha256_file

    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["files"]["model_card.json"] = sha256_file(bundle / "model_card.json")
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    other = manifest_digest(manifest)
    path = real_clone / "stacks" / "Pulumi.prod.yaml"
    path.write_text(
        re.sub(r"liftlock:bundleDigest: .*", f"liftlock:bundleDigest: {other}", path.read_text())
    )

    code, out = pulumi(real_clone, engine, "up", "--yes", "--stack", "prod", check=False)
    assert code != 0 and "refusing to deploy prod" in out and other in out, out
    code, out = pulumi(
        real_clone, engine, "preview", "--stack", "prod", "--policy-pack", "policies", check=False
    )
    assert code != 0 and "[promotion-recorded] unrecorded" in out and other in out, out
    assert "Traceback" not in out
    code, out = pulumi(real_clone, engine, "preview", "--stack", "staging", check=False)
    assert code != 0 and "refusing to deploy staging" in out  # never promoted here
    code, out = run("gate", "prod")
    assert code == 1 and other in out.replace("\n", ""), out
    code, out = run("status")
    assert "unrecorded" in next(x for x in out.splitlines() if x.startswith("│ prod")), out


def _kill_mid_update(root: Path, engine: dict[str, str], backend: Path) -> bool:
    """Start `pulumi up`, SIGKILL it once its providers run; True if it died holding the lock."""
    update = subprocess.Popen(
        ["pulumi", "up", "--yes", "--stack", "staging", "--non-interactive"],
        cwd=root,
        env=engine,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    locks = backend / ".pulumi" / "locks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and update.poll() is None:
        if any(locks.rglob("staging/*.json")) and _our_providers(engine["PULUMI_BACKEND_URL"]):
            break
        time.sleep(0.05)
    update.send_signal(signal.SIGKILL)
    update.wait()
    return any(locks.rglob("staging/*.json"))


def test_kill_9_of_pulumi_up_then_recover(
    real_clone: Path, engine: dict[str, str], run: Run
) -> None:
    _promote(real_clone, run, "staging")
    pulumi(real_clone, engine, "up", "--yes", "--stack", "staging")
    path = real_clone / "stacks" / "Pulumi.staging.yaml"
    path.write_text(path.read_text().replace("liftlock:replicas: 2", "liftlock:replicas: 3"))
    backend = Path(engine["PULUMI_BACKEND_URL"].removeprefix("file://"))
    assert any(_kill_mid_update(real_clone, engine, backend) for _ in range(3))

    started = time.monotonic()
    while _our_providers(engine["PULUMI_BACKEND_URL"]) and time.monotonic() - started < 10:
        time.sleep(0.2)
    assert _our_providers(engine["PULUMI_BACKEND_URL"]) == [], "plugins outlived the engine"
    assert time.monotonic() - started < 10
    code, out = pulumi(real_clone, engine, "up", "--yes", "--stack", "staging", check=False)
    assert code != 0 and "currently locked" in out, out

    code, out = run("recover", "staging")
    assert code == 0, out
    assert "1 stale lock(s) in the backend" in out and "cleared 1 stale lock(s)" in out, out
    assert "recovered staging: found pid" in out
    pulumi(real_clone, engine, "up", "--yes", "--stack", "staging")
    pulumi(real_clone, engine, "preview", "--stack", "staging", "--expect-no-changes")
    assert _our_providers(engine["PULUMI_BACKEND_URL"]) == []


def test_recover_refuses_while_an_update_runs(
    real_clone: Path, engine: dict[str, str], run: Run
) -> None:
    backend = Path(engine["PULUMI_BACKEND_URL"].removeprefix("file://"))
    folder = backend / ".pulumi" / "locks" / "organization" / "liftlock" / "staging"
    folder.mkdir(parents=True, exist_ok=True)
    # A live process whose command line names pulumi stands in for a running update.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "pulumi"])
    try:
        lock = {"pid": stand_in.pid, "username": "root", "hostname": os.uname().nodename,
                "timestamp": "2026-12-01T00:00:00Z"}  # fmt: skip
        (folder / "live.json").write_text(json.dumps(lock))
        code, out = run("recover", "staging")
        assert code == 2 and "may still be running" in out and f"pid {stand_in.pid}" in out, out
        assert (folder / "live.json").is_file()  # nothing was changed
    finally:
        stand_in.kill()
        stand_in.wait()
    code, out = run("recover", "staging")  # now it is stale
    assert code == 0 and "cleared 1 stale lock(s)" in out, out


def test_a_secret_set_the_issues_way_leaks_nowhere(
    real_clone: Path, engine: dict[str, str], run: Run, tmp_path: Path
) -> None:
    url = f"https://bot:{TOKEN}@github.com/liftlock/liftlock.git"
    key = "liftlock:gitops.repoUrl"
    pulumi(
        real_clone, engine, "config", "set", "--secret", "--path", key, url, "--stack", "staging"
    )
    stack_file = (real_clone / "stacks" / "Pulumi.staging.yaml").read_text()
    assert TOKEN not in stack_file and "secure:" in stack_file
    _promote(real_clone, run, "prod")
    outputs = []
    code, out = pulumi(real_clone, engine, "up", "--yes", "--stack", "staging", check=False)
    outputs.append(out)
    assert code != 0 and "liftlock:gitops is set as a secret, but it is not a secret key" in out
    code, out = pulumi(real_clone, engine, "preview", "--stack", "staging", check=False)
    outputs.append(out)
    code, out = run("promote", "workspace", "staging", "--no-preview", "--dry-run",
                    "--image", _image(real_clone, "staging"))  # fmt: skip
    outputs.append(out)
    assert code == 2 and "liftlock:gitops is set as a secret" in out, out
    pulumi(real_clone, engine, "up", "--yes", "--stack", "prod")
    exports = tmp_path / "scan" / "exports"
    exports.mkdir(parents=True)
    for stack in ("staging", "prod"):
        code, out = pulumi(real_clone, engine, "stack", "export", "--stack", stack)
        (exports / f"{stack}.json").write_text(out)
    (tmp_path / "scan" / "outputs.txt").write_text("\n".join(outputs))
    backend = Path(engine["PULUMI_BACKEND_URL"].removeprefix("file://"))
    history = git(real_clone, "log", "-p", "--all")
    for where, text in (
        ("outputs", "\n".join(outputs)),
        ("git", history),
        *((str(p), p.read_text(errors="replace")) for p in backend.rglob("*") if p.is_file()),
        *((str(p), p.read_text()) for p in (real_clone / "deploy").rglob("*") if p.is_file()),
        *((str(p), p.read_text()) for p in exports.iterdir()),
    ):
        assert TOKEN not in text, f"the token leaked into {where}"
    gitleaks = REPO / ".tools" / "bin" / "gitleaks"
    for target in (tmp_path / "scan", backend, real_clone / "deploy"):
        result = subprocess.run(
            [str(gitleaks), "dir", str(target), "-c", str(REPO / "policies" / "gitleaks.toml"),
             "--no-banner", "--redact"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (
            f"gitleaks found leaks in {target}:\n{result.stdout}{result.stderr}"
        )
