"""What a backtest, a sweep and a walk-forward return: one result object each, read by everything else.

Metrics (:mod:`trader.backtest.metrics`), Monte Carlo
(:mod:`trader.backtest.montecarlo`) and the tear sheet
(:mod:`trader.backtest.report`) read these objects and nothing else, in the
CLI and in notebooks alike. Their heavy parts are imported on first use, so
loading a result costs no vectorbt, numba or Plotly import.

Frames (all UTC-indexed by bar start, oldest first):

- ``equity``: the account's value at each bar's close (cash + positions
  marked at the close), starting from ``settings.initial_cash``.
- ``positions``: bars x instruments, the signed quantity held after the bar.
- ``orders``: one row per fill, columns ``ORDER_COLUMNS``: ``time`` the bar
  whose close decided it, ``fill_time`` the bar at whose open it filled,
  ``instrument``, ``side`` (BUY/SELL), ``quantity`` (Decimal, unsigned),
  ``price`` (Decimal, slippage in), ``commission`` (Decimal), ``reason``
  (``signal``, ``stop_loss``, ``take_profit``).
- ``trades``: one row per round trip, columns ``TRADE_COLUMNS``: ``instrument``,
  ``direction`` (long/short), ``entry_time``, ``exit_time`` (NaT while open),
  ``quantity``, ``entry_price``, ``exit_price``, ``pnl`` (net of commissions),
  ``return`` (pnl over the entry's value), ``commission``, ``bars`` held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

# MonteCarloResult lives in risk.py so that montecarlo builds one without importing this module
from trader.backtest.risk import MonteCarloResult
from trader.backtest.settings import BacktestSettings

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["ORDER_COLUMNS", "TRADE_COLUMNS", "BacktestResult", "MonteCarloResult", "SweepResult",
           "WalkForwardResult"]

ORDER_COLUMNS = ("time", "fill_time", "instrument", "side", "quantity", "price", "commission", "reason")
TRADE_COLUMNS = ("instrument", "direction", "entry_time", "exit_time", "quantity", "entry_price", "exit_price",
                 "pnl", "return", "commission", "bars")


@dataclass
class BacktestResult:
    """One backtest of one strategy with one set of parameters; see the module docstring for the frames."""

    strategy: str
    params: dict[str, Any]
    settings: BacktestSettings
    bar_size: str
    prices: dict[str, pd.DataFrame]  # instrument -> its bars (open high low close volume)
    targets: pd.DataFrame  # bars x instruments: the checked output of signals
    equity: pd.Series
    positions: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame
    benchmark: pd.Series | None = None  # the benchmark's close on the same bars
    skipped: list[str] = field(default_factory=list)  # what the run left out, and why (gaps, NaN targets)
    elapsed: float = 0.0  # seconds the run took
    _stats: dict[str, float] | None = field(default=None, repr=False)

    @property
    def returns(self) -> pd.Series:
        """Return the per-bar returns of the equity."""
        return self.equity.pct_change().fillna(0.0)

    @property
    def stats(self) -> dict[str, float]:
        """Return every metric of :func:`trader.backtest.metrics.compute`, computed once."""
        if self._stats is None:
            from trader.backtest.metrics import compute

            self._stats = compute(self)
        return self._stats

    def monte_carlo(self, method: str = "block", *, paths: int | None = None) -> MonteCarloResult:
        """Return the Monte Carlo risk of this result (:func:`trader.backtest.montecarlo.simulate`)."""
        from trader.backtest.montecarlo import simulate

        return simulate(self, method=method, paths=paths)

    def plot(self) -> go.Figure:
        """Return the equity-and-drawdown figure (shown inline in Jupyter)."""
        from trader.backtest.report import figure

        return figure(self)

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML tear sheet to ``path``; return it."""
        from trader.backtest.report import write_report

        return write_report(self, Path(path))

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data: strategy, params, range, orders, trades, metrics, skipped."""
        from trader.backtest.serialize import result_dict

        return result_dict(self)


@dataclass
class SweepResult:
    """A parameter search: one row per evaluated combination, best first by the objective.

    ``table`` has a column per parameter, ``objective`` and the headline
    metrics (``sharpe``, ``cagr``, ``max_drawdown``, ``trades``...); rows that
    broke a constraint or whose params were invalid carry NaN and a ``note``.
    ``path`` is the Parquet file it is stored in (reported again without
    recomputing by :meth:`load`).
    """

    strategy: str
    method: str
    objective: str
    space: dict[str, list[Any]]
    table: pd.DataFrame
    path: Path | None = None
    elapsed: float = 0.0
    chunks: int = 0
    chunks_retried: int = 0
    dropped: int = 0  # combinations the Params model refused (fast >= slow), counted, not evaluated
    constraints: list[str] = field(default_factory=list)  # as given: "trades>=10"
    trials: int = 0  # combinations asked for (the grid's size, or --trials); fewer rows: the space ran out

    @property
    def best(self) -> dict[str, Any]:
        """Return the parameters of the best row."""
        row = self.table.iloc[0]
        return {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in self.space}

    def plot(self) -> go.Figure:
        """Return the parameter heatmap (objective over the first two parameters)."""
        from trader.backtest.report import sweep_figure

        return sweep_figure(self)

    def report(self, path: str | Path) -> Path:
        """Write the sweep's HTML report to ``path``; return it."""
        from trader.backtest.report import write_sweep_report

        return write_sweep_report(self, Path(path))


@dataclass
class WalkForwardResult:
    """A walk-forward analysis: per window the in-sample best params and the out-of-sample score.

    ``windows`` has columns ``is_start is_end oos_start oos_end params
    is_objective oos_objective``; ``equity`` is the stitched out-of-sample
    equity (each window's out-of-sample run starting from where the last one
    ended).
    """

    strategy: str
    objective: str
    windows: pd.DataFrame
    equity: pd.Series
    elapsed: float = 0.0

    def plot(self) -> go.Figure:
        """Return the stitched out-of-sample equity figure."""
        from trader.backtest.report import walkforward_figure

        return walkforward_figure(self)

    def report(self, path: str | Path) -> Path:
        """Write the walk-forward HTML report to ``path``; return it."""
        from trader.backtest.report import write_walkforward_report

        return write_walkforward_report(self, Path(path))
