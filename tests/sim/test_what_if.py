"""What-if orders and off-tick prices through the unmodified ib_async client, and through IbAdapter, on tws-sim.

A what-if order is answered as IB answers it: one openOrder whose orderState
carries the margins and the commission; nothing is placed. A price off the
instrument's tick grid (limit, stop, trail amount; new order, what-if or
modification) is refused with IB's error 110.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Order, RequestError, Stock

from tests.sim.simulator import connect, running_sim, wait_for
from trader.brokers.ib.adapter import IbAdapter
from trader.brokers.records import ContractQuery
from trader.config import IbSettings, TradingSettings
from trader.domain import Action, OrderStatus, OrderType
from trader.domain import Order as DomainOrder
from trader.errors import BrokerError

PRICE_VARIATION = "The price does not conform to the minimum price variation for this contract."


async def _aapl(ib: IB) -> Stock:
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    return aapl


def test_a_what_if_order_is_answered_with_margin_and_commission_and_nothing_is_placed() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            state = await asyncio.wait_for(ib.whatIfOrderAsync(aapl, MarketOrder("BUY", 100)), 5)
            ask = float(server.market.state(aapl.conId).ask)
            assert state.commission == state.minCommission == state.maxCommission == 1.0  # the sim's schedule
            assert state.commissionCurrency == "USD" and state.status == "PreSubmitted"
            init, maint = float(state.initMarginChange), float(state.maintMarginChange)
            assert init == pytest.approx(100 * ask * 0.25, abs=0.6) and maint == pytest.approx(init * 0.8, abs=0.02)
            assert float(state.equityWithLoanChange) == -1.0
            assert float(state.initMarginAfter) == pytest.approx(float(state.initMarginBefore) + init)
            assert ib.trades() == [] and server.engine.orders() == []  # nothing placed, nothing kept
            limit = await asyncio.wait_for(ib.whatIfOrderAsync(aapl, LimitOrder("SELL", 10, 100.0)), 5)
            assert float(limit.initMarginChange) == pytest.approx(10 * 100 * 0.25)  # at its limit
            ib.RaiseRequestErrors = True  # as IbAdapter sets it: a refused request raises
            with pytest.raises(RequestError) as refused:
                await asyncio.wait_for(ib.whatIfOrderAsync(aapl, LimitOrder("BUY", 1, 100.005)), 5)
            assert (refused.value.code, refused.value.message) == (110, PRICE_VARIATION)
            ib.disconnect()

    asyncio.run(scenario())


def test_an_off_tick_trail_amount_and_an_off_tick_modification_are_refused_with_110() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: dict[int, int] = {}
            ib.errorEvent += lambda req_id, code, *_: errors.setdefault(req_id, code)
            aapl = await _aapl(ib)
            trail = ib.placeOrder(aapl, Order(action="SELL", totalQuantity=1, orderType="TRAIL", auxPrice=0.505))
            await wait_for(trail.isDone, what="the trail order refused")
            assert errors[trail.order.orderId] == 110 and trail.orderStatus.status == "Cancelled"
            bid = float(server.market.state(aapl.conId).bid)
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 1, round(bid - 5, 2)))
            await wait_for(lambda: resting.orderStatus.status == "Submitted", what="resting")
            resting.order.lmtPrice = round(bid - 5, 2) + 0.003
            ib.placeOrder(aapl, resting.order)
            await wait_for(lambda: resting.order.orderId in errors, what="the modification refused")
            assert errors[resting.order.orderId] == 110
            sim = server.engine.get(1, resting.order.orderId)
            assert sim is not None and sim.ticket.limit_price == Decimal(str(round(bid - 5, 2)))  # still working
            ib.disconnect()

    asyncio.run(scenario())


def test_the_adapter_previews_an_order_and_reports_ibs_refusal_of_an_off_tick_price() -> None:
    async def scenario() -> None:
        async with running_sim() as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=32), TradingSettings())
            reports = []
            adapter.order_updates.subscribe(reports.append)
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                [details] = await adapter.contract_details(ContractQuery("AAPL", exchange="SMART"))
                order = DomainOrder("wi-1", details.contract, Action.BUY, Decimal(10), OrderType.LMT,
                                    limit_price=Decimal("100.00"))
                preview = await adapter.what_if(order)
                assert (preview.commission, preview.commission_currency) == (Decimal(1), "USD")
                assert preview.init_margin_change == Decimal("250.00")
                assert preview.maint_margin_change == Decimal("200.00")
                assert preview.equity_with_loan_change == Decimal(-1) and preview.warning == ""
                assert not adapter.has_order("wi-1") and sim.engine.orders() == []
                off = DomainOrder("wi-2", details.contract, Action.BUY, Decimal(1), OrderType.LMT,
                                  limit_price=Decimal("100.005"))
                with pytest.raises(BrokerError, match="IB error 110") as refused:
                    await adapter.what_if(off)
                assert refused.value.details["code"] == 110
                # The same price in a real order (the desk would refuse it first): IB's refusal comes back as
                # the order's report, REJECTED (ib_async says Cancelled) with IB's reason; nothing is left working.
                off.broker_order_id = adapter.next_order_id()
                adapter.place_orders([off])
                report = await wait_for(lambda: next((r for r in reports if r.client_order_id == "wi-2"
                                                      and r.status is not None and r.status.is_terminal), None),
                                        what="the refusal reported")
                assert report.status is OrderStatus.REJECTED and PRICE_VARIATION in report.reason
                assert "110" in report.reason and sim.engine.open_orders() == []
            finally:
                await adapter.stop()

    asyncio.run(scenario())
