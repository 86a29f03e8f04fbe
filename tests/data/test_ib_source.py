"""The IB source against a real tws-sim through real ib_async: range splitting, pacing, no data, unknown symbols."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pandas as pd
import pytest
from ib_async import Stock

from tests.sim.simulator import connect, running_sim, sim_config
from trader.brokers.ib.durations import MAX_DURATION
from trader.config import HistorySettings, IbSettings, Settings
from trader.data.pacing import PacingRules
from trader.data.sources.base import Source, Window
from trader.data.sources.ib import IbSource, ib_requests
from trader.data.store import SymbolMeta
from trader.errors import SourceError
from trader.retry import RetryPolicy
from trader.sim.pacing import PacingConfig
from trader.sim.server import TwsSimServer

#: The sim's small limits in the pacing tests: the real rule, in seconds rather than minutes.
SMALL = PacingConfig(max_requests=8, window=4.0, identical_interval=15.0, max_per_series=3, series_window=1.0)
FAST_RETRY = RetryPolicy(initial=0.3, cap=2.0, factor=2.0, attempts=30)


def settings_for(server: TwsSimServer, pacing: bool = True) -> Settings:
    return Settings(ib=IbSettings(port=server.port), history=HistorySettings(client_id=11, pacing=pacing))


def last_midnight() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("D")


async def download(source: IbSource, key: str, bar_size: str, start: pd.Timestamp,
                   end: pd.Timestamp) -> list[Window]:
    return [w async for w in source.windows(key, bar_size, start, end)]


def with_sim(config: PacingConfig | None, body: Callable[[TwsSimServer], Awaitable[Any]], timeout: float = 90) -> Any:
    async def main() -> Any:
        async with running_sim(sim_config(pacing=config)) as server:
            return await asyncio.wait_for(body(server), timeout)
    return asyncio.run(main())


def assert_covering(windows: list[Window], start: pd.Timestamp, end: pd.Timestamp) -> None:
    assert windows[0].start == start and windows[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    for w in windows:
        assert ((w.frame.index >= w.start) & (w.frame.index < w.end)).all(), w


def test_the_windows_are_ibs_longest_requests() -> None:
    start = pd.Timestamp("2026-11-02", tz="UTC")
    pieces = list(ib_requests(start, start + pd.Timedelta(hours=50), 60))
    assert [(s.isoformat(), e.isoformat(), d) for s, e, d in pieces] == [
        ("2026-11-02T00:00:00+00:00", "2026-11-03T00:00:00+00:00", "86400 S"),
        ("2026-11-03T00:00:00+00:00", "2026-11-04T00:00:00+00:00", "86400 S"),
        ("2026-11-04T00:00:00+00:00", "2026-11-04T02:00:00+00:00", "7200 S")]
    assert [d for *_, d in ib_requests(start, start + pd.Timedelta(days=10), 300)] == ["7 D", "3 D"]
    assert [d for *_, d in ib_requests(start, start + pd.Timedelta(hours=1), 1)] == ["1800 S", "1800 S"]
    assert MAX_DURATION[86_400] == 365 * 86_400
    day = pd.Timestamp("2026-03-02", tz="UTC")  # a daily request is in days, never in seconds (IB refuses S)
    assert [d for *_, d in ib_requests(day, day + pd.Timedelta(hours=6), 86_400)] == ["1 D"]


def test_a_range_is_split_into_ibs_longest_requests_and_each_window_clipped() -> None:
    """Three days of minutes: three requests; together they are the bars of one long direct request."""
    end = last_midnight() - pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=3) + pd.Timedelta(seconds=30)  # mid-minute: the first bar starts before it

    async def body(server: TwsSimServer) -> tuple[list[Window], pd.DataFrame, int]:
        source = IbSource(settings_for(server))
        assert isinstance(source, Source)
        before = source.pacer.requests
        try:
            windows = await download(source, "AAPL.STK", "1m", start, end)
        finally:
            await source.close()
        ib = await connect(server, 77)
        try:
            bars = await ib.reqHistoricalDataAsync(Stock("AAPL", "SMART", "USD"), end.strftime("%Y%m%d-%H:%M:%S"),
                                                   "3 D", "1 min", "TRADES", False, formatDate=2)
        finally:
            ib.disconnect()
        direct = pd.DataFrame({"close": [b.close for b in bars], "volume": [float(b.volume) for b in bars]},
                              index=pd.DatetimeIndex([b.date for b in bars]).tz_convert("UTC"))
        return windows, direct[(direct.index >= start) & (direct.index < end)], source.pacer.requests - before

    windows, direct, requests = with_sim(None, body)
    assert len(windows) == 3 and requests == 3
    assert_covering(windows, start, end)
    got = pd.concat([w.frame for w in windows])
    assert len(got) > 0 and got.index.is_unique and got.index.is_monotonic_increasing
    assert got.index[0] > start  # the bar begun before the start was dropped
    pd.testing.assert_index_equal(got.index, direct.index, check_names=False)
    assert got["close"].tolist() == direct["close"].tolist() and got["volume"].tolist() == direct["volume"].tolist()
    assert {"open", "high", "low", "close", "volume", "bar_count"} <= set(got.columns)


def test_a_download_that_crosses_the_sims_pacing_limits_is_backed_off_and_completes(
        caplog: pytest.LogCaptureFixture) -> None:
    """The source's pacer holds IB's own limits; the sim's are tighter, so it answers 162 and the source retries."""
    end = last_midnight() - pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=12)

    async def body(server: TwsSimServer) -> tuple[list[Window], int, int]:
        source = IbSource(settings_for(server), retry=FAST_RETRY)
        before = source.pacer.violations  # the process's pacer of this endpoint: a test before may have used it
        try:
            windows = await download(source, "MSFT.STK", "1 min", start, end)
        finally:
            await source.close()
        return windows, server.pacing.violations, source.pacer.violations - before

    with caplog.at_level(logging.INFO):
        windows, refused, seen = with_sim(SMALL, body)
    assert len(windows) == 12 and all(len(w.frame) for w in windows)
    assert_covering(windows, start, end)
    assert refused > 0 and seen == refused  # it did cross the limits, and every refusal was retried
    lines = [r.getMessage() for r in caplog.records if "pacing violation" in r.getMessage()]
    assert len(lines) == refused and all("MSFT.STK" in line and "retrying in" in line for line in lines)


def test_a_pacer_with_the_sims_limits_never_breaks_them() -> None:
    """Against the sim's rule, not against itself: the pacer holds each request until the sim accepts it."""
    end = last_midnight() - pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=12)
    rules = PacingRules(max_requests=SMALL.max_requests, window=SMALL.window,
                        identical_interval=SMALL.identical_interval, max_per_series=SMALL.max_per_series,
                        series_window=SMALL.series_window)

    async def body(server: TwsSimServer) -> tuple[list[Window], int, float]:
        source = IbSource(settings_for(server), rules=rules, retry=FAST_RETRY)
        try:
            await source._contract("IBM.STK")  # connected and resolved: the clock times the requests only
            began = time.monotonic()
            windows = await download(source, "IBM.STK", "1 min", start, end)
            return windows, server.pacing.violations, time.monotonic() - began
        finally:
            await source.close()

    windows, refused, took = with_sim(SMALL, body)
    assert len(windows) == 12 and refused == 0
    assert took >= SMALL.window  # 12 requests, 8 per 4 s: the last four waited for the window


def test_no_data_is_an_empty_window_not_an_error() -> None:
    """Before the sim's head timestamp (2000-01-03 14:30 UTC) IB says "HMDS query returned no data"."""
    start, end = pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2000-01-03 16:00", tz="UTC")

    async def body(server: TwsSimServer) -> list[Window]:
        source = IbSource(settings_for(server))
        try:
            return await download(source, "AAPL.STK", "1m", start, end)
        finally:
            await source.close()

    windows = with_sim(None, body)
    assert [len(w.frame) for w in windows[:2]] == [0, 0]
    assert len(windows) == 3 and len(windows[2].frame) > 0
    assert_covering(windows, start, end)


def test_the_source_describes_an_instrument_by_ibs_contract_and_its_exchange_s_zone() -> None:
    async def body(server: TwsSimServer) -> SymbolMeta:
        source = IbSource(settings_for(server))
        try:
            return await source.describe("AAPL.STK")
        finally:
            await source.close()

    meta = with_sim(None, body)
    assert meta.source == "ib" and meta.timezone == "America/New_York"
    assert meta.contract["symbol"] == "AAPL" and meta.contract["sec_type"] == "STK" and meta.contract["conid"]


def test_an_unknown_symbol_is_a_source_error_naming_it() -> None:
    async def body(server: TwsSimServer) -> SourceError:
        source = IbSource(settings_for(server))
        try:
            with pytest.raises(SourceError) as failed:
                await download(source, "NOSUCH.STK", "1m", last_midnight() - pd.Timedelta(days=1), last_midnight())
            return failed.value
        finally:
            await source.close()

    error = with_sim(None, body)
    assert error.details["instrument"] == "NOSUCH.STK" and not error.retryable
    assert "NOSUCH.STK" in str(error) and "unknown" in str(error)


def test_a_refused_request_is_a_source_error_naming_the_instrument_and_ibs_reason() -> None:
    """IB has no trades of a currency pair: asking for them fails that instrument, not retryably."""
    async def body(server: TwsSimServer) -> SourceError:
        source = IbSource(settings_for(server), what_to_show="TRADES")
        try:
            with pytest.raises(SourceError) as failed:
                await download(source, "EUR.CASH.USD", "1m", last_midnight() - pd.Timedelta(days=1), last_midnight())
            return failed.value
        finally:
            await source.close()

    error = with_sim(None, body)
    assert error.details["instrument"] == "EUR.CASH.USD" and not error.retryable
    assert "No historical market data" in str(error) and error.details["code"] == 162


def test_a_request_unanswered_in_time_is_a_retryable_source_error_not_an_empty_window() -> None:
    """ib_async gives an empty list on its timeout; the source must not store that as "no bars"."""
    end = last_midnight() - pd.Timedelta(days=1)

    async def body(server: TwsSimServer) -> SourceError:
        source = IbSource(settings_for(server), timeout=0.5)
        try:
            await source._contract("AAPL.STK")
            server.set_response_delay(2.0)
            with pytest.raises(SourceError) as failed:
                await download(source, "AAPL.STK", "1m", end - pd.Timedelta(hours=1), end)
            return failed.value
        finally:
            server.set_response_delay(0.0)
            await source.close()

    error = with_sim(None, body)
    assert error.retryable and error.details["instrument"] == "AAPL.STK" and "within 0.5 s" in str(error)


def test_the_sources_of_one_process_share_the_pacer_of_an_endpoint() -> None:
    """Jobs run one after another, each with its own source: IB counts the last job's requests into the next."""
    settings = Settings(ib=IbSettings(port=7497))
    first, second = IbSource(settings), IbSource(settings)
    assert first.pacer is second.pacer and first.pacer.enabled
    other = IbSource(Settings(ib=IbSettings(port=7496)))
    off = IbSource(Settings(ib=IbSettings(port=7497), history=HistorySettings(pacing=False)))
    assert other.pacer is not first.pacer and off.pacer is not first.pacer and not off.pacer.enabled


def test_a_connection_lost_mid_download_is_a_retryable_source_error() -> None:
    end = last_midnight() - pd.Timedelta(days=1)

    async def body(server: TwsSimServer) -> tuple[int, SourceError]:
        source = IbSource(settings_for(server), timeout=10.0)
        got = 0
        try:
            with pytest.raises(SourceError) as failed:
                async for _ in source.windows("AAPL.STK", "1m", end - pd.Timedelta(days=4), end):
                    got += 1
                    server.drop_all_connections()  # as a TWS restart would
            return got, failed.value
        finally:
            await source.close()

    got, error = with_sim(None, body)
    assert got == 1 and error.retryable and error.details["instrument"] == "AAPL.STK"


def test_identical_requests_within_15_s_share_one_answer_instead_of_a_violation() -> None:
    """Two strategies warming up on one instrument ask the same thing at once: IB is asked once, both answered."""
    async def body(server: TwsSimServer) -> tuple[list[int], int, int]:
        source = IbSource(settings_for(server), retry=FAST_RETRY)
        try:
            await source._connect("AAPL.STK")
            contract = (await source.resolver.resolve("AAPL"))[0].contract
            ask = lambda: source.broker.history_frame(
                contract, end="", duration="1 D", bar_size="1 min", what_to_show="TRADES", use_rth=False,
                timeout=30)
            first, second = await asyncio.gather(ask(), ask())
            third = await ask()  # answered, and still within 15 s: the same answer, no request
            asked = sum(1 for r in server.request_log if r.message == "REQ_HISTORICAL_DATA")
        finally:
            await source.close()
        return [len(first), len(second), len(third)], asked, server.pacing.violations

    sizes, asked, refused = with_sim(PacingConfig(), body)
    assert sizes[0] > 0 and sizes == [sizes[0]] * 3
    assert asked == 1 and refused == 0
