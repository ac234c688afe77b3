"""liftlock: GitOps infrastructure as code for MLOps."""

from importlib import metadata

try:
    __version__ = metadata.version("liftlock")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
