"""What is deployed is what was judged: signed records, pinned digests, hand edits refused.

On a throwaway clone with its own DVC cache/remote and signing key (tests/cli/conftest.py); the
gate fetches every bundle it judges through real DVC and verifies records with real ssh-keygen.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policies.promotion import check_pinned, latest_valid_record, record_paths
from tests.cli.conftest import replace_bundle, sign_verification, stack_values
from tests.policies.bundles import POOR_METRICS

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64

pytestmark = pytest.mark.slow  # real dvc and ssh-keygen: ~10-40 s each


def _digest(root: Path) -> str:
    from ml.bundle import bundle_digest

    return bundle_digest(root / "bundle")


def _pin(root: Path, stack: str, digest: str) -> None:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    text = re.sub(
        r"liftlock:bundleDigest: .*", f"liftlock:bundleDigest: {digest}", path.read_text()
    )
    path.write_text(text)


def _promote_to_prod(root: Path, run: Run) -> str:
    for args in (
        ("workspace", "dev"),
        ("dev", "staging", "--image", IMAGE),
        ("staging", "prod"),
    ):
        if args[0] == "staging":  # staging goes on only verified and soaked (gates.yaml)
            sign_verification(root, "staging", when=datetime.now(UTC) - timedelta(minutes=5))
        code, out = run("promote", *args, "--no-preview")
        assert code == 0, out
    return _digest(root)


def test_hand_edited_prod_digest_is_refused_and_flagged(clone: Path, run: Run) -> None:
    good = _promote_to_prod(clone, run)
    code, out = run("status", "--no-engine")
    assert code == 0 and out.count("│ recorded") == 3, out

    # A bad bundle, promoted to dev (advisory: it passes with warnings), then pinned in prod by
    # hand, with the good bundle back in bundle/ (as `dvc pull` in CI would leave it).
    replace_bundle(clone, POOR_METRICS, tag="poor")
    bad = _digest(clone)
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    replace_bundle(clone, json.loads((clone / "bundle" / "metrics.json").read_text()), tag="poor")
    _pin(clone, "prod", bad)
    shutil.rmtree(clone / "bundle")
    from tests.policies.bundles import make_bundle

    make_bundle(clone / "bundle")
    assert _digest(clone) == good

    code, out = run("gate", "prod", "--no-preview")
    assert code == 1, out
    assert bad in out  # the judged (pinned) digest, not the good one in bundle/
    assert "promotion-recorded" in out and "metrics-thresholds" in out
    assert f"prod pins bundle {bad}" in out.replace("\n", " ") or "unrecorded" in out

    code, out = run("status", "--no-engine")
    assert code == 0
    prod = next(line for line in out.splitlines() if line.startswith("│ prod"))
    assert "unrecorded" in prod, out
    assert f"prod pins bundle {bad}" in out and "liftlock promote <from> prod" in out


def test_record_copied_with_its_digest_edited_is_invalid(clone: Path, run: Run) -> None:
    _promote_to_prod(clone, run)
    record = latest_valid_record(clone, "prod")
    assert record is not None
    forged_digest = "sha256:" + "e" * 64
    data = json.loads(record.path.read_text())
    data["bundleDigest"] = forged_digest
    copy = record.path.with_name("29990101T000000Z-eeeeeeeeeeee.json")
    copy.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(record.signature_path, copy.with_name(copy.name + ".sig"))
    _pin(clone, "prod", forged_digest)

    check = check_pinned(clone, "prod", forged_digest, IMAGE)
    assert check.status == "record invalid", check
    assert "signature does not verify" in check.message and copy.name in check.message
    code, out = run("status", "--no-engine")
    assert "record invalid" in next(x for x in out.splitlines() if x.startswith("│ prod"))
    code, out = run("gate", "prod", "--no-preview")
    assert code == 1 and forged_digest in out.replace("\n", "")


def test_a_pin_no_record_names_fails_naming_digest_and_fix(clone: Path, run: Run) -> None:
    unknown = "sha256:" + "f" * 64
    _pin(clone, "prod", unknown)
    code, out = run("gate", "prod", "--no-preview")
    assert code == 1
    assert f"prod pins bundle {unknown}" in out and "liftlock promote <from> prod" in out
    assert "Traceback" not in out


def test_signature_of_an_edited_record_fails(clone: Path, run: Run) -> None:
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    (path,) = record_paths(clone, "dev")
    assert check_pinned(clone, "dev", _digest(clone), None).ok
    data = json.loads(path.read_text())
    data["metrics"]["accuracy"] = 0.999  # anything: the signature covers every byte
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    check = check_pinned(clone, "dev", _digest(clone), None)
    assert check.status == "record invalid" and "signature does not verify" in check.message


def test_an_unlisted_key_may_not_promote(clone: Path, run: Run, tmp_path: Path) -> None:
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    assert (clone / "policies" / "allowed_signers" / "dev").is_file()
    os.environ["LIFTLOCK_SIGNING_KEY"] = str(tmp_path / "other" / "key")
    replace_bundle(clone, POOR_METRICS, tag="other")
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 2, out
    assert "policies/allowed_signers/dev: your signing key" in out
    assert 'namespaces="liftlock-promotion" ssh-ed25519 ' in out  # the line to add
    assert len(record_paths(clone, "dev")) == 1


def test_same_promotion_twice_writes_one_record(clone: Path, run: Run) -> None:
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0 and "already promoted, nothing written" in out, out
    assert len(record_paths(clone, "dev")) == 1


def test_concurrent_promotions_write_one_record(clone: Path) -> None:
    command = [sys.executable, "-m", "liftlock.cli", "promote", "workspace", "dev", "--no-preview"]
    env = dict(os.environ)
    first, second = (
        subprocess.Popen(
            command, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    )
    outputs = [p.communicate(timeout=300)[0].decode() for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes in ([0, 0], [0, 2]), outputs
    assert len(record_paths(clone, "dev")) == 1, outputs
    joined = "\n".join(outputs)
    assert "Traceback" not in joined
    if codes == [0, 2]:
        assert "another `liftlock promote` into dev is running" in joined
    assert stack_values(clone, "dev")["liftlock:bundleDigest"] == _digest(clone)


def test_the_demo_enrolls_a_new_machines_key_visibly(clone: Path, tmp_path: Path) -> None:
    """A new machine has a new key: the embedded default's demo lists it as a signer (a change
    to the reviewed file), where a real promotion would be refused."""
    from liftlock.records import enroll_signer, signers_file

    signers = signers_file(clone, "staging")
    signers.parent.mkdir(parents=True, exist_ok=True)
    signers.write_text('teammate@example.com namespaces="liftlock-promotion" ssh-ed25519 AAAA\n')
    os.environ["LIFTLOCK_SIGNING_KEY"] = str(tmp_path / "new-machine" / "key")
    lines: list[str] = []
    assert enroll_signer(clone, "staging", log=lines.append) == signers
    text = signers.read_text()
    assert text.startswith("teammate@example.com") and "added by `liftlock demo`" in text
    assert any("trusting this machine's promotion key for staging" in line for line in lines)
    assert enroll_signer(clone, "staging", log=lines.append) is None  # listed now: no change
    assert signers.read_text() == text
