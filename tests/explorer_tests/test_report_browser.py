"""The report in a real browser: headless Chromium renders every figure with no console error.

Slow (two Chromium runs over a 5 MB page) and needs Debian's `chromium`; skipped without it.
"""

from __future__ import annotations

import shutil

import pytest

from explorer.report import write_report
from tests.benchmark_scripts import load_benchmark

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH"),
]


def _checker():
    return load_benchmark("check_report_browser")


def test_report_renders_in_chromium(tmp_path):
    report = tmp_path / "report.html"
    write_report(report)
    result = _checker().check_report(report, screenshot=tmp_path / "report.png")
    assert result["ok"], result
    assert result["figures_rendered"] == result["figures_expected"] >= 4
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_a_broken_figure_is_reported(tmp_path):
    report = tmp_path / "broken.html"
    write_report(report)
    text = report.read_text(encoding="utf-8")
    # Break the first figure's script: the check must see the error and the missing figure.
    text = text.replace("Plotly.newPlot(", "Plotly.newPlotX(", 1)
    report.write_text(text, encoding="utf-8")
    result = _checker().check_report(report, screenshot=tmp_path / "broken.png")
    assert not result["ok"]
    assert result["errors"], result
    assert result["figures_rendered"] < result["figures_expected"]
