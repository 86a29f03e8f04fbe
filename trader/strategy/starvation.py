"""Tick starvation: a strategy whose instruments have sent no tick for a while, and why that may be.

Each running strategy has a :class:`TickWatchdog` over its contract keys:
the service notes every tick (:meth:`TickWatchdog.tick`) and asks, once a
second, which keys have been silent for ``threshold`` seconds
(``strategies.no_ticks_seconds``, or the strategy config's own
``no_ticks_seconds``; 0 turns it off). Arming it (at the strategy's start
and each time it rejoins trader_service) counts from then, so a strategy is
never starved before it could have had a tick. :func:`cause` says why from
what the strategy service knows of trader_service (its heartbeats, its
confirmed pid); :func:`reason` makes the line ``strategy list`` and
``status`` show, e.g. ``no ticks for ES.FUT.202612 for over 30 s:
trader_service restarting``. With trader_service up, connected and
streaming the key, the honest answer is that the market may be closed or
quiet: on tws-sim ticks always flow, on IB a closed market sends none, and a
strategy that trades outside its market's hours raises its threshold (or
sets it to 0).

The :class:`StarvationMonitor` owns the strategies' watchdogs and looks at
them once a second (:meth:`StarvationMonitor.check_ticks`): a starved
strategy is DEGRADED (a waiting one keeps its state) with the reason, the
strategy service DEGRADED with it, both RUNNING again once ticks flow. If
the cause is that trader_service, up and ready, does not stream the key, the
strategy rejoins it (trader.strategy.rejoin), at most once per threshold.

The threshold is for ticks that stop unexplained. When the strategy service
*knows* no tick can come (:meth:`~trader.strategy.watch.TraderWatch.outage`:
trader_service's confirmed pid silent for ``LATE_BEAT`` seconds, or its own
status saying the broker is disconnected or it is not running), every
strategy with armed keys is starved at the next look, whatever the
threshold (``no ticks for AAPL.STK: trader_service down``), and its
watchdog holds its keys (:meth:`TickWatchdog.hold`): once the outage is
over, a held key counts as starved (``... yet: trader_service back``) until
it ticks again, or until the threshold names another cause. Heartbeats are
hints (a forged one names a cause, never starves or feeds a strategy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any, Protocol

from trader.service.lifecycle import ServiceState
from trader.strategy.runner import StrategyRunner
from trader.strategy.watch import TRADER_SILENCE, TraderWatch, trader_view

log = logging.getLogger(__name__)

__all__ = ["BACK", "LATE_BEAT", "NOT_STREAMED", "StarvationMonitor", "TickWatchdog", "cause", "held", "reason"]

NOT_STREAMED = "not streamed by trader_service: subscribing again"
BACK = "trader_service back, waiting for them"  # a held key's cause once the outage is over
LATE_BEAT = 2.5  # seconds without a beat of trader_service (one a second) that say it is gone
TICK_CHECK_INTERVAL = 1.0  # seconds between two looks for strategies without ticks


class TickWatchdog:
    """The last tick time of each of a strategy's keys, and those silent for ``threshold`` seconds."""

    def __init__(self, threshold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: set[str] = set()  # keys without a tick since an outage of trader_service (see hold)

    @property
    def enabled(self) -> bool:
        """Return whether the watchdog watches anything (a threshold above 0 and keys armed)."""
        return self.threshold > 0 and bool(self._last)

    def arm(self, keys: Iterable[str]) -> None:
        """Watch ``keys`` from now: each counts as having ticked just now (a held key stays held)."""
        now = self._clock()
        self._last = dict.fromkeys(keys, now)
        self._held &= self._last.keys()

    def disarm(self) -> None:
        """Watch nothing (a stopped strategy)."""
        self._last = {}
        self._held = set()

    def hold(self) -> None:
        """Count every armed key as starved until its next tick: an outage of trader_service stops them all."""
        if self.threshold > 0:
            self._held = set(self._last)

    def held(self) -> list[str]:
        """Return the keys without a tick since the last :meth:`hold`, in key order."""
        return sorted(self._held)

    def tick(self, key: str, _tick: object = None) -> None:
        """Note a tick of ``key`` (a key not armed is ignored); the tick itself, as a feed passes it, is not read."""
        if key in self._last:
            self._last[key] = self._clock()
            self._held.discard(key)

    def silent(self) -> dict[str, float]:
        """Return the keys without a tick for ``threshold`` seconds or more, with how long, in key order."""
        if self.threshold <= 0:
            return {}
        now = self._clock()
        return {key: now - last for key, last in sorted(self._last.items()) if now - last >= self.threshold}


def cause(key: str, view: str, beat: Mapping[str, Any] | None, restarting: bool, *, quiet: float = 0.0) -> str:
    """Return why ``key`` may have no ticks, from trader_service as seen by the strategy service.

    ``view`` is :func:`~trader.strategy.watch.trader_view`'s (up, down,
    waiting); ``beat`` the last heartbeat of trader_service's confirmed pid;
    ``restarting`` whether another pid beats, not confirmed ready yet;
    ``quiet`` the seconds since the confirmed pid last beat (it beats every
    second: past ``LATE_BEAT`` it is gone, before the view says down).
    """
    if restarting:
        return "trader_service restarting"
    if view == "down":
        return "trader_service down"
    if quiet > LATE_BEAT:
        return "trader_service silent: stopped or restarting?"
    if view == "waiting" or beat is None:
        return "waiting for trader_service"
    state = beat.get("state")
    if state not in ("RUNNING", "DEGRADED"):
        return f"trader_service {str(state).lower()}"
    if beat.get("connected") is False:
        return "broker disconnected"
    if beat.get("synced") is False:
        return "trader_service re-syncing with the broker"
    streamed = beat.get("subscriptions")
    if isinstance(streamed, list) and key not in streamed:
        return NOT_STREAMED
    return "trader_service up and streaming it: market closed or quiet?"


def reason(silent: Mapping[str, float], threshold: float, why: str) -> str:
    """Return the line shown for a starved strategy (stable while the same keys starve for the same cause)."""
    return f"no ticks for {', '.join(silent)} for over {threshold:g} s: {why}"


def held(keys: Iterable[str], why: str) -> str:
    """Return the line shown for a strategy starved by a known outage (``why``), before any threshold."""
    return f"no ticks for {', '.join(keys)}: {why}"


class Health(Protocol):
    """The strategy service's own state, as the monitor sets it."""

    @property
    def state(self) -> ServiceState: ...

    def set_degraded(self, reason: str) -> None: ...

    def set_running(self, reason: str = "") -> None: ...


class StarvationMonitor:
    """Every strategy's :class:`TickWatchdog`, looked at once a second; see the module docstring.

    ``started`` is when the service started (on ``clock``, monotonic by
    default), ``starting`` the strategies whose start or rejoin is under way,
    ``rejoin(runner, why)`` subscribes a strategy again
    (trader.strategy.rejoin.Rejoin.begin).
    """

    def __init__(self, runners: Mapping[str, StrategyRunner], watch: TraderWatch, health: Health, *,
                 started: float, starting: Container[str],
                 rejoin: Callable[[StrategyRunner, str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.runners = runners
        self._clock = clock
        self.watch = watch
        self.health = health
        self.started = started
        self._starting = starting
        self._rejoin = rejoin
        self.watchdogs: dict[str, TickWatchdog] = {}  # per strategy: its instruments' last ticks
        self._healed: dict[str, float] = {}  # per strategy: when it last subscribed again for a key not streamed

    async def run(self) -> None:
        """Look for strategies without ticks every ``TICK_CHECK_INTERVAL`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(TICK_CHECK_INTERVAL)
            try:
                self.check_ticks()
            except Exception:  # the next look tries again
                log.exception("looking for strategies without ticks failed")

    def check_ticks(self) -> None:
        """Mark each strategy whose instruments send no ticks (and the service), or clear the mark."""
        now = self._clock()
        view = trader_view(self.watch.seen, self.started, now)
        restarting = self.watch.restarting(TRADER_SILENCE)
        quiet = now - self.watch.seen if self.watch.seen is not None else 0.0
        outage = view == "down" or self.watch.outage(LATE_BEAT)
        # the confirmed status names the outage when the beats would not (a beat is a hint, the status is its own)
        beat = self.watch.status if outage and self.watch.status is not None else self.watch.beat
        starved: list[str] = []
        for name, runner in self.runners.items():
            watchdog = self.watchdogs[name]
            if not runner.active or not watchdog.enabled:
                continue
            if outage:
                watchdog.hold()
            silent = watchdog.silent()
            waiting = watchdog.held()
            if outage and waiting:
                runner.starve(held(waiting, cause(waiting[0], view, beat, restarting, quiet=quiet)))
                starved.append(name)
                continue
            if not silent and not waiting:
                runner.fed()
                continue
            if not silent:  # the outage is over, these keys have not ticked since
                runner.starve(f"no ticks for {', '.join(waiting)} yet: {BACK}")
                starved.append(name)
                continue
            why = cause(next(iter(silent)), view, self.watch.beat, restarting, quiet=quiet)
            runner.starve(reason(silent, watchdog.threshold, why))
            starved.append(name)
            if why == NOT_STREAMED:
                self._heal(runner, watchdog.threshold)
        if starved:
            names = ", ".join(starved)
            self.health.set_degraded(
                f"{len(starved)} strateg{'y' if len(starved) == 1 else 'ies'} without ticks: {names}")
        elif self.health.state is ServiceState.DEGRADED:
            self.health.set_running("every strategy has ticks")

    def _heal(self, runner: StrategyRunner, every: float) -> None:
        """Subscribe ``runner``'s instruments again (trader_service does not stream them), once per ``every`` s."""
        now = self._clock()
        if runner.name in self._starting or now - self._healed.get(runner.name, float("-inf")) < every:
            return
        self._healed[runner.name] = now
        runner.logger.warning("trader_service does not stream its instruments: subscribing again")
        self._rejoin(runner, "instruments not streamed")
