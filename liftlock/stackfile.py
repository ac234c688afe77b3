"""Rewrite `liftlock:` values of a stack file in place, keeping its comments and key order.

`liftlock promote` changes only `liftlock:bundleDigest` and `liftlock:image`; everything else in
stacks/Pulumi.<stack>.yaml (comments, order, other keys, the encryption salt) stays byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liftlock.errors import ConfigError

NAMESPACE = "liftlock"


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments and order survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def set_stack_values(path: Path, values: Mapping[str, str]) -> None:
    """Set `liftlock:<key>: <value>` for each item; keys that exist keep their place."""
    yaml = _yaml()
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle)
    config = document.get("config") if document is not None else None
    if config is None:
        raise ConfigError(f"{path}: key 'config' missing", hint="restore the stack file from git")
    for key, value in values.items():
        config[f"{NAMESPACE}:{key}"] = value
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
