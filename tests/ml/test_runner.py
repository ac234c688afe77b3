"""Stages run as `python -m ml.<stage>`: a summary with timing, or the error without traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.errors import DataContractError
from ml.runner import run_stage


def test_success_prints_summary_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    run_stage("demo", lambda: "did the thing")
    assert capsys.readouterr().out.startswith("[demo] did the thing (")


def test_ml_error_exits_with_its_code_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> str:
        raise DataContractError("column 'x', rule 'type'", hint="fix the data")

    with pytest.raises(SystemExit) as raised:
        run_stage("validate", broken)
    assert raised.value.code == DataContractError.exit_code
    err = capsys.readouterr().err
    assert "column 'x', rule 'type'" in err and "fix: fix the data" in err


def test_stage_module_reports_broken_params_without_traceback(
    tmp_path: Path, repo_root: Path
) -> None:
    (tmp_path / "params.yaml").write_text("base:\n  seed: nope\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ml.train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert "'base.seed' must be an integer" in result.stderr
    assert "Traceback" not in result.stderr
