"""What the market store holds: per symbol and bar size, first and last bar, rows, and gaps against the calendar.

A gap is a session of the instrument's exchange calendar (:mod:`trader.data.calendars`)
between the first and the last stored bar with no bar at all (optionally also one
with fewer bars than a share of those expected). The calendar comes from the
symbol's metadata (the contract's exchange, if the writer kept it) or else from
the key's sec type: STK -> XNYS, FUT -> CMES (Globex), CASH -> 24/5.

Only the index of each symbol is read where the store can (``read_index``), so a
summary of hundreds of symbols reads no prices.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from trader.data.calendars import (
    Gap,
    TradingCalendar,
    calendar_for,
    calendar_for_key,
    missing_sessions,
)
from trader.data.store import MarketStore
from trader.errors import NotFound, ValidationError
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["SeriesSummary", "calendar_of", "summary"]

_DAY = 86400


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """One stored series: a symbol's bars of one size."""

    key: str
    bar_size: str
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    rows: int
    calendar: str = ""  # the exchange_calendars name gaps were found against ("" when none applies)
    gaps: list[Gap] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON values (times as ISO 8601 UTC)."""
        return {
            "key": self.key, "bar_size": self.bar_size, "first": _iso(self.first), "last": _iso(self.last),
            "rows": self.rows, "calendar": self.calendar, "gap_count": len(self.gaps),
            "gaps": [{"session": g.session.isoformat(), "first": _iso(g.first), "last": _iso(g.last),
                      "expected": g.expected, "found": g.found} for g in self.gaps],
        }


def summary(store: MarketStore, keys: Iterable[str] | None = None, bar_size: str | None = None, *,
            partial: float | None = None) -> list[SeriesSummary]:
    """Return a summary of every stored series (of ``keys`` and ``bar_size`` if given), by key then size.

    ``partial`` (a share, 0.5) also reports sessions holding fewer than that share of
    their expected intraday bars. Sizes longer than a day are summarised without gaps.
    """
    wanted = {k.strip().upper() for k in keys} if keys is not None else None
    try:
        size = short_bar_size(parse_bar_size(bar_size)) if bar_size else None
    except ValueError as exc:
        raise ValidationError(str(exc), bar_size=bar_size) from None
    symbols = store.bar_symbols(size)
    out: list[SeriesSummary] = []
    for size, stored in symbols.items():
        for key in stored:
            if wanted is None or key.upper() in wanted:
                out.append(_series(store, key, size, partial))
    out.sort(key=lambda s: (s.key, parse_bar_size(s.bar_size)))
    return out


def _series(store: MarketStore, key: str, size: str, partial: float | None) -> SeriesSummary:
    index = _index(store, key, size)
    if not len(index):
        return SeriesSummary(key, size, None, None, 0)
    seconds = parse_bar_size(size)
    cal = calendar_of(store, key, size)
    gaps: list[Gap] = []
    if cal is not None and seconds <= _DAY:
        gaps = missing_sessions(index, cal, size, partial=partial)
    return SeriesSummary(key, size, index[0], index[-1], len(index), cal.code if cal is not None else "", gaps)


def _index(store: MarketStore, key: str, size: str) -> pd.DatetimeIndex:
    """Return the bar starts of a stored series: the index alone where the store can read it so."""
    read_index = getattr(store, "read_index", None)
    index = read_index(key, size) if read_index is not None else store.read_bars(key, size).index
    index = pd.DatetimeIndex(index)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def calendar_of(store: MarketStore, key: str, size: str) -> TradingCalendar | None:
    """Return the calendar a stored symbol follows: from its metadata's exchange, else from its key."""
    exchange, sec_type = "", ""
    try:
        meta = store.meta(key, size)
        contract, extra = dict(meta.contract or {}), dict(meta.extra or {})
        exchange = str(contract.get("primary_exchange") or contract.get("exchange") or extra.get("exchange") or "")
        sec_type = str(contract.get("sec_type") or extra.get("sec_type") or "")
    except NotFound:
        pass
    try:
        if exchange or sec_type:
            return calendar_for(exchange, sec_type or None)
    except ValidationError:
        log.debug("%s: no calendar for exchange %r, trying the key", key, exchange)
    try:
        return calendar_for_key(key)
    except ValidationError:
        log.info("%s: no trading calendar (an unknown exchange and sec type): gaps not checked", key)
        return None


def _iso(t: pd.Timestamp | None) -> str | None:
    return None if t is None else t.isoformat()
