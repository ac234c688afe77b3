"""ModelImage: the serving image with the bundle baked in, built on the local Docker engine and
pushed to a registry.

A dynamic provider (the pulumi-docker plugin cannot be obtained here) that builds through
`image_builder.build_image` (the `docker` Python package, offline, from a local base image) and
pushes through `image_builder.push_image`. Its output `reference` is
`<registry>/<repository>@sha256:<manifest digest>`, the digest the registry returned: the one
reference dev runs and promote carries to staging and prod. The diff looks only at the build
context's content hash, the bundle digest and the registry (and the tag they imply), so an
unchanged bundle and context mean no change; delete removes the local tag and nothing else
(the registry keeps what was pushed: a promoted stack may still run it).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

#: inputs that mean "rebuild" (a new tag means a new image: replace)
_REBUILD_KEYS = ("context_hash", "bundle_digest", "bundle_dir")


def image_tag(repository: str, bundle_digest: str, registry: str = "") -> str:
    """`[<registry>/]<repository>:b-<first 12 hex of the bundle digest>`."""
    from infra.components.image_builder import image_tag as builder_image_tag
    from infra.components.image_builder import registry_repository

    return builder_image_tag(bundle_digest, registry_repository(registry, repository))


def context_hash(files: Iterable[Path], *, root: Path) -> str:
    """sha256 over (relative path, content) of every file, in path order."""
    digest = hashlib.sha256()
    for path in sorted({p.resolve() for p in files}):
        digest.update(path.relative_to(root.resolve()).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def context_files(root: Path, includes: Iterable[str]) -> list[Path]:
    """Files under `root` named by `includes` (folders count with all they hold)."""
    found: set[Path] = set()
    for name in includes:
        path = root / name
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            found.add(path)
    return sorted(found)


#: What the server in the image runs from, among what the image builder packs into its wheel
#: (README, policies/ and infra/ ride along but never run there, so they do not force a rebuild).
RUNTIME_SOURCES = ("pyproject.toml", "requirements.lock", "liftlock", "ml")


def build_context_hash(bundle_dir: Path) -> str:
    """Content hash of what the serving image is made of: the server's sources and pins, the
    Dockerfile and the bundle (see image_builder.build_image)."""
    from infra.components.image_builder import CONTAINER_DIR, REPO_ROOT

    sources = context_files(REPO_ROOT, RUNTIME_SOURCES)
    sources.append(CONTAINER_DIR / "Dockerfile")
    source_hash = context_hash(sources, root=REPO_ROOT)
    bundle_hash = context_hash(context_files(bundle_dir, (".",)), root=bundle_dir)
    return "sha256:" + hashlib.sha256(f"{source_hash}|{bundle_hash}".encode()).hexdigest()


def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=600)


def _log_to_stderr(line: str) -> None:
    # stdout of a provider belongs to the engine handshake; progress goes to stderr.
    print(line, file=sys.stderr, flush=True)


class ModelImageProvider(ResourceProvider):
    """Builds with `docker build`, pushes with `docker push`; id = the tag."""

    serialize_as_secret_always = False

    def _build(self, props: dict[str, Any]) -> dict[str, Any]:
        import docker.errors
        import requests.exceptions
        import urllib3.exceptions

        from infra.components.image_builder import build_image, push_image

        try:
            built = build_image(Path(props["bundle_dir"]), props["tag"], log=_log_to_stderr)
            reference = push_image(
                built.tag, credentials=props.get("credentials"), log=_log_to_stderr
            )
        except (
            docker.errors.DockerException,
            requests.exceptions.ConnectionError,
            urllib3.exceptions.HTTPError,  # the build stream broke (e.g. dockerd restarted)
        ) as error:
            raise RuntimeError(
                f"building {props['tag']}: the Docker engine failed or went away ({error}); "
                "check it runs (`make dockerd`), then `pulumi up` again"
            ) from error
        return {**props, "image_id": built.image_id, "reference": reference}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props)
        return CreateResult(id_=props["tag"], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if olds.get("tag") != news.get("tag") or olds.get("repository") != news.get("repository"):
            return DiffResult(changes=True, replaces=["tag"], delete_before_replace=False)
        changed = [key for key in _REBUILD_KEYS if olds.get(key) != news.get(key)]
        if not changed and not olds.get("reference"):
            changed.append("reference")  # state from before images were pushed
        if not changed and not self._image_present(olds):
            changed.append("image_id")
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def _image_present(self, olds: dict[str, Any]) -> bool:
        """The tag still points at the image we built (someone may have removed or re-tagged it)."""
        try:
            client = _docker_client()
            return bool(client.images.get(olds["tag"]).id == olds.get("image_id"))
        except Exception:
            # No engine reachable during a preview: report what the state says.
            return True

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._build(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        import docker.errors

        client = _docker_client()
        # Untags only; the image goes too only when this was its last tag.
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(props["tag"], noprune=True)


@dataclass(frozen=True, kw_only=True)
class ModelImageArgs:
    repository: str
    #: where the image is pushed: `127.0.0.1:5000` (the embedded registry) or your own
    registry: str
    bundle_digest: str
    bundle_dir: Path
    #: content hash of everything the build reads (see build_context_hash)
    context_hash: str
    #: `user:token` for the registry, a Pulumi secret (liftlock:registryCredentials)
    credentials: pulumi.Input[str] | None = None


class _ModelImageResource(pulumi.dynamic.Resource, module="liftlock", name="ModelImage"):
    image_id: pulumi.Output[str]
    tag: pulumi.Output[str]
    reference: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            ModelImageProvider(), name, {**props, "image_id": None, "reference": None}, opts
        )


class ModelImage(pulumi.ComponentResource):
    image_id: pulumi.Output[str]
    tag: pulumi.Output[str]
    #: `<registry>/<repository>@sha256:<manifest digest>`
    reference: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:ml:ModelImage", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        tag = image_tag(args.repository, args.bundle_digest, args.registry)
        props: dict[str, Any] = {
            "repository": args.repository,
            "registry": args.registry,
            "tag": tag,
            "bundle_digest": args.bundle_digest,
            "bundle_dir": str(args.bundle_dir),
            "context_hash": args.context_hash,
        }
        if args.credentials is not None:
            props["credentials"] = pulumi.Output.secret(args.credentials)
        built = _ModelImageResource(f"{name}-build", props, child)
        self.image_id = built.image_id
        self.tag = built.tag
        self.reference = built.reference
        self.register_outputs(
            {"image_id": self.image_id, "tag": self.tag, "reference": self.reference}
        )
