"""The Polygon source against a local server in Polygon's format: pages, retries, bad payloads, the key kept secret."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr

from tests.data.sources.providers import (
    API_KEY,
    ProviderServer,
    bar_values,
    download,
    polygon_days,
    step_times,
)
from trader.config import HistorySettings, Settings
from trader.data import open_store
from trader.data.sources.base import Source, Window
from trader.data.sources.polygon import PolygonSource, polygon_ticker
from trader.errors import ConfigError, SourceError
from trader.retry import RetryPolicy

FAST = RetryPolicy(0.01, 0.05, attempts=4)
T0 = pd.Timestamp("2026-03-02", tz="UTC")


def expected(ticker: str, times_ms: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    v = bar_values(ticker, times_ms)
    return pd.DataFrame({"open": v["o"], "high": v["h"], "low": v["l"], "close": v["c"], "volume": v["v"],
                         "wap": v["vw"], "bar_count": v["n"].astype("int64")}, index=index)


def test_paged_minute_bars_equal_what_was_served(provider: ProviderServer, settings: Settings) -> None:
    source = PolygonSource(settings)
    assert isinstance(source, Source) and source.name == "polygon"
    end = T0 + pd.Timedelta(days=2)
    windows = download(source, "AAPL.STK", "1m", T0, end)
    assert [(w.start, w.end) for w in windows] == [(T0, end)]
    times = step_times(T0.value // 10**6, end.value // 10**6 - 1, 60_000)
    want = expected("AAPL", times, pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    pd.testing.assert_frame_equal(windows[0].frame, want)
    assert str(windows[0].frame.index.tz) == "UTC"
    # 2880 bars in pages of 1000: the first request and two next_urls, each with the key in a header only
    assert [q.get("cursor") for _, q, _ in provider.requests] == [None, "1000", "2000"]
    assert provider.requests[0][1] == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    assert all(auth == f"Bearer {API_KEY}" and "apiKey" not in q for _, q, auth in provider.requests)


def test_a_long_range_comes_in_windows_that_cover_it_in_order(provider: ProviderServer, settings: Settings) -> None:
    provider.page_size = 50_000
    end = T0 + pd.Timedelta(days=40)
    windows = download(PolygonSource(settings), "EUR.CASH.USD", "1m", T0, end)
    assert [w.start for w in windows] == [T0, T0 + pd.Timedelta(days=34)]
    assert windows[0].end == windows[1].start and windows[-1].end == end
    assert {p.split("/")[4] for p, _, _ in provider.requests} == {"C:EURUSD"}
    frame = pd.concat([w.frame for w in windows])
    assert len(frame) == 40 * 1440 and frame.index.is_monotonic_increasing


@pytest.mark.parametrize(("key", "ticker"), [("MSFT.STK", "MSFT"), ("GBP.CASH.USD", "C:GBPUSD")])
def test_daily_bars_start_at_midnight_utc_of_their_date(provider: ProviderServer, settings: Settings, key: str,
                                                        ticker: str) -> None:
    end = T0 + pd.Timedelta(days=14)
    (window,) = download(PolygonSource(settings), key, "1d", T0, end)
    stamps = polygon_days("2026-03-02", "2026-03-15", fx=ticker.startswith("C:"))  # New York or UTC midnights
    assert provider.requests[0][0].endswith(f"/{ticker}/range/1/day/2026-03-02/2026-03-15")
    want = expected(ticker, stamps, pd.DatetimeIndex(pd.bdate_range(T0, end - pd.Timedelta(days=1)), name="time"))
    pd.testing.assert_frame_equal(window.frame, want, check_freq=False)


def test_429_waits_the_retry_after_then_succeeds(provider: ProviderServer, settings: Settings) -> None:
    source = PolygonSource(settings, retry_policy=FAST)
    began = time.monotonic()
    (window,) = download(source, "RATE.STK", "1h", T0, T0 + pd.Timedelta(days=1))
    assert time.monotonic() - began >= 0.95  # Retry-After: 1, though the policy's own wait is 0.01 s
    assert source.http.retries == 1 and provider.hits["RATE"] == 2
    assert len(window.frame) == 24


def test_503_twice_is_retried(provider: ProviderServer, settings: Settings) -> None:
    source = PolygonSource(settings, retry_policy=FAST)
    (window,) = download(source, "FLAKY.STK", "1h", T0, T0 + pd.Timedelta(days=1))
    assert source.http.retries == 2 and provider.hits["FLAKY"] == 3 and len(window.frame) == 24


def test_500_for_ever_gives_up_retryable(provider: ProviderServer, settings: Settings) -> None:
    source, got = PolygonSource(settings, retry_policy=FAST), []
    with pytest.raises(SourceError) as caught:
        download(source, "DOWN.STK", "1h", T0, T0 + pd.Timedelta(days=1), got)
    assert caught.value.retryable and caught.value.details["instrument"] == "DOWN.STK"
    assert "HTTP 500" in str(caught.value) and str(caught.value).startswith("DOWN.STK: polygon:")
    assert provider.hits["DOWN"] == 4 and source.http.retries == 3 and got == []


@pytest.mark.parametrize(("ticker", "says"), [
    ("GARBAGE", "malformed response (not JSON: text/html"),
    ("SHAPE", "malformed response (results[3].h: Field required)"),
    ("BADBAR", "has high < low"),
    ("LOOP", "next_url loops"),
    ("AWAY", "next_url leaves http://127.0.0.1"),
    ("NOPE", "polygon: unknown ticker NOPE"),
    ("DENIED", "polygon: NOT_AUTHORIZED: Your plan doesn't include this data timeframe. (HTTP 403)"),
])
def test_a_bad_answer_is_a_clear_error_and_nothing_is_yielded(provider: ProviderServer, settings: Settings,
                                                              ticker: str, says: str) -> None:
    provider.page_size = 10
    got: list[Window] = []
    with pytest.raises(SourceError) as caught:
        download(PolygonSource(settings, retry_policy=FAST), f"{ticker}.STK", "1h", T0, T0 + pd.Timedelta(days=1), got)
    assert got == []
    assert str(caught.value).startswith(f"{ticker}.STK: ") and says in str(caught.value)
    assert not caught.value.retryable and caught.value.details["instrument"] == f"{ticker}.STK"
    # BADBAR: all three pages are read before the window is checked; LOOP: its next_url is followed once
    assert provider.hits[ticker] == {"BADBAR": 3, "LOOP": 2}.get(ticker, 1)


def test_a_wrong_key_is_refused_and_the_key_is_never_logged(provider: ProviderServer, settings: Settings,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors = []
    for ticker in ("RATE", "FLAKY", "DOWN", "GARBAGE", "AAPL"):
        try:
            download(PolygonSource(settings, retry_policy=FAST), f"{ticker}.STK", "1h", T0, T0 + pd.Timedelta(days=1))
        except SourceError as exc:
            errors.append(exc)
    wrong = Settings(history=settings.history.model_copy(update={"polygon_api_key": SecretStr("not-it")}))
    with pytest.raises(SourceError, match=r"AAPL.STK: polygon: ERROR: Unknown API Key \(HTTP 401\)"):
        download(PolygonSource(wrong), "AAPL.STK", "1h", T0, T0 + pd.Timedelta(days=1))
    assert len(errors) == 2 and any("retrying in" in r.getMessage() for r in caplog.records)
    assert any("HTTP Request: GET" in r.getMessage() for r in caplog.records)  # httpx's own log was captured
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert API_KEY not in logged and all(API_KEY not in repr(e.details) + str(e) for e in errors)


def test_the_key_is_among_the_secrets_the_logs_mask(settings: Settings) -> None:
    assert API_KEY in settings.secrets()


def test_a_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TRADER_HISTORY__POLYGON_API_KEY"):
        PolygonSource(Settings(history=HistorySettings(polygon_api_key=None)))


def test_keys_map_to_polygon_tickers_and_the_rest_is_refused() -> None:
    assert [polygon_ticker(k) for k in ("AAPL.STK", "BRK_B.STK", "EUR.CASH.USD", "SPX.IND")] == [
        "AAPL", "BRK.B", "C:EURUSD", "I:SPX"]
    for key, says in (("ES.FUT.202612", "FUT contracts are not served"), ("SAP.STK.EUR", "non-USD stocks"),
                      ("nonsense", "not a contract key")):
        with pytest.raises(SourceError, match=says) as caught:
            polygon_ticker(key)
        assert not caught.value.retryable


def test_an_unknown_bar_size_is_refused(settings: Settings) -> None:
    with pytest.raises(SourceError, match="bar size '7m' is not one of IB's"):
        download(PolygonSource(settings), "AAPL.STK", "7m", T0, T0 + pd.Timedelta(days=1))


def test_a_download_lands_in_the_store_and_a_malformed_one_writes_nothing(provider: ProviderServer,
                                                                          settings: Settings, tmp_path: Path) -> None:
    store = open_store(uri=f"lmdb://{tmp_path / 'arctic'}")
    end = T0 + pd.Timedelta(days=3)
    for ticker in ("AAPL", "SHAPE"):
        try:
            for w in download(PolygonSource(settings, retry_policy=FAST), f"{ticker}.STK", "1h", T0, end):
                store.write_bars(f"{ticker}.STK", "1h", w.frame, start=w.start, end=w.end)
        except SourceError as exc:
            assert ticker == "SHAPE" and "malformed" in str(exc)
    times = step_times(T0.value // 10**6, end.value // 10**6 - 1, 3_600_000)
    want = expected("AAPL", times, pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"))
    pd.testing.assert_frame_equal(store.read_bars("AAPL.STK", "1h"), want, check_freq=False)
    assert store.bar_symbols("1h") == {"1h": ["AAPL.STK"]}
