"""dev on the real engine, the local Docker engine and a real registry: build, push, run, call,
rebuild, destroy."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.components.image_builder import registry_digest
from infra.config import read_stack_file
from ml.bundle import MANIFEST, sha256_file, verify_bundle
from ml.errors import BundleError
from tests.helpers.registry import running_registry
from tests.infra.engine import PulumiProject

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker]

REPOSITORY = "liftlock-infra-test"


def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"no Docker engine ({error}); start it with `make dockerd`")
    return client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def predict(url: str, bundle_dir: Path) -> dict[str, Any]:
    """One prediction for the first reference row of the bundle."""
    header, first = (bundle_dir / "reference.csv").read_text(encoding="utf-8").splitlines()[:2]
    row = {
        name: float(value) for name, value in zip(header.split(","), first.split(","), strict=True)
    }
    request = urllib.request.Request(
        f"{url}/v1/predict",
        data=json.dumps({"row": row}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def rebundle(bundle_dir: Path) -> str:
    """Change one non-model file of the bundle and re-seal bundle.json: a new, valid digest."""
    card = bundle_dir / "model_card.json"
    document = json.loads(card.read_text(encoding="utf-8"))
    document["notes"] = "re-packaged by the infra tests"
    card.write_text(json.dumps(document, indent=2), encoding="utf-8")
    manifest = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"]["model_card.json"] = sha256_file(card)
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return verify_bundle(bundle_dir)


@pytest.fixture(scope="module")
def dev(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    docker_client()
    try:
        verify_bundle(repo_root / "bundle")
    except BundleError as error:
        pytest.fail(f"no model bundle in the checkout ({error}); run `make bundle` (dvc repro)")
    project = PulumiProject.copy_of(repo_root, tmp_path_factory.mktemp("dev"))
    shutil.copytree(repo_root / "bundle", project.root / "bundle")
    with running_registry(tmp_path_factory.mktemp("registry")) as registry:
        values = read_stack_file(project.stack_file("dev"))
        # The dev stack under test deploys its bundle folder: no pin (a checkout where `make demo`
        # ran has dev pinned to the demo's bundle, which these tests then re-package).
        values.pop("bundleDigest", None)
        values.update(hostPort=free_port(), imageRepository=REPOSITORY, registry=registry.registry)
        project.write_stack_values("dev", values)
        project.init("dev")
        try:
            yield project
        finally:
            project.run("destroy", "--stack", "dev", "--yes", "--skip-preview", check=False)


def local_tag(project: PulumiProject, bundle_digest: str) -> str:
    registry = read_stack_file(project.stack_file("dev"))["registry"]
    return f"{registry}/{REPOSITORY}:b-{bundle_digest[7:19]}"


def test_up_builds_the_image_and_the_model_answers_on_loopback(dev: PulumiProject) -> None:
    dev.up("dev")
    outputs = dev.outputs("dev")
    assert outputs["target"] == "docker"
    assert outputs["serviceUrl"].startswith("http://127.0.0.1:"), outputs
    answer = predict(outputs["serviceUrl"], dev.root / "bundle")
    assert answer["model"] == outputs["bundleDigest"], answer
    assert len(answer["predictions"]) == 1
    # The reference staging and prod will run: the registry's manifest digest of the push.
    tag = local_tag(dev, outputs["bundleDigest"])
    assert outputs["image"] == f"{tag.rsplit(':', 1)[0]}@{registry_digest(tag)}"
    container = docker_client().containers.get(f"{REPOSITORY}-dev")
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "host"
    assert container.attrs["Config"]["User"] == "65534:65534"
    assert host["CapDrop"] == ["ALL"]
    assert container.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"


def test_second_up_and_preview_change_nothing(dev: PulumiProject) -> None:
    # The image hashes the checkout's server sources (liftlock/, ml/): on a shared checkout
    # someone may edit them between two commands. That, and only that, may differ; then catch
    # up and look again (a few times at most).
    for _ in range(3):
        preview = dev.preview("dev", "--expect-no-changes", check=False)
        if preview.returncode == 0:
            break
        assert "[diff: ~context_hash]" in preview.stdout, preview.stdout
        assert "~tag" not in preview.stdout and "bundle_digest" not in preview.stdout
        dev.up("dev")
    else:
        pytest.fail("the server sources kept changing; run on a quiet checkout")
    dev.up("dev", "--expect-no-changes")


def test_new_bundle_rebuilds_the_image_and_replaces_the_container(dev: PulumiProject) -> None:
    client = docker_client()
    before = dev.outputs("dev")
    old_container = client.containers.get(f"{REPOSITORY}-dev").id
    digest = rebundle(dev.root / "bundle")
    steps = {step["urn"].rsplit("::", 1)[-1]: step["op"] for step in dev.preview_steps("dev")}
    assert steps.get("dev-model-image-build") == "replace", steps
    assert steps.get("dev-model-service-container") == "replace", steps
    dev.up("dev")
    after = dev.outputs("dev")
    assert after["bundleDigest"] == digest != before["bundleDigest"]
    assert predict(after["serviceUrl"], dev.root / "bundle")["model"] == digest
    assert client.containers.get(f"{REPOSITORY}-dev").id != old_container
    assert after["image"] != before["image"]
    tags = {tag for image in client.images.list() for tag in image.tags}
    old_tag = local_tag(dev, before["bundleDigest"])
    assert old_tag not in tags, f"the old tag {old_tag} must be removed"
    assert local_tag(dev, digest) in tags


def test_destroy_removes_the_container_and_the_tag(dev: PulumiProject) -> None:
    client = docker_client()
    image = local_tag(dev, dev.outputs("dev")["bundleDigest"])
    dev.destroy("dev")
    names = [container.name for container in client.containers.list(all=True)]
    assert f"{REPOSITORY}-dev" not in names
    tags = {tag for found in client.images.list() for tag in found.tags}
    assert image not in tags
