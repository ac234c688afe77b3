"""The serving image: built offline by ml.serve.image, run with host networking on 127.0.0.1,
read-only root, no capabilities, as nobody; it answers /readyz and predicts like the model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import joblib
import pytest

from ml.serve.image import DIGEST_LABEL, build_image, debian_mirror, image_tag
from tests.serve.fixture_bundle import FixtureBundle
from tests.serve.server_process import free_port


def test_the_debian_mirror_is_read_from_apt_sources(tmp_path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    assert debian_mirror(tmp_path) == "http://deb.debian.org/debian"


def test_the_tag_derives_from_the_bundle_digest() -> None:
    assert image_tag("sha256:" + "ab" * 32) == "liftlock-model:b-abababababab"


@pytest.fixture(scope="module")
def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"no Docker engine ({error}); run `make dockerd` first")
    return client


@pytest.fixture(scope="module")
def image(fixture_bundle: FixtureBundle, docker_client: Any) -> Iterator[str]:
    image_id = build_image(fixture_bundle.path, log=lambda line: None)
    yield image_id
    docker_client.images.remove(image_tag(fixture_bundle.digest), noprune=True)


@pytest.mark.slow
@pytest.mark.docker
def test_the_container_is_ready_and_predicts_like_the_model(
    image: str, docker_client: Any, fixture_bundle: FixtureBundle
) -> None:
    attributes = docker_client.images.get(image).attrs["Config"]
    assert attributes["User"] == "65534:65534"
    assert attributes["Labels"][DIGEST_LABEL] == fixture_bundle.digest
    assert attributes["Healthcheck"]["Test"][-3:] == ["python", "-m", "ml.serve.healthcheck"]

    port, grpc_port = free_port(), free_port()
    container = docker_client.containers.run(
        image,
        detach=True,
        network_mode="host",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        # the gRPC port too, as the Kubernetes Deployment sets it
        environment={
            "LIFTLOCK_HOST": "127.0.0.1",
            "LIFTLOCK_PORT": str(port),
            "LIFTLOCK_GRPC_PORT": str(grpc_port),
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            assert container.status != "exited", container.logs().decode()
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.2)
        rows = [
            dict(zip(fixture_bundle.features, map(float, values), strict=True))
            for values in fixture_bundle.x_test
        ]
        answer = httpx.post(url + "/v1/predict", json={"rows": rows}, timeout=10).json()
        model = joblib.load(fixture_bundle.path / "model.joblib")
        assert answer["predictions"] == model.predict(fixture_bundle.x_test).tolist()
        assert answer["model"] == fixture_bundle.digest
        assert _grpc_server_ready(f"127.0.0.1:{grpc_port}"), "the image serves V2 gRPC"
        # read-only root, no /tmp volume: the input log is off, said once, serving goes on
        assert "input log disabled" in container.logs().decode()
        # the drift CronJob's command, from the same image, against the served window
        drift = docker_client.containers.run(
            image,
            entrypoint=["liftlock"],
            command=["drift", "--url", url, "--bundle", "/srv/bundle"],
            network_mode="host",
            read_only=True,
            cap_drop=["ALL"],
            detach=True,
        )
        try:
            assert drift.wait(timeout=60)["StatusCode"] == 0, drift.logs().decode()
            assert "143 served rows" in drift.logs().decode()
        finally:
            drift.remove(force=True)

        started = time.monotonic()
        container.stop(timeout=20)  # SIGTERM, then SIGKILL after 20 s
        assert time.monotonic() - started < 10
        container.reload()
        assert container.attrs["State"]["ExitCode"] in (0, 143)
        assert "Application shutdown complete" in container.logs().decode()
    finally:
        container.remove(force=True)


def _grpc_server_ready(address: str) -> bool:
    import grpc

    from ml.serve.v2 import open_inference_pb2 as pb

    with grpc.insecure_channel(address) as channel:
        ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerReady",
            request_serializer=pb.ServerReadyRequest.SerializeToString,
            response_deserializer=pb.ServerReadyResponse.FromString,
        )
        return bool(ready(pb.ServerReadyRequest(), timeout=10).ready)
