"""The reports of a parameter search: the sweep's objective heatmap and the walk-forward's out-of-sample curve.

A sweep is drawn as the objective over its first two varying parameters (a
heatmap when both have few distinct values, as a grid search gives; a
scatter coloured by the objective when they are many, as a random or
genetic search gives), each cell the best row over the other parameters:
the table is best first, so the first row of each pair is its best, whatever
the objective's direction. One varying parameter is a line. A walk-forward is
the stitched out-of-sample equity with its windows' boundaries, and the
in-sample against the out-of-sample objective of each window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trader.backtest.protocols import Sweep, WalkForward
from trader.backtest.report_charts import BLUE, GREY, HEIGHT, LAYOUT, RED, naive_utc, thin
from trader.backtest.report_html import Block, Page, format_value, table_html

__all__ = ["BEST_ROWS", "sweep_chart", "sweep_page", "walkforward_chart", "walkforward_page", "windows_chart"]

BEST_ROWS = 25  # rows of the sweep's table on the page
MAX_CELLS = 60  # distinct values per axis up to which a sweep is a heatmap


def _sorted_values(values: pd.Series) -> list[Any]:
    unique = list(pd.unique(values.dropna()))
    try:
        return sorted(unique)
    except TypeError:  # mixed types: order by their text
        return sorted(unique, key=str)


def varying(sweep: Sweep) -> list[str]:
    """Return the sweep's parameters that take more than one value in its table, in the space's order."""
    return [name for name in sweep.space if name in sweep.table and sweep.table[name].nunique(dropna=False) > 1]


def _line(table: pd.DataFrame, name: str, objective: str) -> go.Figure:
    best = table.drop_duplicates([name], keep="first")
    order = _sorted_values(best[name])
    best = best.set_index(name).reindex(order)
    fig = go.Figure(layout=LAYOUT)
    fig.add_scatter(x=[format_value(value) for value in order], y=best["objective"].astype(float).to_numpy(),
                    mode="lines+markers", name=objective, line={"color": BLUE},
                    hovertemplate=f"{name}=%{{x}}: %{{y:.4g}}<extra></extra>")
    fig.update_xaxes(title_text=name, type="category")
    fig.update_yaxes(title_text=objective)
    fig.update_layout(hovermode="closest")
    return fig


def _heatmap(table: pd.DataFrame, x: str, y: str, objective: str) -> go.Figure:
    best = table.drop_duplicates([x, y], keep="first")
    xs, ys = _sorted_values(best[x]), _sorted_values(best[y])
    grid = best.pivot_table(index=y, columns=x, values="objective", aggfunc="first", dropna=False)
    grid = grid.reindex(index=ys, columns=xs)
    values = grid.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(z=values, x=[format_value(v) for v in xs], y=[format_value(v) for v in ys],
                               colorscale="Viridis", colorbar={"title": {"text": objective}},
                               hovertemplate=f"{x}=%{{x}}, {y}=%{{y}}: %{{z:.4g}}<extra></extra>"),
                    layout=LAYOUT)
    if values.size <= 400:  # numbers in the cells while they stay legible
        text = [["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in values]
        fig.update_traces(text=text, texttemplate="%{text}")
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    fig.update_layout(hovermode="closest", height=max(HEIGHT, 120 + 22 * len(ys)))
    return fig


def _scatter(table: pd.DataFrame, x: str, y: str, objective: str) -> go.Figure:
    fig = go.Figure(layout=LAYOUT)
    scored = table[table["objective"].notna()]
    fig.add_scatter(x=scored[x].astype(float).to_numpy(), y=scored[y].astype(float).to_numpy(), mode="markers",
                    marker={"color": scored["objective"].astype(float).to_numpy(), "colorscale": "Viridis",
                            "showscale": True, "colorbar": {"title": {"text": objective}}, "size": 8},
                    hovertemplate=f"{x}=%{{x}}, {y}=%{{y}}: %{{marker.color:.4g}}<extra></extra>", name=objective)
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    fig.update_layout(hovermode="closest")
    return fig


def sweep_chart(sweep: Sweep) -> go.Figure:
    """Return the objective over the sweep's first two varying parameters (one: a line; none: one point)."""
    table, names = sweep.table, varying(sweep)
    if len(names) >= 2:
        x, y = names[0], names[1]
        many = max(table[x].nunique(), table[y].nunique()) > MAX_CELLS
        numeric = all(pd.api.types.is_numeric_dtype(table[name]) for name in (x, y))
        if many and numeric:
            return _scatter(table, x, y, sweep.objective)
        return _heatmap(table, x, y, sweep.objective)
    first = names[0] if names else next(iter(sweep.space))
    return _line(table, first, sweep.objective)


def _sweep_title(sweep: Sweep) -> str:
    names = varying(sweep)
    if len(names) >= 2:
        rest = names[2:]
        over = f"; each cell the best over {', '.join(rest)}" if rest else ""
        return f"{sweep.objective} over {names[0]} x {names[1]}{over}"
    return f"{sweep.objective} over {names[0] if names else next(iter(sweep.space))}"


def sweep_page(sweep: Sweep) -> Page:
    """Return the sweep's report: the search, the objective chart and the table of the best rows."""
    table = sweep.table
    scored = int(table["objective"].notna().sum()) if "objective" in table else 0
    space = "; ".join(f"{name}: {len(values)} values ({format_value(values[0])} .. {format_value(values[-1])})"
                      if len(values) > 1 else f"{name}: {format_value(values[0]) if values else 'none'}"
                      for name, values in sweep.space.items())
    header = {
        "strategy": sweep.strategy,
        "method": sweep.method,
        "objective": sweep.objective,
        "space": space,
        "combinations": f"{len(table):,} evaluated, {scored:,} scored, {len(table) - scored:,} rejected",
        "chunks": f"{sweep.chunks:,} ({sweep.chunks_retried:,} re-run)",
        "elapsed": f"{sweep.elapsed:.1f} s",
        "stored": str(sweep.path) if sweep.path else "not stored",
    }
    if not scored:
        blocks = [Block("Objective", note="No combination has an objective: every one was invalid or broke a "
                        "constraint (see the note column).")]
    else:
        blocks = [Block(_sweep_title(sweep), figure=sweep_chart(sweep))]
    best = table.head(BEST_ROWS).dropna(axis=1, how="all")
    blocks.append(Block(f"Best {len(best)} of {len(table):,} combinations", table=table_html(best)))
    return Page(f"Sweep: {sweep.strategy}", f"{sweep.method} search, objective {sweep.objective}", header, blocks)


def walkforward_chart(wf: WalkForward) -> go.Figure:
    """Return the stitched out-of-sample equity, each window's start a dotted line, windows shaded in turn."""
    fig = go.Figure(layout=LAYOUT)
    shown = thin(wf.equity.astype(float))
    fig.add_scatter(x=naive_utc(shown.index), y=shown.to_numpy(), name="out-of-sample equity",
                    line={"color": BLUE})
    starts = naive_utc(pd.DatetimeIndex(wf.windows["oos_start"]))
    ends = naive_utc(pd.DatetimeIndex(wf.windows["oos_end"]))
    for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if number % 2:
            fig.add_shape(type="rect", xref="x", yref="paper", x0=start, x1=end, y0=0, y1=1, line={"width": 0},
                          fillcolor="rgba(140,149,159,0.12)", layer="below")
        fig.add_shape(type="line", xref="x", yref="paper", x0=start, x1=start, y0=0, y1=1,
                      line={"color": GREY, "width": 1, "dash": "dot"})
        fig.add_annotation(x=start, y=1.0, xref="x", yref="paper", text=f"w{number + 1}", showarrow=False,
                           xanchor="left", yanchor="top", font={"size": 10, "color": GREY})
    fig.update_yaxes(title_text="equity", tickformat=",.0f")
    return fig


def windows_chart(wf: WalkForward) -> go.Figure:
    """Return each window's in-sample (best) and out-of-sample objective side by side."""
    labels = [f"w{number + 1}" for number in range(len(wf.windows))]
    fig = go.Figure(layout=LAYOUT)
    fig.add_bar(x=labels, y=wf.windows["is_objective"].astype(float).to_numpy(), name="in-sample",
                marker={"color": GREY})
    fig.add_bar(x=labels, y=wf.windows["oos_objective"].astype(float).to_numpy(), name="out-of-sample",
                marker={"color": BLUE})
    fig.update_layout(barmode="group", hovermode="x")
    fig.update_yaxes(title_text=wf.objective, zeroline=True, zerolinecolor=RED)
    return fig


def walkforward_page(wf: WalkForward) -> Page:
    """Return the walk-forward's report: the stitched out-of-sample curve, the objectives and the windows."""
    windows = wf.windows
    equity = wf.equity.dropna()
    if len(equity):
        span = f"{format_value(equity.index[0])} .. {format_value(equity.index[-1])}"
        change = f"{format_value(float(equity.iloc[0]))} -> {format_value(float(equity.iloc[-1]))}"
    else:
        span = change = "n/a"
    header = {
        "strategy": wf.strategy,
        "objective": wf.objective,
        "windows": f"{len(windows)}",
        "out-of-sample": span,
        "equity": change,
        "mean objective": (f"in-sample {format_value(float(windows['is_objective'].mean()))}, out-of-sample "
                           f"{format_value(float(windows['oos_objective'].mean()))}") if len(windows) else "n/a",
        "elapsed": f"{wf.elapsed:.1f} s",
    }
    shown = windows.copy()
    shown.insert(0, "window", [f"w{number + 1}" for number in range(len(windows))])
    if len(windows) and len(equity):
        blocks = [Block("Stitched out-of-sample equity", figure=walkforward_chart(wf)),
                  Block(f"{wf.objective} per window: in-sample best vs out-of-sample", figure=windows_chart(wf))]
    else:
        blocks = [Block("Out-of-sample equity", note="No out-of-sample window was run.")]
    blocks.append(Block("Windows", table=table_html(shown)))
    return Page(f"Walk-forward: {wf.strategy}", f"objective {wf.objective}, {len(windows)} windows", header,
                blocks)
