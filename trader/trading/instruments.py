"""Instrument resolution: a symbol and hints to the qualified contract(s) IB knows, with tick and size.

``resolve("AAPL")`` is the stock, ``resolve("ES", sec_type="FUT")`` (or just
``"ES"`` when no stock has that symbol) the front-month future, ``"EUR.USD"``
the currency pair; a contract key (``ES.FUT.202612``, ``AAPL.OPT.20261218.C230``)
names one contract exactly. Results are cached for the session: contracts
do not change while the service runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ib_async import Contract as IbContract
from ib_async import ContractDetails, RequestError

from trader.brokers.ib import parsing
from trader.brokers.ib.adapter import IbAdapter
from trader.domain import Contract
from trader.errors import NotFound, ValidationError

log = logging.getLogger(__name__)

__all__ = ["Instrument", "Resolver"]

_PAIR = re.compile(r"^([A-Z]{3})[./]?([A-Z]{3})$")
_SEC_TYPES = {"STK", "FUT", "OPT", "CASH", "IND", "CMDTY"}


@dataclass(frozen=True, slots=True)
class Instrument:
    """A qualified contract: ours, IB's, its tick size and minimum size."""

    contract: Contract
    ib: IbContract
    tick: Decimal
    min_size: Decimal
    long_name: str = ""

    @property
    def key(self) -> str:
        return self.contract.key


def _query(symbol: str, sec_type: str | None, exchange: str | None, currency: str | None,
           expiry: str | None) -> IbContract:
    """Return the ib_async contract that asks IB for ``symbol`` with the hints."""
    text = symbol.strip().upper()
    parts = text.split(".")
    if len(parts) >= 2 and parts[1] in _SEC_TYPES:  # a contract key
        sym, kind, rest = parts[0], parts[1], parts[2:]
        q = IbContract(symbol=sym.replace("_", " "), secType=kind, exchange=exchange or "",
                       currency=currency or "USD")
        if kind == "CASH":
            q.currency = rest[0] if rest else (currency or "USD")
            q.exchange = exchange or "IDEALPRO"
        elif kind == "FUT" and rest:
            if rest[0].isdigit():
                q.lastTradeDateOrContractMonth = rest[0]
            else:
                q.localSymbol = rest[0]
        elif kind == "OPT" and len(rest) >= 2:
            q.lastTradeDateOrContractMonth = rest[0]
            q.right = rest[1][0]
            try:
                q.strike = float(rest[1][1:].replace("_", "."))
            except ValueError:
                raise ValidationError(f"{symbol!r}: an option key ends in its right and strike (C150, P42_5), "
                                      f"not {rest[1]!r}") from None
            if q.right not in ("C", "P") or not rest[0].isdigit():
                raise ValidationError(f"{symbol!r}: an option key is SYMBOL.OPT.YYYYMMDD.<C|P><strike>")
            q.exchange = exchange or "SMART"
        elif kind == "STK":
            q.exchange = exchange or "SMART"
            if rest:
                q.currency = rest[0]
        return q
    pair = _PAIR.match(text)
    if pair and sec_type in (None, "CASH") and (sec_type == "CASH" or "." in text or "/" in text):
        return IbContract(symbol=pair.group(1), secType="CASH", currency=pair.group(2),
                          exchange=exchange or "IDEALPRO")
    kind = (sec_type or "STK").upper()
    if kind not in _SEC_TYPES:
        raise ValidationError(f"unknown sec_type {sec_type!r} (one of {', '.join(sorted(_SEC_TYPES))})")
    q = IbContract(symbol=text, secType=kind, exchange=exchange or ("SMART" if kind in ("STK", "OPT") else ""),
                   currency=currency or "USD")
    if expiry:
        q.lastTradeDateOrContractMonth = expiry.replace("-", "")
    return q


class Resolver:
    """Symbols to :class:`Instrument`s through IB's contract details."""

    def __init__(self, adapter: IbAdapter) -> None:
        self.adapter = adapter
        self._cache: dict[tuple[str, ...], list[Instrument]] = {}
        self._by_key: dict[str, Instrument] = {}

    def known(self, key: str) -> Instrument | None:
        """Return an instrument resolved before, by contract key."""
        return self._by_key.get(key)

    async def resolve(self, symbol: str, *, sec_type: str | None = None, exchange: str | None = None,
                      currency: str | None = None, expiry: str | None = None) -> list[Instrument]:
        """Return every instrument ``symbol`` names; a future without expiry gives the front month."""
        if not symbol or not symbol.strip():
            raise ValidationError("symbol is empty")
        cache_key = (symbol.strip().upper(), sec_type or "", exchange or "", currency or "", expiry or "")
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        query = _query(symbol, sec_type, exchange, currency, expiry)
        found = await self._details(query)
        if not found and sec_type is None and query.secType == "STK":
            query = _query(symbol, "FUT", exchange, currency, expiry)  # "ES" alone: the future
            found = await self._details(query)
        instruments = [self._instrument(d) for d in found if d.contract is not None]
        if query.secType == "FUT" and not query.lastTradeDateOrContractMonth and not query.localSymbol:
            instruments = self._front_month(instruments)
        self._cache[cache_key] = instruments
        for inst in instruments:
            self._by_key[inst.key] = inst
        return instruments

    async def one(self, symbol: str, **hints: str | None) -> Instrument:
        """Return the one instrument ``symbol`` names; NotFound or ValidationError (ambiguous) otherwise."""
        found = await self.resolve(symbol, **hints)
        if not found:
            given = ", ".join(f"{k}={v}" for k, v in hints.items() if v)
            raise NotFound(f"unknown symbol {symbol!r}" + (f" ({given})" if given else ""), symbol=symbol)
        if len(found) > 1:
            keys = ", ".join(i.key for i in found[:10])
            raise ValidationError(f"ambiguous symbol {symbol!r}: {len(found)} contracts ({keys}); "
                                  "give sec_type, exchange, currency or expiry, or a contract key",
                                  candidates=[i.key for i in found])
        return found[0]

    async def _details(self, query: IbContract) -> list[ContractDetails]:
        try:
            return await self.adapter.contract_details(query)
        except RequestError as exc:
            if exc.code == 200:  # "No security definition has been found"
                return []
            raise

    @staticmethod
    def _instrument(details: ContractDetails) -> Instrument:
        assert details.contract is not None
        tick = parsing.decimal_from_float(details.minTick) or Decimal("0.01")
        size = details.minSize
        min_size = parsing.decimal_from_float(size) if size and size > 0 else None
        return Instrument(parsing.from_ib_contract(details.contract), parsing.tradable_ib_contract(details.contract),
                          tick, min_size or Decimal(1), details.longName or "")

    @staticmethod
    def _front_month(instruments: list[Instrument]) -> list[Instrument]:
        today = datetime.now(UTC).date()
        live = [i for i in instruments if i.contract.expiry is None or i.contract.expiry >= today]
        if not live:
            return []
        live.sort(key=lambda i: (i.contract.expiry or today, i.contract.exchange))
        return [live[0]]
