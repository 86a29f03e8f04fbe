"""trader_service as the strategy service watches it: heartbeats as hints, its pid confirmed over RPC.

Anyone on the host can publish ``heartbeat.trader_service`` on the bus, so a
heartbeat alone never makes the strategy service resync. A beat carrying
the confirmed pid says trader_service is up (``seen``). A beat carrying any
other pid only makes the watch ask trader_service itself (its ``status``,
whose reply comes from the process behind the RPC port): at most one such
call in flight and one per ``interval`` seconds, however many beats come. A
restart is a pid that ``status`` confirms *ready* (:func:`ready`: RUNNING,
connected to the broker and re-synced with it): only then is ``on_restart``
called, once. A new process serves ``status`` (and beats) from before its
broker connection and journal rebuild, so a pid confirmed at its first beat
would be asked to subscribe while it still refuses: until it is ready, its
beats keep being checked (one status call per ``interval``). So a flood of
forged beats costs one status call a second and resyncs nothing; a real
restart is acted on once it can serve.

A broker reconnect leaves the pid as it was: trader_service's status counts
its connections (``connects``). A beat of the confirmed pid with another
count is checked the same way, and ``on_reconnect`` is called once ``status``
says ready with a count other than the last confirmed one, so a strategy
resyncs after the broker connection came back too. The last beat of the
confirmed pid (:attr:`TraderWatch.beat`) and the time another pid last beat
(:meth:`TraderWatch.restarting`) are kept for the strategy service to say
why a strategy has no ticks: hints for a message, never a reason to act.

What the strategy service does act on at once (a strategy DEGRADED without
waiting for its no-ticks threshold, trader.strategy.starvation) is
:meth:`TraderWatch.outage`: the confirmed pid silent (a beat can be forged,
an absence cannot), or its own ``status`` (:attr:`TraderWatch.status`,
asked when a beat of the confirmed pid says other than the last status did,
at the same bounded rate) saying it cannot stream (:func:`serving`: the
broker disconnected, or the service starting or stopping). So a forged beat flips no state either way: it costs
a status call, and only the real process's answer counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from trader.errors import TraderError
from trader.peer_text import LogThrottle

log = logging.getLogger(__name__)

CONFIRM_INTERVAL = 1.0  # seconds between two status calls made to confirm a pid
TRADER_SILENCE = 5.0  # seconds without trader_service's heartbeat (one a second) before it counts as down


def ready(status: Mapping[str, Any]) -> bool:
    """Return whether trader_service's ``status`` says it serves: RUNNING, connected and re-synced."""
    return status.get("state") == "RUNNING" and status.get("connected") is True and status.get("synced") is True


def serving(status: Mapping[str, Any]) -> bool:
    """Return whether trader_service's ``status`` lets ticks flow: RUNNING or DEGRADED, the broker not disconnected.

    Wider than :func:`ready`: a service re-syncing its book still streams.
    """
    return status.get("state") in ("RUNNING", "DEGRADED") and status.get("connected") is not False


class TraderWatch:
    """Follow trader_service's heartbeats; call ``on_restart(pid)`` when a new pid is confirmed by ``status``."""

    def __init__(self, status: Callable[[], Awaitable[Mapping[str, Any]]], on_restart: Callable[[int], None], *,
                 on_reconnect: Callable[[int], None] | None = None, interval: float = CONFIRM_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._status = status
        self._on_restart = on_restart
        self._on_reconnect = on_reconnect
        self.connects: int | None = None  # the confirmed pid's broker connections, as its ready status said
        self.beat: Mapping[str, Any] | None = None  # the last beat of the confirmed pid
        self.status: Mapping[str, Any] | None = None  # the confirmed pid's last status reply (not a beat)
        self._other_beat = float("-inf")  # monotonic time of the last beat from another pid
        self.interval = interval
        self._clock = clock
        self.pid: int | None = None  # trader_service's pid as its own status gave it
        self.seen: float | None = None  # monotonic time of the last beat (or status reply) from that pid
        #: Beats whose pid is not the confirmed one (forged, or a restart before its confirmation).
        self.unconfirmed = 0
        self.confirmations = 0  # status calls made to confirm a pid
        self._confirming: asyncio.Task[None] | None = None
        self._last_confirm = float("-inf")
        self._throttle = LogThrottle(burst=3, interval=60.0)

    def on_beat(self, payload: Any) -> None:
        """Take one heartbeat payload off the bus (call on the loop)."""
        pid = payload.get("pid") if isinstance(payload, Mapping) else None
        if type(pid) is int and pid == self.pid:
            self.seen = self._clock()
            self.beat = payload
            connects = payload.get("connects")
            if type(connects) is int and connects != self.connects:
                self._check()  # a reconnect of the broker (or its first count), or a forged beat: status says which
            elif serving(payload) != (self.status is None or serving(self.status)):
                self._check()  # serving or not, as the last status did not say: status says whether it is so
            return
        self.unconfirmed += 1
        if self.pid is not None:
            self._other_beat = self._clock()
            dropped = self._throttle.allow("unconfirmed")
            if dropped is not None:
                log.warning("a trader_service heartbeat from pid %.20r, not %d: confirming with its status "
                            "(%d such beats so far)", pid, self.pid, self.unconfirmed)
        self._check()

    def restarting(self, within: float) -> bool:
        """Return whether a pid other than the confirmed one beat in the last ``within`` seconds."""
        return self._clock() - self._other_beat < within

    def outage(self, late: float) -> bool:
        """Return whether trader_service cannot stream now, as known and not hinted.

        That is: its confirmed pid has not beaten for ``late`` seconds, or that
        pid's own ``status`` said it is not :func:`serving`.
        """
        if self.seen is None:
            return False
        if self._clock() - self.seen > late:
            return True
        return self.status is not None and not serving(self.status)

    def _check(self) -> None:
        """Ask trader_service's status, unless a call is in flight or one was made less than ``interval`` ago."""
        now = self._clock()
        if (self._confirming is None or self._confirming.done()) and now - self._last_confirm >= self.interval:
            self._last_confirm = now
            self._confirming = asyncio.get_running_loop().create_task(self._confirm(), name="confirm-trader-pid")

    def adopt(self, status: Mapping[str, Any]) -> None:
        """Take the pid of a ``status`` reply as trader_service's, unless one is known already.

        For a caller about to use trader_service before any beat was confirmed:
        should that process die before its first confirmation, its successor's
        pid is then a restart, not the first pid seen.
        """
        pid = status.get("pid")
        if self.pid is None and type(pid) is int:
            self.pid, self.seen, self.status = pid, self._clock(), status
            if ready(status) and type(status.get("connects")) is int:
                self.connects = status["connects"]

    async def _confirm(self) -> None:
        self.confirmations += 1
        try:
            status = await self._status()
        except TraderError as exc:
            log.debug("trader_service's status for a pid check: %s", exc)
            return
        pid = status.get("pid")
        if type(pid) is not int:
            return
        if pid != self.pid and not ready(status):  # not serving yet: its next beat asks again
            log.info("trader_service pid %d is %s (connected %s, synced %s): not ready yet", pid,
                     status.get("state"), status.get("connected"), status.get("synced"))
            return
        self.seen = self._clock()
        previous, self.pid, self.status = self.pid, pid, status
        connects = status.get("connects") if type(status.get("connects")) is int else None
        was = self.connects
        if ready(status):
            self.connects = connects
        if previous is not None and pid != previous:
            log.warning("trader_service restarted (pid %d, was %d)", pid, previous)
            self.beat, self._other_beat = None, float("-inf")  # its beats so far were the new pid's
            self._on_restart(pid)
        elif ready(status) and was is not None and connects is not None and connects != was:
            log.warning("trader_service (pid %d) reconnected to the broker (connection %d, was %d)", pid,
                        connects, was)
            if self._on_reconnect is not None:
                self._on_reconnect(pid)

    async def close(self) -> None:
        """Cancel a confirmation in flight."""
        task, self._confirming = self._confirming, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def trader_view(last_seen: float | None, started: float, now: float) -> str:
    """Return how trader_service looks from here: ``up``, ``down``, or ``waiting`` for its first heartbeat.

    Right after a start the first heartbeat is up to a second away (plus the
    bus's subscription): that is ``waiting``, not ``down``, for ``TRADER_SILENCE`` seconds.
    """
    if last_seen is None:
        return "waiting" if now - started < TRADER_SILENCE else "down"
    return "up" if now - last_seen < TRADER_SILENCE else "down"
