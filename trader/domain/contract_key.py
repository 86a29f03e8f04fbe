"""Contract keys: the one grammar of an instrument's id, written from a contract and read back.

A key is ``SYMBOL.SECTYPE[.QUALIFIER...][.CURRENCY]``:

* ``SYMBOL`` is IB's symbol (``AAPL``, ``ES``, the base currency of a pair);
* ``SECTYPE`` is one of ``STK FUT OPT CASH IND CMDTY``;
* the qualifiers are fixed by the sec type: none for ``STK``, ``IND``,
  ``CMDTY`` and ``CASH``; one for ``FUT``, its contract month ``YYYYMM`` (the
  month a futures trader names, ``CL.FUT.202701`` for CLF7 whose last trade is
  in December 2026), or its local symbol when no month is known; two for
  ``OPT``, the expiry date ``YYYYMMDD`` and the right with the strike
  (``C230``, ``P152_5``);
* ``CURRENCY`` is left out when it is USD, except for ``CASH``, where it is the
  pair's quote currency and always written (``EUR.CASH.USD``, ``USD.CASH.JPY``).

Only ``[A-Z0-9_-]`` appear in a part: dots separate parts (and bus topic
levels). A space is written ``_`` (``BRK B`` -> ``BRK_B.STK``); any other
character outside ``[A-Z0-9]`` is escaped as ``-`` and its UTF-8 bytes in hex
(``MY_SYM`` -> ``MY-5FSYM.STK``, a ``-`` is ``-2D``, a ``.`` is ``-2E``), so
every symbol reads back exactly as it was (``-`` always starts an escape, ``_``
is always a space). A strike's decimal point is ``_`` (``152.5`` -> ``152_5``).

Keys are upper-case and case-insensitive: :func:`make_key` writes the
symbol, local symbol and currency upper-case (as IB's symbols are) and
:func:`parse_key` reads any case, so ``aapl.stk`` and ``AAPL.STK`` are the
same key. The exchange and the conid are not part of a key: ``AAPL.STK`` is
the stock wherever it is routed.

This module also holds the futures month codes (:data:`MONTH_CODES`, the one
table), what a local symbol's code means (:func:`contract_month_of`) and what
a typed code's one-digit year means (:func:`futures_month`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from trader.domain.enums import Right, SecType
from trader.errors import ValidationError

__all__ = [
    "MONTH_CODES",
    "SEC_TYPE_NAMES",
    "KeyParts",
    "check_contract_month",
    "contract_month_of",
    "futures_month",
    "is_key",
    "make_key",
    "parse_key",
]

MONTH_CODES = "FGHJKMNQUVXZ"
"""The futures month codes, January (F) to December (Z)."""

SEC_TYPE_NAMES = frozenset(t.value for t in SecType)
"""The sec types a key (and a typed ``sec_type``) may name."""

# Dots separate a key's parts and topic levels, so a part may not contain one.
_UNSAFE = re.compile(r"[^A-Z0-9 ]")
_ESCAPED = re.compile(r"(?:-[0-9A-F]{2})+")
_MONTH = re.compile(r"^\d{4}(0[1-9]|1[0-2])$")
_LOCAL_CODE = re.compile(f"([{MONTH_CODES}])(\\d{{1,2}})$")
_QUALIFIERS = {SecType.FUT: 1, SecType.OPT: 2}


class KeyParts(NamedTuple):
    """What a key says of its contract; empty (or ``None``) where the key does not say it."""

    symbol: str
    sec_type: SecType
    currency: str
    contract_month: str = ""
    local_symbol: str = ""
    expiry: str = ""
    right: Right | None = None
    strike: Decimal | None = None


def _part(value: str) -> str:
    # The grammar above: a space is "_", any other unsafe character "-" and its UTF-8 bytes in hex.
    escaped = _UNSAFE.sub(lambda m: "".join(f"-{b:02X}" for b in m.group().encode()), value.strip().upper())
    return escaped.replace(" ", "_")


def _unpart(text: str) -> str:
    # The inverse of _part.
    spaced = text.replace("_", " ")
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group().replace("-", "")).decode(errors="replace"), spaced)


def _strike_text(strike: Decimal) -> str:
    # 150 and 150.00 are the same strike: normalize, then write without exponent.
    return format(strike.normalize(), "f")


def make_key(symbol: str, sec_type: SecType, currency: str, *, contract_month: str = "", local_symbol: str = "",
             expiry: date | None = None, right: Right | None = None, strike: Decimal | None = None) -> str:
    """Return the key of a contract with these fields (see the module's grammar)."""
    sym, cur = _part(symbol), _part(currency)
    if sec_type is SecType.CASH:
        return f"{sym}.CASH.{cur}"
    if sec_type is SecType.FUT:
        base = f"{sym}.FUT.{contract_month or _part(local_symbol)}"
    elif sec_type is SecType.OPT:
        assert expiry is not None and strike is not None and right is not None
        base = f"{sym}.OPT.{expiry:%Y%m%d}.{right}{_strike_text(strike).replace('.', '_')}"
    else:
        base = f"{sym}.{sec_type}"
    return base if cur == "USD" else f"{base}.{cur}"


def is_key(text: str) -> bool:
    """Return whether ``text`` has a key's shape (its second part a sec type); it may still be malformed."""
    parts = text.strip().upper().split(".")
    return len(parts) >= 2 and parts[1] in SEC_TYPE_NAMES


def parse_key(key: str) -> KeyParts:
    """Return what ``key`` says of its contract; ValidationError, with the grammar, if it is malformed."""
    parts = key.strip().upper().split(".")
    if len(parts) < 2 or parts[1] not in SEC_TYPE_NAMES or not parts[0]:
        raise ValidationError(f"{key!r} is not a contract key (SYMBOL.SECTYPE[.QUALIFIER...][.CURRENCY])")
    symbol, sec_type = _unpart(parts[0]), SecType(parts[1])
    count = _QUALIFIERS.get(sec_type, 0)
    qualifiers, tail = parts[2:2 + count], parts[2 + count:]
    if len(qualifiers) < count or len(tail) > 1 or (sec_type is SecType.CASH and not tail):
        raise ValidationError(f"{key!r} is not a contract key: {sec_type} keys are {_SHAPES[sec_type]}")
    currency = tail[0] if tail else "USD"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationError(f"{key!r}: {currency!r} is not a currency ({sec_type} keys are {_SHAPES[sec_type]})")
    if sec_type is SecType.FUT:
        (month,) = qualifiers
        if _MONTH.match(month):
            return KeyParts(symbol, sec_type, currency, contract_month=month)
        return KeyParts(symbol, sec_type, currency, local_symbol=_unpart(month))
    if sec_type is SecType.OPT:
        expiry, right_strike = qualifiers
        try:
            strike = Decimal(right_strike[1:].replace("_", "."))
        except InvalidOperation:
            strike = None
        right = right_strike[:1]
        if (strike is None or not strike.is_finite() or strike <= 0 or right not in ("C", "P")
                or not (len(expiry) == 8 and expiry.isdigit())):
            raise ValidationError(f"{key!r}: an option key is {_SHAPES[sec_type]} (C150, P42_5)")
        return KeyParts(symbol, sec_type, currency, expiry=expiry, right=Right(right), strike=strike)
    return KeyParts(symbol, sec_type, currency)


_SHAPES = {
    SecType.STK: "SYMBOL.STK[.CURRENCY]",
    SecType.IND: "SYMBOL.IND[.CURRENCY]",
    SecType.CMDTY: "SYMBOL.CMDTY[.CURRENCY]",
    SecType.CASH: "BASE.CASH.QUOTE",
    SecType.FUT: "SYMBOL.FUT.<YYYYMM contract month|local symbol>[.CURRENCY]",
    SecType.OPT: "SYMBOL.OPT.YYYYMMDD.<C|P><strike>[.CURRENCY]",
}


def contract_month_of(local_symbol: str, near: date) -> str:
    """Return the contract month ``YYYYMM`` a future's local symbol names (``CLF7`` -> ``202701``), or "".

    The symbol ends in a month code and a one- or two-digit year (``ESZ6``,
    ``ESZ26``); the year is the one with those last digits nearest to ``near``
    (the last trade date), since a contract month is never years from it.
    """
    found = _LOCAL_CODE.search(local_symbol.strip().upper())
    if found is None:
        return ""
    month = MONTH_CODES.index(found.group(1)) + 1
    digits = found.group(2)
    modulo = 10 ** len(digits)
    base = near.year - near.year % modulo + int(digits)
    target = near.year * 12 + near.month
    year = min((base - modulo, base, base + modulo), key=lambda y: abs(y * 12 + month - target))
    return f"{year:04d}{month:02d}"


def futures_month(month: int, year_digits: str, today: date) -> str:
    """Return ``YYYYMM`` for a month and a one- or two-digit year, the next such month from ``today`` (included)."""
    if len(year_digits) == 2:
        return f"{2000 + int(year_digits):04d}{month:02d}"
    year = today.year - today.year % 10 + int(year_digits)
    while (year, month) < (today.year, today.month):
        year += 10
    return f"{year:04d}{month:02d}"


def check_contract_month(name: str, value: str) -> str:
    """Return ``value`` stripped if it is a month ``YYYYMM`` (or empty); ValidationError otherwise."""
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a month 'YYYYMM' as text, got {type(value).__name__} {value!r}")
    text = value.strip()
    if text and not _MONTH.match(text):
        raise ValidationError(f"{name} must be a month 'YYYYMM', got {value!r}")
    return text
