"""Polygon.io's aggregates (REST v2) as a download source: bars of any size, paged by ``next_url``.

``GET {polygon_url}/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}
?adjusted=true&sort=asc&limit=50000`` answers ``{"status": "OK"|"DELAYED",
"resultsCount", "results": [{"t": ms, "o", "h", "l", "c", "v", "vw", "n"}],
"next_url"}``; a ``next_url`` is followed until there is none. Keys map to
Polygon's tickers: ``AAPL.STK`` -> ``AAPL`` (``BRK_B.STK`` -> ``BRK.B``),
``EUR.CASH.USD`` -> ``C:EURUSD``, ``SPX.IND`` -> ``I:SPX``; futures, options
and non-USD stocks are refused (Polygon's stocks are US listings).

The API key (``settings.history.polygon_api_key``, from the environment as
``TRADER_HISTORY__POLYGON_API_KEY``) is sent as ``Authorization: Bearer``,
which Polygon accepts as well as an ``apiKey`` query parameter: the key is
then in no URL, so neither httpx's request log nor an error can show it, and
a ``next_url`` needs nothing added. A ``next_url`` pointing anywhere but
``polygon_url`` is refused, so the key is never sent to another host.

Windows are at most one page of a 24-hour market's bars (50,000) and at most a
year long. Daily bars start at midnight UTC of their session date, as IB's do:
Polygon stamps a stock's at midnight New York time, other markets' nearer
midnight UTC, so a day bar is dated by the UTC midnight nearest its stamp. A window that comes back
empty for a ticker not yet seen is checked against ``/v3/reference/tickers``
once: an unknown ticker is an error, not years of empty windows.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, NotRequired
from urllib.parse import quote

import numpy as np
import pandas as pd
import pydantic
from typing_extensions import TypedDict

from trader.config import Settings
from trader.data.frames import utc
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
from trader.errors import ConfigError, SourceError
from trader.retry import RetryPolicy

__all__ = ["PolygonSource", "polygon_ticker"]

log = logging.getLogger(__name__)

PAGE_LIMIT = 50_000  # Polygon's largest page of aggregates
_MAX_PAGES = 10_000  # a next_url chain longer than this is a provider loop, not data
_GOOD = ("OK", "DELAYED")
_DAY = 86_400


class _Agg(TypedDict):
    t: int
    o: float
    h: float
    l: float  # Polygon's name (low)
    c: float
    v: float
    vw: NotRequired[float | None]
    n: NotRequired[int | None]


class _Page(TypedDict):
    status: str
    results: NotRequired[list[_Agg]]
    next_url: NotRequired[str | None]


_PAGE = pydantic.TypeAdapter(_Page)


def polygon_ticker(key: str) -> str:
    """Return Polygon's ticker for contract key ``key``; SourceError for what Polygon does not serve."""
    parts = key_parts(key, "polygon")
    if parts.sec_type is SecType.STK and parts.currency == "USD":
        return parts.symbol.replace(" ", ".")
    if parts.sec_type is SecType.CASH:
        return f"C:{parts.symbol}{parts.currency}"
    if parts.sec_type is SecType.IND:
        return f"I:{parts.symbol}"
    what = "non-USD stocks" if parts.sec_type is SecType.STK else f"{parts.sec_type} contracts"
    raise SourceError.of(key, f"polygon: {what} are not served (US stocks, FX pairs and indices are)",
                         retryable=False, source="polygon")


def _timespan(seconds: int) -> tuple[int, str]:
    for unit, name in ((_DAY, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % unit == 0:
            return seconds // unit, name
    raise AssertionError(seconds)  # every bar size is a whole number of seconds


def window_length(seconds: int) -> pd.Timedelta:
    """Return the window for bars of ``seconds``: whole days, one full page of a 24-hour market, a year at most."""
    return pd.Timedelta(days=min(max(PAGE_LIMIT * seconds // _DAY, 1), 365))


class PolygonSource:
    """Bars from Polygon's aggregates API (see the module's docstring).

    Options: ``adjusted`` (split-adjusted prices, default True), ``per_minute``
    (the plan's requests per minute, kept; default: no limit), ``retry_policy``
    (a :class:`~trader.retry.RetryPolicy`), ``max_retry_after`` (seconds).
    """

    name = "polygon"

    def __init__(self, settings: Settings, *, adjusted: bool = True, per_minute: float | None = None,
                 retry_policy: RetryPolicy | None = None, max_retry_after: float = 60.0) -> None:
        secret = settings.history.polygon_api_key
        api_key = secret.get_secret_value() if secret is not None else ""
        if not api_key:
            raise ConfigError("the polygon source needs an API key: set TRADER_HISTORY__POLYGON_API_KEY "
                              "(history.polygon_api_key; never in a file)")
        self.base = settings.history.polygon_url.rstrip("/")
        self.adjusted = adjusted
        self.http = HttpFetch(settings, source=self.name, headers={"Authorization": f"Bearer {api_key}"},
                              secrets=[api_key], policy=retry_policy, max_retry_after=max_retry_after,
                              per_minute=per_minute)
        self._known: set[str] = set()  # tickers Polygon confirmed

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp,
                      end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield ``key``'s bars over ``[start, end)`` in windows (see :func:`window_length`)."""
        ticker = polygon_ticker(key)
        seconds = bar_seconds(key, self.name, bar_size)
        for lo, hi in fixed_spans(utc(start), utc(end), window_length(seconds)):
            rows = await self._rows(key, ticker, seconds, lo, hi)
            frame = checked(self._frame(rows, seconds >= _DAY), key, self.name, lo, hi)
            if frame.empty and ticker not in self._known:
                await self._confirm(key, ticker, lo)
            self._known.add(ticker)
            log.debug("polygon %s %s: %d bars in %s .. %s", key, bar_size, len(frame), lo, hi)
            yield Window(lo, hi, frame)

    async def _rows(self, key: str, ticker: str, seconds: int, lo: pd.Timestamp, hi: pd.Timestamp) -> list[_Agg]:
        multiplier, timespan = _timespan(seconds)
        if seconds >= _DAY:  # Polygon's days are New York dates
            first, last = f"{lo:%Y-%m-%d}", f"{hi - pd.Timedelta(1, 'ns'):%Y-%m-%d}"
        else:  # epoch milliseconds, both ends inclusive
            first, last = str(lo.value // 1_000_000), str(hi.value // 1_000_000 - 1)
        url: str | None = f"{self.base}/v2/aggs/ticker/{quote(ticker)}/range/{multiplier}/{timespan}/{first}/{last}"
        params: dict[str, str | int] | None = {"adjusted": str(self.adjusted).lower(), "sort": "asc",
                                               "limit": PAGE_LIMIT}
        rows: list[_Agg] = []
        seen: set[str] = set()
        while url is not None:
            reply = await self.http.get_json(key, url, params)
            page = self._page(key, reply.status, reply.body)
            rows.extend(page.get("results") or ())
            url, params = page.get("next_url") or None, None  # a next_url carries its own query (the cursor)
            if url is not None:
                if not url.startswith(self.base + "/"):
                    raise malformed(key, self.name, f"next_url leaves {self.base}: {self.http.mask(url)}")
                if url in seen or len(seen) >= _MAX_PAGES:
                    raise malformed(key, self.name, f"next_url loops: {self.http.mask(url)}")
                seen.add(url)
        return rows

    def _page(self, key: str, status: int, body: Any) -> _Page:
        if isinstance(body, dict) and (status >= 400 or body.get("status") not in _GOOD) and "status" in body:
            said = body.get("error") or body.get("message") or ""
            state = body["status"]
            reason = f"polygon: {state}{f': {said}' if said else ''}" + (f" (HTTP {status})" if status >= 300 else "")
            raise SourceError.of(key, reason, retryable=False, source=self.name, status=status, state=state)
        if status >= 300:
            raise SourceError.of(key, f"polygon: HTTP {status}", retryable=False, source=self.name, status=status)
        try:
            return _PAGE.validate_python(body)
        except pydantic.ValidationError as exc:
            raise malformed(key, self.name, describe(exc)) from None

    @staticmethod
    def _frame(rows: list[_Agg], daily: bool) -> pd.DataFrame:
        times = pd.to_datetime(np.array([r["t"] for r in rows], dtype="int64"), unit="ms", utc=True)
        if daily:  # stamped at midnight New York (stocks) or UTC: the nearest UTC midnight is the bar's date
            times = times.round("D")
        columns: dict[str, Any] = {
            "open": np.array([r["o"] for r in rows], dtype="float64"),
            "high": np.array([r["h"] for r in rows], dtype="float64"),
            "low": np.array([r["l"] for r in rows], dtype="float64"),
            "close": np.array([r["c"] for r in rows], dtype="float64"),
            "volume": np.array([r["v"] for r in rows], dtype="float64"),
        }
        if any(r.get("vw") is not None for r in rows):
            columns["wap"] = np.array([r.get("vw") for r in rows], dtype="float64")
        if any(r.get("n") is not None for r in rows):
            columns["bar_count"] = np.array([-1 if r.get("n") is None else r["n"] for r in rows],
                                            dtype="int64")  # -1: not counted (NO_COUNT), as IB says it
        return pd.DataFrame(columns, index=pd.DatetimeIndex(times, name="time"))

    async def _confirm(self, key: str, ticker: str, at: pd.Timestamp) -> None:
        """Raise for a ticker Polygon does not know (asked as of ``at``'s date, so delisted ones are found)."""
        reply = await self.http.get_json(key, f"{self.base}/v3/reference/tickers/{quote(ticker)}",
                                         {"date": f"{at:%Y-%m-%d}"})
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status == 404 or body.get("status") == "NOT_FOUND":
            raise SourceError.of(key, f"polygon: unknown ticker {ticker}", retryable=False, source=self.name,
                                 ticker=ticker)
        if reply.status >= 300:
            raise SourceError.of(key, f"polygon: HTTP {reply.status} asking for ticker {ticker}",
                                 retryable=False, source=self.name, status=reply.status)

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.http.close()
