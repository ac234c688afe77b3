"""What a stack is made of, per target. `__main__.py` calls `declare_stack` and exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from infra.components.drift_monitor import DriftMonitor, DriftMonitorArgs
from infra.components.flux_sync import FluxSync, FluxSyncArgs
from infra.components.gitops_application import GitOpsApplication, GitOpsApplicationArgs
from infra.components.local_service import LocalService, LocalServiceArgs
from infra.components.model_image import ModelImage, ModelImageArgs, build_context_hash
from infra.components.model_service import (
    OBJECT_NAME,
    SERVICE_PORT,
    ModelService,
    ModelServiceArgs,
)
from infra.components.smoke_check import SmokeCheck, SmokeCheckArgs
from infra.config import StackConfig, StackConfigError
from infra.kubeconfig import APPLY_TO_KEYS, check_cluster_reachable
from infra.lineage import (
    Lineage,
    data_digest_of,
    find_bundle_manifest,
    git_commit_of_digest,
    object_annotations,
    object_labels,
    selector_labels,
)


@dataclass(frozen=True, kw_only=True)
class StackOutputs:
    target: str
    service_url: pulumi.Input[str]
    bundle_digest: str
    image: pulumi.Input[str]
    render_dir: str | None
    #: the kube context a render stack's objects were also applied to (liftlock:applyTo)
    applied_to: str | None = None


def declare_stack(config: StackConfig, root: Path) -> StackOutputs:
    if config.target == "docker":
        return declare_docker_stack(config, root)
    return declare_kubernetes_stack(config, root)


def declare_docker_stack(config: StackConfig, root: Path) -> StackOutputs:
    """dev: the image with the bundle baked in, run as a container on 127.0.0.1."""
    bundle_dir = (root / config.bundle_dir).resolve()
    digest, _manifest = find_bundle_manifest(
        None, bundle_dir=bundle_dir, deploy_dir=root / "deploy"
    )
    if config.bundle_digest is not None and config.bundle_digest != digest:
        raise StackConfigError(
            f"stacks/Pulumi.{config.stack}.yaml",
            [
                f"liftlock:bundleDigest = {config.bundle_digest}: the bundle in "
                f"{config.bundle_dir}/ has digest {digest}; set the key to that digest, or "
                "remove it to deploy whatever the bundle folder holds"
            ],
        )
    labels = {
        "liftlock.io/stack": config.stack,
        "liftlock.io/bundle-digest": digest,
        "liftlock.io/team": config.labels.team,
        "liftlock.io/owner": config.labels.owner,
        "liftlock.io/cost-center": config.labels.cost_center,
        # Which checkout owns the container: a stale one is replaced only by its own project.
        "liftlock.io/project-root": str(root),
    }
    image = ModelImage(
        f"{config.stack}-model-image",
        args=ModelImageArgs(
            repository=config.image_repository,
            registry=config.registry,
            # A schema-declared secret (infra/config.py): a secret Output, encrypted in state.
            credentials=config.secrets.get("registryCredentials"),
            bundle_digest=digest,
            bundle_dir=bundle_dir,
            context_hash=build_context_hash(bundle_dir),
        ),
    )
    service = LocalService(
        f"{config.stack}-model-service",
        args=LocalServiceArgs(
            image_id=image.image_id,
            host_port=config.host_port,
            container_name=container_name(config),
            labels=labels,
        ),
    )
    return StackOutputs(
        target=config.target,
        service_url=service.url,
        bundle_digest=digest,
        image=image.reference,
        render_dir=None,
    )


def container_name(config: StackConfig) -> str:
    """`liftlock-model-dev`: one container per image repository and stack."""
    return f"{config.image_repository.replace('/', '-')}-{config.stack}"


def kubernetes_provider(config: StackConfig, root: Path) -> k8s.Provider:
    """Render and cluster are separate provider settings: render mode refuses a kubeconfig."""
    if config.target == "render":
        assert config.render_dir is not None
        return k8s.Provider(
            f"{config.stack}-kubernetes",
            render_yaml_to_directory=str(root / config.render_dir),
        )
    kubeconfig = config.kubeconfig or str(Path.home() / ".kube" / "config")
    kubeconfig_path = Path(kubeconfig) if Path(kubeconfig).is_absolute() else root / kubeconfig
    assert config.kube_context is not None
    check_cluster_reachable(kubeconfig_path, config.kube_context)
    return k8s.Provider(
        f"{config.stack}-kubernetes",
        kubeconfig=str(kubeconfig_path),
        context=config.kube_context,
        delete_unreachable=False,
    )


def apply_to_cluster(config: StackConfig, root: Path) -> tuple[Path, str] | None:
    """`applyTo`'s kubeconfig and context; an update checks the cluster answers before anything
    is declared (so a refused `up` renders nothing either), while a preview on a machine whose
    cluster is down still shows the render."""
    if config.target != "render" or config.apply_to is None:
        return None
    kubeconfig = Path(config.apply_to.kubeconfig).expanduser()
    if not kubeconfig.is_absolute():
        kubeconfig = root / kubeconfig
    context = config.apply_to.kube_context
    if not pulumi.runtime.is_dry_run():
        check_cluster_reachable(kubeconfig, context, keys=APPLY_TO_KEYS)
    return kubeconfig, context


def declare_applied_copy(
    config: StackConfig,
    root: Path,
    digest: str,
    cluster: tuple[Path, str],
    declare_workloads: Callable[[str, pulumi.ResourceOptions, bool], ModelService],
) -> None:
    """The rendered objects again, through a provider on `applyTo`'s cluster: the Kubernetes
    provider waits for the rollout (a failure names the pods' reasons) within the timeout, then
    one prediction goes through a port-forward."""
    assert config.apply_to is not None and config.namespace and config.image
    kubeconfig, context = cluster
    provider = k8s.Provider(
        f"{config.stack}-cluster-kubernetes",
        kubeconfig=str(kubeconfig),
        context=context,
        delete_unreachable=True,
    )
    timeout = f"{config.apply_to.rollout_timeout_seconds}s"
    applied = declare_workloads(
        f"{config.stack}-cluster",
        pulumi.ResourceOptions(
            providers={"kubernetes": provider},
            custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
        ),
        # The embedded cluster outlives a checkout's state: a fresh clone's first `up` takes
        # over the objects an earlier checkout applied there instead of failing on them.
        True,
    )
    SmokeCheck(
        f"{config.stack}-cluster-smoke",
        args=SmokeCheckArgs(
            kubeconfig=str(kubeconfig),
            context=context,
            namespace=applied.namespace_name,
            service=applied.service_name,
            port=SERVICE_PORT,
            image=config.image,
            bundle_digest=digest,
            bundle_dir=(root / config.bundle_dir).resolve(),
        ),
        opts=pulumi.ResourceOptions(depends_on=[applied]),
    )


def declare_gitops_sync(
    config: StackConfig, labels: dict[str, str], annotations: dict[str, str], root: Path
) -> None:
    """The GitOps controller's objects, rendered to deploy/<controller>/<stack>: Flux's
    GitRepository + Kustomization (the default), or the Argo CD Application."""
    assert config.gitops is not None and config.namespace is not None
    assert config.render_dir is not None and config.gitops_render_dir is not None
    gitops = config.gitops
    provider = k8s.Provider(
        f"{config.stack}-{gitops.controller}-render",
        render_yaml_to_directory=str(root / config.gitops_render_dir),
    )
    opts = pulumi.ResourceOptions(providers={"kubernetes": provider})
    if gitops.controller == "flux":
        FluxSync(
            f"{config.stack}-gitops-flux",
            args=FluxSyncArgs(
                stack=config.stack,
                repo_url=gitops.repo_url,
                revision=gitops.revision,
                path=config.render_dir,
                flux_namespace=gitops.flux_namespace,
                target_namespace=config.namespace,
                labels=labels,
                annotations=annotations,
            ),
            opts=opts,
        )
        return
    GitOpsApplication(
        f"{config.stack}-gitops",
        args=GitOpsApplicationArgs(
            stack=config.stack,
            repo_url=gitops.repo_url,
            revision=gitops.revision,
            path=config.render_dir,
            argocd_namespace=gitops.argocd_namespace,
            destination_namespace=config.namespace,
            labels=labels,
            annotations=annotations,
        ),
        opts=opts,
    )


def declare_kubernetes_stack(config: StackConfig, root: Path) -> StackOutputs:
    assert config.bundle_digest and config.image and config.namespace and config.resources
    applied_cluster = apply_to_cluster(config, root)
    digest, manifest = find_bundle_manifest(
        config.bundle_digest,
        bundle_dir=(root / config.bundle_dir).resolve(),
        deploy_dir=root / "deploy",
    )
    lineage = Lineage(
        bundle_digest=digest,
        data_digest=data_digest_of(manifest),
        git_commit=git_commit_of_digest(
            root, root / "stacks" / f"Pulumi.{config.stack}.yaml", digest
        ),
    )
    labels = object_labels(config, lineage)
    annotations = object_annotations(lineage)
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True)

    def declare_workloads(
        prefix: str, opts: pulumi.ResourceOptions, take_over: bool = False
    ) -> ModelService:
        assert config.image and config.namespace and config.resources
        service = ModelService(
            f"{prefix}-model",
            args=ModelServiceArgs(
                namespace=config.namespace,
                image=config.image,
                replicas=config.replicas,
                resources=config.resources,
                autoscaling=config.autoscaling,
                exposure=config.exposure,
                bundle_manifest=manifest_text,
                labels=labels,
                annotations=annotations,
                selector=selector_labels(config),
                wait_for_ready=config.wait_for_ready,
                take_over=take_over,
            ),
            opts=opts,
        )
        if config.drift_schedule:
            DriftMonitor(
                f"{prefix}-drift",
                args=DriftMonitorArgs(
                    namespace=service.namespace_name,
                    image=config.image,
                    schedule=config.drift_schedule,
                    # The image sets LIFTLOCK_BUNDLE; the server exposes what it served at
                    # /v1/inputs.
                    command=["liftlock", "drift", "--inputs", service.service_url],
                    labels=labels,
                    annotations=annotations,
                    model_selector=selector_labels(config),
                    service_account_name=OBJECT_NAME,
                    wait_for_ready=config.wait_for_ready,
                    take_over=take_over,
                ),
                opts=pulumi.ResourceOptions.merge(
                    opts, pulumi.ResourceOptions(depends_on=[service])
                ),
            )
        return service

    provider = kubernetes_provider(config, root)
    service = declare_workloads(
        config.stack, pulumi.ResourceOptions(providers={"kubernetes": provider})
    )
    if applied_cluster is not None:
        declare_applied_copy(config, root, digest, applied_cluster, declare_workloads)
    if config.target == "render" and config.gitops is not None:
        declare_gitops_sync(config, labels, annotations, root)
    return StackOutputs(
        target=config.target,
        service_url=service.service_url,
        bundle_digest=digest,
        image=config.image,
        render_dir=config.render_dir,
        applied_to=applied_cluster[1] if applied_cluster else None,
    )
