"""ModelService: the model server on Kubernetes (targets `render` and `cluster`).

Namespace, ServiceAccount (no token), ConfigMap with the bundle manifest, Deployment meeting Pod
Security Standard "restricted", Service, HorizontalPodAutoscaler (when autoscaling is on),
PodDisruptionBudget (when at least two replicas run), NetworkPolicies (default deny, then only the
service port in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra.config import Autoscaling, Exposure, Resources

SERVICE_PORT = 8080
# The Open Inference Protocol's gRPC service (ml/serve/v2/grpc_service.py)
GRPC_PORT = 8081
#: the serving image runs as nobody:nogroup (infra/components/container/Dockerfile)
RUN_AS_USER = 65534
OBJECT_NAME = "liftlock-model"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
#: scratch space and logs per container: requested and capped, so no pod fills the node's disk
EPHEMERAL_STORAGE_REQUEST = "64Mi"
EPHEMERAL_STORAGE_LIMIT = "256Mi"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
DELETION_POLICY_ANNOTATION = "pulumi.com/deletionPropagationPolicy"
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"


@dataclass(frozen=True, kw_only=True)
class ModelServiceArgs:
    namespace: str
    image: pulumi.Input[str]
    replicas: int
    resources: Resources
    autoscaling: Autoscaling
    exposure: Exposure
    #: bundle.json as text, for the ConfigMap.
    bundle_manifest: str
    labels: dict[str, str]
    annotations: dict[str, str]
    selector: dict[str, str]
    #: False only against an API server without controllers (no pod ever becomes ready).
    wait_for_ready: bool = True
    #: A shared cluster (the embedded one outlives checkouts): this stack takes over fields
    #: another stack's apply left on the same objects (see engine_annotations).
    take_over: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


def restricted_pod_security() -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def restricted_container_security() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def resource_requirements(resources: Resources) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={
            "cpu": resources.requests.cpu,
            "memory": resources.requests.memory,
            "ephemeral-storage": EPHEMERAL_STORAGE_REQUEST,
        },
        limits={
            "cpu": resources.limits.cpu,
            "memory": resources.limits.memory,
            "ephemeral-storage": EPHEMERAL_STORAGE_LIMIT,
        },
    )


def spread_across_nodes(selector: dict[str, str]) -> k8s.core.v1.AffinityArgs:
    """Prefer one replica per node (preferred: a single-node cluster still runs them all)."""
    return k8s.core.v1.AffinityArgs(
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            preferred_during_scheduling_ignored_during_execution=[
                k8s.core.v1.WeightedPodAffinityTermArgs(
                    weight=100,
                    pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                        topology_key=HOSTNAME_TOPOLOGY,
                        label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                    ),
                )
            ]
        )
    )


def engine_annotations(wait_for_ready: bool, take_over: bool = False) -> dict[str, str]:
    """How the Kubernetes provider treats an object (metadata only, never a pod template).

    Without controllers (a bare API server) nothing becomes ready and no garbage collector
    clears the foreground-deletion finalizer: then skip the waiting and delete in background.
    On a cluster that outlives one checkout's state (the embedded one after another clone's
    `pulumi up`), server-side apply refuses fields another field manager set: `take_over`
    forces them, as `kubectl apply --server-side --force-conflicts` would."""
    found = {PATCH_FORCE_ANNOTATION: "true"} if take_over else {}
    if not wait_for_ready:
        found |= {SKIP_AWAIT_ANNOTATION: "true", DELETION_POLICY_ANNOTATION: "background"}
    return found


def minimum_replicas(replicas: int, autoscaling: Autoscaling) -> int:
    return autoscaling.min_replicas if autoscaling.enabled else replicas


class ModelService(pulumi.ComponentResource):
    namespace_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_url: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:ml:ModelService", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        annotations = {
            **args.annotations,
            **engine_annotations(args.wait_for_ready, args.take_over),
        }

        def metadata(object_name: str, **extra: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=namespace.metadata.name,
                labels={**args.labels, **extra},
                annotations=annotations,
            )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={
                    **args.labels,
                    # Admission enforces what the Deployment already meets.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
                annotations=annotations,
            ),
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=metadata(OBJECT_NAME),
            automount_service_account_token=False,
            opts=child,
        )
        manifest = k8s.core.v1.ConfigMap(
            f"{name}-bundle-manifest",
            metadata=metadata(f"{OBJECT_NAME}-bundle"),
            data={"bundle.json": args.bundle_manifest},
            immutable=False,
            opts=child,
        )
        pod_labels = {**args.labels, **args.selector}
        container = k8s.core.v1.ContainerArgs(
            name="model",
            image=args.image,
            image_pull_policy="IfNotPresent",
            ports=[
                k8s.core.v1.ContainerPortArgs(name="http", container_port=SERVICE_PORT),
                k8s.core.v1.ContainerPortArgs(name="grpc", container_port=GRPC_PORT),
            ],
            env=[
                k8s.core.v1.EnvVarArgs(name=key, value=value)
                for key, value in {
                    "LIFTLOCK_HOST": "0.0.0.0",
                    "LIFTLOCK_PORT": str(SERVICE_PORT),
                    "LIFTLOCK_GRPC_PORT": str(GRPC_PORT),
                    **args.extra_env,
                }.items()
            ],
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/v2/health/ready", port="http"),
                period_seconds=5,
                failure_threshold=3,
            ),
            # Loading the model under a small CPU limit can take tens of seconds: the startup
            # probe holds the liveness probe off until the server first answers (up to 2 min),
            # so a slow start is not killed and restarted in a loop.
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/v2/health/live", port="http"),
                period_seconds=2,
                failure_threshold=60,
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/v2/health/live", port="http"),
                period_seconds=10,
                failure_threshold=3,
            ),
            resources=resource_requirements(args.resources),
            security_context=restricted_container_security(),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(OBJECT_NAME),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # An enabled autoscaler owns the count: a replicas field here would reset it
                # on every sync.
                replicas=None if args.autoscaling.enabled else args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=1, max_unavailable=0
                    ),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=pod_labels, annotations=args.annotations
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        automount_service_account_token=False,
                        security_context=restricted_pod_security(),
                        affinity=spread_across_nodes(args.selector)
                        if minimum_replicas(args.replicas, args.autoscaling) >= 2
                        else None,
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="tmp",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi"),
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[manifest])),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(OBJECT_NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer" if args.exposure == "public" else "ClusterIP",
                selector=args.selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=SERVICE_PORT, target_port="http", protocol="TCP"
                    ),
                    k8s.core.v1.ServicePortArgs(
                        name="grpc", port=GRPC_PORT, target_port="grpc", protocol="TCP"
                    ),
                ],
            ),
            opts=child,
        )
        if args.autoscaling.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-autoscaler",
                metadata=metadata(OBJECT_NAME),
                spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                    scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                        api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
                    ),
                    min_replicas=args.autoscaling.min_replicas,
                    max_replicas=args.autoscaling.max_replicas,
                    metrics=[
                        k8s.autoscaling.v2.MetricSpecArgs(
                            type="Resource",
                            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                                name="cpu",
                                target=k8s.autoscaling.v2.MetricTargetArgs(
                                    type="Utilization",
                                    average_utilization=args.autoscaling.target_cpu_utilization,
                                ),
                            ),
                        )
                    ],
                ),
                opts=child,
            )
        if minimum_replicas(args.replicas, args.autoscaling) >= 2:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=metadata(OBJECT_NAME),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.selector),
                ),
                opts=child,
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=metadata("default-deny"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress", "Egress"],
            ),
            opts=child,
        )
        # internal: only pods of this namespace may call the model; public: anyone.
        sources = (
            [
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"kubernetes.io/metadata.name": args.namespace}
                    )
                )
            ]
            if args.exposure == "internal"
            else None
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-http",
            metadata=metadata(f"{OBJECT_NAME}-allow-http"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.selector),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=sources,
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")
                            for port in (SERVICE_PORT, GRPC_PORT)
                        ],
                    )
                ],
            ),
            opts=child,
        )

        self.namespace_name = namespace.metadata.name
        self.service_name = service.metadata.name
        self.service_url = pulumi.Output.concat(
            "http://",
            service.metadata.name,
            ".",
            namespace.metadata.name,
            f".svc.cluster.local:{SERVICE_PORT}",
        )
        self.register_outputs(
            {
                "namespace_name": self.namespace_name,
                "service_name": self.service_name,
                "service_url": self.service_url,
            }
        )
