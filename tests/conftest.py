"""Fixtures shared by every test folder. Keep area-specific fixtures in the area's conftest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.helpers.kube_apiserver import LocalCluster
    from tests.helpers.pulumi_cli import PulumiCLI

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real kube-apiserver + etcd on 127.0.0.1, shared by the session (tests/helpers/)."""
    from tests.helpers.kube_apiserver import local_cluster

    with local_cluster(tmp_path_factory.mktemp("kube-apiserver")) as cluster:
        yield cluster


@pytest.fixture
def pulumi_cli(tmp_path: Path) -> Callable[..., PulumiCLI]:
    """Factory for the real `pulumi` on a throwaway file:// backend in this test's tmp_path.

    `pulumi_cli(project_dir, stack="test", config={...}, secrets={...})` creates and selects the
    stack and returns a PulumiCLI; call it like the CLI: `pulumi("up", "--yes")`. See
    tests/helpers/pulumi_cli.py (also `write_python_project`, `write_policy_pack`).
    """
    from tests.helpers.pulumi_cli import PulumiCLI

    def make(
        project_dir: Path,
        *,
        stack: str | None = "test",
        config: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> PulumiCLI:
        cli = PulumiCLI(REPO_ROOT, project_dir, tmp_path / "pulumi-backend")
        problem = cli.missing_engine()
        if problem:
            pytest.fail(problem)
        if stack:
            cli("stack", "init", stack)
            cli.set_config(config or {})
            cli.set_config(secrets or {}, secret=True)
        return cli

    return make
