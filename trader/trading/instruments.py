"""Instrument resolution: a symbol and hints to the qualified contract(s) the broker knows, with tick and size.

``resolve("AAPL")`` is the stock, ``resolve("ES", sec_type="FUT")`` (or just
``"ES"`` when no stock has that symbol) the front-month future, ``"EUR.USD"``
the currency pair; a contract key (``ES.FUT.202612``, ``AAPL.OPT.20261218.C230``)
names one contract exactly. Results are cached for the session: contracts
do not change while the service runs.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails, ContractQuery
from trader.domain import SecType
from trader.errors import NotFound, ValidationError

log = logging.getLogger(__name__)

__all__ = ["Resolver"]

_PAIR = re.compile(r"^([A-Z]{3})[./]?([A-Z]{3})$")
_SEC_TYPES = {"STK", "FUT", "OPT", "CASH", "IND", "CMDTY"}


def _query(symbol: str, sec_type: str | None, exchange: str | None, currency: str | None,
           expiry: str | None) -> ContractQuery:
    """Return the query that asks the broker for ``symbol`` with the hints."""
    text = symbol.strip().upper()
    parts = text.split(".")
    if len(parts) >= 2 and parts[1] in _SEC_TYPES:  # a contract key
        sym, kind, rest = parts[0], parts[1], parts[2:]
        q: dict[str, Any] = {"symbol": sym.replace("_", " "), "sec_type": SecType(kind), "exchange": exchange or "",
             "currency": currency or "USD"}
        if kind == "CASH":
            q["currency"] = rest[0] if rest else (currency or "USD")
            q["exchange"] = exchange or "IDEALPRO"
        elif kind == "FUT" and rest:
            if rest[0].isdigit():
                q["expiry"] = rest[0]
            else:
                q["local_symbol"] = rest[0]
        elif kind == "OPT" and len(rest) >= 2:
            q["expiry"] = rest[0]
            q["right"] = rest[1][0]
            try:
                q["strike"] = Decimal(rest[1][1:].replace("_", "."))
            except InvalidOperation:
                raise ValidationError(f"{symbol!r}: an option key ends in its right and strike (C150, P42_5), "
                                      f"not {rest[1]!r}") from None
            if q["right"] not in ("C", "P") or not rest[0].isdigit() or not q["strike"].is_finite():
                raise ValidationError(f"{symbol!r}: an option key is SYMBOL.OPT.YYYYMMDD.<C|P><strike>")
            q["exchange"] = exchange or "SMART"
        elif kind == "STK":
            q["exchange"] = exchange or "SMART"
            if rest:
                q["currency"] = rest[0]
        return ContractQuery(**q)
    pair = _PAIR.match(text)
    if pair and sec_type in (None, "CASH") and (sec_type == "CASH" or "." in text or "/" in text):
        return ContractQuery(pair.group(1), SecType.CASH, currency=pair.group(2), exchange=exchange or "IDEALPRO")
    kind = (sec_type or "STK").upper()
    if kind not in _SEC_TYPES:
        raise ValidationError(f"unknown sec_type {sec_type!r} (one of {', '.join(sorted(_SEC_TYPES))})")
    return ContractQuery(text, SecType(kind), exchange=exchange or ("SMART" if kind in ("STK", "OPT") else ""),
                         currency=currency or "USD", expiry=expiry.replace("-", "") if expiry else "")


class Resolver:
    """Symbols to the broker's :class:`~trader.brokers.records.ContractDetails` (front month, pairs, keys)."""

    def __init__(self, adapter: Broker) -> None:
        self.adapter = adapter
        self._cache: dict[tuple[str, ...], list[ContractDetails]] = {}
        self._by_key: dict[str, ContractDetails] = {}

    def known(self, key: str) -> ContractDetails | None:
        """Return an instrument resolved before, by contract key."""
        return self._by_key.get(key)

    async def resolve(self, symbol: str, *, sec_type: str | None = None, exchange: str | None = None,
                      currency: str | None = None, expiry: str | None = None) -> list[ContractDetails]:
        """Return every instrument ``symbol`` names; a future without expiry gives the front month."""
        if not symbol or not symbol.strip():
            raise ValidationError("symbol is empty")
        cache_key = (symbol.strip().upper(), sec_type or "", exchange or "", currency or "", expiry or "")
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        query = _query(symbol, sec_type, exchange, currency, expiry)
        found = await self.adapter.contract_details(query)
        if not found and sec_type is None and query.sec_type is SecType.STK:
            query = _query(symbol, "FUT", exchange, currency, expiry)  # "ES" alone: the future
            found = await self.adapter.contract_details(query)
        instruments = list(found)
        if query.sec_type is SecType.FUT and not query.expiry and not query.local_symbol:
            instruments = self._front_month(instruments)
        self._cache[cache_key] = instruments
        for inst in instruments:
            self._by_key[inst.key] = inst
        return instruments

    async def one(self, symbol: str, **hints: str | None) -> ContractDetails:
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

    @staticmethod
    def _front_month(instruments: list[ContractDetails]) -> list[ContractDetails]:
        today = datetime.now(UTC).date()
        live = [i for i in instruments if i.contract.expiry is None or i.contract.expiry >= today]
        if not live:
            return []
        live.sort(key=lambda i: (i.contract.expiry or today, i.contract.exchange))
        return [live[0]]
