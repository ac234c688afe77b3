"""Fixtures of the language-host tests: an in-process host, a fake engine, a fake virtualenv."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pulumi.runtime.proto import language_pb2_grpc

from liftlock.engine.language_host import RunningHost, start_host
from tests.engine.fake_engine import RunningFakeEngine, fake_engine


@pytest.fixture
def engine() -> Iterator[RunningFakeEngine]:
    with fake_engine() as running:
        yield running


@pytest.fixture
def host(engine: RunningFakeEngine) -> Iterator[RunningHost]:
    running = start_host(engine.address)
    try:
        yield running
    finally:
        running.stop(grace=0)


@pytest.fixture
def stub(host: RunningHost) -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    with grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield language_pb2_grpc.LanguageRuntimeStub(channel)


def _fake_distribution(
    site: Path,
    name: str,
    version: str,
    *,
    plugin: dict[str, object] | None = None,
    requires: tuple[str, ...] = (),
) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    module = site / name.replace("-", "_")
    module.mkdir()
    (module / "__init__.py").write_text("")
    if plugin is not None:
        (module / "pulumi-plugin.json").write_text(json.dumps(plugin))


@pytest.fixture(scope="session")
def fake_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real virtualenv (no pip) holding fake Pulumi packages, as a program's venv would."""
    venv = tmp_path_factory.mktemp("fake-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    _fake_distribution(
        site,
        "pulumi_fakecloud",
        "1.2.3",
        plugin={
            "resource": True,
            "name": "fakecloud",
            "version": "1.2.3",
            "server": "https://plugins.invalid",
        },
        requires=("helper-lib>=1",),
    )
    _fake_distribution(site, "helper-lib", "0.1")
    _fake_distribution(
        site, "pulumi-legacy", "2.0"
    )  # no pulumi-plugin.json: name and version derived
    _fake_distribution(site, "pulumi_sdkonly", "1.0.0", plugin={"resource": False})
    _fake_distribution(site, "pulumi_policy", "1.21.0", plugin={"resource": False})
    _fake_distribution(site, "pulumi-prerelease", "3.1a7")
    return venv
