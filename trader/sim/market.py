"""The simulated market: a random walk per instrument with a spread, sizes, trades and volume.

Each instrument walks on its own price grid (integer ticks, so prices are exact
Decimals) with its own random stream seeded by ``(seed, conid)``: the path of
one instrument does not depend on which others exist or are watched. One
:meth:`MarketGenerator.step` moves every instrument by one tick interval
(``1 / tick_rate`` seconds of market time). The generator never reads the
clock: the caller passes the time of each step, so tests run it in virtual
time and the server runs it on the wall clock.

Every step is also recorded into one-minute bars, which :mod:`trader.sim.history`
joins to the synthetic past so that historical data ends where the live market is.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from trader.sim.catalogue import Catalogue, Instrument
from trader.sim.orders import Quote

__all__ = ["TRADING_SECONDS_PER_YEAR", "MarketGenerator", "MarketState", "MinuteBar"]

# Volatility is annualised over trading time, as quoted for equities.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


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

    instrument: Instrument
    rng: random.Random
    bid_ticks: int
    bid_size: int
    ask_size: int
    last: Decimal | None = None
    last_size: int = 0
    volume: int = 0
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None  # the previous session's close: the start price
    time: datetime | None = None
    minutes: list[MinuteBar] = field(default_factory=list)

    @property
    def tick(self) -> Decimal:
        return self.instrument.tick_size

    @property
    def bid(self) -> Decimal:
        return self.bid_ticks * self.tick

    @property
    def ask(self) -> Decimal:
        return (self.bid_ticks + self.instrument.spread_ticks) * self.tick

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    def quote(self) -> Quote:
        """Return the top of book for the matching engine."""
        return Quote(self.bid, self.ask, Decimal(self.bid_size), Decimal(self.ask_size), self.last)


class MarketGenerator:
    """Every catalogue instrument's simulated market, stepped together."""

    def __init__(self, catalogue: Catalogue, seed: int, tick_rate: float, start: datetime) -> None:
        if tick_rate <= 0:
            raise ValueError(f"tick_rate must be > 0, got {tick_rate}")
        self.catalogue = catalogue
        self.seed = seed
        self.tick_rate = tick_rate
        self.start = start
        self.steps = 0
        self.paused = False
        self._states: dict[int, MarketState] = {}
        for inst in catalogue:
            self._states[inst.conid] = self._initial_state(inst, start)

    def _initial_state(self, inst: Instrument, start: datetime) -> MarketState:
        rng = random.Random(f"tws-sim:{self.seed}:{inst.conid}")
        half_spread = Decimal(inst.spread_ticks) * inst.tick_size / 2
        bid_ticks = max(1, int(((inst.price - half_spread) / inst.tick_size).to_integral_value()))
        state = MarketState(
            instrument=inst,
            rng=rng,
            bid_ticks=bid_ticks,
            bid_size=self._size(rng, inst.quote_size),
            ask_size=self._size(rng, inst.quote_size),
            close=inst.price,
            time=start,
        )
        mid = float(state.mid)
        state.minutes.append(MinuteBar(_minute(start), mid, mid, mid, mid))
        return state

    @staticmethod
    def _size(rng: random.Random, typical: int) -> int:
        return max(1, round(typical * rng.uniform(0.3, 1.7)))

    def state(self, conid: int) -> MarketState:
        """Return ``conid``'s market; KeyError if it is not in the catalogue."""
        return self._states[conid]

    def states(self) -> list[MarketState]:
        return list(self._states.values())

    @property
    def step_seconds(self) -> float:
        return 1.0 / self.tick_rate

    def step(self, now: datetime) -> list[MarketState]:
        """Move every instrument one tick interval, as of ``now``; return the states that changed.

        A paused market does not move (and records nothing).
        """
        if self.paused:
            return []
        self.steps += 1
        return [state for state in self._states.values() if self._step_one(state, now)]

    def _step_one(self, state: MarketState, now: datetime) -> bool:
        inst = state.instrument
        rng = state.rng
        sigma = inst.volatility * math.sqrt(self.step_seconds / TRADING_SECONDS_PER_YEAR)
        mid = float(state.mid)
        moved_mid = mid * math.exp(sigma * rng.gauss(0.0, 1.0))
        ticks = round((moved_mid - mid) / float(state.tick))
        before = (state.bid_ticks, state.bid_size, state.ask_size, state.volume)
        state.bid_ticks = max(1, state.bid_ticks + ticks)
        if rng.random() < 0.5:
            state.bid_size = self._size(rng, inst.quote_size)
        if rng.random() < 0.5:
            state.ask_size = self._size(rng, inst.quote_size)
        traded = 0
        if rng.random() < 0.4:
            traded = inst.trade_size * rng.randint(1, 5)
            price = state.ask if rng.random() < 0.5 else state.bid
            state.last, state.last_size = price, traded
            state.volume += traded
            state.open = state.open if state.open is not None else price
            state.high = price if state.high is None else max(state.high, price)
            state.low = price if state.low is None else min(state.low, price)
        state.time = now
        self._record(state, now, traded)
        return (state.bid_ticks, state.bid_size, state.ask_size, state.volume) != before

    def _record(self, state: MarketState, now: datetime, traded: int) -> None:
        minute = _minute(now)
        mid = float(state.mid)
        bars = state.minutes
        if bars[-1].minute == minute:
            bars[-1].add(mid, traded, 1 if traded else 0)
        elif minute > bars[-1].minute:
            bars.append(MinuteBar(minute, bars[-1].close, max(mid, bars[-1].close), min(mid, bars[-1].close), mid,
                                  float(traded), 1 if traded else 0))


def _minute(when: datetime) -> int:
    return int(when.timestamp() // 60)
