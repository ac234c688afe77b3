"""Schemathesis against the live server's /openapi.json: no 5xx, no response that breaks the
documented schema, status codes and content types as documented, undeclared methods refused.

Every check runs on every operation, except one on V2 infer: "a schema-valid request is
accepted" cannot hold there, since JSON Schema cannot say that `data` holds shape x datatype
values (the server refuses a mismatch with 400, which the rest of the checks still hold)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.server_process import RunningServer

pytestmark = pytest.mark.slow

# Bounded: a hundred examples per operation and phase (~800 cases, a few seconds).
MAX_EXAMPLES = 100


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    server: RunningServer,
) -> None:
    st = Path(sys.executable).with_name("st")
    infer = "/infer$"
    for selection in (
        ["--exclude-path-regex", infer],
        ["--include-path-regex", infer, "--exclude-checks", "positive_data_acceptance"],
    ):
        result = subprocess.run(
            [
                str(st), "run", f"{server.url}/openapi.json", "--checks", "all", *selection,
                "--max-examples", str(MAX_EXAMPLES), "--seed", "20261127", "--no-color",
            ],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        # every generated case passed (a warning, e.g. "mostly rejected", is not a failure)
        assert re.search(r"(\d+) generated, \1 passed", result.stdout), result.stdout[-3000:]
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics
    assert "Traceback" not in server.output()
