"""The one exception hierarchy of liftlock.

Every module raises a subclass of `LiftlockError` (or, in `ml`, of `MLError`; both derive from
`ml.errors.DomainError`); the CLI (`liftlock.cli`) is the one place that
turns them into a message and an exit code. A message names the culprit (file, key, rule,
resource) and, where there is one, the fix.
"""

from __future__ import annotations

# Bundle and data errors are raised by `ml`; liftlock re-exports them so callers import one module.
from ml.errors import BundleError, DataContractError, DomainError

__all__ = [
    "BundleError",
    "ConfigError",
    "DataContractError",
    "DomainError",
    "DriftDetected",
    "ExternalCommandError",
    "GateFailed",
    "LiftlockError",
    "ToolMissingError",
    "VerificationFailed",
]


class LiftlockError(DomainError):
    """An error of liftlock's orchestration (config, tools, gates, external commands)."""

    exit_code = 2


class ConfigError(LiftlockError):
    """A configuration file (stack config, params.yaml, gates.yaml, ...) is invalid."""

    exit_code = 2


class ToolMissingError(LiftlockError):
    """A tool the loop needs (pulumi, dvc, dockerd, ...) is not installed or not running."""

    exit_code = 3


class GateFailed(LiftlockError):
    """A mandatory policy rule failed: the promotion or deployment is refused."""

    exit_code = 1


class VerificationFailed(LiftlockError):
    """`liftlock verify`: a check of the rollout failed (its verdict says which)."""

    exit_code = 1


class DriftDetected(LiftlockError):
    """Served inputs drifted past the configured thresholds."""

    exit_code = 1


class ExternalCommandError(LiftlockError):
    """A command liftlock runs (pulumi, dvc, git, docker) failed."""

    exit_code = 6
