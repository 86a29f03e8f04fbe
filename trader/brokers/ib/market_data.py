"""IB market data: one stream per contract key whoever wants it, quotes and snapshots, history paced to IB's limits.

IB limits the market data lines open at once (100 by default) and paces
historical requests (60 per ten minutes, no identical request within 15 s, at
most 5 per contract and tick type within 2 s), so a stream is held only while
an owner wants it ("user": a subscription; "desk": an instrument orders were
priced from lately), and history requests wait for the platform's one
:class:`~trader.data.pacing.Pacer`. An identical request within the 15 s
gets the answer the first one got (or waits for it, while it is in flight)
instead of a slot: IB would refuse it, and its answer could only be the same.
Two strategies warming up on one instrument ask exactly that. The streams are
kept across reconnects (:meth:`IbMarketData.resubscribe`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import ib_async
import pandas as pd
from ib_async import IB, RequestError, Ticker

from trader.brokers.ib import parsing
from trader.brokers.records import Quote
from trader.data.pacing import (
    NO_DATA_TEXT,
    PacedRequest,
    Pacer,
    PacingViolation,
    is_pacing_violation,
)
from trader.domain import Bar, Contract
from trader.errors import BrokerError, Timeout

log = logging.getLogger(__name__)

__all__ = ["IbMarketData"]


class _HistoryAnswers(logging.Filter):
    """Drop ib_async's error line for a pacing violation or "no data": the caller logs what it does about it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Error 162,") and ("pacing violation" in text or NO_DATA_TEXT in text))


_HISTORY_ANSWERS = _HistoryAnswers()


class IbMarketData:
    """The market data side of :class:`~trader.brokers.ib.adapter.IbAdapter`."""

    def __init__(self, ib: IB, contract_of: Callable[[Contract], ib_async.Contract],
                 require_connection: Callable[[], None], pacer: Pacer) -> None:
        self.ib = ib
        self.contract_of = contract_of
        self.require_connection = require_connection
        self.history_pacer = pacer
        logging.getLogger("ib_async.wrapper").addFilter(_HISTORY_ANSWERS)  # once: a filter is added once
        self.owners: dict[str, set[str]] = {}  # key -> who wants its stream ("user", "desk")
        self._streams: dict[str, ib_async.Contract] = {}  # key -> the contract streamed
        self._keys: dict[int, str] = {}  # conid -> key of the contracts streamed
        # identity -> (monotonic time answered or 0 while in flight, the answer): identical requests share it
        self._answers: dict[tuple[Any, ...], tuple[float, asyncio.Future[list[ib_async.BarData]]]] = {}

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
        """Return historical bars as Bar records (see :meth:`history_bars`)."""
        bars = await self.history_bars(contract, end=end, duration=duration, bar_size=bar_size,
                                       what_to_show=what_to_show, use_rth=use_rth, timeout=timeout)
        return [parsing.from_ib_bar(bar, contract.key, bar_size) for bar in bars]

    async def history_frame(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                            what_to_show: str, use_rth: bool, timeout: float) -> pd.DataFrame:
        """Return historical bars as a bar frame (see :meth:`history_bars`): no record per bar."""
        return parsing.from_ib_bars_frame(await self.history_bars(
            contract, end=end, duration=duration, bar_size=bar_size, what_to_show=what_to_show, use_rth=use_rth,
            timeout=timeout))

    async def history_bars(self, contract: Contract, *, end: str, duration: str, bar_size: str,
                           what_to_show: str, use_rth: bool, timeout: float) -> list[ib_async.BarData]:
        """Return IB's historical bars, paced to IB's rules on historical requests.

        IB's refusal is a BrokerError with its code and text; a pacing
        violation is a PacingViolation (and the pacer learns from it); no
        answer within ``timeout`` is a Timeout (ib_async would give no bars).
        """
        self.require_connection()
        ib_contract = self.contract_of(contract)
        paced = PacedRequest(contract.key, ib_contract.exchange, what_to_show, end, duration, bar_size, use_rth)
        now = time.monotonic()
        interval = self.history_pacer.rules.identical_interval
        for identity in [i for i, (at, _) in self._answers.items() if at and now - at >= interval]:
            del self._answers[identity]
        shared = self._answers.get(paced.identity)
        if shared is not None:
            return list(await asyncio.shield(shared[1]))
        answer: asyncio.Future[list[ib_async.BarData]] = asyncio.get_running_loop().create_future()
        self._answers[paced.identity] = (0.0, answer)
        try:
            bars = await self._request(paced, ib_contract, timeout)
        except asyncio.CancelledError:
            del self._answers[paced.identity]
            answer.cancel()
            raise
        except Exception as exc:
            del self._answers[paced.identity]  # a failure is not kept: the next request asks again
            answer.set_exception(exc)
            answer.exception()  # retrieved here, so no "exception never retrieved" when nobody shared it
            raise
        answer.set_result(bars)
        self._answers[paced.identity] = (time.monotonic(), answer)
        return bars

    async def _request(self, paced: PacedRequest, ib_contract: ib_async.Contract,
                       timeout: float) -> list[ib_async.BarData]:
        contract_key, end, duration, bar_size = paced.contract, paced.end, paced.duration, paced.bar_size
        what_to_show, use_rth = paced.what_to_show, paced.use_rth
        try:
            async with self.history_pacer.slot(paced):
                started = time.monotonic()
                bars = await self.ib.reqHistoricalDataAsync(
                    ib_contract, end, duration, bar_size, what_to_show, use_rth, formatDate=2, timeout=timeout)
        except RequestError as exc:
            if is_pacing_violation(exc.code, exc.message):
                self.history_pacer.violated(paced)
                raise PacingViolation(f"IB refused the history request: {exc.message}", code=exc.code) from None
            raise BrokerError(f"IB refused the history request: {exc.message}", code=exc.code) from None
        if not bars and timeout and time.monotonic() - started >= timeout:  # ib_async's timeout gives no bars
            raise Timeout(f"IB sent no {bar_size} bars of {contract_key} within {timeout:g} s", key=contract_key)
        return bars
