"""Test copies of the project render staging only. The committed staging stack also applies its
objects to this machine's embedded cluster (`liftlock:applyTo`); a test that wants a cluster
starts its own (tests/helpers/embedded_cluster.py) and points applyTo at it."""

from __future__ import annotations

from pathlib import Path

APPLY_TO_KEY = "  liftlock:applyTo:"


def without_apply_to(root: Path, stack: str = "staging") -> None:
    """Drop the `liftlock:applyTo` block from `root`'s stack file, keeping every other line
    (comments and the encryption salt included)."""
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    kept: list[str] = []
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.rstrip() == APPLY_TO_KEY:
            inside = True
            continue
        if inside and line.startswith("    "):
            continue
        inside = False
        kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")
