"""Rejoining trader_service: after it restarted or reconnected, a strategy subscribes again and resyncs its ledger.

If trader_service restarts, or its broker connection is made again (both
confirmed by trader.strategy.watch), every running strategy goes back to
WAITING_HISTORY (it trades nothing), asks again for its instruments and
resyncs its positions from trader_service's book, retried (the strategy
service's ``TRADER_AWAY_RETRY``) on the errors of a passing outage
(:data:`PASSING`) for as long as it runs, then RUNNING again. A strategy
still starting when that happens does the same once its start is done. The
starvation watchdog (trader.strategy.starvation) rejoins a strategy the same
way when trader_service, up and ready, does not stream its instruments.

Resyncing reads trader_service's ``orders`` and ``trades`` (the strategy's
orders carry its name in orderRef); :meth:`Rejoin.mark` marks a held
position without a warm-up price at a snapshot's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from trader.errors import BrokerError, InternalError, Overloaded, Timeout, TraderError, Unavailable
from trader.retry import RetryPolicy
from trader.strategy.ledger import quote_mark
from trader.strategy.orders import Call
from trader.strategy.runner import StrategyRunner
from trader.strategy.starvation import TickWatchdog

log = logging.getLogger(__name__)

__all__ = ["PASSING", "Rejoin"]

#: What trader_service answers while it restarts or reconnects to the broker (a connection lost in the middle
#: of a request comes back as an InternalError): retried. A NotFound or ValidationError is the strategy's own.
PASSING = (Unavailable, Timeout, BrokerError, Overloaded, InternalError)

Subscribe = Callable[[StrategyRunner], Awaitable[dict[str, str]]]
Work = Coroutine[Any, Any, None]


class Rejoin:
    """Brings the strategies back to a trader_service that restarted or reconnected; see the module docstring.

    ``subscribe`` asks trader_service for a strategy's instruments; ``starting``
    holds the strategies' start (or rejoin) tasks, ``track_start`` runs a
    rejoin as one and ``spawn`` runs other background work (the strategy service's).
    """

    def __init__(self, call: Call, subscribe: Subscribe, runners: Mapping[str, StrategyRunner],
                 watchdogs: Mapping[str, TickWatchdog], *, retry: RetryPolicy,
                 starting: Mapping[str, asyncio.Task[None]], spawn: Callable[[Work], None],
                 track_start: Callable[[str, Work], None]) -> None:
        self.call = call
        self.subscribe = subscribe
        self.runners = runners
        self.watchdogs = watchdogs
        self.retry = retry
        self._starting = starting
        self._spawn = spawn
        self._track_start = track_start

    def all(self, why: str) -> None:
        """Rejoin every active strategy (one still starting once its start is done)."""
        for runner in list(self.runners.values()):
            if not runner.active:
                continue
            start = self._starting.get(runner.name)
            if start is not None:  # it may have subscribed on the process that is gone: rejoin once it is done
                self._spawn(self._rejoin_after(runner, start, why))
            else:
                self.begin(runner, why)

    def begin(self, runner: StrategyRunner, why: str) -> None:
        """Put ``runner`` back to waiting for trader_service and rejoin it, as its start task."""
        runner.wait_for_trader(f"{why}: subscribing and resyncing again")
        self._track_start(runner.name, self._rejoin(runner))

    async def _rejoin_after(self, runner: StrategyRunner, start: asyncio.Task[None], why: str) -> None:
        """Rejoin ``runner`` once its start (or rejoin) ``start`` is over, unless it was stopped meanwhile."""
        await asyncio.gather(start, return_exceptions=True)
        if start.cancelled() or not runner.active:
            return
        if runner.name in self._starting:  # another rejoin began meanwhile: it subscribes on the new process
            return
        self.begin(runner, why)

    async def _rejoin(self, runner: StrategyRunner) -> None:
        """Subscribe the strategy's instruments again and resync its ledger; retried until it succeeds."""
        async def once() -> None:
            await self.subscribe(runner)
            await self.resync(runner)

        try:
            await self.retry.call(
                once, retry_on=PASSING, what=f"resubscribing {runner.name} after the restart",
                logger=log,
                on_retry=lambda exc: runner.wait_for_trader(f"waiting for trader_service ({exc})"))
        except TraderError as exc:  # not a passing outage (an unknown symbol now, say)
            runner.fail("subscribing its instruments after the trader_service restart", exc)
            return
        runner.logger.info("trader_service is back: instruments streamed and positions resynced")
        self.watchdogs[runner.name].arm(runner.keys.values())  # its ticks may take a moment to come
        runner.trader_back()

    async def resync(self, runner: StrategyRunner) -> None:
        """Rebuild ``runner``'s ledger from trader_service's book; TraderError if it cannot be read."""
        orders = await self.call("orders")
        fills = await self.call("trades")
        runner.resync(orders, fills)

    async def resync_quietly(self, runner: StrategyRunner) -> None:
        """Resync ``runner``, a failure only logged in its log."""
        try:
            await self.resync(runner)
        except TraderError as exc:
            runner.logger.warning("could not read the book from trader_service: %s", exc)

    async def resync_and_mark(self, runner: StrategyRunner) -> None:
        """Resync ``runner`` (quietly) and mark what it holds."""
        await self.resync_quietly(runner)
        await self.mark(runner)

    async def mark(self, runner: StrategyRunner) -> None:
        """Mark what the strategy holds without a mark (no warm-up history) at a snapshot's price."""
        for key in runner.ledger.unmarked():
            try:
                quote = await self.call("snapshot", key)
            except TraderError as exc:
                runner.logger.warning("no price to mark %s at (%s): its unrealized PnL waits for a bar", key, exc)
                continue
            price = quote_mark(quote)
            if price is not None and key not in runner.ledger.marks:
                runner.ledger.mark(key, price)
