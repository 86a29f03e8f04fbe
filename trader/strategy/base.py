"""The strategy contract: a class whose core is one vectorized function.

A strategy subclasses :class:`Strategy` and implements
``signals(prices) -> Series``: for one instrument's bars (a DataFrame of
``open high low close volume`` indexed by bar start, UTC, oldest first) it
returns the target position at each bar. By default a target is a fraction
of the strategy's size in -1..1 (1 = fully long, -1 = fully short, 0 =
flat); with ``units: shares`` it is a number of shares or contracts. The
backtest calls ``signals`` once over the whole history; live, the strategy
service calls it on a rolling window at each closed bar and trades the change
of the last value. One function, so the two cannot disagree.

Declared on the class (and overridable from the plugin's config file):
``instruments``, ``bar_size``, ``warmup`` (bars of history needed before the
first signal) and ``Params`` (a pydantic model of the strategy's parameters,
validated from the config's ``params:``). Sizing, stop loss and take profit
come from the config (:class:`StrategyConfig`).

Optional hooks run on the service's loop: ``on_start``, ``on_bar``,
``on_tick``, ``on_fill``, ``on_stop``. For strategies that need more than
bars, :meth:`Strategy.pipeline` is an Rx escape hatch: given the tick
Observable of each instrument it returns an Observable of targets, which the
service trades like the targets from ``signals``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from trader.backtest.settings import BacktestSettings
from trader.config import StrictModel
from trader.domain import OrderType, TimeInForce
from trader.strategy.bars import parse_bar_size

if TYPE_CHECKING:
    from reactivex import Observable

    from trader.domain import Bar, Fill, Tick

__all__ = ["NoParams", "Sizing", "Strategy", "StrategyConfig"]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,23}$"


class NoParams(BaseModel):
    """The parameters of a strategy that declares none: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Sizing(StrictModel):
    """How a target of 1.0 becomes a quantity.

    ``quantity``: ``value`` shares or contracts. ``cash``: as many units as
    ``value`` in the instrument's currency buys at the current price.
    ``equity_percent``: ``value`` percent of the account's net liquidation.
    Quantities round toward zero to a multiple of ``lot``.
    """

    kind: Literal["quantity", "cash", "equity_percent"] = "quantity"
    value: Decimal = Field(Decimal(1), gt=0)
    lot: Decimal = Field(Decimal(1), gt=0)


class StrategyConfig(StrictModel):
    """A strategy's config file (YAML or TOML beside its module), validated.

    Every key is optional: the class declares the defaults of ``instruments``,
    ``bar_size`` and ``warmup``, and ``params`` is validated against the
    class's ``Params``.
    """

    name: str | None = Field(None, pattern=NAME_PATTERN)
    enabled: bool = True
    instruments: list[str] | None = Field(None, min_length=1)
    bar_size: str | None = None
    warmup: int | None = Field(None, ge=0, le=100_000)
    window: int | None = Field(None, ge=1, le=1_000_000, description="bars kept for signals (default: warmup * 2)")
    units: Literal["fraction", "shares"] = "fraction"
    max_shares: Decimal | None = Field(None, gt=0, description="with units: shares, the largest sane target")
    sizing: Sizing = Sizing()
    stop_loss_percent: Decimal | None = Field(None, gt=0, lt=100)
    take_profit_percent: Decimal | None = Field(None, gt=0)
    order_type: Literal[OrderType.MKT] = OrderType.MKT
    tif: TimeInForce = TimeInForce.DAY
    time_budget: float = Field(2.0, gt=0, le=600, description="seconds a signals/hook call may take")
    no_ticks_seconds: float | None = Field(None, ge=0, description="seconds without a tick before it shows DEGRADED "
                                           "(default: strategies.no_ticks_seconds; 0: never)")
    params: dict[str, Any] = Field(default_factory=dict)
    backtest: BacktestSettings = BacktestSettings()

    @field_validator("bar_size")
    @classmethod
    def _bar_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bar_size(value)  # raises ValueError with the reason
        return value


class Strategy:
    """Base class of every strategy; see the module docstring."""

    #: The strategy's name (default: the plugin file's stem).
    name: ClassVar[str] = ""
    #: Symbols or contract keys it trades.
    instruments: ClassVar[tuple[str, ...]] = ()
    #: Bar size, e.g. "5s", "1m", "15m", "1h", "1d".
    bar_size: ClassVar[str] = "1m"
    #: Bars of history needed before the first meaningful signal.
    warmup: ClassVar[int] = 0
    #: The parameters model; the config's ``params:`` are validated against it.
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        self.config = config or StrategyConfig()
        self.params = self.Params.model_validate(self.config.params)
        resolved = self.config.name or name or type(self).name or type(self).__name__.lower()
        self.name: str = resolved  # type: ignore[misc]  # the instance's name shadows the declared default
        self.instruments = tuple(self.config.instruments or type(self).instruments)  # type: ignore[misc]
        self.bar_size = self.config.bar_size or type(self).bar_size  # type: ignore[misc]
        self.warmup = self.config.warmup if self.config.warmup is not None else type(self).warmup  # type: ignore[misc]
        self.log = logging.getLogger(f"strategy.{resolved}")

    @property
    def window(self) -> int:
        """How many bars the live service keeps and passes to ``signals``."""
        return self.config.window or max(2 * self.warmup, self.warmup + 10, 50)

    # -- the core --------------------------------------------------------------------
    def signals(self, prices: pd.DataFrame) -> pd.Series:
        """Return the target position at each bar of ``prices`` (same index, same length)."""
        raise NotImplementedError(f"{type(self).__name__} must implement signals(prices)")

    # -- the escape hatch ------------------------------------------------------------
    def pipeline(self, instrument: str, ticks: Observable[Tick]) -> Observable[float] | None:
        """Return an Observable of targets computed from ``instrument``'s ticks, or None (use bars)."""
        return None

    # -- hooks (optional) ------------------------------------------------------------
    def on_start(self) -> None:
        """Called once the warm-up history is in, before the first bar."""

    def on_bar(self, bar: Bar) -> None:
        """Called at each closed bar, before ``signals``."""

    def on_tick(self, tick: Tick) -> None:
        """Called for each tick of the strategy's instruments (keep it cheap)."""

    def on_fill(self, fill: Fill) -> None:
        """Called for each fill of the strategy's orders."""

    def on_stop(self) -> None:
        """Called when the strategy is disabled, reloaded or the service stops."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, instruments={list(self.instruments)}, bar_size={self.bar_size!r})"
