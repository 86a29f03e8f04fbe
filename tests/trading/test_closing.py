"""The closer through the broker seam: checks before cancels, a close sized after them, per account, as confirmed.

A broker double that answers like IB (a status report and an execution for a
market order, a Cancelled, or a Filled, for a cancel), a real redis-server for
the journal. Each scenario is one the merged close got wrong: a take-profit
that fills during its cancel, IB's position message arriving after the Filled
status, a strategy whose fills say more than the account holds, a close refused
after the stops were cancelled, a plan that changed after it was confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio

from tests.conftest import RedisServer
from tests.trading.broker_double import BrokerDouble
from trader.brokers.records import ContractDetails, ContractQuery, OrderReport, Quote
from trader.config import RiskSettings
from trader.domain import (
    AccountValue,
    Action,
    Contract,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
)
from trader.errors import Conflict, NotFound, RiskLimitExceeded, Unavailable
from trader.trading.book import Book
from trader.trading.closing import Closer
from trader.trading.desk import Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.recorder import Recorder
from trader.trading.risk import RiskGate

AAPL = Contract("AAPL", primary_exchange="NASDAQ", conid=265598)
AAPL_C230 = Contract("AAPL", "OPT", expiry="20261218", strike=Decimal(230), right="C", multiplier=Decimal(100))
D = Decimal


class AnsweringBroker(BrokerDouble):
    """A broker double that fills market orders and answers cancels, as IB does, on the next loop turn."""

    def __init__(self) -> None:
        super().__init__()
        self.fill_on_cancel: dict[str, Decimal] = {}  # order id -> what it fills instead of being cancelled
        self.refuse_sends = False
        self.orders_by_id: dict[str, Order] = {}
        self._execs = 0

    def report(self, order: Order, status: OrderStatus, filled: Decimal, execution: bool = True) -> None:
        self.order_updates.on_next(OrderReport(
            order.client_order_id, f"{order.order_ref}#{order.client_order_id}", order.broker_order_id, None,
            status, str(status), filled, order.quantity - filled, D(230) if filled else None, ""))
        if filled and execution:
            self._execs += 1
            self.fills.on_next(Fill(f"x{self._execs}", order.client_order_id, order.contract, order.action, filled,
                                    D(230), datetime.now(UTC), commission=D(1), account=order.account))

    def place_orders(self, orders: Sequence[Order]) -> None:
        if self.refuse_sends:
            raise Unavailable("connection lost while sending")
        super().place_orders(orders)
        loop = asyncio.get_running_loop()
        for order in orders:
            self.orders_by_id[order.client_order_id] = order
            if order.order_type is OrderType.MKT:
                loop.call_soon(self.report, order, OrderStatus.FILLED, order.quantity)
            else:
                loop.call_soon(self.report, order, OrderStatus.SUBMITTED, D(0))

    def cancel_order(self, client_order_id: str) -> None:
        super().cancel_order(client_order_id)
        order = self.orders_by_id[client_order_id]
        filled = self.fill_on_cancel.get(client_order_id)
        if filled == order.quantity:
            self.report(order, OrderStatus.FILLED, filled)
        else:
            if filled:
                self.report(order, OrderStatus.PARTIALLY_FILLED, filled)
            self.report(order, OrderStatus.CANCELLED, filled or D(0), execution=False)

    async def contract_details(self, query: ContractQuery) -> list[ContractDetails]:
        if query.right:  # an option asked for by strike and right
            return [ContractDetails(AAPL_C230, D("0.01"), D(1))]
        return await super().contract_details(query)


@contextlib.asynccontextmanager
async def closer_on(redis_server: RedisServer) -> AsyncIterator[Closer]:
    """Yield a closer over a synced desk on the answering broker (DU1 the default of DU1, DU2), journalling to Redis."""
    broker = AnsweringBroker()
    broker.held_values = [AccountValue("DU1", "NetLiquidation", "100000", "USD"),
                          AccountValue("DU2", "NetLiquidation", "100000", "USD")]
    broker.details["AAPL"] = [ContractDetails(AAPL, D("0.01"), D(1))]
    broker.quotes[AAPL.key] = Quote(D("229.98"), D("230.02"), None)
    broker.quotes[AAPL_C230.key] = Quote(D("4.10"), D("4.20"), None)
    client = redis.asyncio.Redis(port=redis_server.port)
    recorder = Recorder(Journal(client, "journal"), lambda _topic, _payload: None)
    recorder.start()
    desk = Desk(broker, Resolver(broker), Book(), recorder, RiskGate(RiskSettings(), lambda: datetime.now(UTC)),
                account="DU1", ack_timeout=2.0)
    desk.synced = True
    try:
        yield Closer(desk)
    finally:
        await recorder.stop()
        await client.aclose()


def run(redis_server: RedisServer, scenario: Callable[[Closer], Awaitable[None]]) -> None:
    async def go() -> None:
        async with closer_on(redis_server) as closer:
            await scenario(closer)

    asyncio.run(go())


def broker_of(closer: Closer) -> AnsweringBroker:
    assert isinstance(closer.desk.adapter, AnsweringBroker)
    return closer.desk.adapter


def hold(closer: Closer, quantity: int, account: str = "DU1") -> None:
    broker_of(closer).held_positions = [Position(account, AAPL, D(quantity), D(200))]


async def long_with_bracket(closer: Closer) -> None:
    """Hold 100 AAPL in DU1, bought by a bracket whose stop-loss and take-profit (at the touch) are working."""
    placed = await closer.desk.place({"symbol": "AAPL", "action": "BUY", "quantity": 100, "client_order_id": "e",
                                      "stop_loss": "200", "take_profit": "230.05", "account": "DU1"})
    assert placed["order"].status is OrderStatus.FILLED
    await until(lambda: all(closer.desk.book.order(c).status is OrderStatus.SUBMITTED for c in ("e.sl", "e.tp")))
    hold(closer, 100)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


def closing_orders(closer: Closer) -> list[Order]:
    return [o for o in broker_of(closer).sent if o.client_order_id not in ("e", "e.sl", "e.tp", "s")]


def test_a_take_profit_that_fills_during_its_cancel_leaves_nothing_to_sell(redis_server: RedisServer) -> None:
    run(redis_server, _a_take_profit_that_fills_during_its_cancel_leaves_nothing_to_sell)


async def _a_take_profit_that_fills_during_its_cancel_leaves_nothing_to_sell(closer: Closer) -> None:
    await long_with_bracket(closer)
    broker_of(closer).fill_on_cancel["e.tp"] = D(100)  # at the touch: it fills instead of cancelling
    reply = await closer.close("AAPL")
    assert closing_orders(closer) == []  # the plan's SELL 100 would have gone short 100
    assert reply["flat"] == [{"key": AAPL.key, "filled_while_cancelling": D(-100)}] and reply["errors"] == []
    assert await closer.plan("AAPL") == []  # though IB has not reported the position yet: it still says 100


def test_a_part_fill_during_the_cancels_is_taken_off_the_closing_order(redis_server: RedisServer) -> None:
    run(redis_server, _a_part_fill_during_the_cancels_is_taken_off_the_closing_order)


async def _a_part_fill_during_the_cancels_is_taken_off_the_closing_order(closer: Closer) -> None:
    await long_with_bracket(closer)
    broker_of(closer).fill_on_cancel["e.tp"] = D(40)
    reply = await closer.close("AAPL")
    (sent,) = closing_orders(closer)
    assert (sent.action, sent.quantity) == (Action.SELL, D(60))
    assert reply["orders"][0]["order"].status is OrderStatus.FILLED


def test_the_next_close_does_not_read_a_position_ib_has_not_updated_yet(redis_server: RedisServer) -> None:
    run(redis_server, _the_next_close_does_not_read_a_position_ib_has_not_updated_yet)


async def _the_next_close_does_not_read_a_position_ib_has_not_updated_yet(closer: Closer) -> None:
    hold(closer, 100)
    first = await closer.close("AAPL")
    assert [o["order"].quantity for o in first["orders"]] == [D(100)]
    # IB's position message has not come yet: the broker still says 100
    assert await closer.plan("AAPL") == []
    again = await closer.close("AAPL")
    assert again["orders"] == [] and len(closing_orders(closer)) == 1
    hold(closer, -5)  # the broker's number moved (another trade): it is the truth again
    (plan,) = await closer.plan("AAPL")
    assert plan.held == D(-5)


def test_a_strategys_close_is_capped_at_what_the_account_holds(redis_server: RedisServer) -> None:
    run(redis_server, _a_strategys_close_is_capped_at_what_the_account_holds)


async def _a_strategys_close_is_capped_at_what_the_account_holds(closer: Closer) -> None:
    placed = await closer.desk.place({"symbol": "AAPL", "action": "BUY", "quantity": 100, "client_order_id": "s",
                                      "strategy": "s1", "account": "DU1"})
    await until(lambda: closer.desk.book.fills("s"))
    assert placed["order"].status is OrderStatus.FILLED
    hold(closer, 40)  # an account-level close (booked as "manual") sold 60 of them
    (plan,) = await closer.plan("AAPL", strategy="s1")
    assert (plan.held, plan.quantity) == (D(100), D(40)) and "capped at the account's 40" in plan.describe()["note"]
    assert await closer.plan("AAPL", strategy="s1", account="DU2") == []  # held per account
    hold(closer, 0, "DU1")
    refused = await closer.close("AAPL", strategy="s1")
    assert closing_orders(closer) == [] and "would open a position" in refused["errors"][0]["error"]["message"]
    hold(closer, 40)
    closed = await closer.close("AAPL", strategy="s1")
    assert [(o["order"].action, o["order"].quantity) for o in closed["orders"]] == [(Action.SELL, D(40))]


def test_a_close_the_risk_gate_refuses_cancels_nothing(redis_server: RedisServer) -> None:
    run(redis_server, _a_close_the_risk_gate_refuses_cancels_nothing)


async def _a_close_the_risk_gate_refuses_cancels_nothing(closer: Closer) -> None:
    await long_with_bracket(closer)
    closer.desk.risk.update(RiskSettings(blocked=["AAPL"]))
    reply = await closer.close("AAPL")
    assert broker_of(closer).cancelled == [] and closing_orders(closer) == []
    assert reply["errors"][0]["error"]["code"] == RiskLimitExceeded.code
    assert "nothing was cancelled" in reply["errors"][0]["error"]["message"] and reply["unprotected"] == []
    assert all(closer.desk.book.order(c).status is OrderStatus.SUBMITTED for c in ("e.sl", "e.tp"))


def test_a_send_that_fails_after_the_cancels_says_the_position_is_unprotected(redis_server: RedisServer) -> None:
    run(redis_server, _a_send_that_fails_after_the_cancels_says_the_position_is_unprotected)


async def _a_send_that_fails_after_the_cancels_says_the_position_is_unprotected(closer: Closer) -> None:
    await long_with_bracket(closer)
    broker_of(closer).refuse_sends = True
    reply = await closer.close("AAPL")
    assert reply["unprotected"] == [{"key": AAPL.key, "cancelled": ["e.sl", "e.tp"]}]
    assert "it has no stop now" in reply["errors"][0]["error"]["message"]


def test_the_close_carried_out_is_the_one_confirmed(redis_server: RedisServer) -> None:
    run(redis_server, _the_close_carried_out_is_the_one_confirmed)


async def _the_close_carried_out_is_the_one_confirmed(closer: Closer) -> None:
    await long_with_bracket(closer)
    with pytest.raises(Conflict, match="changed since the close was confirmed"):
        await closer.close("AAPL", confirmed={AAPL.key: "50"})
    assert broker_of(closer).cancelled == [] and closing_orders(closer) == []
    reply = await closer.close("AAPL", confirmed={AAPL.key: "100"})
    assert [o["order"].quantity for o in reply["orders"]] == [D(100)]


def test_what_if_and_place_build_the_same_order_for_the_account_and_contract_named(redis_server: RedisServer) -> None:
    run(redis_server, _what_if_and_place_build_the_same_order_for_the_account_and_contract_named)


async def _what_if_and_place_build_the_same_order_for_the_account_and_contract_named(closer: Closer) -> None:
    desk = closer.desk
    option = await desk.what_if({"symbol": "AAPL", "action": "BUY", "quantity": 1, "expiry": "20261218",
                                 "strike": "230", "right": "C", "account": "DU2"})
    assert option["order"].contract == AAPL_C230 and option["order"].account == "DU2"
    assert broker_of(closer).what_ifs[-1].account == "DU2"
    for call in (desk.what_if, desk.place):
        with pytest.raises(NotFound, match="unknown account 'BOGUS'"):
            await call({"symbol": "AAPL", "action": "BUY", "quantity": 1, "account": "BOGUS"})
    assert broker_of(closer).sent == []
