"""A real embedded registry (Debian docker-registry, liftlock.cluster.registry) on a free port,
with its data in a temporary folder: tests push and pull without touching 127.0.0.1:5000."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from liftlock.cluster import registry as embedded_registry
from liftlock.cluster.layout import Layout
from tests.serve.server_process import free_port


@contextlib.contextmanager
def running_registry(state_dir: Path) -> Iterator[Layout]:
    layout = Layout(state_dir=state_dir, registry_port=free_port())
    embedded_registry.start(layout, lambda line: None)
    try:
        yield layout
    finally:
        embedded_registry.stop(layout, lambda line: None)


def image_with_entrypoint(image: str, registry: str, entrypoint: list[str], tag: str) -> str:
    """An image FROM `image` whose entrypoint is `entrypoint`, pushed as
    `<registry>/liftlock-model:<tag>`: its manifest-digest reference (a broken or lying server
    on top of the real model image, for rollout and verify failures)."""
    import io
    import json
    import tarfile

    from infra.components.image_builder import docker_client, push_image, registry_repository

    dockerfile = f"FROM {image}\nENTRYPOINT {json.dumps(entrypoint)}\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    reference = f"{registry_repository(registry, 'liftlock-model')}:{tag}"
    docker_client().images.build(
        fileobj=context, custom_context=True, tag=reference, network_mode="none"
    )
    return push_image(reference, log=lambda line: None)
