"""Signed verifications and what `liftlock promote` makes of them: a source stack whose gates
require verification goes on only when what it runs verified and soaked; a forged verification
is refused naming its file; the champion is the last verified bundle."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from liftlock.promote import promote
from liftlock.records import champion_record
from policies.promotion import check_pinned, latest_valid_record, verification_status
from tests.cli.conftest import edit_gates, git, replace_bundle, sign_verification
from tests.policies.bundles import GOOD_METRICS

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64
AGO = timedelta(minutes=5)


def _to_staging(root: Path, run: Run) -> Path:
    """workspace -> dev -> staging; returns staging's record."""
    for args in (("workspace", "dev"), ("dev", "staging", "--image", IMAGE)):
        code, out = run("promote", *args, "--no-preview")
        assert code == 0, out
    record = latest_valid_record(root, "staging")
    assert record is not None
    return record.path


def _unchanged(root: Path) -> bool:
    prod = ("stacks/Pulumi.prod.yaml", "promotions/prod")
    return not git(root, "status", "--porcelain", "--", *prod)


def test_an_unverified_source_is_refused_naming_its_record(clone: Path, run: Run) -> None:
    record = _to_staging(clone, run)
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 1
    assert "promotion staging -> prod refused, no file changed" in out
    assert f"promotions/staging/{record.name} was never verified" in out
    assert "stacks.staging.thresholds.verify.required" in out and "liftlock verify staging" in out
    assert _unchanged(clone)


def test_a_failed_verification_is_refused_naming_the_check(clone: Path, run: Run) -> None:
    record = _to_staging(clone, run)
    sign_verification(clone, "staging", failed=("predictions",), when=datetime.now(UTC) - AGO)
    code, out = run("promote", "staging", "prod", "--no-preview", "--dry-run")
    assert code == 1
    assert f"promotions/staging/{record.name} failed verification" in out
    assert "check(s) failed: predictions" in out
    assert _unchanged(clone)
    code, out = run("status", "--no-engine")
    assert code == 0, out
    assert f"staging: promotions/staging/{record.name} failed verification" in out


def test_the_minimum_soak_holds_then_passes(clone: Path, run: Run) -> None:
    _to_staging(clone, run)
    verified = datetime.now(UTC) - timedelta(seconds=10)
    sign_verification(clone, "staging", when=verified)
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 1
    assert "needs 60s of soak first (policies/gates.yaml stacks.staging.thresholds.verify." in out
    assert "minSoakSeconds)" in out and _unchanged(clone)
    # A minute later the same promotion goes through.
    later = promote(clone, "staging", "prod", preview=False, now=verified + timedelta(seconds=61))
    assert later.report.passed and later.record is not None


def test_a_pass_after_a_failure_counts_the_soak_from_the_pass(clone: Path, run: Run) -> None:
    record = _to_staging(clone, run)
    now = datetime.now(UTC)
    sign_verification(clone, "staging", failed=("error-rate",), when=now - timedelta(hours=2))
    sign_verification(clone, "staging", when=now - timedelta(seconds=30))
    sign_verification(clone, "staging", when=now - timedelta(seconds=20))
    pinned = check_pinned(clone, "staging", *_pins(clone, "staging"))
    assert pinned.record is not None and pinned.record.path == record
    status = verification_status(clone, "staging", pinned.record)
    assert status.ok and status.verified_since is not None
    assert status.verified_since == (now - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out = run("promote", "staging", "prod", "--no-preview")
    soaked = re.search(r"verified at \S+, (\d+)s ago", out)
    assert code == 1 and soaked, out
    assert 30 <= int(soaked.group(1)) < 300  # not two hours: the failure broke the run


def test_a_hand_edited_verification_is_refused(clone: Path, run: Run) -> None:
    _to_staging(clone, run)
    when = datetime.now(UTC) - AGO
    path = sign_verification(clone, "staging", failed=("predictions",), when=when)
    data = json.loads(path.read_text())
    data["passed"], data["failed"] = True, []
    for check in data["checks"]:
        check["verdict"] = "pass"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 1
    assert f"promotions/staging/verifications/{path.name}: signature does not verify" in out
    assert _unchanged(clone)


def test_a_verification_copied_to_another_record_is_refused(clone: Path, run: Run) -> None:
    first = _to_staging(clone, run)
    verified = sign_verification(clone, "staging", when=datetime.now(UTC) - AGO)
    replace_bundle(clone, {**GOOD_METRICS, "accuracy": 0.99}, tag="second")
    for args in (("workspace", "dev"), ("dev", "staging", "--image", IMAGE)):
        code, out = run("promote", *args, "--no-preview")
        assert code == 0, out
    second = latest_valid_record(clone, "staging")
    assert second is not None and second.path != first
    copy = verified.with_name("20990101T000000Z-copied.json")
    data = json.loads(verified.read_text())
    data["record"] = second.path.name
    copy.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    shutil.copy(verified.with_name(verified.name + ".sig"), copy.with_name(copy.name + ".sig"))
    status = verification_status(clone, "staging", second)
    assert status.state == "verification invalid"
    assert "recordSha256 differs" in status.message and copy.name in status.message


def test_the_champion_is_the_last_verified_bundle(clone: Path, run: Run) -> None:
    first = _to_staging(clone, run)
    sign_verification(clone, "staging", when=datetime.now(UTC) - AGO)
    replace_bundle(clone, {**GOOD_METRICS, "accuracy": 0.99}, tag="second")
    for args in (("workspace", "dev"), ("dev", "staging", "--image", IMAGE)):
        code, out = run("promote", *args, "--no-preview")
        assert code == 0, out
    pinned, _image = _pins(clone, "staging")
    assert pinned is not None
    # The new pin has not verified: the champion stays the verified one...
    assert champion_record(clone, "staging", pinned).path == first  # type: ignore[union-attr]
    # ... and still after the new one failed verification.
    sign_verification(clone, "staging", failed=("predictions",))
    assert champion_record(clone, "staging", pinned).path == first  # type: ignore[union-attr]
    sign_verification(clone, "staging")
    champion = champion_record(clone, "staging", pinned)
    assert champion is not None and champion.bundle_digest == pinned


def test_a_stack_whose_gates_do_not_require_verification_is_not_held(clone: Path, run: Run) -> None:
    _to_staging(clone, run)
    edit_gates(clone, _verification_not_required)
    code, out = run("promote", "staging", "prod", "--no-preview", "--dry-run")
    assert code == 0, out


def test_verify_without_a_cluster_names_the_key_and_fix(clone: Path, run: Run) -> None:
    _to_staging(clone, run)
    code, out = run("verify", "staging")
    assert code == 2
    assert "stacks/Pulumi.staging.yaml: staging names no cluster to verify on" in out
    assert "liftlock:applyTo" in out and "Traceback" not in out
    code, out = run("verify", "dev")
    assert code == 2 and "names no cluster to verify on (target docker" in out


def test_verify_refuses_a_pin_without_a_record(clone: Path, run: Run) -> None:
    path = clone / "stacks" / "Pulumi.staging.yaml"
    kubeconfig = clone.parent / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    text = path.read_text().replace(
        "  liftlock:namespace:",
        f"  liftlock:applyTo:\n    kubeconfig: {kubeconfig}\n    kubeContext: test\n"
        "  liftlock:namespace:",
    )
    path.write_text(text)
    code, out = run("verify", "staging", "--soak", "0")
    assert code == 2
    assert "nothing verifiable: staging pins bundle" in out and "liftlock promote" in out
    code, out = run("verify", "staging", "--soak", "-1")
    assert code == 2 and "--soak -1: must be 0 or more seconds" in out


def _verification_not_required(gates: dict[str, Any]) -> None:
    gates["stacks"]["staging"]["thresholds"]["verify"]["required"] = False


def _pins(root: Path, stack: str) -> tuple[str | None, str | None]:
    from liftlock.gate import pinned_values

    return pinned_values(root, stack)
