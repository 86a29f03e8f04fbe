"""A local HTTP server answering in Polygon's and Yahoo's documented formats, with misbehaving tickers.

It runs aiohttp on 127.0.0.1 (a port the OS picks) in a thread of its own,
so the code under test runs its own event loop in the test's thread. Every
request is recorded (path, query, Authorization header). Tickers choose the
behaviour: ``RATE`` answers 429 with ``Retry-After: 1`` once, ``LATER`` 429
with ``Retry-After: 3600``, ``SLOW`` after 2 s, ``FLAKY`` 503
twice, ``DOWN`` 500 for ever, ``GARBAGE`` an HTML page, ``SHAPE`` bars
without ``h``, ``BADBAR`` a bar with high < low, ``NOPE`` nothing (and is
unknown to the reference endpoint), ``LOOP`` a next_url to itself, ``AWAY`` a
next_url to another host, ``HOLE`` (Yahoo) no bars in any range, as a transient
empty answer would; any other ticker has :func:`bar_values` bars.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web

from trader.data.sources.base import Source, Window

API_KEY = "pk_TEST_5ecret_9d1f"
NEW_YORK = "America/New_York"


def download(source: Source, key: str, size: str, start: pd.Timestamp, end: pd.Timestamp,
             got: list[Window] | None = None) -> list[Window]:
    """Collect the windows of one download (into ``got`` as they come, to see what came before an error)."""
    got = [] if got is None else got

    async def go() -> list[Window]:
        try:
            async for window in source.windows(key, size, start, end):
                got.append(window)
        finally:
            await source.close()
        return got

    return asyncio.run(go())


def bar_values(ticker: str, times_ms: np.ndarray) -> dict[str, np.ndarray]:
    """Return deterministic bars (o h l c v vw n) for bar starts ``times_ms``: the truth the tests compare to."""
    seed = sum(map(ord, ticker))
    k = (times_ms // 60_000) % 1000
    base = 100.0 + seed % 50 + np.round(np.sin(k / 7.0) * 5, 2)
    o, c = base, np.round(base + np.cos(k / 3.0), 2)
    h, lo = np.maximum(o, c) + 0.25, np.minimum(o, c) - 0.25
    v = 1000.0 + (k * 37) % 500
    return {"o": o, "h": h, "l": lo, "c": c, "v": v, "vw": np.round((o + c) / 2, 4), "n": (10 + k % 90).astype(int)}


def step_times(first_ms: int, last_ms: int, step_ms: int) -> np.ndarray:
    """Return the bar starts ``first_ms``, +step ... up to ``last_ms`` inclusive (24-hour market)."""
    start = -(-first_ms // step_ms) * step_ms
    return np.arange(start, last_ms + 1, step_ms, dtype="int64")


def polygon_days(first: str, last: str, *, fx: bool = False) -> np.ndarray:
    """Return Polygon's daily stamps (ms) of the weekdays in ``first..last``: midnight New York, or UTC for FX."""
    days = pd.bdate_range(first, last).tz_localize("UTC" if fx else NEW_YORK)
    return np.asarray(days.tz_convert("UTC").asi8 // 1_000_000, dtype="int64")


@dataclass
class ProviderServer:
    """The server and what it saw; ``page_size`` bars per Polygon page before a next_url."""

    url: str = ""
    page_size: int = 1000
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    times: dict[str, list[float]] = field(default_factory=dict)  # monotonic arrival of each request, by name
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> None:
        """Serve in a thread until :meth:`stop`."""
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True, name="providers").start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{first}/{last}", self.polygon)
        app.router.add_get("/v3/reference/tickers/{ticker}", self.reference)
        app.router.add_get("/v8/finance/chart/{symbol}", self.yahoo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving and end the thread."""
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _seen(self, request: web.Request, name: str) -> None:
        self.requests.append((request.path, dict(request.query), request.headers.get("Authorization", "")))
        self.hits[name] += 1
        self.times.setdefault(name, []).append(time.monotonic())

    def _misbehave(self, name: str) -> web.Response | None:
        if name == "RATE" and self.hits[name] == 1:
            return web.json_response({"status": "ERROR", "error": "too many requests"}, status=429,
                                     headers={"Retry-After": "1"})
        if (name == "FLAKY" and self.hits[name] <= 2) or name == "DOWN":
            return web.Response(status=503 if name == "FLAKY" else 500, text="upstream unavailable")
        if name == "LATER":  # rate limited for an hour
            return web.Response(status=429, text="slow down", headers={"Retry-After": "3600"})
        if name == "GARBAGE":
            return web.Response(text="<html><body>Gateway says hi</body></html>", content_type="text/html")
        return None

    # --- Polygon --------------------------------------------------------------------------------
    async def polygon(self, request: web.Request) -> web.Response:
        """Answer ``/v2/aggs/ticker/...`` as Polygon does (pages of ``page_size`` with a next_url)."""
        m = request.match_info
        ticker = m["ticker"]
        self._seen(request, ticker)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"status": "ERROR", "request_id": "r1", "error": "Unknown API Key"}, status=401)
        bad = self._misbehave(ticker)
        if bad is not None:
            return bad
        if ticker == "SLOW":
            await asyncio.sleep(2.0)
        if ticker == "NOPE":
            return web.json_response({"ticker": ticker, "queryCount": 0, "resultsCount": 0, "adjusted": True,
                                      "status": "OK", "request_id": "r2"})
        if ticker == "DENIED":
            return web.json_response({"status": "NOT_AUTHORIZED", "request_id": "r3",
                                      "message": "Your plan doesn't include this data timeframe."}, status=403)
        units = {"second": 1_000, "minute": 60_000, "hour": 3_600_000}
        if m["span"] == "day":
            times = polygon_days(m["first"], m["last"], fx=ticker.startswith("C:"))
        else:
            times = step_times(int(m["first"]), int(m["last"]), int(m["mult"]) * units[m["span"]])
        values = bar_values(ticker, times)
        offset = int(request.query.get("cursor", "0"))
        chunk = slice(offset, offset + self.page_size)
        results: list[dict[str, Any]] = [
            {"t": int(t), **{f: (int(values[f][i]) if f == "n" else float(values[f][i])) for f in values}}
            for i, t in zip(range(len(times))[chunk], times[chunk], strict=True)
        ]
        if ticker == "SHAPE":
            del results[3]["h"]
        if ticker == "BADBAR":
            results[2]["h"] = results[2]["l"] - 1
        body: dict[str, Any] = {"ticker": ticker, "queryCount": len(results), "resultsCount": len(results),
                                "adjusted": True, "status": "DELAYED", "request_id": "r4", "results": results}
        if offset + self.page_size < len(times):
            path = request.path
            body["next_url"] = f"{self.url}{path}?cursor={offset + self.page_size}"
        if ticker == "LOOP":
            body["next_url"] = f"{self.url}{request.path}?cursor=0"
        if ticker == "AWAY":
            body["next_url"] = f"http://example.invalid{request.path}?cursor=1"
        return web.json_response(body)

    async def reference(self, request: web.Request) -> web.Response:
        """Answer ``/v3/reference/tickers/{ticker}``: every ticker but NOPE exists."""
        ticker = request.match_info["ticker"]
        self._seen(request, f"ref:{ticker}")
        if ticker == "NOPE":
            return web.json_response({"status": "NOT_FOUND", "request_id": "r5", "message": "Ticker not found."},
                                     status=404)
        return web.json_response({"status": "OK", "request_id": "r6", "results": {"ticker": ticker}})

    # --- Yahoo ----------------------------------------------------------------------------------
    async def yahoo(self, request: web.Request) -> web.Response:
        """Answer ``/v8/finance/chart/{symbol}`` as Yahoo does (nulls for missing bars)."""
        symbol = request.match_info["symbol"]
        self._seen(request, symbol)
        bad = self._misbehave(symbol)
        if bad is not None:
            return bad
        if symbol == "NOPE":
            return web.json_response({"chart": {"result": None, "error": {
                "code": "Not Found", "description": "No data found, symbol may be delisted"}}}, status=404)
        period1, period2 = int(request.query["period1"]), int(request.query["period2"])
        interval = request.query["interval"]
        steps = {"1m": 60, "2m": 120, "5m": 300, "15m": 900, "30m": 1800, "60m": 3600, "1d": 86_400}
        if interval == "1d":  # 09:30 New York of each weekday
            days = pd.bdate_range(pd.Timestamp(period1, unit="s"), pd.Timestamp(period2, unit="s"), normalize=True)
            opens = (days + pd.Timedelta(hours=9, minutes=30)).tz_localize(NEW_YORK).tz_convert("UTC")
            times = np.asarray(opens.asi8 // 1_000_000_000, dtype="int64")
            times = times[(times >= period1) & (times < period2)]
        else:
            times = step_times(period1 * 1000, period2 * 1000 - 1, steps[interval] * 1000) // 1000
        if symbol == "HOLE":
            times = times[:0]
        values = bar_values(symbol, times * 1000)
        quote: dict[str, list[Any]] = {name: [float(x) for x in values[f]] for name, f in
                                       (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v"))}
        for i in np.flatnonzero(yahoo_null(times)):  # Yahoo's missing bars: every field null
            for values_of in quote.values():
                values_of[i] = None
        if symbol == "SHAPE":
            quote["high"] = quote["high"][:-1]
        result: dict[str, Any] = {"meta": {"symbol": symbol, "exchangeTimezoneName": NEW_YORK,
                                           "dataGranularity": interval},
                                  "timestamp": [int(t) for t in times], "indicators": {"quote": [quote]}}
        if not len(times):  # as Yahoo: no timestamp key, an empty quote
            del result["timestamp"]
            result["indicators"] = {"quote": [{}]}
        return web.json_response({"chart": {"result": [result], "error": None}})


def yahoo_null(times_s: np.ndarray) -> np.ndarray:
    """Return which bars at ``times_s`` (epoch seconds) the server sends as nulls."""
    return np.asarray((times_s // 60) % 10 == 4)
