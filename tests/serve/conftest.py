"""Serving fixtures: a real bundle built once per session, and a real uvicorn server subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.fixture_bundle import FixtureBundle, build_fixture_bundle
from tests.serve.server_process import RunningServer, start_server, stop_server


@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> FixtureBundle:
    return build_fixture_bundle(tmp_path_factory.mktemp("serve") / "bundle")


@pytest.fixture
def bundle_copy(fixture_bundle: FixtureBundle, tmp_path: Path) -> Path:
    """A private copy a test may tamper with."""
    return Path(shutil.copytree(fixture_bundle.path, tmp_path / "bundle"))


@pytest.fixture(scope="module")
def server(
    fixture_bundle: FixtureBundle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_server(
        fixture_bundle.path, tmp_path_factory.mktemp("server"), "--max-rows", "200",
        "--max-body-bytes", "200000",
    )  # fmt: skip
    yield running
    stop_server(running)
