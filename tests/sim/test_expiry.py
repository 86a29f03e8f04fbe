"""A contract past its last trade time: tws-sim stops quoting it and refuses orders and look-ups, as IB does."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from ib_async import Future, MarketOrder

from tests.sim.conftest import ManualClock
from tests.sim.simulator import connect, listed, running_sim, sim_config, wait_for
from trader.sim.world import SimWorld

LAST_MORNING = datetime(2026, 12, 18, 14, 29, 50, tzinfo=UTC)  # ESZ6 stops at 08:30 Chicago time: 14:30 UTC


def test_past_its_last_trade_time_a_contract_is_neither_quoted_nor_traded() -> None:
    async def scenario() -> None:
        start = datetime.now(UTC)
        offset = [LAST_MORNING - start]  # a running clock, moved to ESZ6's last morning; the test jumps it

        def clock() -> datetime:
            return datetime.now(UTC) + offset[0]

        async with running_sim(clock=clock) as server:
            ib = await connect(server, 1)
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
            [esz6] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
            details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
            assert len(details) == 3 and (details[0].lastTradeTime, details[0].timeZoneId) == ("08:30:00", "US/Central")
            ticker = ib.reqMktData(esz6)
            await wait_for(lambda: ticker.bid > 0, what="ESZ6 quoted on its last morning")

            offset[0] += timedelta(seconds=15)  # 14:30:05 UTC: past its last trade
            await asyncio.sleep(0.3)  # a few market steps at 20 a second, none of them must quote it
            updated = ticker.time
            await asyncio.sleep(0.5)
            assert ticker.time == updated, "an expired contract is still quoted"
            trade = ib.placeOrder(esz6, MarketOrder("BUY", 1))
            await wait_for(lambda: any(r == trade.order.orderId and c == 200 for r, c in errors),
                           what="error 200 for an order on an expired contract")
            assert not trade.fills and not server.account.holdings
            after = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
            assert sorted(d.contract.localSymbol for d in after) == ["ESH7", "ESM7"]
            ib.disconnect()

    asyncio.run(scenario())


def test_a_sim_running_past_an_expiry_lists_the_next_contract() -> None:
    clock = ManualClock(datetime(2026, 12, 18, 23, 59, 59, tzinfo=UTC))
    world = SimWorld(sim_config(), clock=clock)
    assert [i.contract.local_symbol for i in listed(world, "ES")] == ["ESZ6", "ESH7", "ESM7"]
    clock.advance(2)  # 19 December: ESZ6 is gone, ESU7 listed and quoted
    world.market_step(clock())
    live = [i.contract.local_symbol for i in listed(world, "ES") if not i.expired(clock())]
    assert live == ["ESH7", "ESM7", "ESU7"]
    esu7 = world.catalogue.front("ES", today=date(2027, 6, 19))
    assert esu7.contract.local_symbol == "ESU7" and world.market.state(esu7.conid).bid > 0
