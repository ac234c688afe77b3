"""Signed promotion records: reading them and checking that a stack's pins have one.

A promotion writes `promotions/<stack>/<UTC time>-<digest12>.json` and its SSH signature
`<same name>.json.sig` (`ssh-keygen -Y sign`, namespace `liftlock-promotion`). A record is valid
for a stack only when its signature verifies (`ssh-keygen -Y verify`) against that stack's
allowed-signers file `policies/allowed_signers/<stack>` (a reviewed file, as git's own
`gpg.ssh.allowedSignersFile`), it was written for that stack, and its gate passed. A record
copied from another promotion with its digest edited no longer matches its signature.

The Pulumi program, the CrossGuard pack, `liftlock gate` and `liftlock status` all ask
`check_pinned` the same question: is what this stack pins (bundle digest, image) backed by a valid
signed record of a passing gate? This module runs no liftlock code (the program imports it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

PROMOTIONS_DIR = "promotions"
SIGNERS_DIR = Path("policies") / "allowed_signers"
SIGNATURE_NAMESPACE = "liftlock-promotion"
SIGNATURE_SUFFIX = ".sig"
RECORD_KIND = "liftlock.io/promotion-record"
REQUIRED_KEYS = ("kind", "from", "to", "bundleDigest", "passed", "signer", "time")

RecordStatus = Literal["recorded", "unrecorded", "record invalid"]


class RecordError(ValueError):
    """A promotion record cannot be read (bad JSON, missing keys): names the file and the fix."""


@dataclass(frozen=True, kw_only=True)
class PromotionRecord:
    path: Path
    data: dict[str, Any]

    @property
    def bundle_digest(self) -> str:
        return str(self.data["bundleDigest"])

    @property
    def image(self) -> str | None:
        value = self.data.get("image")
        return str(value) if value else None

    @property
    def source(self) -> str:
        return str(self.data["from"])

    @property
    def target(self) -> str:
        return str(self.data["to"])

    @property
    def time(self) -> str:
        return str(self.data["time"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.data.get("metrics") or {})

    @property
    def dvc(self) -> dict[str, str]:
        """DVC hashes of what the gate judged: {"bundle": "<md5>.dir", "data/prepared": ...}."""
        return {str(k): str(v) for k, v in (self.data.get("dvc") or {}).items()}

    @property
    def signature_path(self) -> Path:
        return signature_path(self.path)


@dataclass(frozen=True, kw_only=True)
class RecordCheck:
    """The answer of `check_pinned`: a status, a sentence that says why, and the record."""

    status: RecordStatus
    message: str
    record: PromotionRecord | None = None

    @property
    def ok(self) -> bool:
        return self.status == "recorded"


def signature_path(record: Path) -> Path:
    return record.with_name(record.name + SIGNATURE_SUFFIX)


def signers_file(root: Path, stack: str) -> Path:
    return root / SIGNERS_DIR / stack


def _display(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_json_object(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in `path` (a record or a verification); RecordError naming the file,
    the line and `fix` when it is not one."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise RecordError(
            f"{path}: line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); "
            f"fix: {fix}"
        ) from error
    except OSError as error:
        raise RecordError(f"{path}: cannot read ({error.strerror}); fix: {fix}") from error
    if not isinstance(data, dict):
        raise RecordError(f"{path}: {what} is a JSON object; fix: {fix}")
    return data


def read_record(path: Path) -> PromotionRecord:
    """The record in `path`; RecordError naming the file, the key and the fix."""
    fix = f"restore it from git (`git checkout -- {path.parent.name}/{path.name}`), or delete it "
    fix += "and promote again with `liftlock promote`"
    data = read_json_object(path, "a promotion record", fix)
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise RecordError(
            f"{path}: promotion record lacks key(s) {', '.join(missing)} (written before records "
            f"were signed?); fix: {fix}"
        )
    return PromotionRecord(path=path, data=data)


def record_paths(root: Path, stack: str) -> list[Path]:
    """The stack's record files, oldest first (names start with the UTC time)."""
    folder = root / PROMOTIONS_DIR / stack
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise FileNotFoundError("ssh-keygen")
    return found


def signature_problem(root: Path, record: PromotionRecord, stack: str) -> str | None:
    """Why the record's signature does not hold for `stack`, or None when it verifies."""
    return file_signature_problem(root, record.path, str(record.data.get("signer", "")), stack)


def file_signature_problem(root: Path, path: Path, signer: str, stack: str) -> str | None:
    """Why `path`'s signature (`<path>.sig`) by `signer` does not hold for `stack`, or None."""
    allowed = signers_file(root, stack)
    signature = signature_path(path)
    where = _display(root, path)
    if not signature.is_file():
        return f"{where}: no signature ({signature.name} missing)"
    if not allowed.is_file():
        return f"{where}: no allowed signers for {stack} ({_display(root, allowed)} missing)"
    try:
        keygen = _ssh_keygen()
    except FileNotFoundError:
        return "ssh-keygen is not installed: cannot verify records (apt install openssh-client)"
    command = [
        keygen, "-Y", "verify", "-f", str(allowed), "-I", signer,
        "-n", SIGNATURE_NAMESPACE, "-s", str(signature),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            input=path.read_bytes(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{where}: ssh-keygen -Y verify did not run ({error})"
    if result.returncode != 0:
        said = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        return (
            f"{where}: signature does not verify against {_display(root, allowed)} as "
            f"{signer!r} ({said[-1] if said else f'exit {result.returncode}'})"
        )
    return None


def record_problem(root: Path, record: PromotionRecord, stack: str) -> str | None:
    """Why `record` is not a valid record of a passing promotion into `stack` (None: it is)."""
    where = _display(root, record.path)
    if record.data.get("kind") != RECORD_KIND:
        return f"{where}: kind is {record.data.get('kind')!r}, not {RECORD_KIND!r}"
    if record.target != stack:
        return f"{where}: written for stack {record.target!r}, not {stack!r}"
    problem = signature_problem(root, record, stack)
    if problem:
        return problem
    if record.data.get("passed") is not True:
        return f"{where}: its gate did not pass"
    return None


def records(root: Path, stack: str) -> Iterator[PromotionRecord | RecordError]:
    """The stack's records, newest first; an unreadable one is yielded as its RecordError."""
    for path in reversed(record_paths(root, stack)):
        try:
            yield read_record(path)
        except RecordError as error:
            yield error


def valid_record(root: Path, stack: str, digest: str) -> PromotionRecord | None:
    """The newest valid record of `stack` that promoted `digest` (any image)."""
    for item in records(root, stack):
        matches = isinstance(item, PromotionRecord) and item.bundle_digest == digest
        if matches and record_problem(root, item, stack) is None:  # type: ignore[arg-type]
            return item  # type: ignore[return-value]
    return None


def latest_valid_record(root: Path, stack: str) -> PromotionRecord | None:
    """The stack's newest valid record (whatever it promoted)."""
    for item in records(root, stack):
        if isinstance(item, PromotionRecord) and record_problem(root, item, stack) is None:
            return item
    return None


def check_pinned(root: Path, stack: str, digest: str | None, image: str | None) -> RecordCheck:
    """Is what `stack` pins backed by a valid signed record of a passing gate for that stack?"""
    fix = f"fix: promote it through the gate (`liftlock promote <from> {stack}`)"
    if not digest:
        return RecordCheck(
            status="unrecorded",
            message=f"{stack} pins no bundle digest (liftlock:bundleDigest); {fix}",
        )
    pinned = f"bundle {digest}" + (f" with image {image}" if image else "")
    found = list(records(root, stack))
    broken = [str(item) for item in found if isinstance(item, RecordError)]
    if broken:  # a broken record file is never skipped over
        return RecordCheck(status="record invalid", message="; ".join(broken))
    problems: list[str] = []
    for item in found:
        if isinstance(item, RecordError):
            continue
        if item.bundle_digest != digest:
            continue
        if image and item.image != image:
            problems.append(
                f"{_display(root, item.path)}: promoted image {item.image}, not {image}"
            )
            continue
        problem = record_problem(root, item, stack)
        if problem is None:
            return RecordCheck(
                status="recorded",
                message=f"{pinned}: promoted to {stack} from {item.source} at {item.time} "
                f"({_display(root, item.path)}, signed by {item.data.get('signer')})",
                record=item,
            )
        problems.append(problem)
    if problems:
        fix = (
            f"fix: restore a broken record from git, or promote through the gate "
            f"(`liftlock promote <from> {stack}`)"
        )
        return RecordCheck(
            status="record invalid",
            message=f"{stack} pins {pinned}, but no valid signed record of a passing gate names "
            f"it: {'; '.join(problems)}; {fix}",
        )
    return RecordCheck(
        status="unrecorded",
        message=f"{stack} pins {pinned}, which no promotion record of {stack} names "
        f"(promotions/{stack}/); {fix}",
    )


# ---------------------------------------------------------------------------------------------
# Verifications: `liftlock verify <stack>`'s signed verdicts on what a promotion deployed
#
# `promotions/<stack>/verifications/<UTC time>-<digest12>.json` (+ `.json.sig`, signed like a
# record, by a signer of the stack) names the promotion record it judged by file name and by the
# sha256 of its bytes, and holds every check's verdict. A record is never rewritten: each
# verification is a file of its own, so a hand edit of a verdict breaks that file's signature.

VERIFICATION_KIND = "liftlock.io/verification"
VERIFICATIONS_DIR = "verifications"
VERIFICATION_KEYS = ("kind", "stack", "record", "recordSha256", "passed", "checks", "signer")

VerificationState = Literal["verified", "failed", "unverified", "verification invalid"]


@dataclass(frozen=True, kw_only=True)
class Verification:
    path: Path
    data: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.data.get("passed") is True

    @property
    def record(self) -> str:
        """The file name of the promotion record it judged (in the same stack's folder)."""
        return str(self.data["record"])

    @property
    def time(self) -> str:
        return str(self.data.get("time", ""))

    @property
    def failed_checks(self) -> list[str]:
        return [
            str(check.get("check"))
            for check in self.data.get("checks") or []
            if isinstance(check, dict) and check.get("verdict") == "fail"
        ]


@dataclass(frozen=True, kw_only=True)
class VerificationStatus:
    """Where a promotion record stands with `liftlock verify`."""

    state: VerificationState
    message: str
    latest: Verification | None = None
    # UTC time of the first passing verification of the unbroken run that ends at `latest`
    verified_since: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "verified"


def verifications_dir(root: Path, stack: str) -> Path:
    return root / PROMOTIONS_DIR / stack / VERIFICATIONS_DIR


def record_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def read_verification(path: Path) -> Verification:
    """The verification in `path`; RecordError naming the file, the key and the fix."""
    fix = f"restore it from git (`git checkout -- {path}`), or run `liftlock verify` again"
    data = read_json_object(path, "a verification", fix)
    missing = [key for key in VERIFICATION_KEYS if key not in data]
    if missing:
        raise RecordError(f"{path}: verification lacks key(s) {', '.join(missing)}; fix: {fix}")
    return Verification(path=path, data=data)


def verifications(root: Path, stack: str) -> list[Verification | RecordError]:
    """The stack's verifications, newest first; an unreadable one as its RecordError."""
    folder = verifications_dir(root, stack)
    found: list[Verification | RecordError] = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            found.append(read_verification(path))
        except RecordError as error:
            found.append(error)
    return found


def verification_problem(
    root: Path, verification: Verification, stack: str, record: PromotionRecord
) -> str | None:
    """Why `verification` is not a valid verification of `record` in `stack` (None: it is)."""
    where = _display(root, verification.path)
    if verification.data.get("kind") != VERIFICATION_KIND:
        return f"{where}: kind is {verification.data.get('kind')!r}, not {VERIFICATION_KIND!r}"
    if verification.data.get("stack") != stack:
        return f"{where}: written for stack {verification.data.get('stack')!r}, not {stack!r}"
    if verification.data.get("recordSha256") != record_sha256(record.path):
        return (
            f"{where}: names {_display(root, record.path)} but not its content (recordSha256 "
            "differs: the record changed after it was verified)"
        )
    return file_signature_problem(
        root, verification.path, str(verification.data.get("signer", "")), stack
    )


def verification_status(root: Path, stack: str, record: PromotionRecord) -> VerificationStatus:
    """Is `record` (a promotion into `stack`) verified? By its newest valid verification.

    A verification of this record that does not hold (edited, copied, unsigned) is never skipped
    over: the answer is `verification invalid`, naming the file.
    """
    where = _display(root, record.path)
    run: list[Verification] = []
    for item in verifications(root, stack):
        if isinstance(item, RecordError):
            return VerificationStatus(state="verification invalid", message=str(item))
        if item.record != record.path.name:
            continue
        problem = verification_problem(root, item, stack, record)
        if problem is not None:
            return VerificationStatus(
                state="verification invalid",
                message=f"{problem}; fix: restore it from git, or run `liftlock verify {stack}`",
            )
        if not item.passed:
            if run:
                break  # passing verifications after this failure: the run ends here
            failed = ", ".join(item.failed_checks) or "unknown"
            return VerificationStatus(
                state="failed",
                message=f"{where} failed verification at {item.time} (check(s) failed: {failed}; "
                f"{_display(root, item.path)})",
                latest=item,
            )
        run.append(item)
    if not run:
        return VerificationStatus(
            state="unverified",
            message=f"{where} was never verified (no verification in "
            f"{_display(root, verifications_dir(root, stack))} names it)",
        )
    return VerificationStatus(
        state="verified",
        message=f"{where} verified at {run[0].time} ({_display(root, run[0].path)})",
        latest=run[0],
        verified_since=run[-1].time,
    )


def latest_verified_record(root: Path, stack: str) -> PromotionRecord | None:
    """The stack's newest valid record whose newest verification passed: its champion."""
    for item in records(root, stack):
        valid = isinstance(item, PromotionRecord) and record_problem(root, item, stack) is None
        if valid and verification_status(root, stack, item).ok:  # type: ignore[arg-type]
            return item  # type: ignore[return-value]
    return None
