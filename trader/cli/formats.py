"""Formats of the CLI's figures: counts with their noun, quantities, money, prices to an instrument's precision, times.

Every table and line the commands print writes its numbers and times
through these, so the same figure reads the same everywhere: a quantity as
written (``10``, ``0.5``), money to cents with thousands separators, a
price or an average cost to its instrument's decimals (:func:`price`, with
``trader.domain.figures.price_decimals``), a time in UTC with the zone named.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from rich.text import Text

__all__ = ["clock", "count", "money", "num", "price", "when"]


def count(n: int, noun: str, plural: str = "") -> str:
    """Return ``n`` with ``noun`` agreeing: ``1 open order``, ``2 open orders``, ``0 strategies``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def num(value: Decimal | float | None) -> str:
    """Return a quantity or price as written (``10``, ``231.52``); ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float):  # market data: the shortest text that reads back the same
        if not math.isfinite(value):
            return "-"
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return format(value, "f")


def money(value: Decimal | None) -> Text:
    """Return an amount with two decimals and thousands separators, red when negative."""
    if value is None:
        return Text("-")
    return Text(f"{value:,.2f}", style="red" if value < 0 else "")


def price(value: Decimal | float | None, decimals: int | None) -> str:
    """Return a price (or an average cost) to the instrument's precision: ``decimals``, its tick's (ES 5921.05).

    A float (market data) goes through its shortest text first; ``decimals``
    None (the precision not known): the value as :func:`num` writes it.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if decimals is None:
        return num(value)
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return format(exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP), "f")


def when(value: datetime | None, *, millis: bool = False) -> str:
    """Return a time in UTC, the zone named: ``2026-12-07 14:03:07 UTC`` (``.123`` with ``millis``)."""
    if value is None:
        return "-"
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{text[:-3] if millis else text[:-7]} UTC"


def clock(value: datetime | None, *, millis: bool = False, today: date | None = None) -> str:
    """Return a time of a table cell in UTC: ``14:03:07 UTC`` today, ``12-06 14:03 UTC`` another day."""
    if value is None:
        return "-"
    stamp = value.astimezone(UTC)
    if stamp.date() != (today or datetime.now(UTC).date()):
        return stamp.strftime("%m-%d %H:%M UTC")
    return stamp.strftime("%H:%M:%S.%f")[: 12 if millis else 8] + " UTC"

