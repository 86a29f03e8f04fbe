"""IbAdapter against tws-sim: its settings reach the ib_async client it owns; a failed start-up sync is a failed
connect; a stream lasts while anyone wants it; orders are sent last, and modified and cancelled by client order id."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from ib_async import RequestError

from tests.sim.simulator import running_sim, wait_for
from trader.brokers.ib.adapter import IbAdapter
from trader.brokers.ib.orders import PlacedTrade
from trader.brokers.records import ContractQuery, OrderReport
from trader.config import IbSettings, TradingSettings
from trader.domain import Action, Contract, Order, OrderStatus, OrderType
from trader.errors import NotFound


def test_request_pacing_comes_from_the_trading_settings() -> None:
    paced = IbAdapter(IbSettings(), TradingSettings())
    assert (paced.ib.client.MaxRequests, paced.ib.client.RequestsInterval) == (45, 1.0)  # ib_async's own
    unpaced = IbAdapter(IbSettings(), TradingSettings(ib_max_requests=0, ib_requests_interval=2.0))
    assert (unpaced.ib.client.MaxRequests, unpaced.ib.client.RequestsInterval) == (0, 2.0)


def test_a_stream_lasts_while_any_owner_wants_it() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=31), TradingSettings())
            ticks: list[dict[str, Any]] = []
            adapter.ticks.subscribe(ticks.extend)
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                assert adapter.view_complete  # tws-sim answered every start-up request in time
                [details] = await adapter.contract_details(ContractQuery("AAPL", exchange="SMART"))
                contract = details.contract
                assert contract.key == "AAPL.STK" and contract.conid and details.tick > 0
                assert await adapter.contract_details(ContractQuery("NOSUCH", exchange="SMART")) == []
                assert adapter.quote(contract) is None  # not streamed
                adapter.subscribe(contract, owner="desk")
                adapter.subscribe(contract)  # one stream, two owners
                assert adapter.subscriptions() == {"AAPL.STK": {"desk", "user"}}
                quote = await wait_for(lambda: (q := adapter.quote(contract)) is not None and q.bid and q.ask and q,
                                       what="quotes")
                assert quote.bid < quote.ask
                await wait_for(lambda: ticks, what="ticks on the stream")
                assert {t["instrument"] for t in ticks} == {"AAPL.STK"}
                assert any(s.market_data for s in sim.sessions.values())
                assert not adapter.unsubscribe("AAPL.STK", owner="strategy")  # never had it
                assert adapter.unsubscribe("AAPL.STK", owner="desk")
                assert adapter.subscriptions() == {"AAPL.STK": {"user"}}
                assert not adapter.unsubscribe("AAPL.STK", owner="desk")  # let go already
                assert adapter.unsubscribe("AAPL.STK")  # the last owner: the stream stops
                assert adapter.subscriptions() == {} and adapter.quote(contract) is None
                await wait_for(lambda: not any(s.market_data for s in sim.sessions.values()),
                               what="the sim's stream ended")
                tick = await adapter.snapshot(contract)
                assert tick["instrument"] == "AAPL.STK" and tick["bid"] and tick["ask"]
                bars = await adapter.history(contract, end="", duration="300 S", bar_size="1 min",
                                             what_to_show="TRADES", use_rth=False)
                assert bars and all(b.instrument == "AAPL.STK" and b.start.tzinfo is UTC for b in bars)
                assert (await adapter.current_time()).tzinfo is not None
                assert adapter.accounts() == [sim.account.id]
                assert {v.tag for v in adapter.account_values()} >= {"NetLiquidation"}
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
    adapter.ib.isConnected = lambda: len(calls) == 3  # type: ignore[method-assign]
    adapter.ib.client.serverVersion = lambda: 176  # type: ignore[method-assign]
    adapter.on_connected.append(on_connected)
    asyncio.run(adapter._connect_loop())
    assert len(calls) == 3 and all(kw["raiseSyncErrors"] is True for kw in calls)
    assert adapter.connects == 1 and adapter.last_error is None
    assert seen == [True], "the re-sync ran once, with the complete view"


def test_a_connection_lost_during_the_re_sync_is_made_again_and_reported_up_only_once_synced() -> None:
    adapter = IbAdapter(IbSettings(), TradingSettings(reconnect_initial=0.01, reconnect_max=0.01))
    up = [False]
    resyncs: list[int] = []
    reported: list[bool] = []

    async def connect(*_: Any, **_kwargs: Any) -> None:
        up[0] = True

    async def resync() -> None:  # the first re-sync sees the connection drop, and gives up
        resyncs.append(len(resyncs))
        if len(resyncs) == 1:
            up[0] = False
            raise ConnectionError("lost while re-syncing")

    adapter.ib.connectAsync = connect  # type: ignore[method-assign]
    adapter.ib.isConnected = lambda: up[0]  # type: ignore[method-assign]
    adapter.ib.client.serverVersion = lambda: 176  # type: ignore[method-assign]
    adapter.on_connected.append(resync)
    adapter.connection.subscribe(reported.append)
    asyncio.run(adapter._connect_loop())
    assert adapter.connects == 2 and resyncs == [0, 1]
    assert reported == [True], "up once, after the re-sync that succeeded"


def test_orders_are_registered_before_the_send_which_comes_last_and_modified_and_cancelled_by_id() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=32), TradingSettings())
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                [details] = await adapter.contract_details(ContractQuery("AAPL", exchange="SMART"))
                wrapper = adapter.ib.wrapper
                registered: list[bool] = []
                client_place = adapter.ib.client.placeOrder

                def place(order_id: int, contract: Any, order: Any) -> None:  # what ib_async holds at the send
                    registered.append(any(t.order.orderId == order_id for t in wrapper.trades.values()))
                    client_place(order_id, contract, order)

                adapter.ib.client.placeOrder = place  # type: ignore[method-assign]
                new_orders: list[Any] = []
                adapter.ib.newOrderEvent += new_orders.append
                reports: list[OrderReport] = []
                adapter.order_updates.subscribe(reports.append)

                order = Order("p1", details.contract, Action.BUY, Decimal(1), OrderType.LMT, limit_price=Decimal(1),
                              order_ref="test", broker_order_id=adapter.next_order_id())
                assert not adapter.has_order("p1")
                adapter.place_orders([order])
                assert registered == [True] and not new_orders and adapter.has_order("p1")
                [trade] = adapter.ib.openTrades()
                assert isinstance(trade, PlacedTrade) and trade.order.orderRef == "test#p1"
                assert repr(trade) == f"Trade(AAPL BUY 1 LMT id {order.broker_order_id} ref 'test#p1': PendingSubmit)"
                ack = await wait_for(lambda: next((r for r in reports if r.status is OrderStatus.SUBMITTED), None),
                                     what="the acknowledgement")
                assert (ack.client_order_id, ack.broker_order_id, ack.order_ref) == ("p1", order.broker_order_id,
                                                                                     "test#p1")
                [listed] = adapter.open_orders()
                assert listed.client_order_id == "p1" and listed.order is not None
                assert listed.order.limit_price == Decimal(1)

                # A modification: ib_async's own placeOrder under the same id, its event.
                modified: list[Any] = []
                adapter.ib.orderModifyEvent += modified.append
                adapter.modify_order(dataclasses.replace(order, limit_price=Decimal("1.01")))
                assert modified == [trade]
                await wait_for(lambda: sim.engine.open_orders(32)[0].ticket.limit_price == Decimal("1.01"),
                               what="the modification at the broker")
                adapter.cancel_order("p1")
                await wait_for(lambda: not sim.engine.open_orders(32), what="the cancel at the broker")
                with pytest.raises(NotFound):
                    adapter.cancel_order("never-placed")

                # A send that fails leaves nothing registered, and no handle.
                def refuse(*_: Any) -> None:
                    raise ConnectionError("Not connected")

                adapter.ib.client.placeOrder = refuse  # type: ignore[method-assign]
                before = dict(wrapper.trades)
                with pytest.raises(ConnectionError):
                    adapter.place_orders([dataclasses.replace(order, client_order_id="p2",
                                                              broker_order_id=adapter.next_order_id())])
                assert wrapper.trades == before and not adapter.has_order("p2")

                # The handles go with the connection, and come back from IB's listing on the next.
                adapter.ib.client.placeOrder = client_place  # type: ignore[method-assign]
                adapter.place_orders([dataclasses.replace(order, client_order_id="p3",
                                                          broker_order_id=adapter.next_order_id())])
                await wait_for(lambda: len(sim.engine.open_orders(32)) == 1, what="p3 at the broker")
                await adapter.reconnect()
                await wait_for(lambda: not adapter.connected or not adapter.has_order("p1"), what="the drop")
                assert await adapter.wait_connected(10)
                assert adapter.has_order("p3") and not adapter.has_order("p1")  # p1 is done: IB lists no id for it
            finally:
                await adapter.stop()

    asyncio.run(main())


def test_a_bracket_goes_out_children_under_the_entry_only_the_last_transmitting() -> None:
    adapter = IbAdapter(IbSettings(), TradingSettings())
    adapter.ib.wrapper.clientId = 5  # what connecting sets; the sends are kept instead of written to a socket
    sends: list[tuple[int, Any, Any]] = []
    adapter.ib.client.placeOrder = lambda *args: sends.append(args)  # type: ignore[method-assign]
    aapl = Contract("AAPL", primary_exchange="NASDAQ", conid=265598)
    entry = Order("b1", aapl, Action.BUY, Decimal(10), OrderType.LMT, limit_price=Decimal(150), broker_order_id=20)
    stop = Order("b1-sl", aapl, Action.SELL, Decimal(10), OrderType.STP, stop_price=Decimal(140), parent_id="b1",
                 oca_group="b1", broker_order_id=21)
    target = Order("b1-tp", aapl, Action.SELL, Decimal(10), OrderType.LMT, limit_price=Decimal(160),
                   parent_id="b1", oca_group="b1", broker_order_id=22)
    adapter.place_orders([entry, stop, target])
    assert [(i, o.parentId, o.transmit, o.orderRef) for i, _, o in sends] == [
        (20, 0, False, "manual#b1"), (21, 20, False, "manual#b1-sl"), (22, 20, True, "manual#b1-tp")]
    assert all(c.conId == 265598 and c.symbol == "AAPL" for _, c, _ in sends)
    assert all(adapter.has_order(coid) for coid in ("b1", "b1-sl", "b1-tp"))
