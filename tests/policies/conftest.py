"""Fixtures of the policy tests: the real gates file and a way to write variants of it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.gates import GATES_PATH, Gates, load_gates, parse_gates


@pytest.fixture(scope="session")
def gates() -> Gates:
    return load_gates()


@pytest.fixture(scope="session")
def gates_document() -> dict[str, Any]:
    with GATES_PATH.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


@pytest.fixture
def gates_with(gates_document: dict[str, Any]) -> Callable[..., Gates]:
    """gates.yaml with per-rule `overrides` on one stack: gates_with("prod", rule="advisory")."""

    def build(stack: str, **overrides: str) -> Gates:
        document = copy.deepcopy(gates_document)
        stack_gates = document["stacks"].setdefault(stack, {})
        stack_gates.setdefault("overrides", {}).update(
            {name.replace("_", "-"): level for name, level in overrides.items()}
        )
        return parse_gates(document, path=Path("gates-under-test.yaml"))

    return build
