"""The CLI core: version, help, and the one place that maps errors to exit codes."""

from __future__ import annotations

import pytest
import typer

from liftlock import cli
from liftlock.errors import ConfigError, GateFailed
from ml.errors import BundleError


def test_version(capsys) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("liftlock ")


def test_unknown_command_is_a_usage_error(capsys) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert "no-such-command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("stacks/Pulumi.dev.yaml: liftlock:replicas must be >= 1"), 2),
        (GateFailed("rule metrics-threshold failed"), 1),
        (BundleError("bundle/model.onnx: sha256 mismatch"), 4),
    ],
)
def test_domain_errors_become_a_message_and_their_exit_code(capsys, error, code) -> None:
    probe = typer.Typer()

    @probe.command()
    def fail() -> None:
        raise error

    @probe.command()
    def other() -> None:  # a second command keeps typer from flattening the app
        pass

    original = cli.app
    cli.app = probe
    try:
        assert cli.main(["fail"]) == code
    finally:
        cli.app = original
    err = capsys.readouterr().err
    assert err.startswith("error: ") and error.message in err
    assert "Traceback" not in err
