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


def read_record(path: Path) -> PromotionRecord:
    """The record in `path`; RecordError naming the file, the key and the fix."""
    fix = f"restore it from git (`git checkout -- {path.parent.name}/{path.name}`), or delete it "
    fix += "and promote again with `liftlock promote`"
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
        raise RecordError(f"{path}: a promotion record is a JSON object; fix: {fix}")
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
    allowed = signers_file(root, stack)
    signature = record.signature_path
    where = _display(root, record.path)
    if not signature.is_file():
        return f"{where}: no signature ({signature.name} missing)"
    if not allowed.is_file():
        return f"{where}: no allowed signers for {stack} ({_display(root, allowed)} missing)"
    try:
        keygen = _ssh_keygen()
    except FileNotFoundError:
        return "ssh-keygen is not installed: cannot verify records (apt install openssh-client)"
    command = [
        keygen, "-Y", "verify", "-f", str(allowed), "-I", str(record.data.get("signer", "")),
        "-n", SIGNATURE_NAMESPACE, "-s", str(signature),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            input=record.path.read_bytes(),
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
            f"{record.data.get('signer')!r} ({said[-1] if said else f'exit {result.returncode}'})"
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
