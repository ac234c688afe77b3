"""Cluster target: find the API server of a kubeconfig context and check it answers.

The Kubernetes provider only warns about an unreachable cluster during a preview and its error
does not say which context was meant; this check fails first and names the context.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CONNECT_TIMEOUT_SECONDS = 3.0


class ClusterUnreachableError(RuntimeError):
    """The kubeconfig context is missing or its API server does not accept connections."""


#: the stack keys that name the kubeconfig and context (cluster target; render's applyTo)
CLUSTER_KEYS = "liftlock:"
APPLY_TO_KEYS = "liftlock:applyTo."


def context_server(kubeconfig: Path, context: str, *, keys: str = CLUSTER_KEYS) -> str:
    """The API server URL that `context` points at in `kubeconfig`."""
    if not kubeconfig.is_file():
        raise ClusterUnreachableError(
            f"kubeconfig context {context!r}: no kubeconfig at {kubeconfig} "
            f"(fix: start the embedded cluster with `liftlock cluster up`, which writes it, or "
            f"set {keys}kubeconfig to your cluster's kubeconfig)"
        )
    with kubeconfig.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    if context not in contexts:
        known = ", ".join(sorted(str(name) for name in contexts)) or "none"
        raise ClusterUnreachableError(
            f"kubeconfig context {context!r}: not in {kubeconfig} (contexts there: {known}); "
            f"fix: {keys}kubeContext"
        )
    cluster_name = contexts[context].get("cluster")
    clusters = {c.get("name"): c.get("cluster") or {} for c in document.get("clusters") or []}
    server = clusters.get(cluster_name, {}).get("server")
    if not server:
        raise ClusterUnreachableError(
            f"kubeconfig context {context!r}: cluster {cluster_name!r} has no server "
            f"in {kubeconfig}"
        )
    return str(server)


def check_cluster_reachable(kubeconfig: Path, context: str, *, keys: str = CLUSTER_KEYS) -> str:
    """Return the server URL, or raise ClusterUnreachableError naming the context."""
    server = context_server(kubeconfig, context, keys=keys)
    parts = urlsplit(server)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            return server
    except OSError as error:
        raise ClusterUnreachableError(
            f"kubeconfig context {context!r}: API server {server} unreachable ({error}); "
            f"fix: start the cluster (the embedded one: `liftlock cluster up`) or point "
            f"{keys}kubeContext at one that runs (kubeconfig {kubeconfig})"
        ) from None
