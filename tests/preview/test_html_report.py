"""The preview's HTML report (DVC's plots of base and head, drawn to SVG) in headless Chromium.

The data is the checkout's own `dvc plots diff` (real DVC); the page is loaded by Debian's
`chromium` with no network, and the screenshot is kept in test-artifacts/ for a person to look
at. Chromium is installed with apt-get when missing, as toolchain/dockerd.sh does for docker.io.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from liftlock.preview.charts import distinct_plots, html_report, parse_plots_json
from liftlock.preview.report import MetricDelta

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.fail("chromium is not installed and apt-get is not available: install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("[test] chromium not found: installing Debian's chromium with apt-get ...")
    for args in (["update", "-qq"], ["install", "-y", "-qq", "chromium"]):
        subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
            env=env,
            check=True,
            capture_output=True,
            timeout=1800,
        )
    found = shutil.which("chromium")
    assert found, "apt-get install chromium left no chromium on PATH"
    return found


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, idat, width, height, channels = 8, b"", 0, 0, 4
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, f"bit depth {depth}"
            channels = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dvc = str(Path(sys.executable).parent / "dvc")
    shown = subprocess.run(
        [dvc, "plots", "diff", "HEAD", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    plots = parse_plots_json(json.loads(shown.stdout))
    assert {"eval/plots/roc.csv", "eval/plots/confusion.csv"} <= set(distinct_plots(plots))
    metrics = [MetricDelta("eval/metrics.json", "accuracy", 0.95, 0.965, 0.015)]
    page = tmp_path_factory.mktemp("html") / "report.html"
    page.write_text(html_report("liftlock preview", metrics, plots), encoding="utf-8")
    return page


def test_the_page_holds_both_dvc_plots_as_svg_and_no_remote_script(report_page: Path):
    text = report_page.read_text(encoding="utf-8")
    assert text.count("<svg") == 2
    assert "ROC (test split)" in text and "Confusion matrix (test split)" in text
    assert "<script" not in text and "https://cdn" not in text  # nothing to fetch


def test_chromium_draws_the_roc_and_confusion_plots(report_page: Path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "preview-report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,900",
            f"--screenshot={shot}",
            report_page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1400, 900)
    # Below the title and table: the plots. A blank (or unstyled) page is nearly all white.
    plot_rows = rows[150:]
    inked = sum(
        1
        for row in plot_rows
        for i in range(0, len(row) - 2, len(row) // width)
        if min(row[i], row[i + 1], row[i + 2]) < 200
    )
    coloured = {
        row[i : i + 3]
        for row in plot_rows[::4]
        for i in range(0, len(row) - 2, (len(row) // width) * 4)
    }
    assert inked > 5000, f"only {inked} dark pixels: the plots were not drawn (see {shot})"
    assert len(coloured) > 20, f"{len(coloured)} colours: no coloured marks (see {shot})"
