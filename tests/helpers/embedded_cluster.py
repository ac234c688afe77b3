"""The real embedded cluster for tests: `liftlock cluster up` in a temporary state folder with
the registry, the API server and etcd on free ports (the bridge, the pod range and the kubelet's
ports are the machine's: one cluster at a time), `down` after, and what the host looked like
before `up`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from liftlock.cluster import embedded, kubernetes
from liftlock.cluster.layout import Layout
from liftlock.cluster.process import ClusterError
from tests.helpers.host_state import HostState
from tests.serve.server_process import free_port

NODE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet", "kube-proxy")


@dataclass(frozen=True)
class RunningCluster:
    layout: Layout
    before: HostState
    lines: list[str] = field(default_factory=list)


def require_node_binaries() -> None:
    for name in (*NODE_BINARIES, "kubectl"):
        try:
            kubernetes.binary(name)
        except ClusterError as error:
            pytest.fail(str(error))


@contextlib.contextmanager
def running_cluster(state_dir: Path) -> Iterator[RunningCluster]:
    require_node_binaries()
    layout = Layout(
        state_dir=state_dir,
        registry_port=free_port(),
        apiserver_port=free_port(),
        etcd_client_port=free_port(),
        etcd_peer_port=free_port(),
    )
    running = RunningCluster(layout=layout, before=HostState.capture())
    try:
        embedded.up(layout, running.lines.append)
        yield running
    finally:
        embedded.down(layout, running.lines.append)
