"""The pinned numeric environment of the DVC stages: the same bytes from every machine.

Floating-point sums depend on their order, and OpenBLAS, under numpy and scikit-learn, chooses
that order per CPU: a kernel (SkylakeX, Haswell, Zen, ...) and a thread split. A model trained on
an AVX-512 machine then differs in the last bits from one trained on an AVX2 machine, and so does
the bundle digest that promotions and stacks pin. Every stage
(`python -m ml.<stage>`) therefore starts under one environment that every x86-64 CPU of the
last decade runs (AVX2 + FMA), on one thread: `ml/__init__.py` calls `pin_if_stage()` before
anything imports numpy, whose OpenBLAS reads these variables once, when it loads.

Which settings change the bytes was measured (README, "Training: what is pinned"); only those
are set. `LIFTLOCK_NUMERIC_PIN=off` trains under the caller's environment instead (the
re-execution check uses it to show what an unpinned run does); bundle.json then says so.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

STAGES = ("prepare", "validate", "train", "evaluate", "package")
SWITCH = "LIFTLOCK_NUMERIC_PIN"

# The kernel every AVX2 + FMA CPU runs (Intel since Haswell, AMD since Zen).
PINNED_KERNEL = "Haswell"

PINNED: dict[str, str] = {
    # OpenBLAS picks a kernel per CPU: SkylakeX, Haswell (= Zen), Sandybridge and Prescott gave
    # four different logistic-regression models.
    "OPENBLAS_CORETYPE": PINNED_KERNEL,
    # Its threads split sums: Prescott with 1 and with 2 threads gave two more.
    "OPENBLAS_NUM_THREADS": "1",
    # The same for OpenMP (scikit-learn's compiled loops), so no machine's core count shows.
    "OMP_NUM_THREADS": "1",
}
# Not pinned, as measured to change nothing: numpy's own SIMD dispatch (AVX-512 vs AVX2 loops
# gave the same bytes for every estimator). Python's hash seed did change one thing, the order
# of skl2onnx's opset imports; ml/onnx_export.py sorts them instead.

# Variables a machine or a user may set for itself that would move the pin or the libraries'
# blocking (OPENBLAS_L2_SIZE, GOTO_NUM_THREADS, MKL_*, NPY_*): removed from a stage's env.
FOREIGN_PREFIXES = ("OPENBLAS_", "GOTO_", "NPY_", "OMP_", "MKL_", "BLIS_")

# CPU flags the pinned kernel needs.
_REQUIRED_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi2"})


def cpu_runs_pinned_kernel(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """An x86-64 CPU with AVX2 + FMA (read from /proc/cpuinfo, before numpy is loaded)."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split()) >= _REQUIRED_FLAGS
    return False


def pinned_environment(environ: Mapping[str, str], *, cpu_ok: bool) -> dict[str, str]:
    """`environ` with every foreign numeric variable removed and the pin applied.

    On a CPU that cannot run the pinned kernel the kernel is left to OpenBLAS (forcing it would
    crash); threads and numpy's dispatch are still pinned, and the run is marked not portable.
    """
    env = {key: value for key, value in environ.items() if not key.startswith(FOREIGN_PREFIXES)}
    env.update(PINNED)
    if not cpu_ok:
        del env["OPENBLAS_CORETYPE"]
    return env


def switched_off(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(SWITCH, "").strip().lower() in {"off", "0", "false", "no"}


def running_stage(argv: list[str]) -> bool:
    """This interpreter was started as `python ... -m ml.<stage>` (sys.orig_argv)."""
    try:
        module = argv[argv.index("-m") + 1]
    except (ValueError, IndexError):
        return False
    return module in {f"ml.{stage}" for stage in STAGES}


def pin_if_stage() -> None:
    """Pin this process's numeric environment when it runs a stage; a no-op otherwise.

    Called from `ml/__init__.py`, which Python runs before the stage module (and so before
    numpy): changing os.environ here is enough, as the libraries read it when they load.
    """
    if not running_stage(list(sys.orig_argv)) or switched_off():
        return
    if "numpy" in sys.modules:  # cannot happen for `python -m ml.<stage>`; never pin half-way
        raise RuntimeError("ml.numeric_env: numpy was imported before the numeric pin")
    target = pinned_environment(os.environ, cpu_ok=cpu_runs_pinned_kernel())
    for key in [key for key in os.environ if key not in target]:
        del os.environ[key]
    os.environ.update(target)


@cache
def in_force() -> dict[str, Any]:
    """What the loaded libraries actually run under: recorded in bundle.json, shown by stages.

    Content only, equal on every portable machine: the pinned variables, the OpenBLAS kernel
    and thread count each library reports (threadpoolctl), and whether the digest is portable
    (with the reason when it is not).
    """
    import threadpoolctl

    blas = sorted(
        (
            {
                "library": Path(info["filepath"]).name.split("-")[0].split(".")[0],
                "version": info.get("version"),
                "kernel": info.get("architecture"),
                "threads": info.get("num_threads"),
            }
            for info in threadpoolctl.threadpool_info()
            if info.get("internal_api") == "openblas"
        ),
        key=lambda entry: str(entry["library"]),
    )
    pinned = not switched_off()
    facts: dict[str, Any] = {
        "pinned": {key: os.environ[key] for key in PINNED if key in os.environ} if pinned else {},
        "blas": blas,
    }
    reason = _not_portable_because(pinned, blas)
    facts["portable"] = reason is None
    if reason is not None:
        facts["not_portable_because"] = reason
    return facts


def _not_portable_because(pinned: bool, blas: list[dict[str, Any]]) -> str | None:
    if not pinned:
        return f"the numeric pin was switched off ({SWITCH}=off)"
    if not cpu_runs_pinned_kernel():
        return (
            f"this CPU ({platform.machine()}) cannot run the pinned OpenBLAS kernel "
            f"{PINNED_KERNEL} (needs x86-64 with AVX2 and FMA)"
        )
    off = [entry for entry in blas if entry["kernel"] != PINNED_KERNEL or entry["threads"] != 1]
    if off:
        first = off[0]
        return (
            f"{first['library']} runs kernel {first['kernel']} with {first['threads']} "
            f"thread(s), not {PINNED_KERNEL} with 1"
        )
    return None


def stage_note() -> str:
    """The stage line's suffix: empty when portable, else why this digest is machine-bound."""
    facts = in_force()
    if facts["portable"]:
        return ""
    return f"; digest NOT portable: {facts['not_portable_because']}"
