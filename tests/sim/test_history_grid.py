"""tws-sim's historical bars lie on the instrument's tick grid, as IB's do (half ticks at most for mids)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from ib_async import Forex, Future

from tests.sim.conftest import ESZ6
from tests.sim.simulator import connect, running_sim
from tests.sim.test_history_seconds import T0, walked
from trader.brokers.ib.durations import duration_seconds
from trader.domain import SecType
from trader.sim.catalogue import Catalogue
from trader.sim.history import HistoryRequest, build_bars
from trader.sim.series import contract_conid

AAPL, EURUSD, ZNZ6 = 265598, 12087792, contract_conid("ZN", "FUT", "202612")


def off_grid(rows: list[tuple[object, ...]], grid: Decimal) -> list[object]:
    """Return the prices (open, high, low, close) of ``rows`` that are not a multiple of ``grid``."""
    return [p for row in rows for p in row[1:5] if Decimal(str(p)) % grid]


@pytest.mark.parametrize("conid", [AAPL, ESZ6, ZNZ6, EURUSD])
@pytest.mark.parametrize("what", ["TRADES", "BID", "ASK", "MIDPOINT"])
@pytest.mark.parametrize("size", ["1 min", "5 secs"])
def test_bars_are_on_the_tick_grid(catalogue: Catalogue, conid: int, what: str, size: str) -> None:
    market = walked(catalogue, 90)  # a live minute and a half joined to the synthetic past
    state = market.state(conid)
    if what == "TRADES" and state.instrument.contract.sec_type is SecType.CASH:
        pytest.skip("IB serves no TRADES for FX")
    end = T0 + timedelta(seconds=90)
    request = HistoryRequest(end, duration_seconds("2 D" if size == "1 min" else "3600 S"), size, what)
    rows = build_bars(state, 9, request)
    assert len(rows) > 500
    tick = state.instrument.tick_size
    grid = tick / 2 if what == "MIDPOINT" else tick
    assert off_grid(rows, grid) == []
    assert all(float(r[3]) <= min(float(r[1]), float(r[4])) <= max(float(r[1]), float(r[4])) <= float(r[2])
               for r in rows)
    assert rows == build_bars(state, 9, request)  # the same request gives the same bars


def test_every_instrument_s_minutes_are_on_its_tick_grid(catalogue: Catalogue) -> None:
    market = walked(catalogue, 1)
    end = T0 + timedelta(seconds=1)
    checked = 0
    for state in market.states():
        what = "MIDPOINT" if state.instrument.contract.sec_type is SecType.CASH else "TRADES"
        rows = build_bars(state, 9, HistoryRequest(end, duration_seconds("1 D"), "1 min", what))
        tick = state.instrument.tick_size
        assert off_grid(rows, tick / 2 if what == "MIDPOINT" else tick) == [], state.instrument.contract
        checked += 1
    assert checked >= 20


def test_the_live_minutes_join_the_past_unchanged(catalogue: Catalogue) -> None:
    market = walked(catalogue, 200)
    state = market.state(ESZ6)
    rows = build_bars(state, 9, HistoryRequest(T0 + timedelta(seconds=200), 3600, "1 min", "MIDPOINT"))
    live = [(b.open, b.high, b.low, b.close) for b in state.minutes]
    assert [tuple(r[1:5]) for r in rows[-len(live):]] == live


def test_bars_through_ib_async_are_on_the_tick_grid() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
            [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
            for contract, what, grid in ((es, "TRADES", Decimal("0.25")), (es, "BID", Decimal("0.25")),
                                         (eur, "MIDPOINT", Decimal("0.000025"))):
                bars = await ib.reqHistoricalDataAsync(contract, "", "2 D", "1 min", what, False)
                assert len(bars) > 1000
                rows = [(b.date, b.open, b.high, b.low, b.close) for b in bars]
                assert off_grid(rows, grid) == [], (contract.symbol, what)
                again = await ib.reqHistoricalDataAsync(contract, "", "2 D", "1 min", what, False)
                # the same past, bar for bar; the two requests may straddle a minute, so match by date
                first = {b.date: b.close for b in bars[:-2]}
                second = {b.date: b.close for b in again[:-2]}
                common = first.keys() & second.keys()
                assert len(common) >= len(first) - 2, (contract.symbol, what)
                assert {d: first[d] for d in common} == {d: second[d] for d in common}, (contract.symbol, what)
            ib.disconnect()

    asyncio.run(scenario())
