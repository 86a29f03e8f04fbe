"""The Yahoo source against a local server in Yahoo's chart format: null bars, its limits, retries, bad payloads."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tests.data.sources.providers import (
    NEW_YORK,
    ProviderServer,
    bar_values,
    download,
    step_times,
    yahoo_null,
)
from trader.config import Settings
from trader.data.frames import BAR_COLUMNS, NO_COUNT, OPTIONAL_BAR_COLUMNS
from trader.data.sources.base import Source, Window
from trader.data.sources.yahoo import YahooSource, yahoo_symbol
from trader.errors import SourceError
from trader.retry import RetryPolicy

FAST = RetryPolicy(0.01, 0.05, attempts=4)
T0 = pd.Timestamp("2026-03-02", tz="UTC")
NOW = (T0 + pd.Timedelta(days=12)).timestamp()  # Yahoo's limits count back from this


def yahoo(settings: Settings, **options: object) -> YahooSource:
    return YahooSource(settings, retry_policy=FAST, clock=lambda: NOW, **options)  # type: ignore[arg-type]


def served(symbol: str, times_s: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Return the bars the server sent at ``times_s`` (indexed by ``index``), its null bars left out."""
    v = bar_values(symbol, times_s * 1000)
    keep = ~yahoo_null(times_s)
    return pd.DataFrame({"open": v["o"], "high": v["h"], "low": v["l"], "close": v["c"], "volume": v["v"],
                         "wap": np.nan, "bar_count": np.int64(NO_COUNT)},  # Yahoo gives neither
                        index=index)[keep]


def test_minute_bars_come_in_7_day_windows_without_the_null_bars(provider: ProviderServer, settings: Settings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trader.data.sources.yahoo")
    source = yahoo(settings)
    assert isinstance(source, Source) and source.name == "yahoo"
    end = T0 + pd.Timedelta(days=10)
    windows = download(source, "AAPL.STK", "1m", T0, end)
    cut = T0 + pd.Timedelta(days=7)
    assert [(w.start, w.end) for w in windows] == [(T0, cut), (cut, end)]
    assert [q["period1"] for _, q, _ in provider.requests] == [str(T0.value // 10**9), str(cut.value // 10**9)]
    assert {(q["interval"], q["includePrePost"]) for _, q, _ in provider.requests} == {("1m", "false")}
    assert "2 requests (Yahoo serves at most 7 days of 1m bars per request)" in caplog.text
    times = step_times(T0.value // 10**6, end.value // 10**6 - 1, 60_000) // 1000
    want = served("AAPL", times, pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True), name="time"))
    got = pd.concat([w.frame for w in windows])
    assert len(got) == len(times) * 9 // 10  # every tenth minute was null
    pd.testing.assert_frame_equal(got, want)


def test_daily_bars_start_at_midnight_utc_of_their_session_date(provider: ProviderServer,
                                                                settings: Settings) -> None:
    end = T0 + pd.Timedelta(days=14)
    (window,) = download(yahoo(settings), "EUR.CASH.USD", "1d", T0, end)
    assert provider.requests[0][0] == "/v8/finance/chart/EURUSD=X"
    days = pd.bdate_range(T0.tz_localize(None), end.tz_localize(None) - pd.Timedelta(days=1))
    opens = (days + pd.Timedelta(hours=9, minutes=30)).tz_localize(NEW_YORK).tz_convert("UTC")
    want = served("EURUSD=X", np.asarray(opens.asi8 // 10**9), pd.DatetimeIndex(days.tz_localize("UTC"),
                                                                                  name="time"))
    assert len(want) > 0
    pd.testing.assert_frame_equal(window.frame, want, check_freq=False)


def test_a_range_with_no_bars_is_an_empty_window(provider: ProviderServer, settings: Settings) -> None:
    saturday = T0 + pd.Timedelta(days=5)
    (window,) = download(yahoo(settings), "AAPL.STK", "1d", saturday, saturday + pd.Timedelta(days=2))
    assert window.frame.empty and list(window.frame.columns) == [*BAR_COLUMNS, *OPTIONAL_BAR_COLUMNS]


def test_what_yahoo_does_not_have_is_refused_before_any_request(provider: ProviderServer,
                                                                 settings: Settings) -> None:
    old = pd.Timestamp(NOW - 31 * 86_400, unit="s", tz="UTC")
    with pytest.raises(SourceError, match=r"AAPL.STK: yahoo serves 1m bars for the last 30 days only: "
                                          r"ask from 2026-02-12 on"):
        download(yahoo(settings), "AAPL.STK", "1m", old, T0)
    with pytest.raises(SourceError, match=r"yahoo has no 3m bars \(it has 1m 2m 5m 15m 30m 1h 1d\)"):
        download(yahoo(settings), "AAPL.STK", "3m", T0, T0 + pd.Timedelta(days=1))
    with pytest.raises(SourceError, match="only the continuous front month ES=F"):
        download(yahoo(settings), "ES.FUT.202612", "1d", T0, T0 + pd.Timedelta(days=1))
    assert provider.requests == []


def test_a_futures_key_serves_the_continuous_month_when_asked_and_says_so(
        provider: ProviderServer, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    (window,) = download(yahoo(settings, continuous=True), "ES.FUT.202612", "1h", T0, T0 + pd.Timedelta(days=1))
    assert provider.requests[0][0] == "/v8/finance/chart/ES=F" and len(window.frame) > 0
    assert "storing the continuous front month ES=F, not the contract month" in caplog.text


def test_keys_map_to_yahoo_symbols() -> None:
    assert [yahoo_symbol(k) for k in ("AAPL.STK", "BRK_B.STK", "EUR.CASH.USD", "USD.CASH.JPY", "SPX.IND")] == [
        "AAPL", "BRK-B", "EURUSD=X", "USDJPY=X", "^SPX"]
    with pytest.raises(SourceError, match="non-USD stocks are not served"):
        yahoo_symbol("SAP.STK.EUR")


@pytest.mark.parametrize(("symbol", "retries"), [("RATE", 1), ("FLAKY", 2)])
def test_429_and_503_are_retried(provider: ProviderServer, settings: Settings, symbol: str, retries: int) -> None:
    source = yahoo(settings)
    (window,) = download(source, f"{symbol}.STK", "1h", T0, T0 + pd.Timedelta(days=1))
    assert source.http.retries == retries and provider.hits[symbol] == retries + 1
    hours = step_times(T0.value // 10**6, (T0.value // 10**6) + 86_400_000 - 1, 3_600_000) // 1000
    pd.testing.assert_frame_equal(window.frame, served(symbol, hours, pd.DatetimeIndex(
        pd.to_datetime(hours, unit="s", utc=True), name="time")))


@pytest.mark.parametrize(("symbol", "says", "retryable"), [
    ("DOWN", "yahoo: HTTP 500; gave up after 4 requests", True),
    ("GARBAGE", "yahoo: malformed response (not JSON: text/html", False),
    ("SHAPE", "yahoo: malformed response (24 timestamps but 23 high values)", False),
    ("NOPE", "yahoo: Not Found: No data found, symbol may be delisted (NOPE)", False),
])
def test_a_bad_answer_is_a_clear_error_and_nothing_is_yielded(provider: ProviderServer, settings: Settings,
                                                              symbol: str, says: str, retryable: bool) -> None:
    got: list[Window] = []
    with pytest.raises(SourceError) as caught:
        download(yahoo(settings), f"{symbol}.STK", "1h", T0, T0 + pd.Timedelta(days=1), got)
    assert got == [] and str(caught.value).startswith(f"{symbol}.STK: ") and says in str(caught.value)
    assert caught.value.retryable is retryable and caught.value.details["instrument"] == f"{symbol}.STK"
    assert provider.hits[symbol] == (4 if retryable else 1)
