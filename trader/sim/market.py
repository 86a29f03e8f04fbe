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

With ``sessions`` on, an instrument moves only inside its exchange's sessions
(:mod:`trader.sim.trading_hours`): outside them its quote stands still and
nothing prints, as on a closed exchange. Off (the default), every market runs
around the clock.

A generated instrument (configs/sim.yaml's ``generated`` rules: hundreds of
stocks and FX pairs) starts walking only when first asked about
(:meth:`MarketGenerator.state`), from its configured price at that moment:
the tick loop costs what is watched, not the catalogue's size.

Instruments that a :class:`~trader.sim.replay.ReplaySource` drives (see
:meth:`MarketGenerator.drive`) follow their file instead of the walk; the rest
keep walking, so a replayed future and simulated stocks can trade side by side.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from decimal import Decimal

from trader.sim.catalogue import Catalogue, SimInstrument
from trader.sim.market_state import MarketState, MinuteBar, minute_of, record_minute
from trader.sim.replay import ReplaySource
from trader.sim.trading_hours import SessionGate, TradingHours, hours_of

__all__ = ["TRADING_SECONDS_PER_YEAR", "MarketGenerator"]

# Volatility is annualised over trading time, as quoted for equities.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


class MarketGenerator:
    """Every catalogue instrument's simulated market, stepped together."""

    def __init__(self, catalogue: Catalogue, seed: int, tick_rate: float, start: datetime, *,
                 sessions: bool = False) -> None:
        if tick_rate <= 0:
            raise ValueError(f"tick_rate must be > 0, got {tick_rate}")
        self.catalogue = catalogue
        self.seed = seed
        self.tick_rate = tick_rate
        self.start = start
        self.steps = 0
        self.paused = False
        self.replay: ReplaySource | None = None
        self.sessions = sessions
        self._gate = SessionGate()
        self._hours: dict[int, TradingHours] = {}
        self._calendars: dict[str, TradingHours] = {}  # one per calendar: what instruments share
        self._walking: list[MarketState] = []
        self._states: dict[int, MarketState] = {}
        self._now = start
        for inst in catalogue:
            if not inst.generated:
                self._states[inst.conid] = self._initial_state(inst, start)
        self._walking = list(self._states.values())

    def _initial_state(self, inst: SimInstrument, start: datetime) -> MarketState:
        hours = hours_of(inst, sessions=self.sessions)
        self._hours[inst.conid] = self._calendars.setdefault(hours.calendar.hours, hours)
        rng = random.Random(f"tws-sim:{self.seed}:{inst.conid}")
        half_spread = Decimal(inst.spread_ticks) * inst.tick_size / 2
        bid_ticks = max(1, int(((inst.price - half_spread) / inst.tick_size).to_integral_value()))
        state = MarketState(
            instrument=inst,
            rng=rng,
            bid_ticks=bid_ticks,
            bid_size=self._size(rng, inst.quote_size),
            ask_size=self._size(rng, inst.quote_size),
            spread_ticks=inst.spread_ticks,
            last=inst.price,  # the previous session's last trade, as TWS shows it before today's first
            last_size=inst.trade_size,
            close=inst.price,
            time=start,
        )
        mid = float(state.mid)
        state.minutes.append(MinuteBar(minute_of(start), mid, mid, mid, mid))
        return state

    @staticmethod
    def _size(rng: random.Random, typical: int) -> int:
        return max(1, round(typical * rng.uniform(0.3, 1.7)))

    def state(self, conid: int) -> MarketState:
        """Return ``conid``'s market (a generated instrument's starts now); KeyError if it is not in the catalogue."""
        state = self._states.get(conid)
        if state is None:
            inst = self.catalogue.get(conid)
            if inst is None:
                raise KeyError(conid)
            state = self.add(inst, self._now)
        return state

    def add(self, inst: SimInstrument, now: datetime) -> MarketState:
        """Start the market of an instrument listed while running (the next contract of a series)."""
        state = self._initial_state(inst, now)
        self._states[inst.conid] = state
        self._walking.append(state)
        return state

    def hours(self, conid: int) -> TradingHours:
        """Return ``conid``'s trading hours (KeyError if it is not in the catalogue)."""
        hours = self._hours.get(conid)
        if hours is None:
            self.state(conid)  # a generated instrument's market (and hours) start when first asked about
            hours = self._hours[conid]
        return hours

    def is_open(self, conid: int, now: datetime) -> bool:
        """Return whether ``conid``'s market trades at ``now`` (always, with sessions off)."""
        return self._gate.is_open(self.hours(conid), now)

    def states(self) -> list[MarketState]:
        return list(self._states.values())

    @property
    def step_seconds(self) -> float:
        return 1.0 / self.tick_rate

    def drive(self, replay: ReplaySource) -> None:
        """Let ``replay`` move its instruments from now on; the others keep walking."""
        for conid in replay.conids:
            if conid not in self._states and self.catalogue.get(conid) is not None:
                self.state(conid)
        replay.attach(self._states, self.start)
        self.replay = replay
        self._walking = [s for s in self._states.values() if s.instrument.conid not in replay.conids]

    def step(self, now: datetime) -> list[MarketState]:
        """Move every instrument one tick interval, as of ``now``; return the states that changed.

        A paused market does not move (and records nothing); a replay holds its place.
        """
        if self.paused:
            if self.replay is not None:
                self.replay.hold(now)
            return []
        self.steps += 1
        self._now = now
        walking = self._walking
        if self.sessions:
            closed = {h for h in self._calendars.values() if not self._gate.is_open(h, now)}
            if closed:
                hours = self._hours
                walking = [s for s in walking if hours[s.instrument.conid] not in closed]
        moved = [state for state in walking if self._step_one(state, now)]
        if self.replay is not None:
            moved.extend(self.replay.advance(now))
        return moved

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
            state.trade(state.ask if rng.random() < 0.5 else state.bid, traded)
        state.time = now
        record_minute(state, now, traded, 1 if traded else 0)
        return (state.bid_ticks, state.bid_size, state.ask_size, state.volume) != before
