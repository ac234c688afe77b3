"""A broken stack config fails `pulumi preview` before any resource is declared, naming the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import read_stack_file
from tests.infra.engine import PulumiProject
from tests.infra.fixtures import BROKEN_CONFIGS, write_bundle

pytestmark = [pytest.mark.slow, pytest.mark.engine]


@pytest.fixture(scope="module")
def staging(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    project = PulumiProject.copy_of(repo_root, tmp_path_factory.mktemp("broken"))
    digest = write_bundle(project.root / "bundle")
    values = read_stack_file(project.stack_file("staging"))
    values["bundleDigest"] = digest
    project.write_stack_values("staging", values)
    project.init("staging")
    yield project


@pytest.mark.parametrize(
    ("change", "key", "shown"), list(BROKEN_CONFIGS.values()), ids=list(BROKEN_CONFIGS)
)
def test_broken_config_fails_preview_naming_the_key(
    staging: PulumiProject, change: dict[str, Any], key: str, shown: str
) -> None:
    good = read_stack_file(staging.stack_file("staging"))
    staging.write_stack_values("staging", {**good, **change})
    try:
        result = staging.preview("staging", check=False)
    finally:
        staging.write_stack_values("staging", good)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert key in output and shown in output, output
    assert "Traceback" not in output, "a config error is a message, not a crash"
    declared = [
        line for line in output.splitlines() if "kubernetes:" in line or "liftlock:ml" in line
    ]
    assert declared == [], f"resources declared despite the broken config: {declared}"
