"""History as a cache: the store answers what it holds; the broker is asked only for the rest, which is written back.

The stack tests run real redis, bus, tws-sim and trader_service processes with
the market store in the test's home (``data/arctic``), and count the history
requests tws-sim received (its control RPC's request log).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import StackEnv, TradingStack, call, eventually, started_trading_stack
from trader.brokers.ib.durations import request_range
from trader.data.arctic import ArcticStore
from trader.data.calendars import trading_minutes
from trader.domain import Bar, Contract, SecType
from trader.errors import BrokerError, NotFound, StorageError
from trader.trading.history_cache import HistoryCache

NOW = datetime(2026, 3, 5, 15, 7, tzinfo=UTC)  # a Thursday afternoon


class Broker:
    """A broker answering with a deterministic 1-minute bar per minute of AAPL's sessions; it logs what it was asked.

    Its sessions are the calendar's (NYSE: 04:00-20:00 ET, 09:30-16:00 with ``use_rth``), as IB's and tws-sim's are;
    a request with ``use_rth`` is logged with a third field ``"RTH"``.
    """

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    async def fetch(self, end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        self.asked.append((end, duration, "RTH") if use_rth else (end, duration))
        lo, hi = request_range(end, duration, NOW)
        return [bar(int(t.timestamp()) // 60) for t in trading_minutes("AAPL.STK", lo, hi, use_rth=use_rth)]


def bar(minute: int) -> Bar:
    price = 100 + (minute % 97) / 10
    return Bar("AAPL.STK", datetime.fromtimestamp(minute * 60, UTC), "1 min", price, price + 0.2, price - 0.1,
               price + 0.1, float(minute % 7), minute % 5)


def ask(cache: HistoryCache, broker: Broker, end: str, duration: str, **kw: object) -> list[Bar]:
    params = {"what_to_show": "TRADES", "use_rth": False, "bar_size": "1 min", **kw}
    return asyncio.run(cache.history("AAPL.STK", broker.fetch, end=end, duration=duration, **params))  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    return ArcticStore(f"lmdb://{tmp_path / 'arctic'}")


def test_closed_days_are_stored_and_served_the_forming_day_never(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()
    first = ask(cache, broker, "", "3 D")  # Monday 15:07 .. now: Mon, Tue, Wed closed; Thursday forming
    assert broker.asked == [("20260305-00:00:00", "4 D"), ("", "54420 S")]
    direct = asyncio.run(Broker().fetch("", "3 D"))
    assert first == direct  # the same bars as the broker's own answer
    stored = store.read_bars("AAPL.STK", "1m")
    sessions = trading_minutes("AAPL.STK", "2026-03-02", "2026-03-05")  # Monday's from 04:00 ET (09:00 UTC)
    assert stored.index[0] == pd.Timestamp("2026-03-02 09:00", tz="UTC") and len(stored) == len(sessions)
    assert stored.index[-1] < pd.Timestamp("2026-03-05", tz="UTC")  # the forming day is not stored
    broker.asked.clear()
    assert ask(cache, broker, "", "3 D") == first and broker.asked == [("", "54420 S")]  # only today
    broker.asked.clear()
    wider = ask(cache, broker, "", "5 D")  # two more days before: one request for them, and today's
    assert broker.asked == [("20260301-00:00:00", "2 D"), ("", "54420 S")]  # Saturday (Friday's late session)
    assert wider[-len(first):] == first and wider == asyncio.run(Broker().fetch("", "5 D"))


def test_a_range_wholly_past_asks_the_broker_nothing_the_second_time(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()
    first = ask(cache, broker, "20260304 12:00:00", "1 D")
    assert broker.asked == [("20260305-00:00:00", "3 D")]  # Tuesday and Wednesday whole, in one request
    broker.asked.clear()
    assert ask(cache, broker, "20260304-12:00:00", "86400 S") == first and broker.asked == []
    assert len(first) == len(trading_minutes("AAPL.STK", "2026-03-03 12:00", "2026-03-04 12:00"))
    assert first[0].start == datetime(2026, 3, 3, 12, tzinfo=UTC)


def test_an_empty_day_is_remembered_not_asked_again(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()

    async def weekend_closed(end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        bars = await broker.fetch(end, duration)
        return [b for b in bars if b.start.weekday() < 5]

    asyncio.run(cache.history("AAPL.STK", weekend_closed, end="20260302-00:00:00", duration="2 D",
                              bar_size="1 min", what_to_show="TRADES", use_rth=False))
    broker.asked.clear()
    again = asyncio.run(cache.history("AAPL.STK", weekend_closed, end="20260302-00:00:00", duration="2 D",
                                      bar_size="1 min", what_to_show="TRADES", use_rth=False))
    assert again == [] and broker.asked == []


def test_what_the_store_does_not_hold_goes_to_the_broker_unchanged(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()
    for kw in ({"what_to_show": "BID"}, {"bar_size": "5 secs"}, {"bar_size": "1 week"}):
        ask(cache, broker, "20260304-00:00:00", "2 D", **kw)
    for size in ("1 hour", "1 day"):  # regular hours' bars of these sizes are not cut from full sessions' bars
        ask(cache, broker, "20260304-00:00:00", "2 D", bar_size=size, use_rth=True)
    ask(cache, broker, "", "3600 S")  # no closed day in it
    assert broker.asked == [("20260304-00:00:00", "2 D")] * 3 + [("20260304-00:00:00", "2 D", "RTH")] * 2 + [
        ("", "3600 S")]
    assert store.bar_symbols() == {}


def test_a_currency_pair_caches_its_midpoints(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()

    async def midpoints(end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        return [Bar("EUR.CASH.USD", b.start, b.size, b.open, b.high, b.low, b.close, 0.0)
                for b in await broker.fetch(end, duration)]

    def history(what: str) -> list[Bar]:
        return asyncio.run(cache.history("EUR.CASH.USD", midpoints, end="20260304-00:00:00", duration="1 D",
                                         bar_size="1 min", what_to_show=what, use_rth=False))

    first = history("MIDPOINT")
    assert history("MIDPOINT") == first and len(broker.asked) == 1 and first[0].count is None
    history("TRADES")  # not what the store holds for a pair: straight to the broker
    assert len(broker.asked) == 2 and store.bar_symbols("1m") == {"1m": ["EUR.CASH.USD"]}


def test_a_part_refused_by_the_broker_falls_back_to_the_whole_request(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()

    async def no_monday(end: str, duration: str, use_rth: bool = False) -> list[Bar]:  # as if IB had no data
        bars = [b for b in await broker.fetch(end, duration, use_rth) if b.start.day != 2]
        if not bars:
            raise BrokerError("IB refused the history request: HMDS query returned no data", code=162)
        return bars

    asyncio.run(cache.history("AAPL.STK", no_monday, end="20260304-00:00:00", duration="1 D", bar_size="1 min",
                              what_to_show="TRADES", use_rth=False))  # Tuesday stored
    broker.asked.clear()
    bars = asyncio.run(cache.history("AAPL.STK", no_monday, end="20260304-00:00:00", duration="2 D",
                                     bar_size="1 min", what_to_show="TRADES", use_rth=False))
    assert broker.asked == [("20260303-00:00:00", "2 D"), ("20260304-00:00:00", "2 D")]  # Monday alone, refused
    assert len(bars) == 960 and bars[0].start == datetime(2026, 3, 3, tzinfo=UTC)


def test_a_broker_on_another_clock_is_asked_the_whole_and_nothing_is_stored(store: ArcticStore) -> None:
    """A tws-sim replay's "now" is the replayed day: its answers lie months before the days the cache asks."""
    replay_now = datetime(2025, 6, 12, 16, 0, tzinfo=UTC)
    asked: list[tuple[str, str]] = []

    async def replay(end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        asked.append((end, duration))
        lo, hi = request_range("", duration, replay_now)  # any end is capped at the replay's time
        return [bar(int(t.timestamp()) // 60) for t in trading_minutes("AAPL.STK", lo, hi)]

    cache = HistoryCache(lambda: store, clock=lambda: NOW)
    bars = asyncio.run(cache.history("AAPL.STK", replay, end="", duration="3 D", bar_size="1 min",
                                     what_to_show="TRADES", use_rth=False))
    assert asked[-1] == ("", "3 D")  # the whole request, as the strategy asked it
    assert bars and bars[-1].start < replay_now and bars[0].start.year == 2025  # the replay's past, not filtered out
    with pytest.raises(NotFound):  # nothing stored, of either clock's days
        store.read_bars("AAPL.STK", "1m")


def stored_day(store: ArcticStore, day: datetime) -> None:
    """Store ``day``'s AAPL 1m bars as another writer (history_service) would: no cache record of them."""
    bars = [bar(int(t.timestamp()) // 60) for t in trading_minutes("AAPL.STK", day, day + timedelta(days=1))]
    frame = pd.DataFrame({"open": [b.open for b in bars], "high": [b.high for b in bars],
                          "low": [b.low for b in bars], "close": [b.close for b in bars],
                          "volume": [b.volume for b in bars]}, index=pd.DatetimeIndex([b.start for b in bars]))
    store.write_bars("AAPL.STK", "1m", frame, start=day, end=day + timedelta(days=1))


def test_an_answer_ending_before_stored_bars_is_not_written_over_them(store: ArcticStore) -> None:
    """A replay of a stored day (or a truncated answer) ends mid-day: the stored rest of the day must survive."""
    day = datetime(2026, 3, 4, tzinfo=UTC)
    stored_day(store, day)
    before = store.read_bars("AAPL.STK", "1m", day, day + timedelta(days=1))
    cut = day + timedelta(hours=16)  # the replay has played to 16:00 UTC
    asked: list[tuple[str, str]] = []

    async def replay(end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        asked.append((end, duration))
        lo, hi = request_range(end, duration, NOW)
        return [bar(int(t.timestamp()) // 60) for t in trading_minutes("AAPL.STK", lo, min(hi, cut))]

    cache = HistoryCache(lambda: store, clock=lambda: NOW)  # the broker's time unknown: our clock counts
    bars = asyncio.run(cache.history("AAPL.STK", replay, end="", duration="2 D", bar_size="1 min",
                                     what_to_show="TRADES", use_rth=False))
    pd.testing.assert_frame_equal(store.read_bars("AAPL.STK", "1m", day, day + timedelta(days=1)), before)
    assert asked[-1] == ("", "2 D") and bars[-1].start < cut  # the whole request, answered by the broker


def test_a_broker_clock_far_from_ours_leaves_the_cache_aside(store: ArcticStore) -> None:
    """trader_service passes the broker's time: a replay's is the replayed moment, so the broker answers all."""
    day = datetime(2026, 3, 4, tzinfo=UTC)
    stored_day(store, day)
    before = store.read_bars("AAPL.STK", "1m")
    replay_now = day + timedelta(hours=16)
    asked: list[tuple[str, str]] = []

    async def replay(end: str, duration: str, use_rth: bool = False) -> list[Bar]:
        asked.append((end, duration))
        lo, hi = request_range(end, duration, replay_now)
        return [bar(int(t.timestamp()) // 60) for t in trading_minutes("AAPL.STK", lo, min(hi, replay_now))]

    cache = HistoryCache(lambda: store, clock=lambda: NOW)
    bars = asyncio.run(cache.history("AAPL.STK", replay, end="", duration="2 D", bar_size="1 min",
                                     what_to_show="TRADES", use_rth=False, now=replay_now))
    assert asked == [("", "2 D")]  # one request, as asked: no store read served a bar from the replay's future
    assert bars[-1].start < replay_now
    pd.testing.assert_frame_equal(store.read_bars("AAPL.STK", "1m"), before)  # nothing written
    asked.clear()  # a broker clock within CLOCK_SKEW of ours is used to count the days
    asyncio.run(cache.history("AAPL.STK", Broker().fetch, end="", duration="2 D", bar_size="1 min",
                              what_to_show="TRADES", use_rth=False, now=NOW - timedelta(minutes=5)))
    assert store.read_bars("AAPL.STK", "1m", NOW - timedelta(days=2), NOW).index[-1] < _day_of(NOW)


def _day_of(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def test_days_without_a_session_are_not_asked(store: ArcticStore) -> None:
    """Sunday 15 and Presidents' Day (Monday 16 February 2026, an NYSE holiday) have no NYSE session."""
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()
    assert ask(cache, broker, "20260217-00:00:00", "2 D") == [] and broker.asked == []
    assert ask(cache, broker, "20260217-00:00:00", "2 D", bar_size="1 day") == [] and broker.asked == []
    bars = ask(cache, broker, "20260217-00:00:00", "4 D")  # Friday and Saturday (Friday's late session) only
    assert broker.asked == [("20260215-00:00:00", "3 D")]
    assert bars == asyncio.run(Broker().fetch("20260217-00:00:00", "4 D")) and bars
    broker.asked.clear()
    week = ask(cache, broker, "20260219-00:00:00", "7 D")  # Thursday 12 and Tuesday 17, Wednesday 18: one request
    assert broker.asked == [("20260213-00:00:00", "2 D"), ("20260219-00:00:00", "3 D")]
    assert week == asyncio.run(Broker().fetch("20260219-00:00:00", "7 D"))
    broker.asked.clear()
    assert ask(cache, broker, "20260219-00:00:00", "9 D") == asyncio.run(Broker().fetch("20260219-00:00:00", "9 D"))
    assert broker.asked == [("20260212-00:00:00", "3 D")]  # Tuesday 10 and Wednesday 11 (the rest held)
    gold = Contract("XAUUSD", SecType.CMDTY, exchange="SMART")  # no calendar knows its hours: every day asked
    asyncio.run(cache.history("XAUUSD.CMDTY", broker.fetch, end="20260217-00:00:00", duration="2 D",
                              bar_size="1 min", what_to_show="TRADES", use_rth=False, contract=gold))
    assert broker.asked[-1] == ("20260217-00:00:00", "3 D")


def test_regular_hours_are_cut_from_the_stored_full_sessions(store: ArcticStore) -> None:
    cache, broker = HistoryCache(lambda: store, clock=lambda: NOW), Broker()
    ask(cache, broker, "20260304-00:00:00", "2 D")  # Monday and Tuesday, full sessions
    broker.asked.clear()
    rth = ask(cache, broker, "20260304-00:00:00", "2 D", use_rth=True)
    assert broker.asked == [] and rth == asyncio.run(Broker().fetch("20260304-00:00:00", "2 D", True))
    assert rth[0].start == datetime(2026, 3, 2, 14, 30, tzinfo=UTC) and len(rth) == 2 * 390  # 09:30-16:00 ET
    wider = ask(cache, broker, "", "3 D", use_rth=True)  # Wednesday fetched whole and stored; today with use_rth
    assert broker.asked == [("20260305-00:00:00", "2 D"), ("", "54420 S", "RTH")]
    assert wider == asyncio.run(Broker().fetch("", "3 D", True))
    broker.asked.clear()
    full = ask(cache, broker, "20260305-00:00:00", "1 D")  # the full Wednesday is in the store
    assert broker.asked == [] and full == asyncio.run(Broker().fetch("20260305-00:00:00", "1 D"))


def test_a_broken_store_never_fails_the_request(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")

    def broken() -> ArcticStore:
        raise StorageError("the market store is down")

    for opener in (broken, lambda: ArcticStore(f"lmdb://{blocker}/arctic")):
        cache, broker = HistoryCache(opener, clock=lambda: NOW), Broker()
        bars = ask(cache, broker, "20260304-00:00:00", "1 D")
        assert broker.asked == [("20260304-00:00:00", "1 D")] and len(bars) == 960


# -- the whole stack ---------------------------------------------------------------------------
def history_requests(stack: TradingStack) -> list[list[str]]:
    return [r["fields"] for r in call(stack.tws_endpoint, "requests", 10_000) if r["message"] == "REQ_HISTORICAL_DATA"]


@pytest.mark.slow
def test_trader_service_history_reads_the_store_first(trading_stack: TradingStack) -> None:
    ep = trading_stack.trader_endpoint
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=4)
    while day.weekday() not in (1, 2):  # the days asked, and the one before, are weekdays, whatever the sessions
        day -= timedelta(days=1)
    end = (day + timedelta(days=2)).strftime("%Y%m%d-%H:%M:%S")
    before = len(history_requests(trading_stack))
    first = call(ep, "history", "AAPL", duration="2 D", bar_size="1 min", end=end, timeout=30)
    asked = history_requests(trading_stack)[before:]
    assert len(asked) == 1 and end in asked[0] and "3 D" in asked[0]  # the two days whole, in one request
    assert first and all(day <= b.start < day + timedelta(days=2) for b in first)
    store = ArcticStore(f"lmdb://{trading_stack.env.home / 'data' / 'arctic'}")
    stored = store.read_bars("AAPL.STK", "1m")
    assert list(stored.index) == [b.start for b in first] and list(stored["close"]) == [b.close for b in first]

    second = call(ep, "history", "AAPL", duration="2 D", bar_size="1 min", end=end, timeout=30)
    assert second == first and len(history_requests(trading_stack)) == before + 1  # the broker asked nothing

    rth = call(ep, "history", "AAPL", duration="2 D", bar_size="1 min", end=end, use_rth=True, timeout=30)
    regular = set(trading_minutes("AAPL.STK", day, day + timedelta(days=2), use_rth=True))
    assert rth and rth == [b for b in first if b.start in regular]  # cut from the stored full sessions
    assert len(history_requests(trading_stack)) == before + 1

    wider = call(ep, "history", "AAPL", duration="3 D", bar_size="1 min", end=end, timeout=30)
    asked = history_requests(trading_stack)[before + 1:]
    assert len(asked) == 1 and day.strftime("%Y%m%d-%H:%M:%S") in asked[0] and "2 D" in asked[0]  # the day before
    assert wider[-len(first):] == first and wider[0].start >= day - timedelta(days=1)

    trading_stack.kill("tws")  # with the broker gone the store still answers what it holds
    assert call(ep, "history", "AAPL", duration="3 D", bar_size="1 min", end=end, timeout=30) == wider


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["file", "corrupt"])
def test_trader_service_trades_resolves_and_answers_history_without_a_store(stack_env: StackEnv,
                                                                            damage: str) -> None:
    """A market store that cannot be opened (a file where its directory should be; garbage for its LMDB files)."""
    arctic = stack_env.home / "data" / "arctic"
    arctic.parent.mkdir(parents=True)
    if damage == "file":
        arctic.write_text("not a directory")
    else:  # a store that was written, then its LMDB files overwritten
        ArcticStore(f"lmdb://{arctic}").put_record("universes", "tech", {"members": []})
        files = list(arctic.rglob("*.mdb"))
        assert files
        for path in files:
            path.write_bytes(b"\x00garbage" * 4096)
    with started_trading_stack(stack_env) as stack:
        ep = stack.trader_endpoint
        before = len(history_requests(stack))
        (aapl,) = call(ep, "resolve", "AAPL", timeout=30)  # by the broker: no universes to answer from
        assert aapl["key"] == "AAPL.STK" and aapl["universes"] == []
        bars = call(ep, "history", "AAPL", duration="2 D", bar_size="1 min", timeout=30)
        asked = len(history_requests(stack)) - before
        assert bars and asked == 1  # the whole request, by the broker
        order = call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, client_order_id="no-store")["order"]
        eventually(lambda: next(o for o in call(ep, "orders") if o.client_order_id == order.client_order_id
                                ).status.name == "FILLED", what="the order filled")
        assert call(ep, "status")["state"] == "RUNNING"  # not degraded by the store
    log = (stack_env.home / "logs" / "trader_service.log").read_text()
    assert "market store" in log and "asking the broker" in log
