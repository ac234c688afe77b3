"""GitOpsApplication: the Argo CD `Application` that makes a cluster pull `deploy/<stack>`.

Rendered apart from the manifests it syncs (deploy/argocd/<stack>/), so the Application does not
manage itself; Argo CD is pointed at it once (`kubectl apply -f deploy/argocd/<stack>/...`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True, kw_only=True)
class GitOpsApplicationArgs:
    stack: str
    repo_url: str
    revision: str
    #: folder of the rendered manifests, relative to the repository root
    path: str
    argocd_namespace: str
    destination_namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class GitOpsApplication(pulumi.ComponentResource):
    application_name: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: GitOpsApplicationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:gitops:Application", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        application = k8s.apiextensions.CustomResource(
            f"{name}-application",
            api_version="argoproj.io/v1alpha1",
            kind="Application",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"liftlock-{args.stack}",
                namespace=args.argocd_namespace,
                labels=args.labels,
                annotations=args.annotations,
            ),
            spec={
                "project": "default",
                "source": {
                    "repoURL": args.repo_url,
                    "targetRevision": args.revision,
                    "path": args.path,
                    "directory": {"recurse": True},
                },
                "destination": {
                    "server": "https://kubernetes.default.svc",
                    "namespace": args.destination_namespace,
                },
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": ["CreateNamespace=false"],
                },
            },
            opts=child,
        )
        self.application_name = application.urn.apply(lambda _: f"liftlock-{args.stack}")
        self.register_outputs({"application_name": self.application_name})
