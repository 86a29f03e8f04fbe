"""The tear sheet of a backtest, and the entry points of every research report (backtest, sweep, walk-forward).

:func:`write_report` writes one self-contained HTML file (see
:mod:`trader.backtest.report_html`) with the run's header, its metrics
(:attr:`BacktestResult.stats`), equity against the benchmark, the drawdowns,
the monthly returns, the rolling Sharpe ratio, the distribution of returns,
each instrument's trades on its price, and the Monte Carlo fan and
distributions (:meth:`BacktestResult.monte_carlo`; left out, with a note
saying why, when ``settings.simulations`` is 0 or the history is too short).
The charts are in :mod:`trader.backtest.report_charts`; the sweep and
walk-forward reports in :mod:`trader.backtest.report_search`.

Every page is built whole in memory before anything is written, and written
atomically: a failure leaves no file, or the previous one, never half of one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trader.backtest import report_charts as charts
from trader.backtest.metrics import UNITS, period_returns
from trader.backtest.report_html import Block, Page, format_value, render, table_html, write_atomic
from trader.backtest.report_search import (
    sweep_chart,
    sweep_page,
    walkforward_chart,
    walkforward_page,
)
from trader.errors import ValidationError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from trader.backtest.protocols import Backtest, Sweep, WalkForward
    from trader.backtest.risk import MonteCarloResult
    from trader.backtest.settings import BacktestSettings

__all__ = ["MIN_MC_DAYS", "RISK_UNITS", "figure", "monte_carlo_or_note", "sweep_figure",
           "tear_sheet", "unit_text", "walkforward_figure", "write_report", "write_sweep_report",
           "write_walkforward_report"]

log = logging.getLogger(__name__)

MIN_MC_DAYS = 20  # days of returns below which the tear sheet leaves the Monte Carlo out
SHARPE_WINDOW = 63  # the rolling Sharpe's window: a quarter of trading days
TRADE_ROWS = 100  # the most recent trades listed on the page
SKIPPED_ROWS = 200  # skipped bars listed on the page

# The units of the Monte Carlo's risk figures (trader.backtest.montecarlo), as metrics.UNITS gives the metrics'.
RISK_UNITS = {
    **dict.fromkeys(("var_95", "cvar_95", "var_99", "cvar_99", "mean_return", "median_return", "probability_of_loss",
                     "max_drawdown_median", "max_drawdown_95", "max_drawdown_99"), "fraction"),
    **dict.fromkeys(("final_equity_5", "final_equity_95"), "multiple"),  # of the starting equity
    **dict.fromkeys(("steps", "sample"), "count"),
}

def figure(result: Backtest) -> go.Figure:
    """Return the equity (with the benchmark) over the drawdown, one figure for a notebook."""
    from plotly.subplots import make_subplots

    start = float(result.settings.initial_cash)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    for trace in charts.equity_chart(result.equity.astype(float), result.benchmark, start).data:
        fig.add_trace(trace, row=1, col=1)
    for trace in charts.underwater_chart(result.equity.astype(float)).data:
        fig.add_trace(trace, row=2, col=1)
    fig.update_layout(charts.LAYOUT, height=560, margin={"t": 80},
                      title={"text": f"{result.strategy} {format_value(result.params)}", "y": 0.98})
    fig.update_yaxes(title_text="equity", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", ticksuffix="%", row=2, col=1)
    return fig


def sweep_figure(sweep: Sweep) -> go.Figure:
    """Return the sweep's objective over its first two varying parameters (a line for one)."""
    return sweep_chart(sweep)


def walkforward_figure(wf: WalkForward) -> go.Figure:
    """Return the walk-forward's stitched out-of-sample equity with its windows marked."""
    return walkforward_chart(wf)


def write_report(result: Backtest, path: Path) -> Path:
    """Write the backtest's tear sheet to ``path`` (atomically); return the path."""
    mc, note = monte_carlo_or_note(result)
    page = tear_sheet(result, stats=result.stats, mc=mc, mc_note=note)
    return write_atomic(path, render(page))


def write_sweep_report(sweep: Sweep, path: Path) -> Path:
    """Write the sweep's report (objective heatmap, best rows) to ``path`` (atomically); return the path."""
    return write_atomic(path, render(sweep_page(sweep)))


def write_walkforward_report(wf: WalkForward, path: Path) -> Path:
    """Write the walk-forward's report (out-of-sample curve, windows) to ``path`` (atomically); return it."""
    return write_atomic(path, render(walkforward_page(wf)))


def monte_carlo_or_note(result: Backtest) -> tuple[MonteCarloResult | None, str | None]:
    """Return the result's Monte Carlo and None, or None and why the tear sheet leaves it out."""
    if result.settings.simulations == 0:
        return None, "Monte Carlo is off for this run (backtest setting simulations: 0)."
    days = len(charts.daily_returns(result.equity.astype(float)))
    if days < MIN_MC_DAYS:
        plural = "" if days == 1 else "s"
        return None, f"Monte Carlo left out: {days} day{plural} of returns, it needs at least {MIN_MC_DAYS}."
    try:
        return result.monte_carlo(), None
    except ValidationError as exc:  # the simulation's own refusal (too few trades for the trade bootstrap...)
        log.warning("tear sheet of %s without Monte Carlo: %s", result.strategy, exc)
        return None, f"Monte Carlo left out: {exc}"


def _span(index: pd.Index) -> str:
    if not len(index):
        return "no bars"
    return f"{format_value(index[0])} .. {format_value(index[-1])} UTC"


def _header(result: Backtest) -> dict[str, str]:
    settings = result.settings
    equity = result.equity
    final = float(equity.iloc[-1]) if len(equity) else math.nan
    start = float(settings.initial_cash)
    change = (final / start - 1.0) * 100.0 if start else math.nan
    header = {
        "strategy": result.strategy,
        "params": format_value(result.params) or "defaults",
        "range": f"{_span(equity.index)} ({len(equity):,} bars of {result.bar_size})",
        "instruments": ", ".join(result.prices) or "none",
        "benchmark": settings.benchmark or "none",
        "equity": f"{format_value(start)} -> {format_value(final)} ({change:+.2f} %)",
        "costs": f"slippage {float(settings.slippage) * 1e4:g} bp; commission: {_commission(settings)}",
        "activity": f"{len(result.orders):,} orders, {len(result.trades):,} trades",
        "skipped": f"{len(result.skipped):,}" + (" (listed at the end)" if result.skipped else ""),
        "run time": f"{result.elapsed:.2f} s",
    }
    if settings.data is not None:
        header["data"] = str(settings.data)
    return header


def _commission(settings: BacktestSettings) -> str:
    fees = settings.commission
    return (f"stocks {fees.stock_per_share}/share (min {fees.stock_min}, max {fees.stock_max_percent} %), "
            f"futures {fees.future_per_contract}/contract, options {fees.option_per_contract}/contract")


def unit_text(value: float, unit: str | None) -> str:
    """Return ``value`` as text in its ``unit`` (:data:`trader.backtest.metrics.UNITS`' names, or "multiple")."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    match unit:
        case "fraction":
            return f"{value * 100.0:,.2f} %"
        case "currency":
            return f"{value:,.2f}"
        case "days":
            return f"{value:,.1f} d"
        case "multiple":
            return f"{value:,.3f}x"
        case "count" if float(value).is_integer():
            return f"{int(value):,}"
        case "flag":
            return "yes" if value else "no"
    return format_value(value)


def _units_table(values: dict[str, float], units: dict[str, str], head: str) -> str:
    texts = [unit_text(value, units.get(name)) for name, value in values.items()]
    return table_html(pd.DataFrame({head: list(values), "value": texts}), numeric=("value",))


def _analysis_returns(result: Backtest) -> tuple[pd.Series, float, str]:
    """Return the returns the rolling Sharpe and the distribution are drawn from, periods a year, their name.

    The metrics' own rule (:func:`trader.backtest.metrics.period_returns`):
    daily returns when the run has enough days, else the bars' own, so the
    chart and the table's Sharpe read the same returns.
    """
    returns, per_year, daily = period_returns(result.equity.astype(float), result.bar_size)
    return returns.dropna(), float(per_year), "daily" if daily else f"per-bar ({result.bar_size})"


def _performance_blocks(result: Backtest) -> list[Block]:
    equity = result.equity.astype(float)
    start = float(result.settings.initial_cash)
    returns, per_year, kind = _analysis_returns(result)
    blocks = [Block("Equity vs benchmark" if result.benchmark is not None else "Equity",
                    figure=charts.equity_chart(equity, result.benchmark, start)),
              Block("Drawdowns (underwater)", figure=charts.underwater_chart(equity)),
              Block("Monthly returns", figure=charts.monthly_heatmap(equity, start))]
    window = SHARPE_WINDOW if len(returns) >= 2 * SHARPE_WINDOW else max(5, len(returns) // 3)
    title = f"Rolling Sharpe ({window} {kind} returns, annualised at {per_year:.0f} a year)"
    if len(returns) < 2 * window or len(returns) < 10:
        blocks.append(Block("Rolling Sharpe", note=f"Left out: {len(returns)} {kind} returns are too few."))
    elif (sharpe := charts.rolling_sharpe(returns, window, per_year, result.settings.risk_free)).empty:
        blocks.append(Block(title, note="Left out: the returns never vary over a window (no Sharpe ratio)."))
    else:
        blocks.append(Block(title, figure=charts.rolling_sharpe_chart(sharpe, window)))
    blocks.append(Block(f"Distribution of {kind} returns ({len(returns):,})",
                        figure=charts.distribution_chart(returns)))
    return blocks


def _trade_blocks(result: Backtest) -> list[Block]:
    blocks = []
    trades = result.trades
    for instrument, bars in result.prices.items():
        own = trades[trades["instrument"] == instrument] if len(trades) else trades
        note = (f"The {charts.MAX_MARKERS:,} most recent of {len(own):,} trades are marked."
                if len(own) > charts.MAX_MARKERS else None)
        blocks.append(Block(f"Trades on {instrument} ({len(own):,})", figure=charts.trades_chart(bars, own),
                            note=note))
    return blocks


def _monte_carlo_blocks(mc: MonteCarloResult | None, note: str | None) -> list[Block]:
    if mc is None:
        return [Block("Monte Carlo", note=note or "Monte Carlo left out.")]
    title = f"{mc.paths:,} {mc.method} bootstrap paths over {mc.horizon_days} trading days (seed {mc.seed})"
    return [Block(f"Monte Carlo fan: {title}", figure=charts.mc_fan_chart(mc.fan)),
            Block("Monte Carlo: max drawdown and final equity", figure=charts.mc_distribution_chart(
                mc.max_drawdown, mc.final_equity), table=_units_table(mc.risk, RISK_UNITS, "risk"))]


def tear_sheet(result: Backtest, *, stats: dict[str, float], mc: MonteCarloResult | None,
               mc_note: str | None = None) -> Page:
    """Return the backtest's tear sheet as a page, from the metrics and Monte Carlo given.

    ``mc`` None leaves the Monte Carlo out with ``mc_note`` saying why.
    """
    blocks = [Block("Metrics", table=_units_table(stats, UNITS, "metric"), columns=True)]
    blocks += _performance_blocks(result)
    blocks += _trade_blocks(result)
    blocks += _monte_carlo_blocks(mc, mc_note)
    if len(result.trades):
        recent = result.trades.tail(TRADE_ROWS)
        title = f"Trades (the last {len(recent)} of {len(result.trades):,})" if len(result.trades) > TRADE_ROWS \
            else f"Trades ({len(recent)})"
        blocks.append(Block(title, table=table_html(recent)))
    if result.skipped:
        listed = pd.DataFrame({"skipped": result.skipped[:SKIPPED_ROWS]})
        more = f" (the first {SKIPPED_ROWS} of {len(result.skipped):,})" if len(result.skipped) > SKIPPED_ROWS else ""
        blocks.append(Block(f"Skipped{more}", table=table_html(listed), columns=True))
    subtitle = f"{format_value(result.params) or 'default params'}; {_span(result.equity.index)}"
    return Page(f"Backtest: {result.strategy}", subtitle, _header(result), blocks)
