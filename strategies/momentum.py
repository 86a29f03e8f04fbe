"""Time-series momentum with hysteresis: ride a move, leave when it fades.

Long (1) from a bar where the return over the last ``lookback`` bars is above
``entry`` until a bar where it is below ``exit``; flat (0) otherwise. Between
the two levels the position is held, so a return hovering around one level
does not flip it every bar. Params: ``lookback`` (bars), ``entry`` and
``exit`` (fractions: 0.002 = 0.2 %, exit <= entry). Warm-up: ``lookback + 1``
bars unless the config sets ``warmup``.

The live position depends on the last entry or exit, which must lie inside
the window of bars the service keeps; the class keeps at least 1,000 bars
(raise ``window`` in the config for a strategy that can sit longer).

To start a strategy of your own from it, copy this file and ``momentum.yaml``
to a new stem and rename the class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader.strategy import Strategy, StrategyConfig
from trader.strategy.indicators import hold_between, returns

MIN_WINDOW = 1000


class MomentumParams(BaseModel):
    """The parameters of :class:`Momentum`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(20, ge=1, description="bars of the return")
    entry: float = Field(
        0.002, gt=-1, description="go long when the return is above this (fraction)"
    )
    exit: float = Field(0.0, gt=-1, description="go flat when the return is below this (fraction)")

    @model_validator(mode="after")
    def _exit_not_above_entry(self) -> MomentumParams:
        if self.exit > self.entry:
            raise ValueError(f"exit ({self.exit}) must not be above entry ({self.entry})")
        return self


class Momentum(Strategy):
    """Long from return(lookback) > entry until return(lookback) < exit."""

    name = "momentum"
    instruments = ("MSFT",)
    bar_size = "1m"
    warmup = MomentumParams().lookback + 1  # __init__ derives it from the configured lookback
    Params = MomentumParams

    params: MomentumParams

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        if self.config.warmup is None:
            self.warmup = self.params.lookback + 1  # type: ignore[misc]  # as in the base

    @property
    def window(self) -> int:
        """Return the bars kept live: at least MIN_WINDOW, so the last entry or exit is in sight."""
        return self.config.window or max(super().window, MIN_WINDOW)

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        """Return 1 from return > entry until return < exit, else 0."""
        change = returns(prices["close"], self.params.lookback)  # NaN in warm-up: flat
        position = hold_between(change > self.params.entry, change < self.params.exit)
        return pd.Series(position.to_numpy(dtype=np.float64), index=prices.index, name=self.name)
