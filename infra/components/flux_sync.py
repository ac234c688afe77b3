"""FluxSync: the Flux `GitRepository` + `Kustomization` that make a cluster pull `deploy/<stack>`.

The Flux flavour of GitOpsApplication (liftlock:gitops.controller: flux, the default). Rendered
apart from the manifests it applies (deploy/flux/<stack>/), so the Kustomization does not manage
itself; a cluster running Flux is pointed at it once (`kubectl apply -R -f deploy/flux/<stack>`).
The Kustomization prunes what leaves the folder, waits until every applied object is healthy
(what `liftlock.cluster.flux.wait_for_revision` reads: Ready and `lastAppliedRevision`), and puts
the objects in the stack's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
SOURCE_INTERVAL = "1m"
KUSTOMIZATION_INTERVAL = "5m"
RETRY_INTERVAL = "30s"
HEALTH_TIMEOUT = "3m"
#: the source artifact holds only the rendered manifests
SOURCE_IGNORE = "/*\n!/deploy/\n"


@dataclass(frozen=True, kw_only=True)
class FluxSyncArgs:
    stack: str
    repo_url: str
    #: the branch Flux follows
    revision: str
    #: folder of the rendered manifests, relative to the repository root
    path: str
    flux_namespace: str
    target_namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


def git_repository_spec(repo_url: str, branch: str) -> dict[str, Any]:
    return {
        "url": repo_url,
        "ref": {"branch": branch},
        "interval": SOURCE_INTERVAL,
        "ignore": SOURCE_IGNORE,
    }


def kustomization_spec(*, path: str, target_namespace: str, source: str) -> dict[str, Any]:
    return {
        "interval": KUSTOMIZATION_INTERVAL,
        "retryInterval": RETRY_INTERVAL,
        "path": f"./{path.removeprefix('./')}",
        "prune": True,
        "wait": True,
        "timeout": HEALTH_TIMEOUT,
        "targetNamespace": target_namespace,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }


class FluxSync(pulumi.ComponentResource):
    kustomization_name: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: FluxSyncArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:gitops:FluxSync", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        object_name = f"liftlock-{args.stack}"

        def metadata() -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=args.flux_namespace,
                labels=args.labels,
                annotations=args.annotations,
            )

        source = k8s.apiextensions.CustomResource(
            f"{name}-source",
            api_version=SOURCE_API,
            kind="GitRepository",
            metadata=metadata(),
            spec=git_repository_spec(args.repo_url, args.revision),
            opts=child,
        )
        kustomization = k8s.apiextensions.CustomResource(
            f"{name}-kustomization",
            api_version=KUSTOMIZE_API,
            kind="Kustomization",
            metadata=metadata(),
            spec=kustomization_spec(
                path=args.path, target_namespace=args.target_namespace, source=object_name
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[source])),
        )
        self.kustomization_name = kustomization.urn.apply(lambda _: object_name)
        self.register_outputs({"kustomization_name": self.kustomization_name})
