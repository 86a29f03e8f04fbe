"""Yahoo Finance's chart API (v8) as a download source, within Yahoo's limits on intraday history.

``GET {yahoo_url}/v8/finance/chart/{symbol}?period1=&period2=&interval=&includePrePost=false``
answers ``{"chart": {"result": [{"meta": {..., "exchangeTimezoneName"},
"timestamp": [...], "indicators": {"quote": [{"open": [], "high": [], "low":
[], "close": [], "volume": []}]}}], "error": null}}``, a ``null`` in every
field for a bar Yahoo has not got (dropped here), or ``{"chart": {"result":
null, "error": {"code", "description"}}}`` for an unknown symbol.

Yahoo has the bar sizes 1m 2m 5m 15m 30m 1h 1d of IB's (others are refused),
regular trading hours only, and limits how far back intraday bars go: 1m for
the last 30 days, in requests of at most 7 days; 2m to 30m for the last 60
days; 1h for the last 730. A range starting earlier is refused before any
request (a clear error, rather than windows Yahoo would answer with an error
or nothing); ranges are split into windows of :data:`INTERVALS`' lengths.
Daily bars start at midnight UTC of their session date, as IB's do.

Keys map to Yahoo's symbols: ``AAPL.STK`` -> ``AAPL`` (``BRK_B.STK`` ->
``BRK-B``), ``EUR.CASH.USD`` -> ``EURUSD=X``, ``SPX.IND`` -> ``^SPX``. A
futures key names a contract month, but Yahoo's ``ES=F`` is the continuous
front month, whose past bars belong to other contracts: futures are refused
unless the option ``continuous=True`` says to store the continuous series
under the key asked for (logged as a warning). Non-USD stocks are refused
(Yahoo's symbol needs an exchange suffix the key does not carry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, NotRequired, cast
from urllib.parse import quote

import numpy as np
import pandas as pd
import pydantic
from typing_extensions import TypedDict

from trader.config import Settings
from trader.data.frames import daily_starts, utc
from trader.data.sources.base import Window
from trader.data.sources.http import (
    HttpFetch,
    bar_seconds,
    checked,
    describe,
    fixed_spans,
    key_parts,
    malformed,
)
from trader.domain.enums import SecType
from trader.errors import SourceError
from trader.retry import RetryPolicy

__all__ = ["INTERVALS", "YahooSource", "yahoo_symbol"]

log = logging.getLogger(__name__)

_DAY = pd.Timedelta(days=1)
_USER_AGENT = "Mozilla/5.0 (compatible; trader-history)"  # Yahoo answers 429 to clients that give none


class Interval(NamedTuple):
    """Yahoo's name for a bar size, the longest request, and how far back it goes (None: no limit)."""

    name: str
    window: pd.Timedelta
    history: pd.Timedelta | None


#: Bar seconds -> Yahoo's interval, its longest request and its history.
INTERVALS: dict[int, Interval] = {
    60: Interval("1m", 7 * _DAY, 30 * _DAY),
    120: Interval("2m", 60 * _DAY, 60 * _DAY),
    300: Interval("5m", 60 * _DAY, 60 * _DAY),
    900: Interval("15m", 60 * _DAY, 60 * _DAY),
    1800: Interval("30m", 60 * _DAY, 60 * _DAY),
    3600: Interval("60m", 180 * _DAY, 730 * _DAY),
    86_400: Interval("1d", 365 * _DAY, None),
}
_FIELDS = ("open", "high", "low", "close", "volume")


class _Quote(TypedDict):
    open: NotRequired[list[float | None]]
    high: NotRequired[list[float | None]]
    low: NotRequired[list[float | None]]
    close: NotRequired[list[float | None]]
    volume: NotRequired[list[float | None]]


class _Indicators(TypedDict):
    quote: list[_Quote]


class _Result(TypedDict):
    meta: dict[str, Any]
    timestamp: NotRequired[list[int]]  # absent when there are no bars in the range
    indicators: _Indicators


class _Error(TypedDict):
    code: str
    description: str


class _Chart(TypedDict):
    result: list[_Result] | None
    error: _Error | None


class _Body(TypedDict):
    chart: _Chart


_BODY = pydantic.TypeAdapter(_Body)


def yahoo_symbol(key: str, *, continuous: bool = False) -> str:
    """Return Yahoo's symbol for contract key ``key``; SourceError for what Yahoo does not serve."""
    parts = key_parts(key, "yahoo")
    if parts.sec_type is SecType.STK and parts.currency == "USD":
        return parts.symbol.replace(" ", "-")
    if parts.sec_type is SecType.CASH:
        return f"{parts.symbol}{parts.currency}=X"
    if parts.sec_type is SecType.IND:
        return f"^{parts.symbol}"
    if parts.sec_type is SecType.FUT and continuous:
        return f"{parts.symbol}=F"
    if parts.sec_type is SecType.FUT:
        reason = (f"yahoo has no contract months, only the continuous front month {parts.symbol}=F "
                  "(the option continuous=true stores that under this key)")
    else:
        reason = f"yahoo: {'non-USD stocks' if parts.sec_type is SecType.STK else f'{parts.sec_type} contracts'} " \
                 "are not served (US stocks, FX pairs, indices and continuous futures are)"
    raise SourceError.of(key, reason, retryable=False, source="yahoo")


class YahooSource:
    """Bars from Yahoo's chart API (see the module's docstring).

    Options: ``continuous`` (serve a futures key from the continuous front month),
    ``retry_policy`` (a :class:`~trader.retry.RetryPolicy`), ``max_retry_after``
    (seconds), ``clock`` (epoch seconds now: Yahoo's history limits count back from it).
    """

    name = "yahoo"

    def __init__(self, settings: Settings, *, continuous: bool = False, retry_policy: RetryPolicy | None = None,
                 max_retry_after: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.base = settings.history.yahoo_url.rstrip("/")
        self.continuous = continuous
        self.clock = clock
        self.http = HttpFetch(settings, source=self.name, headers={"User-Agent": _USER_AGENT},
                              policy=retry_policy, max_retry_after=max_retry_after)

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield ``key``'s bars over ``[start, end)`` in windows of Yahoo's longest request for the size."""
        symbol = yahoo_symbol(key, continuous=self.continuous)
        seconds = bar_seconds(key, self.name, bar_size)
        interval = INTERVALS.get(seconds)
        if interval is None:
            sizes = " ".join("1h" if i.name == "60m" else i.name for i in INTERVALS.values())
            raise SourceError.of(key, f"yahoo has no {bar_size} bars (it has {sizes})", retryable=False,
                                 source=self.name)
        lo, hi = utc(start), utc(end)
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        if interval.history is not None and lo < now - interval.history:
            raise SourceError.of(key, f"yahoo serves {bar_size} bars for the last {interval.history.days} days "
                                 f"only: ask from {(now - interval.history).ceil('D'):%Y-%m-%d} on",
                                 retryable=False, source=self.name)
        if symbol.endswith("=F"):
            log.warning("yahoo %s: storing the continuous front month %s, not the contract month", key, symbol)
        spans = list(fixed_spans(lo, hi, interval.window))
        if len(spans) > 1:
            log.info("yahoo %s %s: %d requests (Yahoo serves at most %d days of %s bars per request)",
                     key, bar_size, len(spans), interval.window.days, bar_size)
        for a, b in spans:
            frame = await self._window(key, symbol, interval, a, b)
            log.debug("yahoo %s %s: %d bars in %s .. %s", key, bar_size, len(frame), a, b)
            yield Window(a, b, frame)

    async def _window(self, key: str, symbol: str, interval: Interval, lo: pd.Timestamp,
                      hi: pd.Timestamp) -> pd.DataFrame:
        params: dict[str, str | int] = {"period1": lo.value // 10**9, "period2": -(-hi.value // 10**9),
                                        "interval": interval.name, "includePrePost": "false"}
        reply = await self.http.get_json(key, f"{self.base}/v8/finance/chart/{quote(symbol)}", params)
        try:
            chart = _BODY.validate_python(reply.body)["chart"]
        except pydantic.ValidationError as exc:
            if reply.status >= 300:
                raise SourceError.of(key, f"yahoo: HTTP {reply.status}", retryable=False, source=self.name,
                                     status=reply.status) from None
            raise malformed(key, self.name, describe(exc)) from None
        error = chart["error"]
        if error is not None or not chart["result"] or reply.status >= 300:
            said = f"{error['code']}: {error['description']}" if error else f"HTTP {reply.status}, no result"
            raise SourceError.of(key, f"yahoo: {said} ({symbol})", retryable=False, source=self.name,
                                 symbol=symbol)
        return checked(self._frame(key, chart["result"][0], interval.name == "1d"), key, self.name, lo, hi)

    def _frame(self, key: str, result: _Result, daily: bool) -> pd.DataFrame:
        stamps = result.get("timestamp") or []
        quotes = result["indicators"]["quote"]
        quote0: _Quote = quotes[0] if quotes else {}
        columns = {}
        for name in _FIELDS:
            values = cast("list[float | None] | None", quote0.get(name, [] if not stamps else None))  # a field
            if values is None or len(values) != len(stamps):
                got = "none" if values is None else len(values)
                raise malformed(key, self.name, f"{len(stamps)} timestamps but {got} {name} values")
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        times = pd.to_datetime(np.asarray(stamps, dtype="int64"), unit="s", utc=True)
        if daily:  # the session's open in the exchange's zone -> midnight UTC of that date
            zone = result["meta"].get("exchangeTimezoneName") or "UTC"
            times = daily_starts(times, zone)
        frame = pd.DataFrame(columns, index=pd.DatetimeIndex(times, name="time"))
        frame = frame[frame[["open", "high", "low", "close"]].notna().all(axis=1)]  # Yahoo's null bars
        frame["volume"] = frame["volume"].fillna(0.0)
        if frame.index.has_duplicates:  # Yahoo repeats the last (live) bar at times; its latest figures win
            frame = frame[~frame.index.duplicated(keep="last")]
        return frame

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.http.close()
