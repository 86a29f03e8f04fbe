"""Helpers of the backtest tests: a strategy that returns given targets, and small hand-made bars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from trader.strategy.base import Strategy, StrategyConfig


class Given(Strategy):
    """A strategy whose ``signals`` returns the targets it was given (per instrument, or one list for all)."""

    name = "given"
    instruments = ("AAPL",)
    bar_size = "1m"

    def __init__(self, targets: Sequence[Any] | dict[str, Sequence[Any]] | Any, config: StrategyConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(config or StrategyConfig(**settings))
        self.given = targets
        self.history: dict[str, pd.DatetimeIndex] = {}  # the bars of the whole-history call, per instrument

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        targets = self.given
        if isinstance(targets, dict):
            targets = targets[prices.attrs["instrument"]]
        if not isinstance(targets, (list, tuple, np.ndarray)):
            return targets  # a broken strategy's answer, as is
        instrument = prices.attrs.get("instrument", "")
        history = self.history.get(instrument)
        if len(targets) != len(prices) and history is not None and prices.index.isin(history).all():
            targets = [targets[k] for k in history.get_indexer(prices.index)]  # live's window: its bars' targets
        elif len(targets) == len(prices):
            self.history[instrument] = prices.index
        return pd.Series(list(targets), index=prices.index, dtype=object if _mixed(targets) else None)


def _mixed(values: Sequence[Any]) -> bool:
    return any(isinstance(v, (str, bool)) or v is None for v in values)


def make_bars(opens: Sequence[float], *, spread: float = 0.5, close_add: float = 0.2, start: str = "2024-01-02 14:30",
              freq: str = "1min", instrument: str = "AAPL", highs: Sequence[float] | None = None,
              lows: Sequence[float] | None = None) -> pd.DataFrame:
    """Return bars with the given opens: high = open + spread, low = open - spread, close = open + close_add."""
    index = pd.date_range(start, periods=len(opens), freq=freq, tz="UTC")
    o = np.asarray(opens, dtype=float)
    frame = pd.DataFrame({
        "open": o,
        "high": np.asarray(highs, dtype=float) if highs is not None else o + spread,
        "low": np.asarray(lows, dtype=float) if lows is not None else o - spread,
        "close": o + close_add,
        "volume": 1000.0,
    }, index=index)
    frame.attrs["instrument"] = instrument
    return frame
