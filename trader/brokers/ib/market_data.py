"""IB market data: one stream per contract key whoever wants it, quotes and snapshots, history paced to IB's limits.

IB limits the market data lines open at once (100 by default) and the
historical requests per ten minutes (60), so a stream is held only while an
owner wants it ("user": a subscription; "desk": an instrument orders were
priced from lately), and history requests wait for a slot (:class:`Pacer`).
The streams are kept across reconnects (:meth:`IbMarketData.resubscribe`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import ib_async
from ib_async import IB, RequestError, Ticker

from trader.brokers.ib import parsing
from trader.brokers.records import Quote
from trader.domain import Bar, Contract
from trader.errors import BrokerError, Overloaded

log = logging.getLogger(__name__)

__all__ = ["IbMarketData", "Pacer"]


class Pacer:
    """A sliding-window limit: at most ``limit`` calls per ``window`` seconds, waiting up to ``max_wait``."""

    def __init__(self, limit: int, window: float, max_wait: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_wait, self.clock = limit, window, max_wait, clock
        self._calls: deque[float] = deque()

    def delay(self) -> float:
        """Return how long the next call must wait (0: now)."""
        now = self.clock()
        while self._calls and now - self._calls[0] >= self.window:
            self._calls.popleft()
        if len(self._calls) < self.limit:
            return 0.0
        return self._calls[0] + self.window - now

    async def acquire(self) -> None:
        """Wait for a slot; raise Overloaded if that would take longer than ``max_wait``."""
        wait = self.delay()
        if wait > self.max_wait:
            raise Overloaded(f"IB pacing: {self.limit} requests per {self.window:g} s used; retry in {wait:.0f} s",
                             retry_after=round(wait, 1))
        if wait > 0:
            await asyncio.sleep(wait)
        self._calls.append(self.clock())


class IbMarketData:
    """The market data side of :class:`~trader.brokers.ib.adapter.IbAdapter`."""

    def __init__(self, ib: IB, contract_of: Callable[[Contract], ib_async.Contract],
                 require_connection: Callable[[], None], history_requests_per_10min: int) -> None:
        self.ib = ib
        self.contract_of = contract_of
        self.require_connection = require_connection
        self.history_pacer = Pacer(history_requests_per_10min, 600.0)
        self.owners: dict[str, set[str]] = {}  # key -> who wants its stream ("user", "desk")
        self._streams: dict[str, ib_async.Contract] = {}  # key -> the contract streamed
        self._keys: dict[int, str] = {}  # conid -> key of the contracts streamed

    def ticks(self, tickers: Iterable[Ticker]) -> list[dict[str, Any]]:
        """Return the updated tickers of the contracts streamed as tick dicts (a snapshot's are left out)."""
        keys = self._keys
        return [parsing.ticker_to_tick(t, key) for t in tickers
                if t.contract is not None and (key := keys.get(t.contract.conId)) is not None]

    def resubscribe(self) -> None:
        """Request every stream again (after a reconnect)."""
        for key, contract in self._streams.items():
            log.info("re-subscribing market data for %s", key)
            self.ib.reqMktData(contract)

    def subscribe(self, contract: Contract, owner: str) -> None:
        """Stream ``contract`` for ``owner``; one stream per key, however many owners."""
        self.require_connection()
        key = contract.key
        self.owners.setdefault(key, set()).add(owner)
        streamed = self._streams.get(key)
        if streamed is None:
            streamed = self._streams[key] = self.contract_of(contract)
            self._keys[streamed.conId] = key
            self.ib.reqMktData(streamed)
        elif self.ib.ticker(streamed) is None:
            self.ib.reqMktData(streamed)

    def unsubscribe(self, key: str, owner: str) -> bool:
        """Let ``owner``'s stream of ``key`` go (it stops once no owner is left); return whether it had one."""
        owners = self.owners.get(key)
        if owners is None or owner not in owners:
            return False
        owners.discard(owner)
        if owners:
            return True
        del self.owners[key]
        contract = self._streams.pop(key, None)
        if contract is None:
            return True
        self._keys.pop(contract.conId, None)
        if self.ib.isConnected():
            self.ib.cancelMktData(contract)
        return True

    def subscriptions(self) -> dict[str, set[str]]:
        """Return the keys streamed, each with its owners."""
        return {key: set(owners) for key, owners in self.owners.items()}

    def quote(self, contract: Contract) -> Quote | None:
        """Return the streamed contract's top of book (None: not streamed, or no ticker yet)."""
        streamed = self._streams.get(contract.key)
        ticker = self.ib.ticker(streamed) if streamed is not None else None
        return None if ticker is None else parsing.ticker_quote(ticker)

    async def snapshot(self, contract: Contract, timeout: float) -> dict[str, Any]:
        """Return a one-off tick for ``contract`` (the live one when streamed with a bid and ask)."""
        self.require_connection()
        ib_contract = self.contract_of(contract)
        ticker = self.ib.ticker(ib_contract)
        if ticker is None or not ticker.hasBidAsk():
            [ticker] = await asyncio.wait_for(self.ib.reqTickersAsync(ib_contract), timeout)
        return parsing.ticker_to_tick(ticker, contract.key)

    async def history(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                      what_to_show: str, use_rth: bool, timeout: float) -> list[Bar]:
        """Return historical bars, paced to IB's limit on historical requests."""
        self.require_connection()
        await self.history_pacer.acquire()
        try:
            bars = await self.ib.reqHistoricalDataAsync(
                self.contract_of(contract), end, duration, bar_size, what_to_show, use_rth, formatDate=2,
                timeout=timeout)
        except RequestError as exc:
            raise BrokerError(f"IB refused the history request: {exc.message}", code=exc.code) from None
        return [parsing.from_ib_bar(bar, contract.key, bar_size) for bar in bars]
