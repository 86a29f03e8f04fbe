"""The HTTP sources' fetch on its own: timeouts, refused connections, a Retry-After too long, masking."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pandas as pd
import pytest

from tests.data.sources.providers import API_KEY, ProviderServer, download
from trader.config import HistorySettings, Settings
from trader.data.sources.http import HttpFetch, fixed_spans, mask, retry_after
from trader.data.sources.polygon import PolygonSource
from trader.errors import SourceError
from trader.retry import RetryPolicy

FAST = RetryPolicy(0.01, 0.05, attempts=3)
T0 = pd.Timestamp("2026-03-02", tz="UTC")
DAY = pd.Timedelta(days=1)


def test_a_server_slower_than_the_timeout_is_retried_then_given_up_retryable(provider: ProviderServer) -> None:
    settings = Settings(history=HistorySettings(polygon_url=provider.url, polygon_api_key=API_KEY,
                                                http_timeout=0.2))
    with pytest.raises(SourceError, match=r"^SLOW.STK: polygon: no answer within 0.2 s; gave up after 3 requests$") \
            as caught:
        download(PolygonSource(settings, retry_policy=FAST), "SLOW.STK", "1h", T0, T0 + DAY)
    assert caught.value.retryable and provider.hits["SLOW"] == 3
    assert caught.value.details["url"].startswith(f"{provider.url}/v2/aggs/ticker/SLOW/range/1/hour/")


def test_a_refused_connection_is_retried_then_given_up_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(history=HistorySettings(polygon_url=url, polygon_api_key=API_KEY))
        source = PolygonSource(settings, retry_policy=FAST)
        with pytest.raises(SourceError, match=r"AAPL.STK: polygon: ConnectError: .*; gave up after 3 requests") \
                as caught:
            download(source, "AAPL.STK", "1h", T0, T0 + DAY)
    assert caught.value.retryable and source.http.retries == 2


def test_a_retry_after_past_the_limit_fails_at_once_retryable(provider: ProviderServer,
                                                                settings: Settings) -> None:
    source = PolygonSource(settings, retry_policy=FAST, max_retry_after=60)
    with pytest.raises(SourceError, match=r"LATER.STK: polygon: HTTP 429 \(rate limited, retry after 3600 s\); "
                                          r"gave up after 1 request$"):
        download(source, "LATER.STK", "1h", T0, T0 + DAY)
    assert provider.hits["LATER"] == 1


def test_the_policy_wait_stands_when_longer_than_the_retry_after(provider: ProviderServer,
                                                                   settings: Settings) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        fetch = HttpFetch(settings, source="polygon", headers={"Authorization": f"Bearer {API_KEY}"},
                          policy=RetryPolicy(5.0, 5.0, attempts=3), sleep=sleep)
        try:
            await fetch.get_json("RATE.STK", f"{provider.url}/v2/aggs/ticker/RATE/range/1/hour/1/2")
        finally:
            await fetch.close()

    asyncio.run(go())
    assert waits == [5.0]  # Retry-After said 1 s: the policy's 5 s wins (virtual time: nothing slept)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0 and retry_after(None) == 0.0 and retry_after("soon") == 0.0
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=pd.Timestamp("2015-10-21 07:28:00Z").timestamp()) == 30


def test_mask_blanks_secrets_and_key_like_parameters() -> None:
    url = "https://api.polygon.io/v2/aggs?cursor=abc&apiKey=s3cr3t&limit=5"
    assert mask(url) == "https://api.polygon.io/v2/aggs?cursor=abc&apiKey=***&limit=5"
    assert mask("token s3cr3t in text", ["s3cr3t"]) == "token *** in text"


def test_fixed_spans_cover_the_range() -> None:
    spans = list(fixed_spans(T0, T0 + 2.5 * DAY, DAY))
    assert spans == [(T0, T0 + DAY), (T0 + DAY, T0 + 2 * DAY), (T0 + 2 * DAY, T0 + 2.5 * DAY)]


def test_per_minute_spaces_the_requests(provider: ProviderServer, settings: Settings) -> None:
    provider.page_size = 5  # 24 hourly bars: 5 pages
    began = time.monotonic()
    (window,) = download(PolygonSource(settings, per_minute=600), "AAPL.STK", "1h", T0, T0 + DAY)
    starts = provider.times["AAPL"]
    assert len(window.frame) == 24 and len(starts) == 5
    # 600 a minute: 0.1 s apart, as sent; as the server's thread sees them on a loaded machine, a pair may be
    # closer by its scheduling jitter (0.081 s seen), never bunched as unspaced requests are (a few ms)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.05
    assert (starts[-1] - starts[0]) / (len(starts) - 1) >= 0.09
    assert time.monotonic() - began >= 0.4
