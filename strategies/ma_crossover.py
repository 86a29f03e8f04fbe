"""Moving-average crossover: the demo strategy, and the simplest template.

Long (1) while the fast simple moving average of the close is above the slow
one, flat (0) otherwise; with ``allow_short: true``, short (-1) while it is
below (flat when they are equal). Params: ``fast`` and ``slow`` (bars,
fast < slow), ``allow_short``. Warm-up: ``slow`` bars unless the config sets
``warmup``. Each value depends on the last ``slow`` bars only, so live and
backtest agree bar for bar.

To write your own strategy, copy this file and ``ma_crossover.yaml`` to a new
stem (``strategies/my_idea.py`` + ``strategies/my_idea.yaml``), rename the
class, change ``Params`` and ``signals``, and keep ``signals`` vectorized,
causal (bar ``t`` uses bars ``<= t`` only) and free of NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader.strategy import Strategy, StrategyConfig
from trader.strategy.indicators import sma, spread_sign


class MaCrossoverParams(BaseModel):
    """The parameters of :class:`MaCrossover`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: int = Field(3, ge=1, description="bars in the fast moving average")
    slow: int = Field(8, ge=2, description="bars in the slow moving average")
    allow_short: bool = Field(False, description="go short (-1) while fast < slow, instead of flat")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


class MaCrossover(Strategy):
    """Long while SMA(fast) > SMA(slow); flat, or short if allowed, otherwise."""

    name = "ma_crossover"
    instruments = ("AAPL",)
    bar_size = "5s"
    warmup = 8  # slow's default; __init__ derives it from the configured slow
    Params = MaCrossoverParams

    params: MaCrossoverParams

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        if self.config.warmup is None:
            self.warmup = self.params.slow  # type: ignore[misc]  # per instance, as in the base

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        """Return 1 where SMA(fast) > SMA(slow), -1 (or 0) where below, 0 at ties and in warm-up."""
        close = prices["close"]
        side = spread_sign(sma(close, self.params.fast), sma(close, self.params.slow)).fillna(0.0)
        if not self.params.allow_short:
            side = side.clip(lower=0.0)
        return pd.Series(side.to_numpy(dtype=np.float64), index=prices.index, name=self.name)
