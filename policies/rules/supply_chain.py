"""Supply-chain rules: images pinned by digest, images only from allowed registries."""

from __future__ import annotations

import re
from collections.abc import Iterator

from policies.model import WORKLOAD_KINDS, KubeObject, RuleContext, containers, is_known, rule

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
DEFAULT_REGISTRY = "docker.io"


def image_repository(image: str) -> str:
    """The fully qualified repository of an image reference, without tag or digest.

    `nginx:1.27` -> `docker.io/library/nginx`;
    `ghcr.io/acme/model@sha256:…` -> `ghcr.io/acme/model`.
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # a tag (a port can only appear in the first component)
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    if not rest:
        return f"{DEFAULT_REGISTRY}/library/{name}"
    return f"{DEFAULT_REGISTRY}/{name}"


def registry_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    repository = image_repository(image)
    return any(
        repository == entry.rstrip("/") or repository.startswith(entry.rstrip("/") + "/")
        for entry in allowed
    )


@rule(
    name="image-pinned-by-digest",
    domain="supply_chain",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="Container images are pinned by digest (repo@sha256:…) where the stack requires it "
    "(thresholds.requireImageDigest).",
    fix="set liftlock:image to repo@sha256:<64 hex> (`liftlock promote` writes it)",
)
def image_pinned_by_digest(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    if not ctx.thresholds.require_image_digest:
        return
    for container in containers(obj):
        image = container.get("image")
        if image is None:
            yield f"container {container.get('name')!r} has no image"
        elif is_known(image) and not _DIGEST.search(str(image)):
            yield f"container {container.get('name')!r} image {image!r} is not pinned by digest"


@rule(
    name="registry-allowed",
    domain="supply_chain",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="Container images come only from the stack's allowed registries "
    "(thresholds.allowedRegistries).",
    fix="push the image to an allowed registry and reference it there, or add the registry to "
    "thresholds.allowedRegistries in policies/gates.yaml (a reviewed change)",
)
def registry_allowed_rule(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    allowed = ctx.thresholds.allowed_registries
    for container in containers(obj):
        image = container.get("image")
        if isinstance(image, str) and is_known(image) and not registry_allowed(image, allowed):
            yield (
                f"container {container.get('name')!r} image {image!r} is from "
                f"{image_repository(image)!r}, not an allowed registry {list(allowed)}"
            )


RULES = (image_pinned_by_digest, registry_allowed_rule)
