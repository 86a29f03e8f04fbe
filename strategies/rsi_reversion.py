"""RSI mean reversion: buy an oversold market, sell when it has recovered.

Long (1) from a bar where Wilder's RSI is below ``oversold`` until a bar where
it is above ``exit``; with ``allow_short: true``, symmetrically short (-1)
from a bar where it is above ``overbought`` until a bar where it is below
``exit``. Flat (0) otherwise. The position is held between entry and exit
(forward-filled). Params: ``period`` (RSI bars), ``oversold``, ``exit``,
``overbought`` (0 < oversold < exit < overbought < 100), ``allow_short``.
Warm-up: ``10 * period`` bars unless the config sets ``warmup``: Wilder's
smoothing is recursive, and that many bars make a live window's RSI match
the backtest's to within rounding.

The live position depends on the last entry or exit, which must lie inside
the window of bars the service keeps; the class keeps at least 1,000 bars
(raise ``window`` in the config for a strategy that can sit longer).

To start a strategy of your own from it, copy this file and
``rsi_reversion.yaml`` to a new stem and rename the class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader.strategy import Strategy, StrategyConfig
from trader.strategy.indicators import hold_between, rsi

MIN_WINDOW = 1000


class RsiReversionParams(BaseModel):
    """The parameters of :class:`RsiReversion`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: int = Field(14, ge=1, description="bars of the RSI")
    oversold: float = Field(30.0, gt=0, lt=100, description="go long below this RSI")
    exit: float = Field(50.0, gt=0, lt=100, description="close a long above it, a short below it")
    overbought: float = Field(
        70.0, gt=0, lt=100, description="go short above this RSI (if allowed)"
    )
    allow_short: bool = Field(False, description="also trade the short side")

    @model_validator(mode="after")
    def _levels_in_order(self) -> RsiReversionParams:
        if not self.oversold < self.exit < self.overbought:
            raise ValueError(
                "need oversold < exit < overbought, got "
                f"{self.oversold}, {self.exit}, {self.overbought}"
            )
        return self


class RsiReversion(Strategy):
    """Long from RSI < oversold to RSI > exit; if allowed, short from RSI > overbought to < exit."""

    name = "rsi_reversion"
    instruments = ("AAPL",)
    bar_size = "1m"
    warmup = 10 * RsiReversionParams().period  # __init__ derives it from the configured period
    Params = RsiReversionParams

    params: RsiReversionParams

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        if self.config.warmup is None:
            self.warmup = 10 * self.params.period  # type: ignore[misc]  # as in the base

    @property
    def window(self) -> int:
        """Return the bars kept live: at least MIN_WINDOW, so the last entry or exit is in sight."""
        return self.config.window or max(super().window, MIN_WINDOW)

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        """Return 1 from RSI < oversold to RSI > exit, -1 from RSI > overbought to RSI < exit."""
        p = self.params
        value = rsi(prices["close"], p.period)  # NaN in warm-up: every comparison is false, so flat
        position = hold_between(value < p.oversold, value > p.exit)
        if p.allow_short:
            # The legs never overlap: a long ends (RSI > exit) before RSI can reach overbought.
            position = position - hold_between(value > p.overbought, value < p.exit)
        return pd.Series(position.to_numpy(dtype=np.float64), index=prices.index, name=self.name)
