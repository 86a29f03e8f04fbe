"""The result shapes the reports and the JSON read: one Protocol per result class of :mod:`trader.backtest.result`.

Named by shape, not imported: ``result.py`` imports the report and the JSON
writer on first use (``.report()``, ``.to_dict()``), and a module importing
it back would be an import cycle. A Protocol lists what its readers
(:mod:`trader.backtest.report`, :mod:`trader.backtest.report_search`,
:mod:`trader.backtest.serialize`) use, so a test's stand-in result needs no
more than that. The Monte Carlo result is not repeated here: it is
:class:`trader.backtest.risk.MonteCarloResult`, whose module imports nothing
of the backtest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from trader.backtest.risk import MonteCarloResult
    from trader.backtest.settings import BacktestSettings

__all__ = ["Backtest", "Sweep", "WalkForward"]


class Backtest(Protocol):
    """What the tear sheet and the JSON read of a :class:`~trader.backtest.result.BacktestResult`."""

    strategy: str
    params: dict[str, Any]
    settings: BacktestSettings
    bar_size: str
    prices: dict[str, pd.DataFrame]
    equity: pd.Series
    orders: pd.DataFrame
    trades: pd.DataFrame
    benchmark: pd.Series | None
    skipped: list[str]
    elapsed: float

    @property
    def stats(self) -> dict[str, float]: ...

    def monte_carlo(self) -> MonteCarloResult: ...


class Sweep(Protocol):
    """What the sweep's report reads of a :class:`~trader.backtest.result.SweepResult`."""

    strategy: str
    method: str
    objective: str
    space: dict[str, list[Any]]
    table: pd.DataFrame
    path: Path | None
    elapsed: float
    chunks: int
    chunks_retried: int


class WalkForward(Protocol):
    """What the walk-forward's report reads of a :class:`~trader.backtest.result.WalkForwardResult`."""

    strategy: str
    objective: str
    windows: pd.DataFrame
    equity: pd.Series
    elapsed: float
