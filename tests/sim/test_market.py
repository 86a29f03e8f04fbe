"""The market generator and history without I/O: determinism, the price grid, consistency of bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.sim.conftest import ESZ6
from trader.brokers.ib.durations import duration_seconds, end_time
from trader.sim.catalogue import Catalogue
from trader.sim.history import HistoryError, HistoryRequest, build_bars
from trader.sim.market import MarketGenerator
from trader.sim.market_state import minute_of, record_minute

T0 = datetime(2026, 11, 20, 15, 0, 30, tzinfo=UTC)


def run(catalogue: Catalogue, seed: int, steps: int, rate: float = 4.0) -> MarketGenerator:
    market = MarketGenerator(catalogue, seed, rate, T0)
    for i in range(1, steps + 1):
        market.step(T0 + timedelta(seconds=i / rate))
    return market


def path(market: MarketGenerator, conid: int) -> tuple[object, ...]:
    s = market.state(conid)
    return (s.bid, s.ask, s.bid_size, s.ask_size, s.last, s.volume)


def test_same_seed_same_market_other_seed_other_market(catalogue: Catalogue) -> None:
    a, b, c = run(catalogue, 1, 400), run(catalogue, 1, 400), run(catalogue, 2, 400)
    for inst in catalogue:
        assert path(a, inst.conid) == path(b, inst.conid)
    assert any(path(a, i.conid) != path(c, i.conid) for i in catalogue)


def test_an_instrument_path_does_not_depend_on_the_others(catalogue: Catalogue) -> None:
    only_aapl = Catalogue([i for i in catalogue if i.conid == 265598])
    assert path(run(catalogue, 5, 300), 265598) == path(run(only_aapl, 5, 300), 265598)


def test_quotes_stay_on_the_tick_grid_with_the_configured_spread(catalogue: Catalogue) -> None:
    market = run(catalogue, 3, 800)
    for inst in catalogue:
        state = market.state(inst.conid)
        assert state.bid % inst.tick_size == 0 and state.ask % inst.tick_size == 0
        assert state.ask - state.bid == inst.spread_ticks * inst.tick_size
        assert state.bid > 0 and state.bid_size > 0 and state.ask_size > 0
        assert abs(state.mid - inst.price) / inst.price < Decimal("0.05")
    assert market.state(265598).volume > 0


def test_a_paused_market_does_not_move(catalogue: Catalogue) -> None:
    market = run(catalogue, 3, 10)
    before = path(market, 265598)
    market.paused = True
    assert market.step(T0 + timedelta(seconds=60)) == []
    assert path(market, 265598) == before


def test_history_ends_at_the_start_price_and_joins_the_live_minutes(catalogue: Catalogue) -> None:
    market = MarketGenerator(catalogue, 9, 4.0, T0)
    state = market.state(265598)
    start_mid = float(state.mid)
    before = build_bars(state, 9, HistoryRequest(T0, duration_seconds("1 D"), "1 hour", "MIDPOINT"))
    assert abs(float(before[-1][4]) - start_mid) < 0.01  # type: ignore[arg-type]
    for i in range(1, 4 * 180 + 1):
        market.step(T0 + timedelta(seconds=i / 4))
    end = T0 + timedelta(minutes=3)
    after = build_bars(state, 9, HistoryRequest(end, duration_seconds("1 D"), "1 hour", "MIDPOINT"))
    assert float(state.mid) == after[-1][4]  # mids on half ticks, as recorded
    minutes = build_bars(state, 9, HistoryRequest(end, duration_seconds("3600 S"), "1 min", "MIDPOINT"))
    assert [row[0] for row in minutes[-4:]] == [
        "20261120 15:00:00 UTC", "20261120 15:01:00 UTC", "20261120 15:02:00 UTC", "20261120 15:03:00 UTC"]
    assert minutes[-4][1] == start_mid  # the live part opens where the synthetic part ends
    # a longer request extends a shorter one: the overlap is identical
    longer = build_bars(state, 9, HistoryRequest(end, duration_seconds("2 D"), "1 hour", "MIDPOINT"))
    assert longer[-10:] == after[-10:]


@pytest.mark.parametrize("size", ["1 min", "5 mins", "1 hour", "4 hours", "1 day", "1 week", "1 month"])
def test_bar_sizes_are_well_formed(catalogue: Catalogue, size: str) -> None:
    market = MarketGenerator(catalogue, 9, 4.0, T0)
    duration = "1 Y" if size in ("1 week", "1 month") else ("10 D" if "day" in size or "hour" in size else "1 D")
    rows = build_bars(market.state(ESZ6), 9, HistoryRequest(T0, duration_seconds(duration), size, "TRADES"))
    assert rows
    for _, o, h, low, c, volume, wap, count in rows:
        assert low <= min(o, c) and h >= max(o, c)  # type: ignore[operator]
        assert volume >= 0 and count >= 0  # type: ignore[operator]


def test_history_refusals(catalogue: Catalogue) -> None:
    market = MarketGenerator(catalogue, 9, 4.0, T0)
    eur = market.state(12087792)
    with pytest.raises(HistoryError, match="No historical market data"):
        build_bars(eur, 9, HistoryRequest(T0, 86400, "1 hour", "TRADES"))
    with pytest.raises(HistoryError, match="invalid bar size"):
        build_bars(eur, 9, HistoryRequest(T0, 86400, "7 mins", "MIDPOINT"))
    with pytest.raises(HistoryError, match="Time length exceed max"):
        build_bars(eur, 9, HistoryRequest(T0, duration_seconds("5 Y"), "1 day", "MIDPOINT"))
    with pytest.raises(HistoryError, match="invalid duration '3 Q'"):
        HistoryRequest.parse("", "3 Q", T0, "1 day", "MIDPOINT")


def test_end_date_formats() -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    assert end_time("", now) == now
    assert end_time("20261120 15:00:00 UTC", now) == datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert end_time("20261120-15:00:00", now) == datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert end_time("20261120 10:00:00 US/Eastern", now) == datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert end_time("20261120", now) == datetime(2026, 11, 21, tzinfo=UTC)
    with pytest.raises(HistoryError, match="invalid end date/time 'yesterday'"):
        HistoryRequest.parse("yesterday", "1 D", now, "1 day", "MIDPOINT")


def test_minutes_without_a_tick_get_flat_bars_so_an_hour_is_always_sixty_bars(catalogue: Catalogue) -> None:
    market = MarketGenerator(catalogue, 9, 4.0, T0)
    state = market.state(265598)
    market.step(T0 + timedelta(seconds=1))
    close = state.minutes[-1].close
    quiet = T0 + timedelta(minutes=3, seconds=5)  # nothing ticked for three minutes
    record_minute(state, quiet, 0.0, 0)
    assert [b.minute for b in state.minutes[-4:]] == [minute_of(T0) + i for i in range(4)]
    assert {(b.open, b.high, b.low, b.close, b.volume) for b in state.minutes[-3:-1]} == {(close,) * 4 + (0.0,)}
    for seconds in range(0, 120, 7):  # wherever "now" falls in its minute
        end = quiet + timedelta(seconds=seconds)
        record_minute(state, end, 0.0, 0)
        rows = build_bars(state, 9, HistoryRequest(end, duration_seconds("3600 S"), "1 min", "MIDPOINT"))
        assert len(rows) == 60 and rows[-1][0] == end.strftime("%Y%m%d %H:%M:00 UTC")
