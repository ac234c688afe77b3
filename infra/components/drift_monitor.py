"""DriftMonitor: a CronJob that runs `liftlock drift` against the model service (staging, prod).

The namespace denies all traffic by default (ModelService), so the monitor brings its own
NetworkPolicy: out to the model's port and to cluster DNS, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.model_service import (
    EPHEMERAL_STORAGE_LIMIT,
    EPHEMERAL_STORAGE_REQUEST,
    SERVICE_PORT,
    engine_annotations,
    restricted_container_security,
    restricted_pod_security,
)

OBJECT_NAME = "liftlock-drift"
#: a run that could not start within this long after its time is skipped, not queued
STARTING_DEADLINE_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class DriftMonitorArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    schedule: str
    #: the drift command, e.g. ["liftlock", "drift", "--inputs", <service URL>]
    command: Sequence[pulumi.Input[str]]
    labels: dict[str, str]
    annotations: dict[str, str]
    #: labels of the model pods the monitor may call
    model_selector: dict[str, str]
    service_account_name: pulumi.Input[str]
    #: False only against an API server without controllers (see engine_annotations)
    wait_for_ready: bool = True
    #: take over fields another stack applied on a shared cluster (see engine_annotations)
    take_over: bool = False


class DriftMonitor(pulumi.ComponentResource):
    cron_job_name: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: DriftMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:ml:DriftMonitor", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        job_labels = {**args.labels, "app.kubernetes.io/component": "drift-monitor"}

        def metadata(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=args.namespace,
                labels=job_labels,
                annotations={
                    **args.annotations,
                    **engine_annotations(args.wait_for_ready, args.take_over),
                },
            )

        pod_spec = k8s.core.v1.PodSpecArgs(
            restart_policy="Never",
            service_account_name=args.service_account_name,
            automount_service_account_token=False,
            security_context=restricted_pod_security(),
            containers=[
                k8s.core.v1.ContainerArgs(
                    name="drift",
                    image=args.image,
                    image_pull_policy="IfNotPresent",
                    command=list(args.command),
                    resources=k8s.core.v1.ResourceRequirementsArgs(
                        requests={
                            "cpu": "100m",
                            "memory": "128Mi",
                            "ephemeral-storage": EPHEMERAL_STORAGE_REQUEST,
                        },
                        limits={
                            "cpu": "500m",
                            "memory": "256Mi",
                            "ephemeral-storage": EPHEMERAL_STORAGE_LIMIT,
                        },
                    ),
                    security_context=restricted_container_security(),
                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
                )
            ],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")
                )
            ],
        )
        cron_job = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=metadata(OBJECT_NAME),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=args.schedule,
                starting_deadline_seconds=STARTING_DEADLINE_SECONDS,
                concurrency_policy="Forbid",
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=3,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=job_labels),
                    spec=k8s.batch.v1.JobSpecArgs(
                        backoff_limit=1,
                        active_deadline_seconds=600,
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(
                                labels=job_labels, annotations=args.annotations
                            ),
                            spec=pod_spec,
                        ),
                    ),
                ),
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-egress",
            metadata=metadata(f"{OBJECT_NAME}-allow-egress"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"app.kubernetes.io/component": "drift-monitor"}
                ),
                policy_types=["Egress"],
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels=args.model_selector
                                )
                            )
                        ],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(
                                port=SERVICE_PORT, protocol="TCP"
                            )
                        ],
                    ),
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"kubernetes.io/metadata.name": "kube-system"}
                                )
                            )
                        ],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="UDP"),
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="TCP"),
                        ],
                    ),
                ],
            ),
            opts=child,
        )
        self.cron_job_name = cron_job.metadata.name
        self.register_outputs({"cron_job_name": self.cron_job_name})
