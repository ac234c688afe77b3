"""Kubernetes objects for rule tests: compliant by default, broken by the test that needs it."""

from __future__ import annotations

import copy
from typing import Any

DIGEST = "sha256:" + "ab" * 32
IMAGE = "ghcr.io/liftlock/model@" + DIGEST
LABELS = {
    "app.kubernetes.io/name": "liftlock-model",
    "liftlock.io/team": "ml-platform",
    "liftlock.io/owner": "alice",
    "liftlock.io/cost-center": "cc-42",
    "liftlock.io/bundle-digest": "ab" * 16,
    "liftlock.io/data-digest": "cd" * 16,
}
POD_LABELS = {"app.kubernetes.io/name": "liftlock-model", "liftlock.io/stack": "prod"}


def metadata(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "liftlock-prod", "labels": dict(LABELS)}


SPREAD = [
    {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(POD_LABELS)},
    }
]


def deployment(replicas: int | None = 3) -> dict[str, Any]:
    """replicas=None: the field left out (an autoscaler scales it)."""
    container = {
        "name": "model",
        "image": IMAGE,
        "env": [{"name": "LIFTLOCK_BUNDLE_DIGEST", "value": DIGEST}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
            "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }
    replica_field = {} if replicas is None else {"replicas": replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("model"),
        "spec": {
            **replica_field,
            "selector": {"matchLabels": dict(POD_LABELS)},
            "template": {
                "metadata": {"labels": dict(POD_LABELS)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "topologySpreadConstraints": SPREAD,
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service(service_type: str = "ClusterIP") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("model"),
        "spec": {"type": service_type, "selector": dict(POD_LABELS), "ports": [{"port": 80}]},
    }


def config_map(data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("bundle"),
        "data": data if data is not None else {"bundle.json": f'{{"digest": "{DIGEST}"}}'},
    }


def pdb() -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata("model"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(POD_LABELS)}},
    }


def hpa() -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata("model"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
            "minReplicas": 3,
            "maxReplicas": 6,
        },
    }


def prod_stack() -> list[dict[str, Any]]:
    return [deployment(replicas=None), service(), config_map(), pdb(), hpa()]


def cron_job(starting_deadline: int | None = 300) -> dict[str, Any]:
    """The drift monitor's shape: a CronJob whose pod runs the model image."""
    template = deployment()["spec"]["template"]
    deadline = {} if starting_deadline is None else {"startingDeadlineSeconds": starting_deadline}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata("drift"),
        "spec": {
            "schedule": "7 * * * *",
            **deadline,
            "jobTemplate": {"spec": {"template": template}},
        },
    }


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def clone(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)
