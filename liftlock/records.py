"""Writing signed promotion records (reading and checking them: `policies.promotion`).

A record `promotions/<stack>/<UTC time>-<digest12>.json` says what went where, when, by whom, at
which commit, with which gate verdicts and the inputs the rules judged; `<name>.json.sig` is its
SSH signature (`ssh-keygen -Y sign`, as git signs commits with SSH keys). The signing key is the
promoter's: `$LIFTLOCK_SIGNING_KEY`, else `~/.config/liftlock/promotion_ed25519`, created on first
use. Who may promote into a stack is the reviewed file `policies/allowed_signers/<stack>`: the
first promotion into a stack with no signers writes the promoter's entry there (commit it); after
that an unlisted key is refused with the line a maintainer would add.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liftlock.errors import ConfigError, ToolMissingError
from liftlock.run import run_command
from policies.promotion import (
    PROMOTIONS_DIR,
    SIGNATURE_NAMESPACE,
    PromotionRecord,
    RecordError,
    latest_valid_record,
    latest_verified_record,
    read_record,
    signature_path,
    signers_file,
    valid_record,
)

__all__ = [
    "PromotionRecord",
    "champion_record",
    "digest12",
    "read_record_or_fail",
    "record_path",
    "signing_identity",
    "write_signed_record",
]

TIME_FORMAT = "%Y%m%dT%H%M%SZ"
KEY_NAME = "promotion_ed25519"


def digest12(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def record_path(root: Path, stack: str, digest: str, when: datetime) -> Path:
    stamp = when.astimezone(UTC).strftime(TIME_FORMAT)
    return root / PROMOTIONS_DIR / stack / f"{stamp}-{digest12(digest)}.json"


def read_record_or_fail(path: Path) -> PromotionRecord:
    try:
        return read_record(path)
    except RecordError as error:
        raise ConfigError(str(error)) from error


def champion_record(root: Path, stack: str, pinned: str | None) -> PromotionRecord | None:
    """The bundle a challenger must not regress from: the stack's last verified bundle (its
    newest valid record whose verification passed); on a stack never verified, the valid record
    of what `stack` pins (else the stack's newest valid record)."""
    verified = latest_verified_record(root, stack)
    if verified is not None:
        return verified
    if pinned:
        found = valid_record(root, stack, pinned)
        if found is not None:
            return found
    return latest_valid_record(root, stack)


# ---------------------------------------------------------------------------------------------
# The promoter's key


def signing_key_path() -> Path:
    explicit = os.environ.get("LIFTLOCK_SIGNING_KEY")
    if explicit:
        return Path(explicit).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "liftlock" / KEY_NAME


def signing_identity(root: Path) -> str:
    """The principal a record is signed as: git's user.email, else user@host."""
    from liftlock.git import git_output

    email = git_output(root, "config", "user.email", check=False)
    return email or f"{getpass.getuser()}@{socket.gethostname()}"


def ensure_signing_key(log: Any = print, key: Path | None = None) -> Path:
    """The private key (created, without a passphrase, on first use: the embedded default)."""
    key = key or signing_key_path()
    if key.is_file() and key.with_name(key.name + ".pub").is_file():
        return key
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_command(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "liftlock promotion key",
         "-f", str(key)],
        what="create the promotion signing key",
        missing_hint="install openssh-client (ssh-keygen)",
    )  # fmt: skip
    log(f"created the promotion signing key {key} (keep it private; set $LIFTLOCK_SIGNING_KEY "
        "to use another)")  # fmt: skip
    return key


def _public_key(key: Path) -> str:
    fields = key.with_name(key.name + ".pub").read_text(encoding="utf-8").split()
    return " ".join(fields[:2])  # type and base64: the comment is not part of the key


def signer_line(principal: str, key: Path) -> str:
    return f'{principal} namespaces="{SIGNATURE_NAMESPACE}" {_public_key(key)}'


def ensure_allowed_signer(root: Path, stack: str, principal: str, key: Path) -> Path | None:
    """Make sure the key may sign for `stack`; returns the signers file when it was written."""
    path = signers_file(root, stack)
    public = _public_key(key)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    entries = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any(line.split()[0] == principal and public in line for line in entries):
        return None
    line = signer_line(principal, key)
    relative = path.relative_to(root).as_posix()
    if entries:
        raise ConfigError(
            f"{relative}: your signing key ({key}, as {principal}) may not promote into {stack}",
            hint=f"ask a maintainer of {stack} to add this line to {relative} in a reviewed "
            f"change:\n    {line}",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Who may sign promotion records for {stack} (ssh-keygen ALLOWED SIGNERS format).\n"
        "# A reviewed file: adding a line lets that key promote into this stack.\n"
    )
    path.write_text(header + line + "\n", encoding="utf-8")
    return path


def enroll_signer(root: Path, stack: str, *, log: Any = print) -> Path | None:
    """The embedded default's trust step (`liftlock demo` only): list this machine's key as a
    signer of `stack` when it is not yet, as a visible change to the reviewed signers file.

    A new machine has a new key; without this, the demo's first promotion into a stack that a
    teammate already signed for would be refused. A real promotion never enrolls itself.
    """
    key = ensure_signing_key(log)
    principal = signing_identity(root)
    path = signers_file(root, stack)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if any(line.split()[:1] == [principal] and _public_key(key) in line for line in lines):
        return None
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return None  # no signer yet: the promotion writes the first line itself
    with path.open("a", encoding="utf-8") as handle:
        handle.write("# added by `liftlock demo` for this machine's key: review it\n")
        handle.write(signer_line(principal, key) + "\n")
    log(f"trusting this machine's promotion key for {stack}: {path.relative_to(root)} (review it)")
    return path


def write_signed_record(
    root: Path,
    path: Path,
    data: dict[str, Any],
    *,
    log: Any = print,
    key: Path | None = None,
    stack: str | None = None,
) -> list[Path]:
    """Write the record (never over another) and its signature; returns every file written.

    `stack` (default: the record's `to`) is the stack whose signers must list the key; a
    verification (`liftlock verify`) is written and signed the same way.
    """
    key = ensure_signing_key(log, key)
    principal = str(data["signer"])
    stack = stack or str(data["to"])
    written: list[Path] = []
    signers = ensure_allowed_signer(root, stack, principal, key)
    if signers is not None:
        log(f"added your key to {signers.relative_to(root)} (first signer of {stack}): commit it")
        written.append(signers)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:  # never overwrite a record
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    written.append(path)
    try:
        run_command(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", SIGNATURE_NAMESPACE,
             str(path)],
            what="sign the promotion record",
            missing_hint="install openssh-client (ssh-keygen)",
        )  # fmt: skip
    except (ToolMissingError, Exception):
        path.unlink(missing_ok=True)
        raise
    written.append(signature_path(path))
    return written
