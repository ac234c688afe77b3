"""A corpus of broken inputs: each exits non-zero naming the real file, without a traceback.

Stack files, policies/gates.yaml, params.yaml and promotion records, broken the ways a hand edit
breaks them, through `liftlock gate`, `liftlock promote --dry-run` and `liftlock status` (run
in-process: an exception other than liftlock's own would escape `main` and fail the test).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a clone and real DVC per case: ~20 s each

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64

STACK_FILES = {
    "yaml syntax": ("config:\n  liftlock:target: render\n  liftlock:labels: {team: [\n", "line 4"),
    "tab indentation": ("config:\n\tliftlock:target: render\n", "line 2"),
    "not a mapping": ("- just\n- a list\n", "must be a mapping"),
    "config not a mapping": ("config: [1, 2]\n", "key 'config' must be a mapping"),
}
GATES = {
    "yaml syntax": ("version: 1\ndefaults: {enforcement: [\n", "not valid YAML"),
    "unknown rule": (None, "unknown rule"),
}
PARAMS = {"yaml syntax": "base:\n  seed: [42\n"}


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out and 'File "' not in out, out
    assert "liftlock-stack-" not in out and "/tmp/tmp" not in out, "names a temp copy: " + out


@pytest.mark.parametrize("case", sorted(STACK_FILES))
def test_broken_stack_file(clone: Path, run: Run, case: str) -> None:
    text, where = STACK_FILES[case]
    path = clone / "stacks" / "Pulumi.staging.yaml"
    path.write_text(text)
    for args in (
        ("gate", "staging", "--no-preview"),
        ("gate", "staging"),
        ("promote", "workspace", "staging", "--dry-run", "--no-preview", "--image", IMAGE),
        ("status", "--no-engine"),
    ):
        code, out = run(*args)
        assert code == 2, (args, out)
        assert f"{path}" in out and where in out, (args, out)
        assert "fix:" in out, (args, out)
        _no_traceback(out)


@pytest.mark.parametrize("case", sorted(GATES))
def test_broken_gates_file(clone: Path, run: Run, case: str) -> None:
    text, fragment = GATES[case]
    path = clone / "policies" / "gates.yaml"
    if text is None:
        path.write_text(
            path.read_text().replace("min-replicas: advisory", "no-such-rule: advisory")
        )
    else:
        path.write_text(text)
    for args in (
        ("gate", "dev", "--no-preview"),
        ("promote", "workspace", "dev", "--dry-run", "--no-preview"),
    ):
        code, out = run(*args)
        assert code == 2, (args, out)
        assert "policies/gates.yaml" in out and fragment in out, (args, out)
        _no_traceback(out)


def test_broken_params_file(clone: Path, run: Run) -> None:
    path = clone / "params.yaml"
    path.write_text(PARAMS["yaml syntax"])
    code, out = run("promote", "workspace", "dev", "--dry-run", "--no-preview")
    assert code != 0 and f"{path}" in out and "not valid YAML" in out and "line 2" in out, out
    _no_traceback(out)


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "[]", "a promotion record is a JSON object"),
        (lambda text: '{"to": "staging"}', "lacks key(s)"),
    ],
    ids=["truncated", "not an object", "missing keys"],
)
def test_broken_record(clone: Path, run: Run, damage: Callable[[str], str], fragment: str) -> None:
    for args in (("workspace", "dev"), ("dev", "staging", "--image", IMAGE)):
        code, out = run("promote", *args, "--no-preview")
        assert code == 0, out
    (record,) = sorted((clone / "promotions" / "staging").glob("*.json"))
    record.write_text(damage(record.read_text()))
    code, out = run("gate", "staging", "--no-preview", "--json")
    assert code == 1, out
    report = json.loads(out[out.index("{") : out.rindex("}") + 1])
    (refusal,) = [f["message"] for f in report["findings"] if f["verdict"] == "fail"]
    assert refusal.startswith("record invalid: ") and record.name in refusal, refusal
    assert fragment in refusal and "restore it from git" in refusal, refusal
    _no_traceback(out)
    code, out = run("status", "--no-engine")
    assert code == 2 and record.name in out.replace("\n", "") and "are invalid" in out, out
    _no_traceback(out)
