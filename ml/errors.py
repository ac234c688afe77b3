"""Errors of the ML side. `ml` imports nothing from liftlock, so it has its own small hierarchy;
the liftlock CLI maps `MLError` to a message and `exit_code` in the same place as its own errors.
"""

from __future__ import annotations


class MLError(Exception):
    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


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
