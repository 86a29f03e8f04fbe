"""Stochastic momentum index crossover: trade the SMI against its signal line.

Long (1) from the bar the SMI crosses above its signal line until the bar it
crosses below; then flat (0), or short (-1) with ``allow_short: true``, until
the next cross above. The position is held between crosses (the cross events
are forward-filled), and the series is flat until the first cross. Params:
``k`` (bars of the high-low range), ``d`` (span of the two EMA smoothings),
``signal`` (span of the signal line's EMA), ``allow_short``. Warm-up:
``k + 10 * max(d, signal)`` bars unless the config sets ``warmup``: the
smoothing is recursive, and that many bars make a live window's SMI match the
backtest's to within rounding.

To start a strategy of your own from it, copy this file and
``smi_crossover.yaml`` to a new stem and rename the class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from trader.strategy import Strategy, StrategyConfig
from trader.strategy.indicators import crossover, smi


class SmiCrossoverParams(BaseModel):
    """The parameters of :class:`SmiCrossover`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(10, ge=1, description="bars of the highest-high / lowest-low range")
    d: int = Field(3, ge=1, description="span of each of the two EMA smoothings")
    signal: int = Field(3, ge=1, description="span of the signal line (EMA of the SMI)")
    allow_short: bool = Field(
        False, description="go short (-1) after a cross below, instead of flat"
    )


def _warmup(params: SmiCrossoverParams) -> int:
    return params.k + 10 * max(params.d, params.signal)


class SmiCrossover(Strategy):
    """Long after the SMI crosses above its signal line; flat (or short) after it crosses below."""

    name = "smi_crossover"
    instruments = ("AAPL",)
    bar_size = "1m"
    warmup = _warmup(SmiCrossoverParams())  # __init__ derives it from the configured params
    Params = SmiCrossoverParams

    params: SmiCrossoverParams

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        if self.config.warmup is None:
            self.warmup = _warmup(self.params)  # type: ignore[misc]  # per instance, as in the base

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        """Return 1 from a cross above to the next cross below, then 0 (or -1); 0 before a cross."""
        p = self.params
        lines = smi(prices["high"], prices["low"], prices["close"], k=p.k, d=p.d, signal=p.signal)
        crosses = crossover(lines["smi"], lines["signal"])
        low = -1.0 if p.allow_short else 0.0
        events = pd.Series(
            np.where(crosses > 0, 1.0, np.where(crosses < 0, low, np.nan)), index=prices.index
        )
        return pd.Series(
            events.ffill().fillna(0.0).to_numpy(dtype=np.float64),
            index=prices.index,
            name=self.name,
        )
