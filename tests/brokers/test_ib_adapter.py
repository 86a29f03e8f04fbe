"""IbAdapter: its settings reach the ib_async client it owns; a failed start-up sync is a failed connect;
a stream lasts while anyone wants it; place_order sends last (against tws-sim)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from ib_async import LimitOrder, RequestError, Stock

from tests.sim.simulator import running_sim, wait_for
from trader.brokers.ib.adapter import IbAdapter, PlacedTrade
from trader.config import IbSettings, TradingSettings


def test_request_pacing_comes_from_the_trading_settings() -> None:
    paced = IbAdapter(IbSettings(), TradingSettings())
    assert (paced.ib.client.MaxRequests, paced.ib.client.RequestsInterval) == (45, 1.0)  # ib_async's own
    unpaced = IbAdapter(IbSettings(), TradingSettings(ib_max_requests=0, ib_requests_interval=2.0))
    assert (unpaced.ib.client.MaxRequests, unpaced.ib.client.RequestsInterval) == (0, 2.0)


def test_a_stream_lasts_while_any_owner_wants_it() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=31), TradingSettings())
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                assert adapter.view_complete  # tws-sim answered every start-up request in time
                [details] = await adapter.contract_details(Stock("AAPL", "SMART", "USD"))
                contract = details.contract
                ticker = adapter.subscribe("AAPL.STK", contract, owner="desk")
                assert adapter.subscribe("AAPL.STK", contract) is ticker  # one stream, two owners
                await wait_for(lambda: ticker.hasBidAsk(), what="quotes")
                assert any(s.market_data for s in sim.sessions.values())
                assert not adapter.unsubscribe("AAPL.STK", owner="strategy")  # never had it
                assert adapter.unsubscribe("AAPL.STK", owner="desk")
                assert "AAPL.STK" in adapter.subscriptions and adapter.owners["AAPL.STK"] == {"user"}
                assert not adapter.unsubscribe("AAPL.STK", owner="desk")  # let go already
                assert adapter.unsubscribe("AAPL.STK")  # the last owner: the stream stops
                assert "AAPL.STK" not in adapter.subscriptions and "AAPL.STK" not in adapter.owners
                assert adapter.subscribed_key(contract) is None
                await wait_for(lambda: not any(s.market_data for s in sim.sessions.values()),
                               what="the sim's stream ended")
            finally:
                await adapter.stop()

    asyncio.run(main())


def test_a_start_up_request_that_fails_fails_the_connect_which_is_made_again() -> None:
    # ib_async only logs a start-up request that timed out (completed orders, executions...) unless
    # raiseSyncErrors; the re-sync would then take a partial view of the broker for the whole.
    adapter = IbAdapter(IbSettings(), TradingSettings(reconnect_initial=0.01, reconnect_max=0.01))
    calls: list[dict[str, Any]] = []
    failures: list[Exception] = [ConnectionError(["completed orders request timed out"]),
                                 RequestError(9, 321, "executions refused")]
    seen: list[bool] = []

    async def connect(*_: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        if failures:
            raise failures.pop(0)

    async def on_connected() -> None:
        seen.append(adapter.view_complete)

    adapter.ib.connectAsync = connect  # type: ignore[method-assign]
    adapter.ib.client.serverVersion = lambda: 176  # type: ignore[method-assign]
    adapter.on_connected.append(on_connected)
    asyncio.run(adapter._connect_loop())
    assert len(calls) == 3 and all(kw["raiseSyncErrors"] is True for kw in calls)
    assert adapter.connects == 1 and adapter.last_error is None
    assert seen == [True], "the re-sync ran once, with the complete view"


def test_place_order_registers_the_trade_before_the_send_which_comes_last() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=32), TradingSettings())
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                [details] = await adapter.contract_details(Stock("AAPL", "SMART", "USD"))
                contract, wrapper = details.contract, adapter.ib.wrapper
                registered: list[bool] = []
                client_place = adapter.ib.client.placeOrder

                def place(order_id: int, contract: Any, order: Any) -> None:  # what ib_async holds at the send
                    registered.append(any(t.order.orderId == order_id for t in wrapper.trades.values()))
                    client_place(order_id, contract, order)

                adapter.ib.client.placeOrder = place  # type: ignore[method-assign]
                new_orders: list[Any] = []
                adapter.ib.newOrderEvent += new_orders.append
                statuses: list[str] = []
                adapter.order_status.subscribe(lambda trade: statuses.append(trade.orderStatus.status))

                trade = adapter.place_order(contract, LimitOrder("BUY", 1, 1.0, orderRef="test#p1"))
                assert isinstance(trade, PlacedTrade) and registered == [True] and not new_orders
                assert repr(trade) == f"Trade(AAPL BUY 1 LMT id {trade.order.orderId} ref 'test#p1': PendingSubmit)"
                await wait_for(lambda: trade.orderStatus.status == "Submitted", what="the acknowledgement")
                assert "Submitted" in statuses and adapter.ib.openTrades() == [trade]

                # An order id ib_async knows is a modification: ib_async's own placeOrder, its event.
                trade.order.lmtPrice = 1.01
                modified: list[Any] = []
                adapter.ib.orderModifyEvent += modified.append
                assert adapter.place_order(contract, trade.order) is trade and modified == [trade]
                await wait_for(lambda: sim.engine.open_orders(32)[0].ticket.limit_price == Decimal("1.01"),
                               what="the modification at the broker")

                # A send that fails leaves nothing registered.
                def refuse(*_: Any) -> None:
                    raise ConnectionError("Not connected")

                adapter.ib.client.placeOrder = refuse  # type: ignore[method-assign]
                before = dict(wrapper.trades)
                with pytest.raises(ConnectionError):
                    adapter.place_order(contract, LimitOrder("BUY", 1, 1.0))
                assert wrapper.trades == before
            finally:
                await adapter.stop()

    asyncio.run(main())
