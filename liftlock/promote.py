"""`liftlock promote <from> <to>`: move a bundle to the next stack, only through the gate.

Orchestration only: find the bundle `<from>` runs (fetched through DVC by the hash its record
names) or the workspace's (stored into DVC first), run the gate of `<to>` on it, and only when no
mandatory rule fails write its digest (and image) into stacks/Pulumi.<to>.yaml and a signed
promotion record; with `--git`, commit them on a branch `promote/<to>/<digest12>` so the promotion
is a reviewable change. A refused promotion, a dry run and bad input change no file. One
promotion into a stack at a time: a second one is refused while the first holds the stack's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liftlock.errors import ConfigError, GateFailed
from liftlock.gate import (
    Candidate,
    GateReport,
    pinned_candidate,
    pinned_values,
    read_gates,
    run_gate,
    stack_file,
    stored_candidate,
)
from liftlock.git import git_output
from liftlock.records import digest12, record_path, signing_identity, write_signed_record
from liftlock.stackfile import set_stack_values
from policies.promotion import RECORD_KIND, check_pinned, verification_status

WORKSPACE = "workspace"
WORKSPACE_BUNDLE = Path("bundle")
_PINNED = re.compile(r"^(?P<repo>[^@]+)@sha256:[0-9a-f]{64}$")


@dataclass(kw_only=True)
class Promotion:
    source: str
    target: str
    bundle_dir: Path
    digest: str
    image: str | None
    report: GateReport
    stack_path: Path
    record: Path | None = None
    written_files: list[Path] = field(default_factory=list)
    already: str | None = None  # the stack already pins this, recorded: nothing was written
    branch: str | None = None
    commit: str | None = None

    @property
    def written(self) -> bool:
        return self.record is not None


def load_config(root: Path, stack: str) -> Any:
    from infra.config import StackConfigError, load_stack_file

    try:
        return load_stack_file(stack_file(root, stack), stack=stack)
    except StackConfigError as error:
        raise ConfigError(str(error)) from error


@contextlib.contextmanager
def source_candidate(root: Path, source: str) -> Iterator[tuple[Candidate, Any]]:
    """(the bundle `<from>` holds, as DVC has it; source StackConfig or None)."""
    if source == WORKSPACE:
        bundle = root / WORKSPACE_BUNDLE
        # Pushed: what the record names must be fetchable where the gate runs next (CI).
        with stored_candidate(root, bundle, origin="workspace bundle/", push=True) as found:
            yield found, None
        return
    config = load_config(root, source)
    with pinned_candidate(root, source, push=True) as found:
        yield found, config


@contextlib.contextmanager
def promotion_lock(root: Path, stack: str) -> Iterator[None]:
    """One promotion into `stack` at a time (per checkout); a second is refused, clearly.

    An OS lock (flock) outside the work tree: it goes away with the process that held it, so a
    killed promotion never leaves a stale lock behind.
    """
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"liftlock-promote-{key}-{stack}.lock"
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"another `liftlock promote` into {stack} is running ({holder}); "
                "nothing was written",
                hint="wait for it to finish, then run `liftlock status` and retry if needed",
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def check_source_verified(root: Path, source: str, target: str, now: datetime) -> None:
    """Refuse (GateFailed naming the record) to promote from a stack whose gates require
    verification when what it runs did not verify, or verified less than minSoakSeconds ago."""
    if source == WORKSPACE:
        return
    verify = read_gates(root).for_stack(source).thresholds.verify
    if not verify.required:
        return
    digest, image = pinned_values(root, source)
    pinned = check_pinned(root, source, digest, image)
    if not pinned.ok or pinned.record is None:
        return  # the source's pin itself is refused next, naming the pin (pinned_candidate)
    status = verification_status(root, source, pinned.record)
    gates_key = f"policies/gates.yaml stacks.{source}.thresholds.verify"
    refused = f"promotion {source} -> {target} refused, no file changed"
    if not status.ok:
        raise GateFailed(
            f"{refused}: {source} requires verification ({gates_key}.required) and the "
            f"promotion it runs did not verify: {status.message}",
            hint=f"roll {source} out and run `liftlock verify {source}` until it passes (or "
            f"promote a bundle that verifies into {source})",
        )
    assert status.verified_since is not None
    soaked = (now - parse_time(status.verified_since)).total_seconds()
    if soaked < verify.min_soak_seconds:
        raise GateFailed(
            f"{refused}: {_display_record(root, pinned.record.path)} verified at "
            f"{status.verified_since}, {soaked:.0f}s ago; {source} needs "
            f"{verify.min_soak_seconds:g}s of soak first ({gates_key}.minSoakSeconds)",
            hint=f"wait {verify.min_soak_seconds - soaked:.0f}s more, then promote again",
        )


def _display_record(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def resolve_image(
    source_config: Any, target_config: Any, digest: str, explicit: str | None
) -> str | None:
    """The image reference `<to>` should run, pinned by digest (None for a docker target)."""
    if target_config.target == "docker":
        return None  # the docker target builds its image from the bundle itself
    if explicit:
        if not _PINNED.match(explicit):
            raise ConfigError(
                f"--image {explicit!r} is not pinned by digest (repo@sha256:<64 hex>)"
            )
        return explicit
    if source_config is not None and source_config.bundle_digest == digest:
        match = _PINNED.match(source_config.image or "")
        if match:
            return str(source_config.image)  # the image the source stack runs for this bundle
    # Build once, promote by digest: the manifest digest the registry holds for the image the
    # docker stack (dev) built and pushed for this bundle.
    from infra.components.image_builder import image_tag, registry_digest, registry_repository
    from infra.config import DEFAULT_IMAGE_REPOSITORY, DEFAULT_REGISTRY

    repository = source_config.image_repository if source_config else DEFAULT_IMAGE_REPOSITORY
    registry = source_config.registry if source_config else DEFAULT_REGISTRY
    tag = image_tag(digest, registry_repository(registry, repository))
    manifest_digest = registry_digest(tag)
    if manifest_digest is None:
        raise ConfigError(
            f"no image for bundle {digest12(digest)}: the registry has no {tag}",
            hint="start the registry (`liftlock cluster up`) and build and push the image with "
            "`pulumi up --stack dev`, or pass --image <registry>/<repo>@sha256:<64 hex>",
        )
    return f"{tag.rpartition(':')[0]}@{manifest_digest}"


def git_commit_id(root: Path) -> str | None:
    commit = git_output(root, "rev-parse", "HEAD", check=False)
    if not commit:
        return None
    dirty = git_output(root, "status", "--porcelain", "--untracked-files=no", check=False)
    return f"{commit}-dirty" if dirty else commit


def current_user(root: Path) -> str:
    name = git_output(root, "config", "user.name", check=False)
    email = git_output(root, "config", "user.email", check=False)
    if name and email:
        return f"{name} <{email}>"
    return name or email or getpass.getuser()


def record_data(promotion: Promotion, root: Path, when: datetime) -> dict[str, Any]:
    """What the signed record says: what, from, to, verdicts with their inputs, lineage, who."""
    report = promotion.report
    return {
        "kind": RECORD_KIND,
        "from": promotion.source,
        "to": promotion.target,
        "bundleDigest": promotion.digest,
        "image": promotion.image,
        "dvc": report.dvc,
        "passed": report.passed,
        "metrics": report.metrics,
        "ruleInputs": report.rule_inputs,
        "verdicts": [
            {key: item.to_json()[key] for key in ("rule", "subject", "level", "verdict", "message")}
            for item in report.findings
        ],
        "infraSource": report.infra_source,
        "gitCommit": git_commit_id(root),
        "user": current_user(root),
        "signer": signing_identity(root),
        "time": when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _check_git_ready(root: Path, stack_path: Path, branch: str) -> None:
    relative = stack_path.relative_to(root).as_posix()
    if git_output(root, "status", "--porcelain", "--", relative, check=False):
        raise ConfigError(
            f"{relative} has uncommitted changes; --git would commit them with the promotion",
            hint="commit or revert them first",
        )
    if git_output(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False):
        raise ConfigError(f"branch {branch} already exists", hint=f"git branch -D {branch}")


def promote(
    root: Path,
    source: str,
    target: str,
    *,
    dry_run: bool = False,
    git: bool = False,
    image: str | None = None,
    preview: bool = True,
    now: datetime | None = None,
    log: Any = print,
) -> Promotion:
    """Gate and, on a pass, promote. Returns what happened; writes nothing unless it passed."""
    if source == target:
        raise ConfigError(f"cannot promote {source} to itself")
    target_config = load_config(root, target)
    stack_path = stack_file(root, target)
    check_source_verified(root, source, target, now or datetime.now(UTC))
    lock = promotion_lock(root, target) if not dry_run else contextlib.nullcontext()
    with lock, source_candidate(root, source) as (candidate, source_config):
        digest = candidate.digest
        try:
            pinned = resolve_image(source_config, target_config, digest, image)
            image_problem: ConfigError | None = None
        except ConfigError as problem:
            # Judge the bundle anyway (with the image <to> runs now): a refusal says more than a
            # missing image, and a pass still stops below.
            pinned, image_problem = None, problem
        overrides: Mapping[str, str] = {"image": pinned} if pinned else {}
        report = run_gate(root, target, candidate, preview=preview, overrides=overrides, now=now)
        if image_problem is not None and report.passed:
            raise image_problem
        promotion = Promotion(
            source=source,
            target=target,
            bundle_dir=candidate.bundle_dir,
            digest=digest,
            image=pinned,
            report=report,
            stack_path=stack_path,
        )
        if not report.passed or dry_run:
            return promotion
        if pinned_values(root, target) == (digest, pinned):
            current = check_pinned(root, target, digest, pinned)
            if current.ok:  # a second promotion of the same thing writes no second record
                promotion.already = current.message
                return promotion
        if candidate.store_problem:
            log(f"warning: {candidate.store_problem}; run `dvc push` so CI can fetch the bundle")
        when = now or datetime.now(UTC)
        branch = f"promote/{target}/{digest12(digest)}"
        if git:
            _check_git_ready(root, stack_path, branch)
        values = {"bundleDigest": digest, **({"image": pinned} if pinned else {})}
        record = record_path(root, target, digest, when)
        data = record_data(promotion, root, when)
        # First: it refuses to overwrite, before the stack file changes.
        written = write_signed_record(root, record, data, log=log)
        try:
            set_stack_values(stack_path, values)
        except Exception:
            for path in written:
                if path.suffix in (".json", ".sig"):
                    path.unlink(missing_ok=True)
            raise
        promotion.record = record
        promotion.written_files = written
    if git:
        paths = [stack_path.relative_to(root).as_posix()]
        paths += [path.relative_to(root).as_posix() for path in written]
        git_output(root, "switch", "--create", branch)
        git_output(root, "add", "--", *paths)
        message = (
            f"promote {source} -> {target}: bundle {digest12(digest)}\n\n"
            f"Gate {target}: {len(report.findings)} verdicts, "
            f"{sum(1 for f in report.findings if f.verdict.value == 'warn')} advisory warning(s).\n"
            f"Record: {record.relative_to(root).as_posix()} (signed)"
        )
        git_output(root, "commit", "--quiet", "-m", message, "--", *paths)
        promotion.branch = branch
        promotion.commit = git_output(root, "rev-parse", "HEAD")
    return promotion
