"""The reports in a real headless Chromium (Debian's, driven by playwright): no script error, every chart drawn.

Each page is opened from a file:// URL with the network unused: any request
that is not the file itself (a CDN, a font) fails the test, as does any
``pageerror`` or console error or warning. Every ``.js-plotly-plot`` must have
drawn its SVG with its traces in it, and there must be as many as the report
promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.backtest.report_results import (
    backtest_result,
    engine_result,
    monte_carlo,
    sweep_result,
    walkforward_result,
)
from trader.backtest.report import (
    tear_sheet,
    write_report,
    write_sweep_report,
    write_walkforward_report,
)
from trader.backtest.report_html import render, write_atomic

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian's chromium package; install.sh installs it)")

# For each plot: its svg layers, the elements inside them, its traces as plotly computed them, and the traces'
# drawn groups (a scatter's, a bar's, a histogram's g.trace; a heatmap's g.hm).
_CHARTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
    id: plot.id,
    svgs: plot.querySelectorAll('svg.main-svg').length,
    elements: plot.querySelectorAll('svg.main-svg *').length,
    traces: (plot._fullData || []).length,
    drawn: plot.querySelectorAll('.cartesianlayer g.trace, .cartesianlayer g.hm').length,
}))"""


@dataclass
class Loaded:
    """What a page did in the browser."""

    charts: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # requests for anything but the file itself


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Yield one headless Chromium for the module's pages."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def load(browser: Any, path: Path) -> Loaded:
    """Open ``path`` in a fresh page and return its charts, its script errors and its foreign requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    loaded = Loaded(charts=[])
    page.on("pageerror", lambda error: loaded.errors.append(f"pageerror: {error}"))
    page.on("console", lambda message: loaded.errors.append(f"{message.type}: {message.text}")
            if message.type in ("error", "warning") else None)
    page.on("request", lambda request: loaded.foreign.append(request.url)
            if not request.url.startswith(("file://", "data:", "blob:")) else None)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load", timeout=60_000)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length > 0 && "
                               "Array.from(document.querySelectorAll('.js-plotly-plot'))"
                               ".every(plot => plot.querySelector('svg.main-svg'))", timeout=30_000)
        loaded.charts = page.evaluate(_CHARTS)
    finally:
        page.close()
    return loaded


def assert_drawn(loaded: Loaded, expected: int) -> None:
    """Fail unless the page loaded cleanly and drew ``expected`` charts, each with its traces."""
    assert loaded.errors == []
    assert loaded.foreign == []
    assert len(loaded.charts) == expected, loaded.charts
    for chart in loaded.charts:
        assert chart["svgs"] >= 1 and chart["elements"] > 50, chart
        assert chart["traces"] >= 1 and chart["drawn"] >= 1, chart


def test_tear_sheet_draws_every_chart(browser: Any, tmp_path: Path) -> None:
    result = backtest_result()
    path = write_atomic(tmp_path / "tear.html", render(tear_sheet(result, stats=result.stats, mc=monte_carlo())))
    assert_drawn(load(browser, path), expected=9)


def test_tear_sheet_of_a_real_backtest_draws(browser: Any, tmp_path: Path) -> None:
    """The example strategy run by the engine, its metrics and its Monte Carlo: the public path end to end."""
    path = write_report(engine_result(simulations=300), tmp_path / "tear.html")
    assert_drawn(load(browser, path), expected=9)


def test_tear_sheet_without_monte_carlo_draws_the_rest(browser: Any, tmp_path: Path) -> None:
    result = backtest_result(simulations=0, benchmark=False, instruments=("AAA",))
    page = tear_sheet(result, stats=result.stats, mc=None, mc_note="Monte Carlo is off for this run.")
    path = write_atomic(tmp_path / "tear.html", render(page))
    assert_drawn(load(browser, path), expected=6)
    assert "Monte Carlo is off for this run." in path.read_text()


def test_tear_sheet_of_a_run_that_never_trades_draws(browser: Any, tmp_path: Path) -> None:
    """Flat equity, no order, no trade: no empty chart (the rolling Sharpe is a note), every other drawn."""
    result = backtest_result(simulations=0)
    result.equity[:] = 100_000.0
    result.trades = result.trades.iloc[0:0]
    result.orders = result.orders.iloc[0:0]
    page = tear_sheet(result, stats=result.stats, mc=None, mc_note="off")
    assert [block.note for block in page.blocks if block.title.startswith("Rolling Sharpe")] == [
        "Left out: the returns never vary over a window (no Sharpe ratio)."]
    assert_drawn(load(browser, write_atomic(tmp_path / "tear.html", render(page))), expected=6)


def test_long_intraday_tear_sheet_draws(browser: Any, tmp_path: Path) -> None:
    result = backtest_result(periods=60_000, freq="min", bar_size="1 min", instruments=("AAA", "BBB"), every=200)
    page = tear_sheet(result, stats=result.stats, mc=monte_carlo(paths=500))
    path = write_atomic(tmp_path / "tear.html", render(page))
    assert_drawn(load(browser, path), expected=9)


def test_sweep_reports_draw(browser: Any, tmp_path: Path) -> None:
    assert_drawn(load(browser, write_sweep_report(sweep_result(), tmp_path / "grid.html")), expected=1)
    line = write_sweep_report(sweep_result({"fast": [2, 4, 8, 16]}), tmp_path / "line.html")
    assert_drawn(load(browser, line), expected=1)
    rng = np.random.default_rng(2)
    sampled = sweep_result({"fast": [2, 20], "slow": [10, 100]})  # a random search: values off any grid
    sampled.table = pd.DataFrame({"fast": rng.integers(2, 200, 300), "slow": rng.integers(10, 400, 300),
                                  "objective": rng.normal(size=300)}).sort_values("objective", ascending=False)
    assert_drawn(load(browser, write_sweep_report(sampled, tmp_path / "random.html")), expected=1)


def test_walkforward_report_draws(browser: Any, tmp_path: Path) -> None:
    path = write_walkforward_report(walkforward_result(), tmp_path / "wf.html")
    assert_drawn(load(browser, path), expected=2)


def test_check_catches_a_broken_page(browser: Any, tmp_path: Path) -> None:
    """The checks can fail: a chart whose script throws is reported, and so is a chart that did not draw."""
    path = write_walkforward_report(walkforward_result(), tmp_path / "wf.html")
    text = path.read_text()
    first = text.index("Plotly.newPlot(", text.index("<main>"))  # the first chart's call, not plotly.js's own text
    broken = text[:first] + "Plotly.newPlot(undefinedThing, " + text[first + len("Plotly.newPlot("):]
    (tmp_path / "broken.html").write_text(broken)
    loaded = load(browser, tmp_path / "broken.html")
    assert any("undefinedThing" in error for error in loaded.errors), loaded.errors
    with pytest.raises(AssertionError):
        assert_drawn(loaded, expected=2)
