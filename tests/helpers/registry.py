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
