"""Instrument resolution: a symbol and hints to the qualified contract(s) the broker knows, with tick and size.

What a trader types is read by :mod:`trader.trading.symbols` (``AAPL``,
``EURUSD``, ``EUR/USD``, ``ESZ6``, ``ES Dec26``, ``CLF7``, a contract key...)
into the queries to try, in order; the first the broker answers wins. A
future without a month gives the front month: the nearest contract still
trading, by its last trade *time* where the broker gives one (IB's
lastTradeTime and timeZoneId: ESZ6 is ES's front until 08:30 Chicago time on
its last day), else until the start of its last trade day (without a time the
contract is rolled a day early rather than kept past its close). Results are
cached for the day, and a front month only until its last trade: contracts do
not change while the service runs, but which is the front month, and which
year a one-digit year names, move with the date.

The universes (:mod:`trader.data.universes`) answer first: every query the
symbol reads as is put to the :class:`~trader.data.universe_index.UniverseIndex`
before any goes to the broker, so an instrument a universe holds (with its
conid and details, as the broker gave them when it joined) needs no broker
round trip; ``ES`` held as futures is the front future even if the broker
also lists a stock ES that no universe holds.
:meth:`Resolver.universes_of` says which universes an instrument is in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, TypedDict, Unpack

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails, ContractQuery
from trader.domain import SecType
from trader.errors import NotFound, ValidationError
from trader.trading.symbols import Hints, read_symbol

if TYPE_CHECKING:
    from trader.data.universe_index import UniverseIndex

log = logging.getLogger(__name__)

RECENT_LIMIT = 4096  # resolve arguments remembered as given

__all__ = ["ResolveHints", "Resolver", "hints_of"]


class ResolveHints(TypedDict, total=False):
    """The hints :meth:`Resolver.resolve` takes besides the symbol (all optional)."""

    sec_type: str | None
    exchange: str | None
    currency: str | None
    expiry: str | None
    strike: Decimal | str | int | None
    right: str | None


def hints_of(sec_type: str | None = None, exchange: str | None = None, currency: str | None = None,
             expiry: str | None = None, strike: Decimal | str | int | None = None,
             right: str | None = None) -> Hints:
    """Return the hints as :class:`~trader.trading.symbols.Hints`; ValidationError for a strike that is no number."""
    if strike is not None and not isinstance(strike, Decimal):
        try:
            strike = Decimal(str(strike).strip())
        except InvalidOperation:
            raise ValidationError(f"strike {strike!r} is not a number") from None
    if strike is not None and (not strike.is_finite() or strike <= 0):
        raise ValidationError(f"strike {strike} is not a positive number")
    return Hints(sec_type or "", exchange or "", currency or "", expiry or "", strike, right or "")


class Resolver:
    """Symbols to the broker's :class:`~trader.brokers.records.ContractDetails` (front month, pairs, keys)."""

    def __init__(self, adapter: Broker, now: Callable[[], datetime] | None = None,
                 universes: UniverseIndex | None = None) -> None:
        self.adapter = adapter
        self.universes = universes
        """The universes asked before the broker (None: the broker alone)."""
        self.broker_lookups = 0
        """Contract look-ups put to the broker (the universes answered the others)."""
        self.now = now or (lambda: datetime.now(UTC))
        """The clock futures codes (by its UTC date) and front months (by its time) are read against."""
        self._cache: dict[tuple[str, ...], tuple[list[ContractDetails], datetime | None]] = {}
        self._by_key: dict[str, ContractDetails] = {}
        #: The same answers by the arguments exactly as given (the symbol's text and hints, the day), so a
        #: repeated symbol costs one dict lookup; cleared whole past ``RECENT_LIMIT`` entries.
        self._recent: dict[tuple[object, ...], tuple[list[ContractDetails], datetime | None]] = {}

    def known(self, key: str) -> ContractDetails | None:
        """Return an instrument resolved before, by contract key (any case: keys are upper-case)."""
        return self._by_key.get(key.strip().upper())

    async def resolve(self, symbol: str, *, sec_type: str | None = None, exchange: str | None = None,
                      currency: str | None = None, expiry: str | None = None,
                      strike: Decimal | str | int | None = None, right: str | None = None) -> list[ContractDetails]:
        """Return every instrument ``symbol`` names; a future without a month gives the front month."""
        now = self.now()
        today = now.astimezone(UTC).date()  # in the cache key: a front month and a one-digit year move with the date
        # Every order resolves its symbol: a repeat, as given, is answered before anything is parsed.
        as_given: tuple[object, ...] = (symbol, sec_type, exchange, currency, expiry, strike, right, today)
        try:
            cached = self._recent.get(as_given)
        except TypeError:  # an unhashable hint: hints_of below says what is wrong with it
            cached, as_given = None, ()
        if cached is not None and (cached[1] is None or now < cached[1]):
            return cached[0]
        hints = hints_of(sec_type, exchange, currency, expiry, strike, right)
        cache_key = (" ".join(symbol.strip().upper().split()), *map(str, hints), today.isoformat())
        cached = self._cache.get(cache_key)
        if cached is not None and (cached[1] is None or now < cached[1]):
            self._remember(as_given, cached)
            return cached[0]
        reading = read_symbol(symbol, hints, today)
        instruments: list[ContractDetails] = []
        until: datetime | None = None  # a front month is good until its last trade
        # The universes first, for every reading of the symbol: one they hold needs no broker round trip.
        for lookup in (self._from_universes, self._from_broker):
            for query in reading.queries:
                instruments = await lookup(query, now)
                if query.sec_type is SecType.FUT and not query.expiry and not query.local_symbol:
                    instruments = self._front_month(instruments, now)
                    until = instruments[0].last_trade if instruments else None
                if instruments:
                    log.debug("%r read as %s: %s", symbol, reading.form, query)
                    break
            if instruments:
                break
        self._cache[cache_key] = (instruments, until)
        self._remember(as_given, (instruments, until))
        for inst in instruments:
            self._by_key[inst.key] = inst
        return instruments

    async def _from_universes(self, query: ContractQuery, now: datetime) -> list[ContractDetails]:
        """Return what the universes hold for ``query`` (none, or no universes: empty)."""
        return await self.universes.find(query, now) if self.universes is not None else []

    async def _from_broker(self, query: ContractQuery, now: datetime) -> list[ContractDetails]:
        """Return what the broker answers ``query``."""
        self.broker_lookups += 1
        return list(await self.adapter.contract_details(query))

    def universes_of(self, key: str) -> list[str]:
        """Return the names of the universes the instrument ``key`` is in (none, or no universes: empty)."""
        return self.universes.universes_of(key) if self.universes is not None else []

    def _remember(self, as_given: tuple[object, ...], found: tuple[list[ContractDetails], datetime | None]) -> None:
        if not as_given:
            return
        if len(self._recent) >= RECENT_LIMIT:  # bounded: what callers type is theirs to vary
            self._recent.clear()
        self._recent[as_given] = found

    async def one(self, symbol: str, **hints: Unpack[ResolveHints]) -> ContractDetails:
        """Return the one instrument ``symbol`` names; NotFound or ValidationError (ambiguous) otherwise."""
        found = await self.resolve(symbol, **hints)
        if not found:
            given = ", ".join(f"{k}={v}" for k, v in hints.items() if v)
            raise NotFound(f"unknown symbol {symbol!r}" + (f" ({given})" if given else ""), symbol=symbol)
        if len(found) > 1:
            keys = ", ".join(i.key for i in found[:10])
            raise ValidationError(f"ambiguous symbol {symbol!r}: {len(found)} contracts ({keys}); "
                                  "give sec_type, exchange, currency, expiry, strike or right, or a contract key",
                                  candidates=[i.key for i in found])
        return found[0]

    @staticmethod
    def _front_month(instruments: list[ContractDetails], now: datetime) -> list[ContractDetails]:
        """Return the nearest contract still trading at ``now`` (see the module's rule), as a list of 0 or 1."""
        today = now.astimezone(UTC).date()

        def trading(inst: ContractDetails) -> bool:
            if inst.last_trade is not None:
                return now < inst.last_trade
            return inst.contract.expiry is None or inst.contract.expiry > today

        live = sorted((i for i in instruments if trading(i)),
                      key=lambda i: (i.contract.expiry or today, i.contract.exchange))
        return live[:1]
