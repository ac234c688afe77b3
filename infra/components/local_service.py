"""LocalService: the model server as a container on the local Docker engine (target `docker`).

A dynamic provider using the `docker` Python package: read-only root filesystem, non-root user,
no capabilities, a health check, host networking with the server bound to 127.0.0.1 on the
configured port (so nothing listens beyond this machine). A new image replaces the container;
create waits until /readyz answers, so after `pulumi up` the model can be called at once.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

#: nobody:nogroup, as the serving image declares (infra/components/container/Dockerfile)
RUN_AS = "65534:65534"
READY_TIMEOUT_SECONDS = 90.0
MANAGED_LABEL = "liftlock.io/managed-by"
PROJECT_LABEL = "liftlock.io/project-root"
#: any change to these recreates the container (same name and port: delete first)
_REPLACE_KEYS = ("image_id", "container_name", "host_port", "environment", "labels")


def service_url(host_port: int) -> str:
    return f"http://127.0.0.1:{host_port}"


def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def wait_until_ready(url: str, timeout: float, is_alive: Any = None) -> None:
    """Poll `<url>/readyz` until it answers 200; raise TimeoutError naming the URL."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except OSError as error:
            last_error = str(error)
        if is_alive is not None and not is_alive():
            raise TimeoutError(f"{url}/readyz: the container exited ({last_error})")
        time.sleep(0.5)
    raise TimeoutError(f"{url}/readyz: not ready after {timeout:.0f}s ({last_error})")


class LocalServiceProvider(ResourceProvider):
    """id = the container id."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        import docker.errors

        client = _docker_client()
        name = props["container_name"]
        try:
            stale = client.containers.get(name)
        except docker.errors.NotFound:
            stale = None
        if stale is not None:
            # Left over by a failed run of this same project: replace it. Anything else: refuse.
            ours = dict(props.get("labels") or {}).get(PROJECT_LABEL)
            if (
                stale.labels.get(MANAGED_LABEL) != "pulumi"
                or stale.labels.get(PROJECT_LABEL) != ours
            ):
                owner = stale.labels.get(PROJECT_LABEL, "something else")
                raise RuntimeError(
                    f"container {name!r} already exists (made by {owner}); remove it "
                    f"(`docker rm -f {name}`) or set another liftlock:imageRepository"
                )
            stale.remove(force=True)
        port = int(props["host_port"])
        environment = {
            **dict(props.get("environment") or {}),
            "LIFTLOCK_HOST": "127.0.0.1",
            "LIFTLOCK_PORT": str(port),
        }
        probe = (
            "import urllib.request; "
            f"urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=2)"
        )
        container = client.containers.run(
            props["image_id"],
            name=name,
            detach=True,
            network_mode="host",
            read_only=True,
            user=RUN_AS,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            tmpfs={"/tmp": "rw,noexec,nosuid,size=64m"},
            environment=environment,
            labels={**dict(props.get("labels") or {}), MANAGED_LABEL: "pulumi"},
            healthcheck={
                "test": ["CMD", "python", "-c", probe],
                "interval": 5_000_000_000,
                "timeout": 3_000_000_000,
                "retries": 3,
                "start_period": 10_000_000_000,
            },
            restart_policy={"Name": "unless-stopped"},
        )
        url = service_url(port)

        def is_alive() -> bool:
            container.reload()
            return bool(container.status in ("created", "running", "restarting"))

        try:
            wait_until_ready(url, READY_TIMEOUT_SECONDS, is_alive)
        except TimeoutError as error:
            logs = container.logs(tail=30).decode(errors="replace")
            container.remove(force=True)
            raise RuntimeError(
                f"container {name}: {error}\n--- last log lines ---\n{logs}"
            ) from None
        return CreateResult(
            id_=container.id, outs={**props, "url": url, "container_id": container.id}
        )

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in _REPLACE_KEYS if olds.get(key) != news.get(key)]
        if not replaces and not self._running(id_):
            replaces.append("container_id")
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def _running(self, container_id: str) -> bool:
        """A container removed or stopped behind the engine's back is recreated by the next up."""
        try:
            import docker.errors

            client = _docker_client()
            try:
                return bool(client.containers.get(container_id).status == "running")
            except docker.errors.NotFound:
                return False
        except Exception:
            # No engine reachable during a preview: report what the state says.
            return True

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        import docker.errors

        client = _docker_client()
        try:
            container = client.containers.get(id_)
        except docker.errors.NotFound:
            return
        container.stop(timeout=10)
        container.remove(force=True)


@dataclass(frozen=True, kw_only=True)
class LocalServiceArgs:
    image_id: pulumi.Input[str]
    host_port: int
    container_name: str
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


class _LocalServiceResource(pulumi.dynamic.Resource, module="liftlock", name="LocalService"):
    url: pulumi.Output[str]
    container_id: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            LocalServiceProvider(), name, {**props, "url": None, "container_id": None}, opts
        )


class LocalService(pulumi.ComponentResource):
    url: pulumi.Output[str]
    container_id: pulumi.Output[str]

    def __init__(
        self, name: str, *, args: LocalServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("liftlock:ml:LocalService", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        container = _LocalServiceResource(
            f"{name}-container",
            {
                "image_id": args.image_id,
                "host_port": args.host_port,
                "container_name": args.container_name,
                "environment": dict(args.environment),
                "labels": dict(args.labels),
            },
            child,
        )
        self.url = container.url
        self.container_id = container.container_id
        self.register_outputs({"url": self.url, "container_id": self.container_id})
