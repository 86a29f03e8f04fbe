"""tws-sim's sessions: history and the live market follow the exchange calendars when ``market.sessions`` is on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xc
import pandas as pd
import pytest
from ib_async import Forex, Future, Stock

from tests.sim.conftest import ESZ6
from tests.sim.simulator import connect, running_sim, sim_config
from trader.sim.catalogue import Catalogue
from trader.sim.history import HistoryRequest, build_bars
from trader.sim.market import MarketGenerator

ET, CT = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
AAPL, EUR = 265598, 12087792
MONDAY = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 ET, the Monday after Thanksgiving week


def market(catalogue: Catalogue, *, sessions: bool = True, start: datetime = MONDAY) -> MarketGenerator:
    return MarketGenerator(catalogue, 9, 4.0, start, sessions=sessions)


def bars(m: MarketGenerator, conid: int, duration: str, size: str, *, what: str = "MIDPOINT", rth: bool = False,
         fmt: int = 2, end: datetime = MONDAY) -> list[tuple]:
    seconds = {"D": 86400, "W": 7 * 86400, "M": 30 * 86400}[duration[-1]] * int(duration.split()[0])
    request = HistoryRequest(end, seconds, size, what, fmt, rth)
    return build_bars(m.state(conid), m.seed, request, m.hours(conid))


def starts(rows: list[tuple], zone: ZoneInfo) -> list[datetime]:
    return [datetime.fromtimestamp(int(r[0]), zone) for r in rows]


def minute_of_day(t: datetime) -> int:
    return t.hour * 60 + t.minute


def test_stock_bars_lie_in_nyse_sessions_extended_and_rth(catalogue: Catalogue) -> None:
    m = market(catalogue)
    ext = starts(bars(m, AAPL, "8 D", "1 min"), ET)
    assert ext and all(4 * 60 <= minute_of_day(t) < 20 * 60 for t in ext)
    days = {t.date() for t in ext}
    assert days == {d.date() for d in pd.bdate_range("2026-11-23", "2026-11-30")} - {datetime(2026, 11, 26).date()}
    friday = [t for t in ext if t.day == 27]  # the day after Thanksgiving: RTH to 13:00, extended to 17:00
    assert minute_of_day(friday[-1]) == 17 * 60 - 1
    rth = starts(bars(m, AAPL, "8 D", "1 min", rth=True), ET)
    assert all(9 * 60 + 30 <= minute_of_day(t) < 16 * 60 for t in rth)
    assert minute_of_day([t for t in rth if t.day == 27][-1]) == 13 * 60 - 1
    assert minute_of_day(rth[0]) == 9 * 60 + 30 and len(rth) < len(ext)


def test_future_bars_follow_the_globex_day_and_its_halt(catalogue: Catalogue) -> None:
    m = market(catalogue)
    rows = bars(m, ESZ6, "8 D", "1 min")
    times = starts(rows, CT)
    assert not [t for t in times if 16 * 60 <= minute_of_day(t) < 17 * 60]  # the daily halt
    assert not [t for t in times if t.weekday() == 5 or (t.weekday() == 4 and t.hour >= 16)
                or (t.weekday() == 6 and t.hour < 17)]  # the weekend
    thanksgiving = [minute_of_day(t) for t in times if t.date() == datetime(2026, 11, 26).date()]
    assert 12 * 60 - 1 in thanksgiving and 17 * 60 in thanksgiving  # the holiday closes early, Friday's opens
    assert not [t for t in thanksgiving if 12 * 60 <= t < 17 * 60]
    sunday = [t for t in times if t.weekday() == 6]
    assert minute_of_day(sunday[0]) == 17 * 60  # the week opens Sunday 17:00 CT
    rth = starts(bars(m, ESZ6, "8 D", "1 min", rth=True), CT)
    assert rth and all(8 * 60 + 30 <= minute_of_day(t) < 15 * 60 for t in rth)


def test_fx_trades_sunday_to_friday_five_pm_new_york(catalogue: Catalogue) -> None:
    m = market(catalogue)
    times = starts(bars(m, EUR, "9 D", "1 hour"), ET)
    assert not [t for t in times if t.weekday() == 5 or (t.weekday() == 4 and t.hour >= 17)
                or (t.weekday() == 6 and t.hour < 17)]
    sundays = {t.date() for t in times if t.weekday() == 6}
    assert len(sundays) == 2
    assert all([t.hour for t in times if t.date() == d] == list(range(17, 24)) for d in sundays)
    assert [t.hour for t in times if t.weekday() == 4][-1] == 16


def test_daily_bars_are_one_per_session_labelled_by_its_date(catalogue: Catalogue) -> None:
    m = market(catalogue)
    stock = [r[0] for r in bars(m, AAPL, "1 M", "1 day", fmt=1)]
    nyse = xc.get_calendar("XNYS").sessions_in_range("2026-10-31", "2026-11-30")
    assert stock == [d.strftime("%Y%m%d") for d in nyse]
    assert "20261126" not in stock and "20261128" not in stock
    future = [r[0] for r in bars(m, ESZ6, "10 D", "1 day")]
    assert "20261129" not in future and "20261130" in future  # Sunday evening trades for Monday's session
    assert len(future) == len(set(future))


def test_format_date_writes_the_exchange_time_zone_or_epoch_seconds(catalogue: Catalogue) -> None:
    m = market(catalogue)
    text = bars(m, AAPL, "4 D", "1 hour", fmt=1, rth=True)
    assert [r[0] for r in text] == [  # the 9:00 bar holds RTH from 9:30; Friday closes at 13:00
        "20261127 09:00:00 US/Eastern", "20261127 10:00:00 US/Eastern", "20261127 11:00:00 US/Eastern",
        "20261127 12:00:00 US/Eastern", "20261130 09:00:00 US/Eastern"]
    epoch = bars(m, AAPL, "4 D", "1 hour", fmt=2, rth=True)
    assert [int(r[0]) for r in epoch] == [int(pd.Timestamp(r[0].rsplit(" ", 1)[0], tz=ET).timestamp()) for r in text]
    assert bars(m, ESZ6, "1 D", "1 hour", fmt=1)[-1][0].endswith(" US/Central")


def test_without_sessions_the_market_runs_around_the_clock_but_rth_still_filters(catalogue: Catalogue) -> None:
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    m = market(catalogue, sessions=False, start=saturday)
    assert len(bars(m, AAPL, "1 D", "1 hour", end=saturday)) == 24
    rth = starts(bars(m, AAPL, "1 D", "1 hour", end=saturday, rth=True), ET)  # none on a Saturday
    assert [(t.day, t.hour) for t in rth] == [(27, 10), (27, 11), (27, 12)]
    assert m.step(saturday + timedelta(seconds=1))  # quotes move on a Saturday
    gated = market(catalogue, start=saturday)
    gated_times = starts(bars(gated, AAPL, "1 D", "1 hour", end=saturday), ET)  # Friday's, to its 17:00 close
    assert [(t.day, t.hour) for t in gated_times] == [(27, h) for h in range(10, 17)]


@pytest.mark.parametrize(("when", "moves"), [
    (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), {AAPL: False, ESZ6: False, EUR: False}),  # Saturday
    (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), {AAPL: True, ESZ6: True, EUR: True}),  # Monday 10:00 ET
    (datetime(2026, 11, 30, 22, 30, tzinfo=UTC), {AAPL: True, ESZ6: False, EUR: True}),  # 16:30 CT: Globex halt
    (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), {AAPL: False, ESZ6: True, EUR: True}),  # Thanksgiving
    (datetime(2026, 12, 1, 2, 0, tzinfo=UTC), {AAPL: False, ESZ6: True, EUR: True}),  # 21:00 ET
])
def test_the_live_market_prints_only_in_sessions(catalogue: Catalogue, when: datetime,
                                                 moves: dict[int, bool]) -> None:
    m = market(catalogue, start=when)
    before = {c: (m.state(c).bid_ticks, m.state(c).volume, len(m.state(c).minutes)) for c in moves}
    for i in range(1, 200):
        m.step(when + timedelta(seconds=i / 4))
    for conid, expected in moves.items():
        s = m.state(conid)
        assert ((s.bid_ticks, s.volume) != before[conid][:2]) is expected, conid
        assert m.is_open(conid, when) is expected


def test_ib_async_sees_sessions_rth_and_time_zones() -> None:
    wednesday = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # 10:00 ET
    offset = wednesday - datetime.now(UTC)
    config = sim_config()
    config = config.model_copy(update={"market": config.market.model_copy(update={"sessions": True})})

    async def scenario() -> None:
        async with running_sim(config, clock=lambda: datetime.now(UTC) + offset) as server:
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            rth = await ib.reqHistoricalDataAsync(aapl, "", "3 D", "30 mins", "TRADES", True, formatDate=1)
            assert rth and all(str(b.date.tzinfo) == "US/Eastern" for b in rth)
            assert all(9 * 60 + 30 <= minute_of_day(b.date) < 16 * 60 for b in rth)
            assert rth[-1].date.replace(tzinfo=None) == datetime(2026, 12, 2, 10, 0)
            ext = await ib.reqHistoricalDataAsync(aapl, "", "3 D", "30 mins", "TRADES", False, formatDate=2)
            assert ext[0].date.tzinfo is not None and len(ext) > len(rth)
            assert {minute_of_day(b.date.astimezone(ET)) for b in ext} >= {4 * 60, 19 * 60 + 30}
            daily = await ib.reqHistoricalDataAsync(aapl, "", "2 W", "1 day", "TRADES", False)
            assert [b.date.weekday() for b in daily].count(5) == 0 and daily[-1].date == wednesday.date()
            [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
            es_bars = await ib.reqHistoricalDataAsync(es, "", "1 D", "1 hour", "MIDPOINT", False, formatDate=1)
            assert all(str(b.date.tzinfo) == "US/Central" and b.date.hour != 16 for b in es_bars)
            [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
            assert len(await ib.reqHistoricalDataAsync(eur, "", "1 D", "1 hour", "MIDPOINT", False)) in (24, 25)
            ib.disconnect()

    asyncio.run(scenario())
