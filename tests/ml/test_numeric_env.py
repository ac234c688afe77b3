"""The numeric pin's pure parts: which variables a stage runs under, and when it applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml import numeric_env
from ml.numeric_env import PINNED, pinned_environment, running_stage

AVX2_FLAGS = "fpu sse sse2 avx avx2 fma f16c bmi1 bmi2"


def test_the_pin_replaces_every_numeric_variable_the_machine_set() -> None:
    ambient = {
        "PATH": "/usr/bin",
        "OPENBLAS_CORETYPE": "SkylakeX",
        "OPENBLAS_L2_SIZE": "262144",
        "OPENBLAS_NUM_THREADS": "8",
        "GOTO_NUM_THREADS": "4",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3",
        "MKL_NUM_THREADS": "4",
    }
    env = pinned_environment(ambient, cpu_ok=True)
    assert env == {"PATH": "/usr/bin", **PINNED}
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["OMP_NUM_THREADS"] == "1"


def test_a_cpu_without_avx2_keeps_its_own_kernel_but_not_its_threads() -> None:
    env = pinned_environment({"OPENBLAS_CORETYPE": "Prescott"}, cpu_ok=False)
    assert "OPENBLAS_CORETYPE" not in env
    assert env["OPENBLAS_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    ("argv", "stage"),
    [
        (["/venv/bin/python", "-m", "ml.train"], True),
        (["python", "-u", "-m", "ml.package", "--x"], True),
        (["python", "-m", "ml.serve"], False),
        (["python", "-m", "pytest"], False),
        (["python", "ml/train.py"], False),
        (["python", "-m"], False),
    ],
)
def test_only_a_stage_module_run_is_pinned(argv: list[str], stage: bool) -> None:
    assert running_stage(argv) is stage


@pytest.mark.parametrize(
    ("machine", "flags", "expected"),
    [
        ("x86_64", AVX2_FLAGS, True),
        ("x86_64", "fpu sse sse2 avx", False),
        ("aarch64", AVX2_FLAGS, False),
    ],
)
def test_the_cpu_check_reads_cpuinfo_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str, flags: str, expected: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
    monkeypatch.setattr(numeric_env.platform, "machine", lambda: machine)
    assert numeric_env.cpu_runs_pinned_kernel(cpuinfo) is expected


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_the_switch_turns_the_pin_off(value: str) -> None:
    assert numeric_env.switched_off({numeric_env.SWITCH: value})
    assert not numeric_env.switched_off({})


def test_a_run_off_the_pin_says_why_its_digest_is_not_portable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This test process was not started as a stage, so its BLAS runs unpinned: in_force()
    (what bundle.json records) must say so, and a CPU without AVX2 must be named first."""
    monkeypatch.delenv(numeric_env.SWITCH, raising=False)
    numeric_env.in_force.cache_clear()
    monkeypatch.setattr(numeric_env, "cpu_runs_pinned_kernel", lambda: False)
    facts = numeric_env.in_force()
    assert facts["portable"] is False
    assert "cannot run the pinned OpenBLAS kernel Haswell" in facts["not_portable_because"]
    assert numeric_env.stage_note().startswith("; digest NOT portable: this CPU")

    numeric_env.in_force.cache_clear()
    monkeypatch.setenv(numeric_env.SWITCH, "off")
    facts = numeric_env.in_force()
    assert facts["pinned"] == {} and "switched off" in facts["not_portable_because"]
    numeric_env.in_force.cache_clear()
