"""Universe bootstrap: every instrument the broker lists on some exchanges, found through its symbol search.

The broker's search (IB's reqMatchingSymbols, :meth:`Broker.search`) answers
at most 16 symbols per pattern, those that start with it first. So the
bootstrap searches by prefix: A..Z and 0..9, then, for each prefix whose answer
is full of symbols starting with it, that prefix with each further letter or
digit, until no answer is full. It keeps the matches listed on one of the
exchanges asked for (the primary listing of a stock; a future's exchange),
de-duplicated by conid, and asks the broker's contract details for each
(a futures root lists its contracts, a currency every pair quoted on it), so
the members carry what the broker says of them (tick, multiplier, last trade).

IB paces reqMatchingSymbols to about one a second: :class:`Bootstrap` waits
``pace`` seconds between searches (tws-sim does not pace: 0 there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails, ContractQuery, SymbolMatch
from trader.data.pacing import Spacer
from trader.data.universes import Member
from trader.domain import SecType
from trader.errors import TraderError

log = logging.getLogger(__name__)

__all__ = ["ALPHABET", "SEARCH_LIMIT", "Bootstrap", "BootstrapProgress"]

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SEARCH_LIMIT = 16  # IB's (and tws-sim's) most symbols per reqMatchingSymbols answer
MAX_PREFIX = 6
DETAILS_AT_ONCE = 8  # contract-details requests in flight together
_FUTURES_KINDS = {"FUT", "IND", "CONTFUT"}


@dataclass(slots=True)
class BootstrapProgress:
    """Where a bootstrap is: the prefixes searched and still to search, the matches kept, the members found."""

    prefix: str = ""
    searched: int = 0
    pending: int = 0
    matches: int = 0
    members: int = 0
    phase: str = "search"  # then "details"
    details_done: int = 0
    details_total: int = 0


@dataclass
class Bootstrap:
    """One bootstrap run against ``broker`` for ``exchanges`` (optionally only ``sec_types``)."""

    broker: Broker
    exchanges: Iterable[str]
    sec_types: Iterable[str] = ()
    pace: float = 1.0
    on_progress: Callable[[BootstrapProgress], None] | None = None
    progress: BootstrapProgress = field(default_factory=BootstrapProgress)

    def __post_init__(self) -> None:
        self.exchanges = {e.strip().upper() for e in self.exchanges}
        self.sec_types = {s.strip().upper() for s in self.sec_types}
        self._spacer = Spacer(self.pace)

    async def run(self) -> list[Member]:
        """Search, keep and detail; return the members found (in search order, unique by conid)."""
        kept = await self._search_all()
        return await self._detail_all(kept)

    # -- the search ---------------------------------------------------------------------------
    async def _search_all(self) -> list[SymbolMatch]:
        pending = list(ALPHABET)
        seen: set[int] = set()
        kept: list[SymbolMatch] = []
        while pending:
            prefix = pending.pop(0)
            answer = await self._search(prefix)
            for match in answer:
                if match.conid not in seen and self._wanted(match):
                    seen.add(match.conid)
                    kept.append(match)
            if self._full(prefix, answer) and len(prefix) < MAX_PREFIX:
                pending[:0] = [prefix + c for c in ALPHABET]  # depth first: the progress reads alphabetically
            p = self.progress
            p.prefix, p.searched, p.pending, p.matches = prefix, p.searched + 1, len(pending), len(kept)
            self._report()
        log.info("bootstrap %s: %d searches, %d matches", sorted(self.exchanges), self.progress.searched, len(kept))
        return kept

    async def _search(self, prefix: str) -> list[SymbolMatch]:
        await self._spacer.wait()
        return await self.broker.search(prefix)

    @staticmethod
    def _full(prefix: str, answer: list[SymbolMatch]) -> bool:
        """Return whether more symbols may start with ``prefix``: the answer is full of them."""
        return len(answer) >= SEARCH_LIMIT and all(m.symbol.upper().startswith(prefix) for m in answer)

    def _wanted(self, match: SymbolMatch) -> bool:
        if match.exchange.upper() not in self.exchanges:
            return False
        if not self.sec_types:
            return match.sec_type.upper() != "OPT"
        kinds = {match.sec_type.upper()}
        if "FUT" in match.derivatives and match.sec_type.upper() in _FUTURES_KINDS:
            kinds.add("FUT")  # IB lists a futures root as its index, with FUT among its derivatives
        return bool(kinds & self.sec_types)  # type: ignore[operator]

    # -- the details --------------------------------------------------------------------------
    async def _detail_all(self, kept: list[SymbolMatch]) -> list[Member]:
        queries: dict[tuple[str, ...], tuple[ContractQuery, SymbolMatch]] = {}
        for match in kept:
            query = self._query(match)
            if query is not None:
                queries.setdefault((query.symbol, str(query.sec_type), query.exchange, query.currency), (query, match))
        p = self.progress
        p.phase, p.details_total, p.details_done = "details", len(queries), 0
        self._report()
        gate = asyncio.Semaphore(DETAILS_AT_ONCE)

        async def one(query: ContractQuery, match: SymbolMatch) -> list[ContractDetails]:
            async with gate:
                try:
                    found = await self.broker.contract_details(query)
                except TraderError as exc:  # one instrument the broker cannot describe does not stop the others
                    log.warning("bootstrap: no contract details for %s: %s", match.symbol, exc)
                    found = []
            p.details_done += 1
            self._report()
            return self._mine(match, found)

        answers = await asyncio.gather(*(one(q, m) for q, m in queries.values()))
        members: list[Member] = []
        seen: set[int] = set()
        for found in answers:
            for details in found:
                if details.contract.conid and details.contract.conid not in seen:
                    seen.add(details.contract.conid)
                    members.append(Member.of(details))
        p.members = len(members)
        self._report()
        return members

    def _query(self, match: SymbolMatch) -> ContractQuery | None:
        kind = match.sec_type.upper()
        if kind == "STK":
            return ContractQuery(match.symbol, SecType.STK, exchange="SMART", currency=match.currency)
        if kind == "CASH":
            return ContractQuery(match.symbol, SecType.CASH, exchange=match.exchange, currency="")
        if kind == "FUT" or (kind in _FUTURES_KINDS and "FUT" in match.derivatives
                             and (not self.sec_types or "FUT" in self.sec_types)):
            return ContractQuery(match.symbol, SecType.FUT, exchange=match.exchange, currency=match.currency)
        if kind == "IND":
            return ContractQuery(match.symbol, SecType.IND, exchange=match.exchange, currency=match.currency)
        return None  # a kind the domain does not model

    def _mine(self, match: SymbolMatch, found: list[ContractDetails]) -> list[ContractDetails]:
        """Return the details that are this match's listing: a stock by its conid, else those on the exchanges."""
        if match.sec_type.upper() == "STK":
            exact = [d for d in found if d.contract.conid == match.conid]
            return exact or [d for d in found if d.contract.primary_exchange.upper() in self.exchanges]
        return [d for d in found if (d.contract.primary_exchange or d.contract.exchange).upper() in self.exchanges]

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
