"""The one exception hierarchy of liftlock.

Every module raises a subclass of `LiftlockError`; the CLI (`liftlock.cli`) is the one place that
turns them into a message and an exit code. A message names the culprit (file, key, rule,
resource) and, where there is one, the fix.
"""

from __future__ import annotations


class LiftlockError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class ConfigError(LiftlockError):
    """A configuration file (stack config, params.yaml, gates.yaml, ...) is invalid."""

    exit_code = 2


class ToolMissingError(LiftlockError):
    """A tool the loop needs (pulumi, dvc, dockerd, ...) is not installed or not running."""

    exit_code = 3


class BundleError(LiftlockError):
    """A model bundle is missing, incomplete, or its content does not match bundle.json."""

    exit_code = 4


class DataContractError(LiftlockError):
    """Data breaks the data contract."""

    exit_code = 5


class GateFailed(LiftlockError):
    """A mandatory policy rule failed: the promotion or deployment is refused."""

    exit_code = 1


class DriftDetected(LiftlockError):
    """Served inputs drifted past the configured thresholds."""

    exit_code = 1


class ExternalCommandError(LiftlockError):
    """A command liftlock runs (pulumi, dvc, git, docker) failed."""

    exit_code = 6
