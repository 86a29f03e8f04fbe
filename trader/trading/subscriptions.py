"""Saved subscriptions: the market data streams a user started, kept in Redis so that a restart streams them again.

A ``subscribe`` made by a user (``trader subscribe start ES``) is added to a
Redis hash (``trading.subscriptions_key``, a trader.saved_hash.SavedHash:
contract key -> the time it was added, ISO 8601) once the stream is open; ``unsubscribe`` removes it. The trader service's
:class:`Restorer` calls :meth:`SavedSubscriptions.restore` each time the broker connection is up
(its first connect after a start, and every reconnect): every saved key not
streamed yet is resolved again and subscribed. A key that no longer resolves
(an expired future, a key grammar that changed) is logged, kept and reported
in :attr:`SavedSubscriptions.errors` (``status``' ``subscriptions_failed``),
never fatal: ``unsubscribe`` of that key drops it. A restore cut short by a
lost connection stops there; the next connect restores the rest. One that
cannot read Redis is retried (:class:`Restorer`) while the connection holds.

The set is a hash beside the trader service's other state (the kill switch
is in its journal, the day's PnL baseline in ``<snapshot_key>:day``) rather
than journal entries: it is a current set, not a history, and a user
subscription is not an order event to replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trader.brokers.base import Broker
from trader.errors import Timeout, TraderError, Unavailable
from trader.retry import RECOVERY_RETRY
from trader.saved_hash import SavedHash
from trader.trading.instruments import Resolver

log = logging.getLogger(__name__)

__all__ = ["Restorer", "SavedSubscriptions"]

#: Errors that say the broker (or the connection to it) is away: the restore stops and waits for the next connect.
AWAY = (Unavailable, Timeout)


class SavedSubscriptions:
    """The user's subscriptions in a Redis hash; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self.key = key
        self.hash = SavedHash(redis, key)  # a save that fails is logged: the stream runs all the same
        #: Saved keys the last restore could not subscribe, with why (cleared once one succeeds).
        self.errors: dict[str, str] = {}
        self.restored = 0  # keys subscribed again by restores, over the process's life

    async def load(self) -> list[str]:
        """Return the saved contract keys, sorted; RedisError if Redis cannot be read."""
        return sorted(await self.hash.load())

    async def add(self, key: str) -> bool:
        """Save ``key``; return whether it was saved (a Redis failure is logged: the stream runs all the same)."""
        if not await self.hash.set(key, datetime.now(UTC).isoformat(), lost="a restart will not stream it again"):
            return False
        self.errors.pop(key, None)
        return True

    async def remove(self, key: str) -> bool:
        """Forget ``key``; return whether it was saved (False too when Redis cannot be reached, logged)."""
        self.errors.pop(key, None)
        return await self.hash.delete(key, lost="a restart would stream it again")

    async def restore(self, subscribe: Callable[[str], Awaitable[object]], streamed: Collection[str]) -> list[str]:
        """Subscribe every saved key not in ``streamed`` with ``subscribe(key)``; return the keys subscribed.

        A key whose ``subscribe`` raises a TraderError other than the broker
        being away is logged and put in :attr:`errors`; a broker away ends the
        restore (the next connect calls it again). RedisError if the saved keys
        cannot be read (the caller retries).
        """
        saved = await self.load()
        done: list[str] = []
        for key in saved:
            if key in streamed:
                continue
            try:
                await subscribe(key)
            except AWAY as exc:
                log.warning("restoring the subscription to %s stopped, the broker is away (%s): the next "
                            "connect restores the rest", key, exc)
                break
            except TraderError as exc:
                self.errors[key] = f"{type(exc).__name__}: {exc}"[:300]
                log.error("saved subscription %s not restored: %s (kept; `trader subscribe stop %s` drops it)",
                          key, self.errors[key], key)
                continue
            self.errors.pop(key, None)
            done.append(key)
        self.restored += len(done)
        if done:
            log.info("restored %d saved subscription(s): %s", len(done), ", ".join(done))
        return done


class Restorer:
    """Stream the saved subscriptions again after each (re)connect of the broker, one restore at a time."""

    def __init__(self, saved: SavedSubscriptions, adapter: Broker, resolver: Resolver) -> None:
        self.saved = saved
        self.adapter = adapter
        self.resolver = resolver
        self.retry = RECOVERY_RETRY
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def connected(self) -> None:
        """Restore the saved streams after a (re)connect (a restore under way goes again)."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._restore(), name="restore-subs")

    async def stop(self) -> None:
        """Cancel a restore under way."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _restore(self) -> None:
        """Stream again every subscription a user made (saved in Redis) that is not streamed now."""
        saved = self.saved

        async def again(key: str) -> None:
            inst = await self.resolver.one(key)
            self.adapter.subscribe(inst.contract)

        async def once() -> None:
            streamed = [k for k, owners in self.adapter.subscriptions().items() if "user" in owners]
            await saved.restore(again, streamed)

        while self._again and self.adapter.connected:
            self._again = False
            try:
                await self.retry.call(once, retry_on=RedisError, what="reading the saved subscriptions",
                                      logger=log, give_up=lambda: not self.adapter.connected)
            except RedisError as exc:  # the connection went meanwhile: the next connect restores them
                log.error("saved subscriptions not restored, Redis unreadable until the IB connection went (%s)",
                          exc)
