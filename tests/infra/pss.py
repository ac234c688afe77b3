"""Pod Security Standard "restricted", checked on a pod spec (camelCase, as in manifests).

The rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted
profile) that a workload spec can break; each violation names the field.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_CAPABILITIES_ADD = {"NET_BIND_SERVICE"}


def restricted_violations(pod_spec: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    pod_security = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"{where}: spec.{flag} must not be true")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"{where}: volume {volume.get('name')} uses {sorted(kinds)}")
    containers = [
        *(pod_spec.get("initContainers") or []),
        *(pod_spec.get("containers") or []),
    ]
    if not containers:
        problems.append(f"{where}: no containers")
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type")
    for container in containers:
        name = f"{where}: container {container.get('name')}"
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: securityContext.allowPrivilegeEscalation must be false")
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot must be true (container or pod)")
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        if user == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (security.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities.drop must include ALL")
        extra = set(capabilities.get("add") or []) - ALLOWED_CAPABILITIES_ADD
        if extra:
            problems.append(f"{name}: capabilities.add {sorted(extra)} not allowed")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']} not allowed")
    return problems


def pod_spec_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload manifest (Deployment, CronJob, ...), None for others."""
    spec = manifest.get("spec") or {}
    kind = manifest.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return dict(spec["template"]["spec"])
    if kind == "CronJob":
        return dict(spec["jobTemplate"]["spec"]["template"]["spec"])
    if kind == "Pod":
        return dict(spec)
    return None
