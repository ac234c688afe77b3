"""The serving image: built offline by infra.components.image_builder, pushed to a real registry
(pulled back by the digest it answered), run with host networking on 127.0.0.1, read-only root,
no capabilities, as nobody; it answers /readyz and predicts like the model. A rebuild for a new
bundle reuses every layer but the bundle's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest

from infra.components.image_builder import (
    DIGEST_LABEL,
    build_image,
    build_liftlock_wheel,
    debian_mirror,
    image_tag,
    parse_credentials,
    push_image,
    registry_digest,
    registry_repository,
)
from ml.errors import MLError
from tests.helpers.registry import running_registry
from tests.serve.fixture_bundle import FixtureBundle, build_fixture_bundle
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
    repository = registry_repository("127.0.0.1:5000", "liftlock-model")
    assert image_tag("sha256:" + "ab" * 32, repository) == (
        "127.0.0.1:5000/liftlock-model:b-abababababab"
    )


def test_registry_credentials_are_user_and_token() -> None:
    assert parse_credentials("ci:s3cret:with-colon") == {
        "username": "ci",
        "password": "s3cret:with-colon",
    }
    assert parse_credentials(None) is None
    with pytest.raises(MLError, match="registryCredentials is not `user:token`"):
        parse_credentials("no-separator")


def test_the_liftlock_wheel_is_reproducible(tmp_path) -> None:
    # Same sources, same bytes: Docker reuses the liftlock layer instead of reinstalling it.
    first = build_liftlock_wheel(tmp_path / "a").read_bytes()
    second = build_liftlock_wheel(tmp_path / "b").read_bytes()
    assert first == second


@pytest.fixture(scope="module")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> FixtureBundle:
    return build_fixture_bundle(tmp_path_factory.mktemp("image") / "bundle")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(tmp_path_factory.mktemp("registry")) as layout:
        yield layout.registry


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
def image(fixture_bundle: FixtureBundle, docker_client: Any, registry: str) -> Iterator[str]:
    """The image pulled back from the registry by the digest the push returned."""
    repository = registry_repository(registry, "liftlock-model")
    built = build_image(fixture_bundle.path, repository=repository, log=lambda line: None)
    reference = push_image(built.tag, log=lambda line: None)
    assert reference == f"{repository}@{registry_digest(built.tag)}"
    docker_client.images.remove(built.tag, noprune=True)
    with pytest.raises(Exception, match="No such image"):
        docker_client.images.get(built.image_id)
    pulled = docker_client.images.pull(reference)
    assert pulled.id == built.image_id
    yield reference
    docker_client.images.remove(pulled.id, force=True)


@pytest.mark.slow
@pytest.mark.docker
def test_a_new_bundle_rebuilds_and_pushes_only_the_bundle_layer(
    image: str, docker_client: Any, registry: str, fixture_bundle: FixtureBundle, tmp_path
) -> None:
    import shutil

    other = Path(shutil.copytree(fixture_bundle.path, tmp_path / "bundle"))
    (other / "NOTES.txt").write_text("a file bundle.json does not list: new bundle layer\n")
    repository = registry_repository(registry, "liftlock-model")
    first = docker_client.images.get(image).attrs["RootFS"]["Layers"]
    built = build_image(other, tag=f"{repository}:other", log=lambda line: None)
    try:
        second = docker_client.images.get(built.image_id).attrs["RootFS"]["Layers"]
        assert second[:-1] == first[:-1], "only the bundle layer may differ"
        assert push_image(built.tag, log=lambda line: None) != image
    finally:
        docker_client.images.remove(built.tag, noprune=True)


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


def test_registry_digest_is_the_manifest_digest_the_registry_holds(tmp_path) -> None:
    import hashlib

    import httpx

    from liftlock.cluster.pause import OCI_MANIFEST, push_pause_image

    with running_registry(tmp_path / "registry") as layout:
        reference = push_pause_image(layout.registry, tmp_path / "pause")
        repository, tag = reference.rsplit(":", 1)
        manifest = httpx.get(
            f"http://{layout.registry}/v2/{repository.split('/', 1)[1]}/manifests/{tag}",
            headers={"Accept": OCI_MANIFEST},
        ).content
        assert registry_digest(reference) == "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert registry_digest(f"{repository}:no-such-tag") is None
    assert registry_digest(reference) is None, "a stopped registry holds nothing"


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
