"""Orders through the unmodified ib_async client: fills, partial fills, modify, cancel, brackets, OCA, rejects."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ib_async import IB, Future, LimitOrder, MarketOrder, Stock, Trade

from tests.sim.simulator import connect, listed, running_sim, wait_for
from trader.sim.server import TwsSimServer


async def _aapl(ib: IB) -> Stock:
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    return aapl


async def _done(trade: Trade, timeout: float = 5.0) -> Trade:
    await wait_for(trade.isDone, timeout, what=f"order {trade.order.orderId} done")
    return trade


def _touch(server: TwsSimServer, conid: int) -> tuple[float, float]:
    state = server.market.state(conid)
    return float(state.bid), float(state.ask)


def test_market_order_fills_with_commission_and_updates_positions() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            trade = await _done(ib.placeOrder(aapl, MarketOrder("BUY", 100)))
            assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 100
            assert trade.orderStatus.permId > 0 and trade.order.permId == trade.orderStatus.permId
            assert sum(f.execution.shares for f in trade.fills) == 100
            fill = trade.fills[0]
            assert fill.execution.side == "BOT" and fill.execution.permId == trade.order.permId
            assert fill.commissionReport.commission == 1.0 and fill.commissionReport.currency == "USD"
            await wait_for(lambda: ib.positions(), what="position update")
            [position] = ib.positions()
            assert position.contract.conId == aapl.conId and position.position == 100
            assert position.avgCost == round(trade.orderStatus.avgFillPrice + 0.01, 6)  # commission in avg cost
            await wait_for(lambda: ib.portfolio(), what="portfolio update")
            assert ib.portfolio()[0].position == 100
            holding = server.account.holdings[aapl.conId]
            assert holding.quantity == Decimal(100)
            ib.disconnect()

    asyncio.run(scenario())


def test_limit_order_rests_is_modified_then_fills_and_another_is_cancelled() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            bid, ask = _touch(server, aapl.conId)
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 10, round(bid - 5, 2)))
            await wait_for(lambda: resting.orderStatus.status == "Submitted", what="submitted")
            resting.order.lmtPrice = round(ask + 5, 2)  # modify: now marketable
            ib.placeOrder(aapl, resting.order)
            await _done(resting)
            assert resting.orderStatus.status == "Filled"
            assert resting.fills[0].execution.price <= round(ask + 5, 2)
            assert any(entry.message == "Modify" for entry in resting.log)

            other = ib.placeOrder(aapl, LimitOrder("SELL", 10, round(ask + 20, 2)))
            await wait_for(lambda: other.orderStatus.status == "Submitted", what="submitted")
            ib.cancelOrder(other.order)
            await _done(other)
            assert other.orderStatus.status == "Cancelled" and not other.fills
            ib.disconnect()

    asyncio.run(scenario())


def test_a_large_order_fills_in_parts_against_displayed_size() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            second = listed(server, "ES")[1]  # a thinner, deferred month (ESH7 in December 2026)
            [deferred] = await ib.qualifyContractsAsync(Future("ES", second.wire_contract_month, "CME"))
            trade = await _done(ib.placeOrder(deferred, MarketOrder("BUY", 60)), timeout=15)
            assert trade.orderStatus.status == "Filled"
            assert len(trade.fills) > 1
            assert sum(f.execution.shares for f in trade.fills) == 60
            assert [f.execution.cumQty for f in trade.fills][-1] == 60
            assert all(f.commissionReport.commission == 2.25 * f.execution.shares for f in trade.fills)
            ib.disconnect()

    asyncio.run(scenario())


def test_bracket_children_wait_for_the_parent_and_cancel_each_other() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            bid, ask = _touch(server, aapl.conId)
            server.pause_market(True)  # keep the stop far from the touch while we look
            parent_order, take_profit_order, stop_loss_order = ib.bracketOrder(
                "BUY", 100, limitPrice=round(ask + 1, 2), takeProfitPrice=round(ask + 30, 2),
                stopLossPrice=round(bid - 30, 2))
            parent = ib.placeOrder(aapl, parent_order)
            take_profit = ib.placeOrder(aapl, take_profit_order)
            stop_loss = ib.placeOrder(aapl, stop_loss_order)
            await _done(parent)
            assert parent.orderStatus.status == "Filled"
            await wait_for(lambda: take_profit.orderStatus.status == "Submitted", what="take profit live")
            await wait_for(lambda: stop_loss.orderStatus.status == "Submitted", what="stop loss live")
            take_profit.order.lmtPrice = round(bid - 1, 2)  # make the take profit marketable
            ib.placeOrder(aapl, take_profit.order)
            await _done(take_profit)
            await _done(stop_loss)
            assert take_profit.orderStatus.status == "Filled"
            assert stop_loss.orderStatus.status == "Cancelled" and not stop_loss.fills
            assert server.account.holdings[aapl.conId].quantity == 0
            ib.disconnect()

    asyncio.run(scenario())


def test_oca_group_cancels_the_others_on_a_fill() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            bid, ask = _touch(server, aapl.conId)
            orders = [LimitOrder("BUY", 5, round(bid - 10 - i, 2)) for i in range(3)]
            trades = [ib.placeOrder(aapl, o) for o in ib.oneCancelsAll(orders, "grp-1", 1)]
            await wait_for(lambda: all(t.orderStatus.status == "Submitted" for t in trades), what="all live")
            trades[0].order.lmtPrice = round(ask + 5, 2)
            ib.placeOrder(aapl, trades[0].order)
            for trade in trades:
                await _done(trade)
            assert [t.orderStatus.status for t in trades] == ["Filled", "Cancelled", "Cancelled"]
            ib.disconnect()

    asyncio.run(scenario())


def test_rejections_carry_ib_codes() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: dict[int, int] = {}
            ib.errorEvent += lambda req_id, code, *_: errors.setdefault(req_id, code)
            aapl = await _aapl(ib)
            server.reject_next_orders(1)
            refused = await _done(ib.placeOrder(aapl, MarketOrder("BUY", 1)))
            accepted = await _done(ib.placeOrder(aapl, MarketOrder("BUY", 1)))
            off_tick = await _done(ib.placeOrder(aapl, LimitOrder("BUY", 1, 100.005)))
            unknown = await _done(ib.placeOrder(Stock("NOPE", "SMART", "USD", conId=1), MarketOrder("BUY", 1)))
            assert refused.orderStatus.status == "Cancelled" and errors[refused.order.orderId] == 201
            assert accepted.orderStatus.status == "Filled"
            assert errors[off_tick.order.orderId] == 110 and off_tick.orderStatus.status == "Cancelled"
            assert errors[unknown.order.orderId] == 200
            ib.disconnect()

    asyncio.run(scenario())


def test_orders_survive_a_reconnect_and_are_listed_everywhere() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 3)
            aapl = await _aapl(ib)
            bid, _ = _touch(server, aapl.conId)
            filled = await _done(ib.placeOrder(aapl, MarketOrder("BUY", 10)))
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 10, round(bid - 20, 2), orderRef="keep"))
            await wait_for(lambda: resting.orderStatus.status == "Submitted", what="submitted")
            ib.disconnect()
            await wait_for(lambda: 3 not in server.sessions, what="disconnected")

            again = await connect(server, 3)
            [open_trade] = again.openTrades()
            assert open_trade.order.orderId == resting.order.orderId and open_trade.order.orderRef == "keep"
            assert open_trade.order.permId == resting.order.permId
            fills = await again.reqExecutionsAsync()
            assert [f.execution.execId for f in fills] == [filled.fills[0].execution.execId]
            assert again.client.getReqId() > resting.order.orderId

            other = await connect(server, 4)
            every = await other.reqAllOpenOrdersAsync()
            assert [t.order.permId for t in every] == [resting.order.permId]
            completed = await other.reqCompletedOrdersAsync(False)
            assert filled.order.permId in [t.order.permId for t in completed]

            other.reqGlobalCancel()
            await wait_for(lambda: not server.engine.open_orders(), what="global cancel")
            await wait_for(lambda: not again.openTrades(), what="client 3 told")
            again.disconnect()
            other.disconnect()

    asyncio.run(scenario())


def test_round_trip_books_realized_pnl_and_account_values() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            aapl = await _aapl(ib)
            buy = await _done(ib.placeOrder(aapl, MarketOrder("BUY", 100)))
            sell = await _done(ib.placeOrder(aapl, MarketOrder("SELL", 100)))
            report = sell.fills[-1].commissionReport
            expected = (sell.orderStatus.avgFillPrice - buy.orderStatus.avgFillPrice) * 100 - 2.0
            await wait_for(lambda: sell.fills[-1].commissionReport.realizedPNL != 0, what="commission report")
            assert abs(report.realizedPNL - expected) < 1e-6
            summary = await ib.accountSummaryAsync()
            tags = {v.tag: v.value for v in summary if v.currency in ("USD", "")}
            assert Decimal(tags["NetLiquidation"]) == Decimal(tags["TotalCashValue"])  # flat again
            assert Decimal(tags["NetLiquidation"]) == Decimal(1_000_000) + server.account.realized_pnl
            realized = server.account.realized_pnl.quantize(Decimal("0.01"))

            def pushed_realized() -> bool:
                values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
                return Decimal(values.get("RealizedPnL", "nan")) == realized

            await wait_for(pushed_realized, what="account values pushed after the fills")
            ib.disconnect()

    asyncio.run(scenario())
