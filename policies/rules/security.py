"""Security rules: Pod Security Standard "restricted", no host access, no plaintext secrets."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from policies.model import (
    WORKLOAD_KINDS,
    KubeObject,
    RuleContext,
    containers,
    is_known,
    pod_spec,
    rule,
)

_ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
_ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}


def _container_label(container: Mapping[str, Any]) -> str:
    return f"container {container.get('name') or '<unnamed>'!r}"


@rule(
    name="pss-restricted",
    domain="security",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="Pods meet the Pod Security Standard 'restricted': non-root, no privilege "
    "escalation, all capabilities dropped, a RuntimeDefault seccomp profile.",
    fix="set securityContext: runAsNonRoot: true, seccompProfile.type: RuntimeDefault (pod), and "
    "allowPrivilegeEscalation: false, capabilities.drop: [ALL] (every container)",
)
def pss_restricted(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    spec = pod_spec(obj) or {}
    pod_context = spec.get("securityContext") or {}
    for container in containers(obj):
        where = _container_label(container)
        context = container.get("securityContext") or {}
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            yield f"{where}: runAsNonRoot is not true (pod or container securityContext)"
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            yield f"{where}: runAsUser is 0 (root)"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: allowPrivilegeEscalation is not false"
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"{where}: capabilities.drop does not include ALL"
        added = set(capabilities.get("add") or []) - _ALLOWED_ADDED_CAPABILITIES
        if added:
            yield f"{where}: adds capabilities {sorted(added)} (only NET_BIND_SERVICE is allowed)"
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get(
            "type"
        )
        if seccomp not in _ALLOWED_SECCOMP:
            yield f"{where}: seccompProfile.type is {seccomp!r}, not RuntimeDefault or Localhost"


@rule(
    name="no-privileged-containers",
    domain="security",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="No container runs privileged.",
    fix="remove securityContext.privileged (or set it to false) on every container",
)
def no_privileged_containers(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    for container in containers(obj):
        if (container.get("securityContext") or {}).get("privileged") is True:
            yield f"{_container_label(container)} runs privileged"


@rule(
    name="no-host-path-volumes",
    domain="security",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="No pod mounts a hostPath volume (the node's file system).",
    fix="use an emptyDir, a ConfigMap or a PersistentVolumeClaim instead of hostPath",
)
def no_host_path_volumes(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    for volume in (pod_spec(obj) or {}).get("volumes") or []:
        if volume.get("hostPath") is not None:
            path = (volume.get("hostPath") or {}).get("path")
            yield f"volume {volume.get('name')!r} mounts hostPath {path!r}"


@rule(
    name="no-host-namespaces",
    domain="security",
    scope="resource",
    kinds=WORKLOAD_KINDS,
    description="No pod shares the node's network, PID or IPC namespace.",
    fix="remove hostNetwork, hostPID and hostIPC from the pod spec (or set them to false)",
)
def no_host_namespaces(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    spec = pod_spec(obj) or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield f"{key} is true"


# Values that are credentials by their shape, whatever the key is called.
_SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")),
    ("bearer/API token", re.compile(r"\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]{16,}\b")),
)
# Keys that announce a secret: a literal value under such a key is a plaintext secret.
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential)", re.IGNORECASE
)
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
# Hex digests (sha256 of bundles, images) are high-entropy but not secrets: 4 bits per character
# at most. Random base64 keys reach ~5-6 bits per character.
_MIN_TOKEN_ENTROPY = 4.5


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_shape(key: str, value: Any) -> str | None:
    """What kind of secret `value` looks like (or None). `key` is the env var / ConfigMap key."""
    if not isinstance(value, str) or not value or not is_known(value):
        return None
    for label, pattern in _SECRET_SHAPES:
        if pattern.search(value):
            return label
    if _SECRET_KEY.search(key) and len(value) >= 8:
        return f"literal value under a secret-looking key {key!r}"
    for token in _TOKEN.findall(value):
        if _entropy(token) >= _MIN_TOKEN_ENTROPY:
            return "high-entropy token"
    return None


@rule(
    name="no-plaintext-secrets",
    domain="security",
    scope="resource",
    kinds=WORKLOAD_KINDS | {"ConfigMap"},
    description="No plaintext secret (key, token, password) in container env values or ConfigMaps.",
    fix="keep the value in a Secret managed outside the repository (e.g. an ExternalSecret) and "
    "reference it with env.valueFrom.secretKeyRef",
)
def no_plaintext_secrets(obj: KubeObject, ctx: RuleContext) -> Iterator[str]:
    if obj.get("kind") == "ConfigMap":
        for key, value in sorted((obj.get("data") or {}).items()):
            shape = secret_shape(key, value)
            if shape:
                yield f"data key {key!r} holds a {shape}"
        return
    for container in containers(obj):
        for variable in container.get("env") or []:
            name = str(variable.get("name") or "")
            shape = secret_shape(name, variable.get("value"))
            if shape:
                yield f"{_container_label(container)}: env {name!r} holds a {shape}"


RULES = (
    pss_restricted,
    no_privileged_containers,
    no_host_path_volumes,
    no_host_namespaces,
    no_plaintext_secrets,
)
