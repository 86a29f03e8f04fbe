"""The tear sheet's charts: each a Plotly figure built from plain pandas data of one backtest.

Each function takes the series it draws (not the result object), so a chart
can be built and tested on its own. Long histories are thinned before they
reach the page (:func:`thin`): a million one-minute bars would make a 40 MB
file and a browser that stalls, while a few thousand points per line are
more than a screen's width can show. Thinning keeps each bucket's extreme
where the extreme is the point (the deepest drawdown, a bar's high and low).
Times are drawn as naive UTC: plotly.js has no time zones of its own.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["BLUE", "GREEN", "GREY", "LAYOUT", "MAX_MARKERS", "MAX_POINTS", "RED", "daily_returns",
           "distribution_chart", "drawdown", "equity_chart", "mc_distribution_chart", "mc_fan_chart",
           "monthly_heatmap", "monthly_returns", "naive_utc", "rolling_sharpe", "rolling_sharpe_chart", "thin",
           "trades_chart", "underwater_chart"]

MAX_POINTS = 4000  # points per line on the page
MAX_MARKERS = 3000  # trade markers per instrument on the page (the most recent)
HEIGHT = 360
GREEN, RED, BLUE, GREY = "#1a7f37", "#cf222e", "#0969da", "#8c959f"

LAYOUT = {"height": HEIGHT, "margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "template": "plotly_white",
           "hovermode": "x unified", "legend": {"orientation": "h", "y": 1.08, "x": 0}}


def naive_utc(index: pd.Index) -> pd.Index:
    """Return a datetime index as naive UTC (plotly.js has no time zones); other indexes as they are."""
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        return index.tz_convert("UTC").tz_localize(None)
    return index


def thin(series: pd.Series, max_points: int = MAX_POINTS, how: str = "last") -> pd.Series:
    """Return ``series`` cut to at most ``max_points`` points, one per bucket of consecutive points.

    ``how`` is the bucket's aggregate: ``last``, ``min`` or ``max``; the
    bucket's time is its last point's.
    """
    if len(series) <= max_points:
        return series
    size = math.ceil(len(series) / max_points)
    buckets = np.arange(len(series)) // size
    grouped = series.groupby(buckets)
    values = getattr(grouped, how)()
    values.index = series.index[grouped.size().cumsum().to_numpy() - 1]
    return values


def drawdown(equity: pd.Series) -> pd.Series:
    """Return the drawdown of ``equity`` from its running peak, as a fraction <= 0."""
    return equity / equity.cummax() - 1.0


def daily_returns(equity: pd.Series) -> pd.Series:
    """Return the returns from one day's last equity to the next (days without bars left out)."""
    closes = equity.groupby(equity.index.normalize()).last()
    return closes.pct_change().dropna()


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: float, risk_free: float = 0.0) -> pd.Series:
    """Return the annualised Sharpe ratio of each trailing ``window`` of ``returns`` (NaN where flat)."""
    excess = returns - risk_free / periods_per_year
    rolling = excess.rolling(window)
    std = rolling.std().replace(0.0, np.nan)
    return (rolling.mean() / std * math.sqrt(periods_per_year)).dropna()


def equity_chart(equity: pd.Series, benchmark: pd.Series | None, start_value: float) -> go.Figure:
    """Return the equity curve and, scaled to the same start, the benchmark's close."""
    fig = go.Figure(layout=LAYOUT)
    shown = thin(equity)
    fig.add_scatter(x=naive_utc(shown.index), y=shown.to_numpy(), name="strategy", line={"color": BLUE})
    if benchmark is not None:
        close = benchmark.dropna()
        if len(close) and close.iloc[0] != 0:
            scaled = thin(close / close.iloc[0] * start_value)
            fig.add_scatter(x=naive_utc(scaled.index), y=scaled.to_numpy(), name=f"benchmark ({benchmark.name})"
                            if benchmark.name else "benchmark", line={"color": GREY})
    fig.update_yaxes(title_text="equity", tickformat=",.0f")
    return fig


def underwater_chart(equity: pd.Series) -> go.Figure:
    """Return the drawdown from the running peak over time (the "underwater" chart), in percent."""
    fig = go.Figure(layout=LAYOUT)
    shown = thin(drawdown(equity) * 100.0, how="min")
    fig.add_scatter(x=naive_utc(shown.index), y=shown.to_numpy(), name="drawdown", fill="tozeroy",
                    line={"color": RED, "width": 1}, hovertemplate="%{y:.2f}%<extra></extra>")
    fig.update_yaxes(title_text="drawdown %", ticksuffix="%")
    return fig


def monthly_returns(equity: pd.Series, start_value: float) -> pd.DataFrame:
    """Return years x months (1-12) of each calendar month's return; the first from ``start_value``."""
    index = equity.index.tz_convert("UTC") if isinstance(equity.index, pd.DatetimeIndex) and equity.index.tz \
        else equity.index
    ends = equity.groupby([index.year, index.month]).last()
    previous = ends.shift(1)
    previous.iloc[0] = start_value
    returns = ends / previous - 1.0
    returns.index.names = ["year", "month"]
    table = returns.unstack("month").reindex(columns=range(1, 13))
    return table


def monthly_heatmap(equity: pd.Series, start_value: float) -> go.Figure:
    """Return the heatmap of monthly returns (rows years, columns months), the percent in each cell."""
    table = monthly_returns(equity, start_value) * 100.0
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    values = table.to_numpy(dtype=float)
    text = [["" if math.isnan(v) else f"{v:.1f}%" for v in row] for row in values]
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig = go.Figure(go.Heatmap(z=values, x=months, y=[str(year) for year in table.index], text=text,
                               texttemplate="%{text}", colorscale="RdYlGn", zmid=0.0, zmin=-limit, zmax=limit,
                               hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
                               colorbar={"ticksuffix": "%"}), layout=LAYOUT)
    fig.update_layout(height=max(160, 60 + 32 * len(table)), hovermode="closest")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def rolling_sharpe_chart(sharpe: pd.Series, window: int) -> go.Figure:
    """Return the rolling Sharpe ratio (:func:`rolling_sharpe`) over ``window`` periods, with the zero line."""
    fig = go.Figure(layout=LAYOUT)
    shown = thin(sharpe)
    fig.add_scatter(x=naive_utc(shown.index), y=shown.to_numpy(), name=f"Sharpe ({window})",
                    line={"color": BLUE}, hovertemplate="%{y:.2f}<extra></extra>")
    fig.add_hline(y=0.0, line={"color": GREY, "width": 1})
    fig.update_yaxes(title_text="Sharpe (annualised)")
    return fig


def distribution_chart(returns: pd.Series) -> go.Figure:
    """Return the histogram of ``returns`` in percent, with the mean and the 5 % quantile marked."""
    values = returns.dropna().to_numpy(dtype=float) * 100.0
    fig = go.Figure(layout=LAYOUT)
    fig.add_histogram(x=values, nbinsx=min(100, max(10, len(values) // 5)), name="returns",
                      marker={"color": BLUE}, hovertemplate="%{x}: %{y}<extra></extra>")
    if len(values):
        fig.add_vline(x=float(values.mean()), line={"color": GREEN, "dash": "dash"},
                      annotation_text="mean", annotation_position="top right")
        fig.add_vline(x=float(np.quantile(values, 0.05)), line={"color": RED, "dash": "dash"},
                      annotation_text="5 %", annotation_position="top left")
    fig.update_layout(hovermode="closest", bargap=0.02, showlegend=False)
    fig.update_xaxes(title_text="return %", ticksuffix="%")
    fig.update_yaxes(title_text="count")
    return fig


def _price_traces(fig: go.Figure, bars: pd.DataFrame) -> None:
    close = bars["close"].astype(float)
    if len(close) <= MAX_POINTS:
        fig.add_scatter(x=naive_utc(close.index), y=close.to_numpy(), name="close", line={"color": GREY, "width": 1})
        return
    high = thin(bars["high"].astype(float) if "high" in bars else close, how="max")
    low = thin(bars["low"].astype(float) if "low" in bars else close, how="min")
    last = thin(close)
    fig.add_scatter(x=naive_utc(high.index), y=high.to_numpy(), name="high", line={"width": 0},
                    showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=naive_utc(low.index), y=low.to_numpy(), name="range", fill="tonexty", line={"width": 0},
                    fillcolor="rgba(140,149,159,0.25)", hoverinfo="skip")
    fig.add_scatter(x=naive_utc(last.index), y=last.to_numpy(), name="close", line={"color": GREY, "width": 1})


def trades_chart(bars: pd.DataFrame, trades: pd.DataFrame) -> go.Figure:
    """Return one instrument's close with its trades: entries (long up, short down) and exits (rings).

    ``trades`` has the columns of :data:`trader.backtest.result.TRADE_COLUMNS`
    for this instrument only; past :data:`MAX_MARKERS` the most recent are
    drawn. An exit is a ring, green for a profit and red for a loss, drawn
    under the entries: a reversal exits and enters at the same fill, and both
    stay visible.
    """
    fig = go.Figure(layout=LAYOUT)
    _price_traces(fig, bars)
    shown = trades.tail(MAX_MARKERS)
    exits = shown[shown["exit_time"].notna()]
    if not exits.empty:
        pnl = exits["pnl"].astype(float)
        text = [f"exit @ {float(p):.4g}, pnl {v:,.2f}" for p, v in zip(exits["exit_price"], pnl, strict=True)]
        fig.add_scatter(x=naive_utc(pd.DatetimeIndex(exits["exit_time"])),
                        y=exits["exit_price"].astype(float).to_numpy(), mode="markers", name="exit", text=text,
                        hovertemplate="%{text}<extra></extra>",
                        marker={"symbol": "circle-open", "size": 13, "line": {"width": 2},
                                "color": np.where(pnl >= 0, GREEN, RED)})
    for direction, symbol, color in (("long", "triangle-up", GREEN), ("short", "triangle-down", RED)):
        entries = shown[shown["direction"] == direction]
        if entries.empty:
            continue
        text = [f"{direction} {float(q):g} @ {float(p):.4g}" for q, p in
                zip(entries["quantity"], entries["entry_price"], strict=True)]
        fig.add_scatter(x=naive_utc(pd.DatetimeIndex(entries["entry_time"])),
                        y=entries["entry_price"].astype(float).to_numpy(), mode="markers",
                        name=f"{direction} entry", text=text, hovertemplate="%{text}<extra></extra>",
                        marker={"symbol": symbol, "size": 8, "color": color, "line": {"width": 0}})
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(title_text="price")
    return fig


def mc_fan_chart(fan: pd.DataFrame) -> go.Figure:
    """Return the Monte Carlo fan: days x quantiles of equity (a multiple of the start), bands and median."""
    quantiles = sorted(fan.columns, key=float)
    days = fan.index.to_numpy()
    axis = "trades ahead" if fan.index.name == "trade" else "trading days ahead"
    fig = go.Figure(layout=LAYOUT)
    pairs = list(zip(quantiles, reversed(quantiles), strict=True))[: len(quantiles) // 2]
    for number, (low, high) in enumerate(pairs):
        shade = 0.15 + 0.15 * number
        fig.add_scatter(x=days, y=fan[high].to_numpy(), line={"width": 0}, showlegend=False, hoverinfo="skip",
                        name=f"{float(high):.0%}")
        fig.add_scatter(x=days, y=fan[low].to_numpy(), line={"width": 0}, fill="tonexty",
                        fillcolor=f"rgba(9,105,218,{shade:.2f})", name=f"{float(low):.0%}-{float(high):.0%}",
                        hoverinfo="skip")
    middle = quantiles[len(quantiles) // 2]
    fig.add_scatter(x=days, y=fan[middle].to_numpy(), name="median" if float(middle) == 0.5
                    else f"{float(middle):.0%}", line={"color": BLUE}, hovertemplate="day %{x}: %{y:.3f}x")
    fig.add_hline(y=1.0, line={"color": GREY, "width": 1})
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(title_text="equity (x start)")
    return fig


def mc_distribution_chart(max_drawdown: np.ndarray, final_equity: np.ndarray) -> go.Figure:
    """Return the histograms of the paths' max drawdown and final equity, their 95 % / 5 % tails marked."""
    from plotly.subplots import make_subplots

    drawdowns = np.asarray(max_drawdown, dtype=float) * 100.0
    finals = np.asarray(final_equity, dtype=float)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("max drawdown of each path", "final equity of each path"),
                        horizontal_spacing=0.1)
    fig.add_histogram(x=drawdowns, nbinsx=60, marker={"color": RED}, name="max drawdown", row=1, col=1,
                      hovertemplate="%{x}%: %{y}<extra></extra>")
    fig.add_histogram(x=finals, nbinsx=60, marker={"color": BLUE}, name="final equity", row=1, col=2,
                      hovertemplate="%{x}x: %{y}<extra></extra>")
    if len(drawdowns):
        fig.add_vline(x=float(np.quantile(drawdowns, 0.95)), line={"color": "#1d2433", "dash": "dash"},
                      annotation_text="95 %", row=1, col=1)
        fig.add_vline(x=float(np.quantile(finals, 0.05)), line={"color": "#1d2433", "dash": "dash"},
                      annotation_text="5 %", row=1, col=2)
    fig.update_layout(LAYOUT, hovermode="closest", showlegend=False, bargap=0.02)
    fig.update_xaxes(title_text="drawdown %", ticksuffix="%", row=1, col=1)
    fig.update_xaxes(title_text="equity (x start)", row=1, col=2)
    fig.update_yaxes(title_text="paths", row=1, col=1)
    return fig
