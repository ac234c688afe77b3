"""The stack files `stacks/Pulumi.<stack>.yaml`: where they are, which stacks exist, and how the
engine gets to read one without changing the checkout's.

`liftlock promote` changes only `liftlock:bundleDigest` and `liftlock:image`; everything else in
stacks/Pulumi.<stack>.yaml (comments, order, other keys, the encryption salt) stays byte for byte.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from liftlock.errors import ConfigError

NAMESPACE = "liftlock"
STACKS_DIR = "stacks"
PROMOTION_ORDER = ("dev", "staging", "prod")


def stack_path(root: Path, stack: str) -> Path:
    return root / STACKS_DIR / f"Pulumi.{stack}.yaml"


def order_stacks(names: Iterable[str]) -> list[str]:
    """dev, staging, prod first (the promotion order), then any other stack by name."""
    rank = {name: index for index, name in enumerate(PROMOTION_ORDER)}
    return sorted(set(names), key=lambda s: (rank.get(s, len(rank)), s))


def stack_names(root: Path) -> list[str]:
    """The stacks that have a stack file, in promotion order."""
    files = (root / STACKS_DIR).glob("Pulumi.*.yaml")
    return order_stacks(p.name[len("Pulumi.") : -len(".yaml")] for p in files)


@contextlib.contextmanager
def restored(path: Path) -> Iterator[None]:
    """Put `path` back as it was (`pulumi stack init` writes a salt into the stack file)."""
    before = path.read_bytes() if path.is_file() else None
    try:
        yield
    finally:
        if before is not None and path.read_bytes() != before:
            path.write_bytes(before)


@contextlib.contextmanager
def stack_file_copy(
    root: Path, stack: str, overrides: Mapping[str, str] | None = None
) -> Iterator[Path]:
    """A copy of the stack file, `liftlock:<key>` values replaced, for `--config-file`.

    The engine may write into the file it reads (an encryption salt, its own quoting), and only
    `liftlock promote` changes the checkout's. The copy lives in a scratch folder of its own,
    removed on exit.
    """
    source = stack_path(root, stack)
    with tempfile.TemporaryDirectory(prefix="liftlock-stack-") as scratch:
        copy = Path(scratch) / source.name
        shutil.copyfile(source, copy)
        if overrides:
            set_stack_values(copy, overrides)
        yield copy


def read_stack_values(path: Path) -> dict[str, Any]:
    """The `liftlock:` values of a stack file, typed; a broken file is a ConfigError naming it
    (the real file, its line) and the fix."""
    from infra.config import StackConfigError, read_stack_file

    try:
        return read_stack_file(path)
    except StackConfigError as error:
        raise ConfigError(str(error)) from error


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
