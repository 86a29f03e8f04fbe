"""Typed symbols: the forms traders type for an instrument, read into the broker queries to try, in order.

Accepted (case does not matter):

* a contract key, ``SYMBOL.SECTYPE[...]`` (:mod:`trader.domain.contract_key`): exactly that contract;
* a currency pair, ``EUR.USD``, ``EUR/USD`` or ``EURUSD``. A bare six-letter
  word is a pair only if both halves are currencies IB's IDEALPRO trades
  (:data:`FX_CURRENCIES`), and even then the stock of that symbol is tried
  first: a six-letter stock symbol is never turned into a pair;
* a futures code, root + month code + year: ``ESZ6``, ``ESZ26``, ``CLF7``
  (month codes ``F G H J K M N Q U V X Z``, January to December). A one-digit
  year is the next such year from today, counting the current month (``ESZ6``
  in December 2026 is December 2026, ``ESH6`` then is March 2036); two digits
  are 20YY. The month is the contract month (``CLF7`` is January 2027, whose
  last trade is in December 2026); if the root is not IB's symbol of the
  future (``6EZ6``'s symbol is EUR), the code is tried as the local symbol;
* a root and a month name, ``ES Dec26``, ``ES DEC26``, ``ES Dec 2026``;
* a stock's share class, ``BRK.B``, ``BRK/B`` or ``BRK B``: IB's symbol is ``BRK B``;
* a plain symbol, ``AAPL``: the stock; else the front-month future; else the
  index (``SPX``). With ``strike`` or ``right`` it is the option on that symbol.

Hints (sec_type, exchange, currency, expiry, strike, right) narrow a plain
symbol; a given sec_type other than FUT or CASH turns the futures and pair
readings off.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from trader.brokers.records import ContractQuery
from trader.domain import SecType
from trader.domain.contract_key import MONTH_CODES, SEC_TYPE_NAMES, futures_month, is_key, parse_key
from trader.errors import ValidationError

__all__ = ["FX_CURRENCIES", "Hints", "Reading", "read_symbol"]

FX_CURRENCIES = frozenset({
    "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK",
    "HKD", "SGD", "CNH", "MXN", "ZAR", "PLN", "CZK", "HUF", "ILS", "TRY", "KRW",
})
"""The currencies IB's IDEALPRO trades: a six-letter word is a pair only if both halves are among them."""

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_PAIR = re.compile(r"^([A-Z]{3})[./]([A-Z]{3})$")
_BARE_PAIR = re.compile(r"^([A-Z]{3})([A-Z]{3})$")
_CODE = re.compile(f"^([A-Z0-9]{{1,6}}?)([{MONTH_CODES}])(\\d{{1,2}})$")
_MONTH_YEAR = re.compile(r"^([A-Z0-9]{1,6})\s+([A-Z]{3})\s*'?(\d{2}|\d{4})$")
_SHARE_CLASS = re.compile(r"^([A-Z]{1,5})[./ ]([A-Z])$")  # BRK.B, BRK/B, BRK B: IB writes "BRK B"


class Hints(NamedTuple):
    """What the user said of the contract besides its symbol; empty where not said."""

    sec_type: str = ""
    exchange: str = ""
    currency: str = ""
    expiry: str = ""
    strike: Decimal | None = None
    right: str = ""


class Reading(NamedTuple):
    """How a typed symbol was read: the form's name and the queries to try, first match wins."""

    form: str
    queries: tuple[ContractQuery, ...]


def _from_key(text: str, hints: Hints) -> ContractQuery:
    parts = parse_key(text)
    exchange = hints.exchange or {SecType.CASH: "IDEALPRO", SecType.STK: "SMART", SecType.OPT: "SMART"}.get(
        parts.sec_type, "")
    return ContractQuery(parts.symbol, parts.sec_type, exchange=exchange, currency=parts.currency,
                         expiry=parts.contract_month or parts.expiry, local_symbol=parts.local_symbol,
                         right=str(parts.right or ""), strike=parts.strike)


def _pair(base: str, quote: str, hints: Hints) -> ContractQuery:
    return ContractQuery(base, SecType.CASH, exchange=hints.exchange or "IDEALPRO", currency=quote)


def _future(symbol: str, month: str, hints: Hints, local_symbol: str = "") -> ContractQuery:
    return ContractQuery(symbol, SecType.FUT, exchange=hints.exchange, currency=hints.currency or "USD",
                         expiry="" if local_symbol else month, local_symbol=local_symbol)


def _plain(text: str, kind: SecType, hints: Hints) -> ContractQuery:
    exchange = hints.exchange or ("SMART" if kind in (SecType.STK, SecType.OPT) else "")
    return ContractQuery(text, kind, exchange=exchange, currency=hints.currency or "USD", expiry=hints.expiry,
                         right=hints.right if kind is SecType.OPT else "",
                         strike=hints.strike if kind is SecType.OPT else None)


def read_symbol(symbol: str, hints: Hints, today: date) -> Reading:
    """Return how ``symbol`` reads with ``hints`` (see the module's forms); ValidationError if it cannot."""
    text = " ".join(symbol.strip().upper().split())
    if not text:
        raise ValidationError("symbol is empty")
    kind = hints.sec_type.upper()
    if kind and kind not in SEC_TYPE_NAMES:
        raise ValidationError(f"unknown sec_type {hints.sec_type!r} (one of {', '.join(sorted(SEC_TYPE_NAMES))})")
    if hints.right and hints.right.upper() not in ("C", "P", "CALL", "PUT"):
        raise ValidationError(f"unknown right {hints.right!r} (C or P)")
    hints = hints._replace(sec_type=kind, right=hints.right.upper()[:1], expiry=hints.expiry.replace("-", ""))
    if " " not in text and is_key(text):
        return Reading("contract key", (_from_key(text, hints),))
    if kind in ("", "CASH"):
        pair = _PAIR.match(text)
        if pair:
            return Reading("currency pair", (_pair(pair[1], pair[2], hints),))
        bare = _BARE_PAIR.match(text)
        if bare and bare[1] in FX_CURRENCIES and bare[2] in FX_CURRENCIES and bare[1] != bare[2]:
            pair_query = _pair(bare[1], bare[2], hints)
            if kind == "CASH":
                return Reading("currency pair", (pair_query,))
            return Reading("stock, else currency pair", (_plain(text, SecType.STK, hints), pair_query))
    share_class = _SHARE_CLASS.match(text) if kind in ("", "STK") else None
    if share_class:
        return Reading("share class", (_plain(f"{share_class[1]} {share_class[2]}", SecType.STK, hints),))
    if kind in ("", "FUT"):
        code = _CODE.match(text)
        if code:
            root, month = code[1], MONTH_CODES.index(code[2]) + 1
            queries = [_future(root, futures_month(month, code[3], today), hints)]
            if len(code[3]) == 1:
                queries.append(_future("", "", hints, local_symbol=text))  # IB's symbol may differ: 6EZ6 is EUR
            return Reading("futures code", tuple(queries))
        named = _MONTH_YEAR.match(text)
        if named and named[2] in _MONTH_NAMES:
            month = _MONTH_NAMES.index(named[2]) + 1
            year = named[3] if len(named[3]) == 4 else f"20{named[3]}"
            return Reading("future and month", (_future(named[1], f"{year}{month:02d}", hints),))
    if kind:
        return Reading("symbol", (_plain(text, SecType(kind), hints),))
    if hints.strike is not None or hints.right:
        return Reading("option", (_plain(text, SecType.OPT, hints),))
    return Reading("symbol", tuple(_plain(text, k, hints) for k in (SecType.STK, SecType.FUT, SecType.IND)))
