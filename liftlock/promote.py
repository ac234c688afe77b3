"""`liftlock promote <from> <to>`: move a bundle to the next stack, only through the gate.

Orchestration only: find the bundle `<from>` runs (or the workspace's), run the gate of `<to>` on
it, and only when no mandatory rule fails write its digest (and image) into
stacks/Pulumi.<to>.yaml and a promotion record; with `--git`, commit both on a branch
`promote/<to>/<digest12>` so the promotion is a reviewable change. A refused promotion, a dry run
and bad input change no file.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liftlock.errors import BundleError, ConfigError
from liftlock.gate import GateReport, run_gate, stack_file, verify
from liftlock.git import git_output
from liftlock.records import digest12, record_path, write_record
from liftlock.stackfile import set_stack_values

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


def source_bundle(root: Path, source: str) -> tuple[Path, str, Any]:
    """(bundle folder, digest, source StackConfig or None) of `<from>`."""
    workspace = root / WORKSPACE_BUNDLE
    if source == WORKSPACE:
        return workspace, verify(workspace), None
    config = load_config(root, source)
    folder = root / config.bundle_dir if config.target == "docker" else workspace
    wanted = config.bundle_digest
    if wanted is None:
        if config.target != "docker":
            raise ConfigError(f"stacks/Pulumi.{source}.yaml: liftlock:bundleDigest is not set")
        return folder, verify(folder), config
    if not (folder / "bundle.json").is_file():
        raise BundleError(
            f"{folder}: no bundle; {source} runs {digest12(wanted)}",
            hint="rebuild it with `dvc repro` (or `dvc checkout` at the commit that promoted it)",
        )
    digest = verify(folder)
    if digest != wanted:
        raise BundleError(
            f"{source} runs bundle {digest12(wanted)} (stacks/Pulumi.{source}.yaml "
            f"liftlock:bundleDigest) but {folder} holds {digest12(digest)}",
            hint=f"`dvc checkout` the bundle {source} runs (git checkout the commit of its "
            "promotion record first), or promote `workspace` instead",
        )
    return folder, digest, config


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
    report = promotion.report
    return {
        "from": promotion.source,
        "to": promotion.target,
        "bundleDigest": promotion.digest,
        "image": promotion.image,
        "metrics": report.metrics,
        "verdicts": [
            {key: item.to_json()[key] for key in ("rule", "subject", "level", "verdict", "message")}
            for item in report.findings
        ],
        "infraSource": report.infra_source,
        "gitCommit": git_commit_id(root),
        "user": current_user(root),
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
) -> Promotion:
    """Gate and, on a pass, promote. Returns what happened; writes nothing unless it passed."""
    if source == target:
        raise ConfigError(f"cannot promote {source} to itself")
    target_config = load_config(root, target)
    stack_path = stack_file(root, target)
    bundle_dir, digest, source_config = source_bundle(root, source)
    try:
        pinned = resolve_image(source_config, target_config, digest, image)
        image_problem: ConfigError | None = None
    except ConfigError as problem:
        # Judge the bundle anyway (with the image <to> runs now): a refusal says more than a
        # missing image, and a pass still stops below.
        pinned, image_problem = None, problem
    overrides: Mapping[str, str] = {"image": pinned} if pinned else {}
    report = run_gate(root, target, bundle_dir, preview=preview, overrides=overrides, now=now)
    if image_problem is not None and report.passed:
        raise image_problem
    promotion = Promotion(
        source=source,
        target=target,
        bundle_dir=bundle_dir,
        digest=digest,
        image=pinned,
        report=report,
        stack_path=stack_path,
    )
    if not report.passed or dry_run:
        return promotion
    when = now or datetime.now(UTC)
    branch = f"promote/{target}/{digest12(digest)}"
    if git:
        _check_git_ready(root, stack_path, branch)
    values = {"bundleDigest": digest, **({"image": pinned} if pinned else {})}
    record = record_path(root, target, digest, when)
    data = record_data(promotion, root, when)
    write_record(record, data)  # first: it refuses to overwrite, before the stack file changes
    try:
        set_stack_values(stack_path, values)
    except Exception:
        record.unlink()
        raise
    promotion.record = record
    if git:
        paths = [stack_path.relative_to(root).as_posix(), record.relative_to(root).as_posix()]
        git_output(root, "switch", "--create", branch)
        git_output(root, "add", "--", *paths)
        message = (
            f"promote {source} -> {target}: bundle {digest12(digest)}\n\n"
            f"Gate {target}: {len(report.findings)} verdicts, "
            f"{sum(1 for f in report.findings if f.verdict.value == 'warn')} advisory warning(s).\n"
            f"Record: {paths[1]}"
        )
        git_output(root, "commit", "--quiet", "-m", message, "--", *paths)
        promotion.branch = branch
        promotion.commit = git_output(root, "rev-parse", "HEAD")
    return promotion
