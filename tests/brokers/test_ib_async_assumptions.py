"""What IbAdapter assumes of ib_async beyond its public API, each checked directly, so an upgrade fails here first.

:func:`trader.brokers.ib.orders.send_new` registers a new order's Trade in
``wrapper.trades`` itself, before the send, where ib_async's own placeOrder
would register it after. That is right only while ib_async keys that dict by
``wrapper.orderKey``, finds the Trade there for the order's status reports,
open-order reports, executions and commission reports, treats a known key as a
modification, and forgets its Trades with the connection. pyproject.toml pins
ib_async to the minor version these pass with.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import tomllib
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import ib_async
import pytest
from packaging.requirements import Requirement

from tests.sim.simulator import connect, running_sim
from trader.brokers.ib.orders import PlacedTrade, send_new

CLIENT_ID = 7


def test_the_installed_ib_async_is_the_pinned_one() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    [pin] = [Requirement(r) for r in project["project"]["dependencies"] if r.startswith("ib_async")]
    assert str(pin.specifier) in ("<2.2,>=2.1", ">=2.1,<2.2"), "widen the pin only after these tests pass"
    assert pin.specifier.contains(importlib.metadata.version("ib_async"))


def registered() -> tuple[ib_async.IB, list[tuple[Any, ...]], ib_async.Trade]:
    """An IB whose client sends nothing (the sends are kept), with one order registered by send_new."""
    ib = ib_async.IB()
    ib.wrapper.clientId = CLIENT_ID  # what connecting sets
    sends: list[tuple[Any, ...]] = []
    ib.client.placeOrder = lambda *args: sends.append(args)  # type: ignore[method-assign]
    contract = ib_async.Stock("AAPL", "SMART", "USD", conId=265598)
    trade = send_new(ib, contract, ib_async.LimitOrder("BUY", 10, 150.0, orderId=41, orderRef="test#c1"))
    return ib, sends, trade


def test_trades_are_keyed_by_order_key_and_a_registered_trade_is_ib_async_own() -> None:
    ib, sends, trade = registered()
    wrapper = ib.wrapper
    assert wrapper.orderKey(CLIENT_ID, 41, 0) == (CLIENT_ID, 41)
    assert wrapper.trades == {(CLIENT_ID, 41): trade} and ib.trades() == [trade] and ib.openTrades() == [trade]
    assert isinstance(trade, PlacedTrade) and (trade.order.clientId, trade.order.orderId) == (CLIENT_ID, 41)
    assert trade.orderStatus.status == ib_async.OrderStatus.PendingSubmit == "PendingSubmit"
    assert [e.status for e in trade.log] == ["PendingSubmit"] and isinstance(wrapper.defaultTimezone, tzinfo)
    assert len(sends) == 1 and sends[0][0] == 41 and sends[0][2] is trade.order


def test_status_open_order_execution_and_commission_reports_find_the_registered_trade() -> None:
    ib, _, trade = registered()
    wrapper = ib.wrapper
    statuses: list[ib_async.Trade] = []
    commissions: list[tuple[Any, ...]] = []
    ib.orderStatusEvent += statuses.append
    ib.commissionReportEvent += lambda *args: commissions.append(args)
    wrapper.orderStatus(41, "Submitted", 0.0, 10.0, 0.0, 555, 0, 0.0, CLIENT_ID, "")
    assert statuses == [trade] and trade.orderStatus.status == "Submitted"
    reported = ib_async.LimitOrder("BUY", 10, 150.0, orderId=41, clientId=CLIENT_ID, permId=555, orderRef="test#c1")
    wrapper.openOrder(41, trade.contract, reported, ib_async.OrderState(status="Submitted"))
    assert ib.trades() == [trade] and trade.order.permId == 555 and wrapper.permId2Trade[555] is trade
    execution = ib_async.Execution(execId="e1", time=datetime.now(UTC), acctNumber="DU1", side="BOT", shares=10.0,
                                   price=150.0, permId=555, clientId=CLIENT_ID, orderId=41, orderRef="test#c1")
    wrapper.execDetails(-1, trade.contract, execution)
    wrapper.commissionReport(ib_async.CommissionReport(execId="e1", commission=1.0, currency="USD"))
    [(found, fill, _report)] = commissions
    assert found is trade and fill.execution.execId == "e1" and fill.commissionReport.commission == 1.0


def test_a_known_order_id_is_a_modification_and_a_failed_send_registers_nothing() -> None:
    ib, sends, trade = registered()
    modified: list[ib_async.Trade] = []
    ib.orderModifyEvent += modified.append
    trade.order.lmtPrice = 150.5
    assert send_new(ib, trade.contract, trade.order) is trade and modified == [trade] and len(sends) == 2

    def refuse(*_: Any) -> None:
        raise ConnectionError("Not connected")

    ib.client.placeOrder = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        send_new(ib, trade.contract, ib_async.LimitOrder("BUY", 1, 1.0, orderId=42))
    assert list(ib.wrapper.trades) == [(CLIENT_ID, 41)]


def test_order_ids_come_from_the_session_and_trades_go_with_the_connection() -> None:
    async def main() -> None:
        async with running_sim() as sim:
            ib = await connect(sim, CLIENT_ID)
            try:
                first, second = ib.client.getReqId(), ib.client.getReqId()
                assert first >= 1 and second == first + 1
                assert ib.client.serverVersion() >= 150  # ib_async fetches the completed orders from 150
                send_new(ib, ib_async.Stock("AAPL", "SMART", "USD"), ib_async.LimitOrder("BUY", 1, 1.0))
                assert len(ib.wrapper.trades) == 1
            finally:
                ib.disconnect()
            assert ib.wrapper.trades == {} and ib.trades() == []

    asyncio.run(main())
