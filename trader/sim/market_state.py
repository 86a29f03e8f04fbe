"""One instrument's simulated market state, and the one-minute bars it records as it moves.

:class:`MarketState` is what the random walk (:mod:`trader.sim.market`) and
the replay (:mod:`trader.sim.replay`) both move, what the session reads to
send ticks and what :mod:`trader.sim.history` joins to the synthetic past.
It lives apart from both movers so that neither imports the other's module
for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from trader.sim.catalogue import SimInstrument
from trader.sim.orders import Quote

__all__ = ["MarketState", "MinuteBar", "minute_of", "record_minute"]


@dataclass(slots=True)
class MinuteBar:
    """One recorded minute of the live market (mid prices; volume of the trades)."""

    minute: int  # minutes since the epoch
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    count: int = 0

    def add(self, price: float, volume: float, trades: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += volume
        self.count += trades


@dataclass(slots=True)
class MarketState:
    """One instrument's market: the quote, the last trade and the session's statistics."""

    instrument: SimInstrument
    rng: random.Random
    bid_ticks: int
    bid_size: int
    ask_size: int
    spread_ticks: int = 1
    last: Decimal | None = None
    last_size: int = 0
    volume: int = 0
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None  # the previous session's close: the start price
    time: datetime | None = None
    minutes: list[MinuteBar] = field(default_factory=list)
    # The quotes a replayed instrument went through in the last step, oldest first,
    # so the engine matches each of them; empty for the random walk (one quote a step).
    passed: list[Quote] = field(default_factory=list)

    @property
    def tick(self) -> Decimal:
        return self.instrument.tick_size

    @property
    def bid(self) -> Decimal:
        return self.bid_ticks * self.tick

    @property
    def ask(self) -> Decimal:
        return (self.bid_ticks + self.spread_ticks) * self.tick

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    def quote(self) -> Quote:
        """Return the top of book for the matching engine."""
        return Quote(self.bid, self.ask, Decimal(self.bid_size), Decimal(self.ask_size), self.last)

    def trade(self, price: Decimal, size: int) -> None:
        """Print a trade: the last price and size, the volume and the session's open, high and low."""
        self.last, self.last_size = price, size
        self.volume += size
        self.open = self.open if self.open is not None else price
        self.high = price if self.high is None else max(self.high, price)
        self.low = price if self.low is None else min(self.low, price)


def record_minute(state: MarketState, now: datetime, traded: float, trades: int) -> None:
    """Add the state's mid as of ``now`` (and ``traded`` volume in ``trades`` prints) to its minute bars.

    Minutes that passed without a tick get a flat bar at the last close, so
    the bars have no holes.
    """
    minute = minute_of(now)
    mid = float(state.mid)
    bars = state.minutes
    if bars[-1].minute == minute:
        bars[-1].add(mid, traded, trades)
    elif minute > bars[-1].minute:
        last = bars[-1].close
        bars.extend(MinuteBar(m, last, last, last, last) for m in range(bars[-1].minute + 1, minute))
        bars.append(MinuteBar(minute, last, max(mid, last), min(mid, last), mid, float(traded), trades))


def minute_of(when: datetime) -> int:
    """Return ``when`` in whole minutes since the epoch."""
    return int(when.timestamp() // 60)
