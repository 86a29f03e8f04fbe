"""The universes in memory, for the Resolver: the members by symbol, local symbol and key, and their universes.

The Resolver asks it the same queries it would ask the broker
(:class:`~trader.brokers.records.ContractQuery`); a member that answers one
needs no broker round trip. It opens the store on first use (trader_service
starts without touching it), and loads the universes again when their stamp
(:meth:`Universes.stamp`, bumped on every change) moved: checked at most every
``check_every`` seconds, and on a miss at most every ``miss_every`` seconds,
so a symbol just added to a universe is found at once while a hit costs a
dict look-up. A store that cannot be opened or read is logged and answers
nothing: the broker still resolves.

The store is never read on the event loop (:meth:`find`): a refresh runs in
a worker thread, one at a time; a hit answers from memory while a due
refresh runs in the background, and only the first load and a miss wait for
it. An S3 store far away, or down and timing out, slows those answers but
never stalls the service's loop (its heartbeats, orders, other requests).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from trader.brokers.records import ContractDetails, ContractQuery
from trader.data.store import MarketStore
from trader.data.universes import Universes
from trader.errors import TraderError

log = logging.getLogger(__name__)

__all__ = ["UniverseIndex"]


class UniverseIndex:
    """Every universe's members, answerable by broker query; reloaded when the universes change."""

    def __init__(self, open_store: Callable[[], MarketStore], *, check_every: float = 5.0, miss_every: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._open = open_store
        self._universes: Universes | None = None
        self.check_every = check_every
        self.miss_every = miss_every
        self._clock = clock
        self._checked = float("-inf")
        self._stamp: int | None = None
        self._by_symbol: dict[str, list[ContractDetails]] = {}
        self._by_local: dict[str, list[ContractDetails]] = {}
        self._names: dict[str, list[str]] = {}  # key -> the universes it is in
        self.loads = 0
        self._running: asyncio.Future[None] | None = None  # the refresh under way in a worker thread

    # -- loading --------------------------------------------------------------------------------
    def refresh(self, *, every: float | None = None) -> None:
        """Load the universes again if their stamp moved (at most once per ``every`` seconds; None: now)."""
        now = self._clock()
        if every is not None and now - self._checked < every:
            return
        self._checked = now
        try:
            if self._universes is None:
                self._universes = Universes(self._open())
            stamp = self._universes.stamp()
            if stamp != self._stamp:
                self._load(self._universes, stamp)
        except TraderError as exc:  # StorageError and the like: resolve without the universes
            log.warning("universes unavailable to resolve from: %s", exc)
        except Exception as exc:  # noqa: BLE001 - arcticdb's own errors: the broker still resolves
            log.warning("universes unavailable to resolve from: %s: %s", type(exc).__name__, exc)

    def _load(self, universes: Universes, stamp: int) -> None:
        by_symbol: dict[str, list[ContractDetails]] = {}
        by_local: dict[str, list[ContractDetails]] = {}
        names: dict[str, list[str]] = {}
        details: dict[str, ContractDetails] = {}
        for universe in universes.all():
            for member in universe.members:
                names.setdefault(member.key, []).append(universe.name)
                if member.key in details:
                    continue
                try:
                    one = details[member.key] = member.details()
                except (TraderError, ValueError, ArithmeticError) as exc:
                    log.warning("universe %s: member %s unreadable: %s", universe.name, member.key, exc)
                    continue
                by_symbol.setdefault(one.contract.symbol.upper(), []).append(one)
                if one.contract.local_symbol:
                    by_local.setdefault(one.contract.local_symbol.upper(), []).append(one)
        self._by_symbol, self._by_local, self._names, self._stamp = by_symbol, by_local, names, stamp
        self.loads += 1
        log.info("universes loaded: %d instruments in %d universes", len(details), len(universes.names()))

    def preload(self) -> None:
        """Start a refresh in a worker thread unless one runs (call it on the running event loop)."""
        if self._running is None or self._running.done():
            self._checked = self._clock()  # due again only ``every`` seconds from now, however long this takes
            self._running = asyncio.ensure_future(asyncio.to_thread(self.refresh))

    async def _refreshed(self, every: float, *, wait: bool) -> None:
        """Start a refresh if one is due and none runs; await the one running if ``wait``."""
        if (self._running is None or self._running.done()) and self._clock() - self._checked >= every:
            self.preload()
        if wait and self._running is not None:
            await asyncio.shield(self._running)

    # -- answers --------------------------------------------------------------------------------
    async def find(self, query: ContractQuery, now: datetime | None = None) -> list[ContractDetails]:
        """Return the members ``query`` describes, the universes refreshed (off the loop) when due."""
        await self._refreshed(self.check_every, wait=self._stamp is None)
        found = self.lookup(query, now)
        if not found and self._stamp is not None:
            await self._refreshed(self.miss_every, wait=True)
            found = self.lookup(query, now)
        return found

    def lookup(self, query: ContractQuery, now: datetime | None = None) -> list[ContractDetails]:
        """Return the members ``query`` describes (as the broker's contract details would), not past their last trade.

        Only what is in memory: no store read (see :meth:`find`, :meth:`refresh`).
        """
        return self._match(query, now or datetime.now(UTC))

    def universes_of(self, key: str) -> list[str]:
        """Return the names of the universes ``key`` is in (sorted; none: empty)."""
        return sorted(self._names.get(key, []))

    def _match(self, q: ContractQuery, now: datetime) -> list[ContractDetails]:
        if q.local_symbol:
            pool = self._by_local.get(q.local_symbol.strip().upper(), [])
        else:
            pool = self._by_symbol.get(q.symbol.strip().upper(), [])
        return [d for d in pool if _matches(d, q) and _trading(d, now)]


def _trading(d: ContractDetails, now: datetime) -> bool:
    if d.last_trade is not None:
        return now < d.last_trade
    return d.contract.expiry is None or d.contract.expiry >= now.astimezone(UTC).date()


def _matches(d: ContractDetails, q: ContractQuery) -> bool:
    """Return whether the broker would answer ``q`` with ``d`` (empty fields match anything; SMART any exchange)."""
    c = d.contract
    if q.symbol and q.symbol.strip().upper() != c.symbol.upper():
        return False
    if q.sec_type is not c.sec_type:
        return False
    if q.currency and q.currency.upper() != c.currency.upper():
        return False
    if q.exchange and q.exchange.upper() not in ("SMART", c.exchange.upper(), c.primary_exchange.upper()):
        return False
    expiry = q.expiry.replace("-", "")
    if len(expiry) == 6:
        if expiry != (c.contract_month or (c.expiry.strftime("%Y%m") if c.expiry else "")):
            return False
    elif expiry and not (c.expiry and c.expiry.strftime("%Y%m%d").startswith(expiry)):
        return False
    if q.right and (c.right is None or str(c.right) != q.right.upper()[:1]):
        return False
    return q.strike is None or (c.strike is not None and Decimal(c.strike) == q.strike)
