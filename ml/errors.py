"""The root of liftlock's one exception hierarchy, and the errors of the ML side.

`ml` is the lowest layer (it imports neither liftlock nor policies), so the shared base,
`DomainError`, lives here; `liftlock.errors.LiftlockError` derives from it too. The liftlock CLI
maps any DomainError to its message and `exit_code` in one place.
"""

from __future__ import annotations


class DomainError(Exception):
    """An error a user can act on: a message that names the culprit, an optional fix."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class MLError(DomainError):
    """An error of the training pipeline, the bundle or the model service."""

    exit_code = 2


class ParamsError(MLError):
    """params.yaml is missing a key or holds a value of the wrong type or range."""

    exit_code = 2


class DataContractError(MLError):
    """The data breaks the data contract."""

    exit_code = 5


class BundleError(MLError):
    """A model bundle is missing a file, or a file no longer matches bundle.json."""

    exit_code = 4


class ExportError(MLError):
    """The model could not be exported to ONNX, or the export disagrees with sklearn."""

    exit_code = 4
