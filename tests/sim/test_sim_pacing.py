"""tws-sim's historical-data pacing: IB's three rules, answered with error 162 and IB's text to ib_async."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from ib_async import IB, Forex, Stock

from services.tws_sim import TwsSimService
from tests.sim.conftest import ManualClock
from tests.sim.simulator import connect, running_sim, sim_config
from trader.config import Settings
from trader.sim.catalogue import load_sim_config
from trader.sim.pacing import PACING_VIOLATION, HistoryPacing, PacingConfig

AAPL = Stock("AAPL", "SMART", "USD")
MSFT = Stock("MSFT", "SMART", "USD")
IB_TEXT = "Historical Market Data Service error message:Historical data request pacing violation"


def errors_of(ib: IB) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    ib.errorEvent += lambda _req, code, message, _contract: seen.append((code, message))
    return seen


def ends(count: int) -> list[str]:
    return [f"20261120-{10 + i // 60:02d}:{i % 60:02d}:00" for i in range(count)]


def test_the_text_is_ibs() -> None:
    assert PACING_VIOLATION == IB_TEXT


def test_an_identical_request_within_15_s_is_refused_with_162_and_a_different_one_is_served() -> None:
    async def main() -> None:
        async with running_sim(sim_config(pacing=PacingConfig())) as server:
            ib = await connect(server, 31)
            seen = errors_of(ib)
            first = await ib.reqHistoricalDataAsync(AAPL, "20261120-15:00:00", "3600 S", "1 min", "TRADES", False)
            again = await ib.reqHistoricalDataAsync(AAPL, "20261120-15:00:00", "3600 S", "1 min", "TRADES", False)
            other_rth = await ib.reqHistoricalDataAsync(AAPL, "20261120-15:00:00", "3600 S", "1 min", "TRADES",
                                                        True)
            other_end = await ib.reqHistoricalDataAsync(AAPL, "20261120-16:00:00", "3600 S", "1 min", "TRADES",
                                                        False)
            ib.disconnect()
            assert (len(first), len(again), len(other_end)) == (60, 0, 60) and other_rth
            assert seen == [(162, IB_TEXT)]
            assert server.pacing.violations == 1 and server.status()["history_pacing_violations"] == 1

    asyncio.run(main())


def test_the_sixth_request_for_one_contract_and_tick_type_within_two_seconds_is_refused() -> None:
    async def main() -> None:
        async with running_sim(sim_config(pacing=PacingConfig(series_window=30.0))) as server:
            ib = await connect(server, 32)
            seen = errors_of(ib)
            served = [len(await ib.reqHistoricalDataAsync(AAPL, e, "600 S", "1 min", "TRADES", False))
                      for e in ends(6)]
            assert served == [10] * 5 + [0] and seen == [(162, IB_TEXT)]
            # Another tick type, another contract: another series.
            assert await ib.reqHistoricalDataAsync(AAPL, ends(7)[-1], "600 S", "1 min", "MIDPOINT", False)
            assert await ib.reqHistoricalDataAsync(MSFT, ends(7)[-1], "600 S", "1 min", "TRADES", False)
            # A second client of the same login counts against the same limit, as at IB.
            other = await connect(server, 33)
            other_seen = errors_of(other)
            assert not await other.reqHistoricalDataAsync(AAPL, ends(8)[-1], "600 S", "1 min", "TRADES", False)
            assert other_seen == [(162, IB_TEXT)]
            ib.disconnect()
            other.disconnect()

    asyncio.run(main())


def test_more_than_the_limit_in_the_window_is_refused_bid_ask_counting_twice() -> None:
    async def main() -> None:
        config = PacingConfig(max_requests=4, window=600.0)
        async with running_sim(sim_config(pacing=config)) as server:
            ib = await connect(server, 34)
            seen = errors_of(ib)
            eur = Forex("EURUSD")
            assert await ib.reqHistoricalDataAsync(eur, ends(1)[0], "600 S", "1 min", "BID_ASK", False)
            assert await ib.reqHistoricalDataAsync(AAPL, ends(1)[0], "600 S", "1 min", "TRADES", False)
            assert await ib.reqHistoricalDataAsync(MSFT, ends(1)[0], "600 S", "1 min", "TRADES", False)
            assert not await ib.reqHistoricalDataAsync(eur, ends(2)[1], "600 S", "1 min", "MIDPOINT", False)
            ib.disconnect()
            assert seen == [(162, IB_TEXT)]

    asyncio.run(main())


def test_the_windows_slide_on_the_worlds_clock_and_a_refused_request_is_not_counted() -> None:
    clock = ManualClock()
    pacing = HistoryPacing(PacingConfig(max_requests=3, window=60.0, max_per_series=2, series_window=2.0), clock)

    def ask(conid: int, end: str, what: str = "TRADES") -> str | None:
        return pacing.check(conid, "SMART", end, "600 S", "1 min", what, False)

    assert ask(1, "a") is None and ask(1, "b") is None
    assert ask(1, "c") == PACING_VIOLATION  # the third for one series within 2 s
    clock.advance(2.0)
    assert ask(1, "c") is None  # the refusal did not count; the series window slid
    assert ask(2, "x") == PACING_VIOLATION  # three served in the last 60 s
    clock.advance(58.0)
    assert ask(2, "x") is None  # the first two left the window
    clock.advance(timedelta(seconds=14).total_seconds())
    assert ask(2, "x") == PACING_VIOLATION  # identical, 14 s later
    clock.advance(1.0)
    assert ask(2, "x") is None
    assert pacing.violations == 3


def test_pacing_off_serves_everything() -> None:
    async def main() -> None:
        async with running_sim(sim_config(pacing=PacingConfig(enabled=False))) as server:
            ib = await connect(server, 35)
            seen = errors_of(ib)
            got = [len(await ib.reqHistoricalDataAsync(AAPL, "20261120-15:00:00", "600 S", "1 min", "TRADES",
                                                       False)) for _ in range(10)]
            ib.disconnect()
            assert got == [10] * 10 and seen == [] and server.status()["history_pacing_violations"] is None

    asyncio.run(main())


def test_no_pacing_flag_and_the_configs_default() -> None:
    assert load_sim_config().pacing == PacingConfig()  # configs/sim.yaml: IB's limits, on
    parser = argparse.ArgumentParser()
    TwsSimService.add_arguments(parser)
    on = TwsSimService.from_args(Settings(), parser.parse_args(["--port", "0"]))
    off = TwsSimService.from_args(Settings(), parser.parse_args(["--port", "0", "--no-pacing"]))
    assert on.sim_config is not None and on.sim_config.pacing.enabled
    assert off.sim_config is not None and not off.sim_config.pacing.enabled


def test_a_range_before_the_head_timestamp_is_hmds_no_data() -> None:
    async def main() -> None:
        async with running_sim(sim_config()) as server:
            ib = await connect(server, 36)
            seen = errors_of(ib)
            bars = await ib.reqHistoricalDataAsync(AAPL, "19991231-15:00:00", "3600 S", "1 min", "TRADES", False)
            ib.disconnect()
            assert len(bars) == 0  # the head timestamp is 2000-01-03 14:30 UTC
            assert seen == [(162, ("Historical Market Data Service error message:HMDS query returned no data: "
                                  "AAPL@SMART Trades"))]

    asyncio.run(main())
