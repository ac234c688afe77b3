"""Drift: PSI/KS against scipy, the verdict on the test split and on shifted inputs, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from liftlock.cli import main
from ml.drift import (
    DriftInputError,
    DriftThresholds,
    compare,
    ks,
    load_thresholds,
    psi,
    read_csv_matrix,
    read_input_log,
)
from ml.serve.input_log import InputLog
from tests.serve.fixture_bundle import FixtureBundle
from tests.serve.server_process import start_server, stop_server

SHIFTED = ("mean_radius", "worst_area")


def write_csv(path: Path, features: list[str], x: np.ndarray) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(features)
        writer.writerows(x.tolist())
    return path


def shifted(bundle: FixtureBundle) -> np.ndarray:
    x = bundle.x_test.copy()
    for name in SHIFTED:
        x[:, bundle.features.index(name)] *= 1.5
    return x


def test_ks_matches_scipy_and_psi_is_zero_for_the_same_sample() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=400), rng.normal(0.3, 1.2, size=150)
    statistic, p_value = ks(a, b)
    expected = ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=0.1, abs=1e-4)
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, a + 2.0) > 1.0


def test_nulls_are_left_out_of_both_statistics() -> None:
    a = np.arange(100.0)
    b = np.concatenate([np.arange(100.0), [np.nan] * 50])
    assert ks(a, b)[0] == pytest.approx(0.0)
    assert psi(a, b) == pytest.approx(0.0, abs=1e-12)


def test_the_test_split_passes_and_shifted_inputs_fail_naming_the_features(
    fixture_bundle: FixtureBundle,
) -> None:
    reference = read_csv_matrix(fixture_bundle.path / "reference.csv", fixture_bundle.features)
    thresholds = load_thresholds()
    same = compare(reference, fixture_bundle.x_test, fixture_bundle.features, thresholds)
    assert same.drifted == []
    moved = compare(reference, shifted(fixture_bundle), fixture_bundle.features, thresholds)
    assert moved.drifted == list(SHIFTED)


def test_too_few_rows_give_no_verdict(fixture_bundle: FixtureBundle) -> None:
    reference = read_csv_matrix(fixture_bundle.path / "reference.csv", fixture_bundle.features)
    with pytest.raises(DriftInputError, match="only 10 served rows; a verdict needs at least 50"):
        compare(reference, fixture_bundle.x_test[:10], fixture_bundle.features, DriftThresholds())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("psi_max: -1\n", "'psi_max' must be a positive number"),
        ("ks_limit: 0.2\n", "unknown key 'ks_limit'"),
        ("- 1\n", "expected a mapping"),
    ],
)
def test_a_bad_thresholds_file_is_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(text)
    with pytest.raises(DriftInputError, match=message):
        load_thresholds(path)


def test_the_input_log_rotates_within_its_bound_and_reads_back_the_latest_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inputs.jsonl"
    log = InputLog(path, max_bytes=2000, backups=2)
    for index in range(200):
        log.append(np.full((1, 3), float(index)))
        log.flush()
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["inputs.jsonl", "inputs.jsonl.1", "inputs.jsonl.2"]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 3 * 2000 + 100
    rows = read_input_log(path, width=3, window=10)
    assert rows[:, 0].tolist() == [float(i) for i in range(190, 200)]


def test_a_corrupt_log_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inputs.jsonl"
    path.write_text('{"t": 1, "x": [[1, 2]]}\nnot json\n{"t": 2, "x": [[1, 2]]}\n')
    with pytest.raises(DriftInputError, match=r"inputs.jsonl:2: not JSON"):
        read_input_log(path, width=2, window=10)


def test_liftlock_drift_exits_0_on_the_test_split_and_1_naming_shifted_features(
    fixture_bundle: FixtureBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = write_csv(tmp_path / "same.csv", fixture_bundle.features, fixture_bundle.x_test)
    moved = write_csv(tmp_path / "moved.csv", fixture_bundle.features, shifted(fixture_bundle))
    bundle = str(fixture_bundle.path)
    assert main(["drift", "--bundle", bundle, "--inputs", str(same)]) == 0
    assert "mean_radius" in capsys.readouterr().out
    assert main(["drift", "--bundle", bundle, "--inputs", str(moved), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["drifted"] == list(SHIFTED)
    assert "2 of 30 features drifted: mean_radius, worst_area" in captured.err


@pytest.mark.slow
def test_drift_on_what_a_real_server_served(
    fixture_bundle: FixtureBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Traffic from the test split, then shifted traffic: the log and /v1/inputs tell them apart."""
    running = start_server(fixture_bundle.path, tmp_path, "--input-window", str(143))
    bundle = str(fixture_bundle.path)

    def send(x: np.ndarray) -> None:
        rows = [dict(zip(fixture_bundle.features, map(float, r), strict=True)) for r in x]
        with running.client() as client:
            for start in range(0, len(rows), 20):
                response = client.post("/v1/predict", json={"rows": rows[start : start + 20]})
                assert response.status_code == 200, response.text

    def drift(*args: str) -> tuple[int, str]:
        code = main(["drift", "--bundle", bundle, *args])
        captured = capsys.readouterr()
        return code, captured.out[-3000:] + captured.err

    try:
        send(fixture_bundle.x_test)
        code, output = drift("--inputs", running.url)
        assert code == 0, output
        send(shifted(fixture_bundle))
        code, output = drift("--inputs", running.url)
        assert code == 1, output
        assert "mean_radius, worst_area" in output
    finally:
        stop_server(running)
    # the log holds both, flushed on SIGTERM: the last 143 rows are the shifted ones
    code, output = drift("--inputs", str(running.input_log), "--window", "143")
    assert code == 1, output + running.output()[-2000:]
