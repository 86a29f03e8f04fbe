"""The reports' content, built without a browser: sections, chart data against hand-computed values, atomic writes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.backtest.report_results import (
    STATS,
    backtest_result,
    engine_result,
    monte_carlo,
    sweep_result,
    walkforward_result,
)
from trader.backtest import report_charts as charts
from trader.backtest.metrics import UNITS
from trader.backtest.report import (
    RISK_UNITS,
    figure,
    monte_carlo_or_note,
    sweep_figure,
    tear_sheet,
    unit_text,
    walkforward_figure,
    write_report,
    write_sweep_report,
    write_walkforward_report,
)
from trader.backtest.report_html import format_value, render, table_html, write_atomic
from trader.backtest.report_search import sweep_page, walkforward_page


def _titles(page) -> list[str]:
    return [block.title for block in page.blocks]


def test_tear_sheet_has_every_section_and_a_chart_per_instrument() -> None:
    result = backtest_result()
    page = tear_sheet(result, stats=result.stats, mc=monte_carlo())
    titles = _titles(page)
    for wanted in ("Metrics", "Equity vs benchmark", "Drawdowns (underwater)", "Monthly returns",
                   "Rolling Sharpe (63 daily returns", "Distribution of daily returns", "Trades on AAA (20)",
                   "Trades on BBB (20)", "Monte Carlo fan: 2,000 block bootstrap paths over 252 trading days",
                   "Monte Carlo: max drawdown and final equity", "Trades (40)", "Skipped"):
        assert any(title.startswith(wanted) for title in titles), (wanted, titles)
    assert page.charts == 9  # 5 performance + 2 instruments + 2 Monte Carlo
    assert page.header["instruments"] == "AAA, BBB"
    assert page.header["params"] == "fast=10, slow=30, allow_short=yes"
    assert page.header["range"].endswith("(400 bars of 1 day)")


def test_metrics_table_lists_every_metric_formatted() -> None:
    result = backtest_result()
    page = tear_sheet(result, stats=result.stats, mc=None, mc_note="off")
    table = page.blocks[0].table
    assert table is not None
    for name in STATS:
        assert f"<td>{name}</td>" in table
    for text in ("12.34 %", "8.70 %", "1.12", "12", "n/a", "123.45"):
        assert f'<td class="n">{text}</td>' in table, text


def test_metric_values_shown_in_their_units() -> None:
    assert [unit_text(value, UNITS.get(name, RISK_UNITS.get(name))) for name, value in (
        ("cagr", 0.0611), ("var_95", 0.02), ("net_profit", 1234.5), ("max_drawdown_days", 12.25),
        ("orders", 80.0), ("daily_returns", 1.0), ("sharpe", 1.23456), ("unknown_metric", 12345.6),
        ("sortino", float("nan")), ("final_equity_5", 0.9512), ("probability_of_loss", 0.25))] == [
        "6.11 %", "2.00 %", "1,234.50", "12.2 d", "80", "yes", "1.235", "12,346", "n/a", "0.951x", "25.00 %"]


def test_monte_carlo_left_out_with_a_note_when_off_or_history_short() -> None:
    assert monte_carlo_or_note(backtest_result(simulations=0)) == (
        None, "Monte Carlo is off for this run (backtest setting simulations: 0).")
    mc, note = monte_carlo_or_note(backtest_result(periods=15, simulations=500))
    assert mc is None and note == "Monte Carlo left out: 14 days of returns, it needs at least 20."
    result = backtest_result(simulations=0)
    page = tear_sheet(result, stats=result.stats, mc=None, mc_note=note)
    assert page.charts == 7
    [block] = [block for block in page.blocks if block.title == "Monte Carlo"]
    assert block.note == note and block.figure is None


def test_public_write_report_uses_the_results_stats(tmp_path: Path) -> None:
    result = backtest_result(simulations=0, stats={"only_metric": 1.5})
    path = write_report(result, tmp_path / "sub" / "tear.html")
    text = path.read_text()
    assert "<td>only_metric</td>" in text and "total_return" not in text
    assert "Monte Carlo is off for this run" in text
    assert text.count('class="plotly-graph-div"') == 7


def test_monthly_returns_against_hand_computed_values() -> None:
    index = pd.DatetimeIndex(["2024-01-10", "2024-01-31", "2024-02-15", "2024-02-29", "2024-03-05"], tz="UTC")
    equity = pd.Series([101.0, 110.0, 100.0, 99.0, 118.8], index=index)
    table = charts.monthly_returns(equity, start_value=100.0)
    assert list(table.index) == [2024] and list(table.columns) == list(range(1, 13))
    assert table.loc[2024, 1] == pytest.approx(0.10)  # 100 -> 110
    assert table.loc[2024, 2] == pytest.approx(-0.10)  # 110 -> 99
    assert table.loc[2024, 3] == pytest.approx(0.20)  # 99 -> 118.8
    assert table.loc[2024, 4:].isna().all()


def test_drawdown_and_rolling_sharpe_against_hand_computed_values() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 120.0, 90.0, 108.0, 130.0], index=index)
    assert charts.drawdown(equity).tolist() == pytest.approx([0.0, 0.0, -0.25, -0.1, 0.0])
    returns = pd.Series([0.01, 0.03, -0.02, 0.02], index=index[1:])
    sharpe = charts.rolling_sharpe(returns, window=3, periods_per_year=252.0)
    first = np.array([0.01, 0.03, -0.02])
    assert sharpe.iloc[0] == pytest.approx(first.mean() / first.std(ddof=1) * math.sqrt(252))
    assert len(sharpe) == 2


def test_thin_keeps_the_extremes_and_the_last_time() -> None:
    index = pd.date_range("2024-01-01", periods=10_000, freq="min", tz="UTC")
    values = pd.Series(np.sin(np.arange(10_000) / 50.0), index=index)
    values.iloc[4321] = -5.0
    thinned = charts.thin(values, max_points=1000, how="min")
    assert len(thinned) <= 1000
    assert thinned.min() == -5.0 and thinned.index[-1] == index[-1]
    assert charts.thin(values.head(10), max_points=1000) is not None and len(charts.thin(values.head(10))) == 10


def test_long_intraday_history_is_thinned_on_the_page() -> None:
    result = backtest_result(periods=60_000, freq="min", bar_size="1 min", instruments=("AAA",), every=500)
    page = tear_sheet(result, stats=result.stats, mc=None, mc_note="off")
    for block in page.blocks:
        for trace in block.figure.data if block.figure is not None else ():
            if trace.type == "scatter" and trace.x is not None:
                assert len(trace.x) <= charts.MAX_POINTS, block.title
    assert len(render(page)) < 6_000_000


def test_trades_chart_marks_entries_by_direction_and_exits() -> None:
    result = backtest_result()
    own = result.trades[result.trades["instrument"] == "AAA"]
    fig = charts.trades_chart(result.prices["AAA"], own)
    by_name = {trace.name: trace for trace in fig.data}
    assert len(by_name["long entry"].x) == (own["direction"] == "long").sum() == 10
    assert len(by_name["short entry"].x) == 10
    assert len(by_name["exit"].y) == 20
    assert by_name["exit"].y[0] == float(own["exit_price"].iloc[0])


def test_figure_stacks_equity_benchmark_and_drawdown() -> None:
    fig = figure(backtest_result())
    assert [trace.name for trace in fig.data] == ["strategy", "benchmark (SPY)", "drawdown"]
    assert fig.data[2].yaxis == "y2"


def test_sweep_heatmap_cell_is_the_best_row_over_the_other_params() -> None:
    sweep = sweep_result()
    fig = sweep_figure(sweep)
    [heatmap] = fig.data
    assert heatmap.type == "heatmap"
    assert list(heatmap.x) == ["2", "5", "10", "20"] and list(heatmap.y) == ["30", "50", "100"]
    table = sweep.table
    for row, slow in enumerate([30, 50, 100]):
        for col, fast in enumerate([2, 5, 10, 20]):
            rows = table[(table["fast"] == fast) & (table["slow"] == slow)]
            expected = rows["objective"].iloc[0]  # best first
            got = heatmap.z[row][col]
            assert (math.isnan(expected) and math.isnan(got)) or got == expected
    page = sweep_page(sweep)
    assert page.blocks[0].title == "sharpe over fast x slow; each cell the best over allow_short"
    assert page.header["combinations"] == "24 evaluated, 23 scored, 1 rejected"


def test_sweep_of_one_param_is_a_line_and_a_random_search_a_scatter() -> None:
    line = sweep_figure(sweep_result({"fast": [2, 4, 8, 16]}))
    assert [trace.mode for trace in line.data] == ["lines+markers"] and list(line.data[0].x) == ["2", "4", "8", "16"]
    fixed = sweep_figure(sweep_result({"fast": [2, 4, 8], "slow": [50]}))
    assert fixed.data[0].type == "scatter" and list(fixed.data[0].x) == ["2", "4", "8"]
    rng = np.random.default_rng(1)
    sampled = sweep_result({"fast": [2, 3], "slow": [10, 20]})
    sampled.table = pd.DataFrame({"fast": rng.uniform(2, 20, 200), "slow": rng.uniform(10, 100, 200),
                                  "objective": rng.normal(size=200)}).sort_values("objective", ascending=False)
    scatter = sweep_figure(sampled)
    assert scatter.data[0].mode == "markers" and len(scatter.data[0].x) == 200


def test_walkforward_marks_every_window_and_lists_it() -> None:
    wf = walkforward_result(windows=5)
    fig = walkforward_figure(wf)
    lines = [shape for shape in fig.layout.shapes if shape.type == "line"]
    assert len(lines) == 5
    assert pd.Timestamp(lines[1].x0) == wf.windows["oos_start"].iloc[1].tz_localize(None)
    page = walkforward_page(wf)
    assert page.charts == 2
    assert page.blocks[2].table.count("<tr>") == 6  # the header and 5 windows
    assert "fast=6, slow=30" in page.blocks[2].table


def test_page_is_offline_with_plotly_inlined_once(tmp_path: Path) -> None:
    path = write_sweep_report(sweep_result(), tmp_path / "sweep.html")
    text = path.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"""<link[^>]*href\s*=\s*["']?https?:""", text, re.IGNORECASE)
    assert text.count("<script") == 2  # plotly.js once, the one chart's newPlot
    assert text.count("plotly.js v") == 1  # its banner: inlined once (its "cdn.plot.ly" is geo maps only)


def test_failed_report_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "tear.html"
    path.write_text("previous report")
    broken = backtest_result(simulations=0)
    broken.prices["AAA"] = broken.prices["AAA"].drop(columns="close")
    with pytest.raises(KeyError, match="close"):
        write_report(broken, path)
    assert path.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tear.html"]


def test_failed_rename_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.mkdir()  # os.replace of a file onto a directory fails
    with pytest.raises(OSError):
        write_atomic(target, "<html></html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"] and target.is_dir()


def test_walkforward_report_written(tmp_path: Path) -> None:
    path = write_walkforward_report(walkforward_result(), tmp_path / "wf.html")
    assert path == tmp_path / "wf.html" and path.stat().st_mode & 0o777 == 0o644
    assert "Walk-forward: ma_crossover" in path.read_text()


def test_values_are_formatted_for_reading() -> None:
    assert [format_value(v) for v in (None, True, 3, 1234567.891, 0.000123456, float("nan"), pd.NaT,
                                      pd.Timestamp("2024-01-02", tz="UTC"), {"a": 1, "b": 2.5})] == [
        "n/a", "yes", "3", "1,234,568", "0.0001235", "n/a", "open", "2024-01-02", "a=1, b=2.5"]
    html = table_html(pd.DataFrame({"name": ["<b>"], "value": [1.5]}))
    assert "<td>&lt;b&gt;</td>" in html and '<td class="n">1.5</td>' in html


def test_tear_sheet_reads_the_metrics_module(tmp_path: Path) -> None:
    result = backtest_result(simulations=0, stats=None)
    text = write_report(result, tmp_path / "tear.html").read_text()
    stats = result.stats
    assert len(stats) >= 30
    for name in stats:
        assert f"<td>{name}</td>" in text
    assert f'<td class="n">{stats["total_return"] * 100:,.2f} %</td>' in text
    assert "Rolling Sharpe (63 daily returns, annualised at 252 a year)" in text


def test_short_intraday_run_draws_per_bar_returns(tmp_path: Path) -> None:
    result = backtest_result(periods=2_000, freq="min", bar_size="1 min", simulations=100, stats=None,
                             every=50)
    text = write_report(result, tmp_path / "tear.html").read_text()
    assert "Rolling Sharpe (63 per-bar (1 min) returns, annualised at 98280 a year)" in text
    assert "Monte Carlo left out: 1 day of returns, it needs at least 20." in text


def test_tear_sheet_of_a_real_backtest_with_metrics_and_monte_carlo(tmp_path: Path) -> None:
    result = engine_result(simulations=300)
    assert len(result.trades) > 20
    mc, note = monte_carlo_or_note(result)
    assert note is None and mc is not None and mc.paths == 300
    text = write_report(result, tmp_path / "tear.html").read_text()
    assert text.count('class="plotly-graph-div"') == 9
    assert f"<td>var_95</td><td class=\"n\">{mc.risk['var_95'] * 100:,.2f} %</td>" in text
    assert "Monte Carlo fan: 300 block bootstrap paths over 252 trading days (seed 0)" in text
    assert f"Trades on AAPL ({(result.trades['instrument'] == 'AAPL').sum()})" in text


def test_sweep_with_nothing_scored_says_so_instead_of_an_empty_chart() -> None:
    sweep = sweep_result({"fast": [2, 4], "slow": [10, 20]})
    sweep.table["objective"] = np.nan
    sweep.table["note"] = "invalid: fast must be less than slow"
    page = sweep_page(sweep)
    assert page.charts == 0
    assert page.blocks[0].note.startswith("No combination has an objective")
    assert "invalid: fast must be less than slow" in page.blocks[1].table


def test_the_result_objects_reach_the_reports_by_their_methods(tmp_path: Path) -> None:
    result, sweep, wf = backtest_result(simulations=0), sweep_result(), walkforward_result()
    assert result.report(str(tmp_path / "a.html")) == tmp_path / "a.html"
    assert sweep.report(tmp_path / "b.html").read_text().startswith("<!DOCTYPE html>")
    assert "Walk-forward: ma_crossover" in wf.report(tmp_path / "c.html").read_text()
    assert len(result.plot().data) == 3
    assert sweep.plot().data[0].type == "heatmap"
    assert wf.plot().data[0].name == "out-of-sample equity"


def test_monte_carlo_refusal_becomes_the_note(tmp_path: Path) -> None:
    """An account that loses more than everything (equity below zero) cannot be resampled: the page says why."""
    result = backtest_result(simulations=200, stats=None)
    result.equity.iloc[200:] = -0.5 * result.equity.iloc[200:]
    mc, note = monte_carlo_or_note(result)
    assert mc is None and note is not None
    assert note.startswith("Monte Carlo left out: return -1.") and "loses more than everything" in note
    text = write_report(result, tmp_path / "tear.html").read_text()
    assert note in text.replace("&#x27;", "'") and text.count('class="plotly-graph-div"') == 7
