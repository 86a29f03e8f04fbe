"""The desk without I/O, through the broker seam: exposure from the book and the broker's totals; fills booked."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis.asyncio

from tests.trading.broker_double import BrokerDouble
from trader.brokers.records import ContractDetails, OrderReport, Quote
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
from trader.errors import ValidationError
from trader.trading.book import Book
from trader.trading.desk import Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.recorder import Recorder
from trader.trading.risk import RiskGate
from trader.trading.working import Working

AAPL = Contract("AAPL", primary_exchange="NASDAQ", conid=265598)


@pytest.fixture
def broker() -> BrokerDouble:
    return BrokerDouble()


def desk_for(broker: BrokerDouble, book: Book) -> Desk:
    journal = Journal(redis.asyncio.Redis(port=1), "unused")  # exposure() and on_fill never append
    return Desk(broker, Resolver(broker), book, Recorder(journal, lambda _topic, _payload: None),
                RiskGate(RiskSettings(), lambda: datetime.now(UTC)))


def test_exposure_combines_working_orders_broker_positions_and_the_day_pnl(broker: BrokerDouble) -> None:
    book = Book()
    desk = desk_for(broker, book)
    book.put_order(Order("b1", AAPL, Action.BUY, Decimal(10), status=OrderStatus.SUBMITTED))
    book.put_order(Order("s1", AAPL, Action.SELL, Decimal(4), status=OrderStatus.SUBMITTED))
    broker.held_positions = [Position("DU1", AAPL, Decimal(100), Decimal(150))]
    broker.held_portfolio = [Position("DU1", AAPL, Decimal(100), Decimal(150), market_value=Decimal(15100))]
    broker.portfolio_updates.on_next(broker.held_portfolio[0])
    for tag, value in (("NetLiquidation", "100000.00"), ("UnrealizedPnL", "100.00"), ("RealizedPnL", "0.00")):
        broker.account_updates.on_next(AccountValue("DU1", tag, value, "USD"))
    desk.pnl_baseline = Decimal(40)
    exposure = desk.exposure()
    assert exposure.positions == {"AAPL.STK": Decimal(100)}
    assert exposure.working == {"AAPL.STK": Working(buy=Decimal(10), sell=Decimal(4))}
    assert (exposure.gross_exposure, exposure.daily_pnl) == (Decimal(15100), Decimal(60))
    order = book.order("b1")
    order.transition(OrderStatus.CANCELLED)
    book.put_order(order)
    assert desk.exposure().working == {"AAPL.STK": Working(sell=Decimal(4))}
    assert exposure.working["AAPL.STK"].buy == Decimal(10)  # an Exposure is a snapshot, not a live view
    assert desk.exposure(excluding="s1").working == {}


def fill(exec_id: str, coid: str | None, *, perm_id: int, broker_order_id: int | None) -> Fill:
    return Fill(exec_id, coid, AAPL, Action.BUY, Decimal(1), Decimal(150), datetime.now(UTC),
                commission=Decimal(1), broker_order_id=broker_order_id, perm_id=perm_id)


def test_fills_are_booked_by_their_client_order_id_or_else_by_broker_ids(broker: BrokerDouble) -> None:
    # IB reports the day's executions while the connection is made, before the re-sync adopts the
    # order the service died too early to journal: the fill still carries the id its orderRef gave.
    book = Book()
    desk_for(broker, book)
    broker.fills.on_next(fill("e1", "c3", perm_id=99, broker_order_id=7))
    book.put_order(Order("c4", AAPL, Action.BUY, Decimal(5), status=OrderStatus.SUBMITTED, broker_order_id=8,
                         perm_id=100))
    broker.fills.on_next(fill("e2", None, perm_id=100, broker_order_id=8))  # the reference lost: ids find it
    broker.fills.on_next(fill("e3", None, perm_id=101, broker_order_id=None))  # placed in TWS by hand
    broker.fills.on_next(fill("e1", "c3", perm_id=99, broker_order_id=7))  # seen before: ignored
    assert [(f.exec_id, f.client_order_id) for f in book.fills()] == [("e1", "c3"), ("e2", "c4"), ("e3", None)]
    assert book.order("c4").filled_quantity == Decimal(1)


def report(coid: str | None, status: OrderStatus | None, *, filled: int = 0, avg: str | None = None,
           broker_order_id: int | None = 7, perm_id: int | None = 99, reason: str = "",
           text: str = "Submitted") -> OrderReport:
    return OrderReport(coid, f"manual#{coid}" if coid else "", broker_order_id, perm_id, status, text,
                       Decimal(filled), Decimal(10 - filled), None if avg is None else Decimal(avg), reason)


def test_status_reports_move_the_booked_order(broker: BrokerDouble) -> None:
    book = Book()
    desk = desk_for(broker, book)
    book.put_order(Order("c1", AAPL, Action.BUY, Decimal(10), broker_order_id=7))
    broker.order_updates.on_next(report("c1", OrderStatus.SUBMITTED))
    assert (book.order("c1").status, book.order("c1").perm_id) == (OrderStatus.SUBMITTED, 99)
    broker.order_updates.on_next(report("c1", OrderStatus.PARTIALLY_FILLED, filled=4, avg="150.5"))
    c1 = book.order("c1")
    assert (c1.status, c1.filled_quantity, c1.avg_fill_price) == (OrderStatus.PARTIALLY_FILLED, 4, Decimal("150.5"))
    broker.order_updates.on_next(report("c1", None, filled=4, avg="150.5", text="ApiUpdate"))  # unknown: logged
    assert book.order("c1").status is OrderStatus.PARTIALLY_FILLED
    # no reference of ours (lost, or a status IB sends bare): the broker's ids find the order
    broker.order_updates.on_next(report(None, OrderStatus.CANCELLED, filled=4, avg="150.5", reason="Cancelled by you"))
    assert book.order("c1").status is OrderStatus.CANCELLED and desk.result("c1")["reason"] == "Cancelled by you"
    broker.order_updates.on_next(report(None, OrderStatus.FILLED, broker_order_id=70, perm_id=990))  # not ours
    assert [o.client_order_id for o in book.orders()] == ["c1"] and desk.recorder.pending == 3


def priced_desk(broker: BrokerDouble, book: Book) -> Desk:
    """Return a synced desk whose broker knows AAPL (tick 0.01) and quotes it 229.10 / 229.14."""
    broker.details["AAPL"] = [ContractDetails(AAPL, Decimal("0.01"), Decimal(1))]
    broker.quotes[AAPL.key] = Quote(Decimal("229.10"), Decimal("229.14"), None)
    desk = desk_for(broker, book)
    desk.synced = True
    return desk


def test_an_off_tick_price_is_refused_by_the_desk_with_the_nearest_prices_and_nothing_is_sent(
        broker: BrokerDouble) -> None:
    asyncio.run(_off_tick_refused(broker))


async def _off_tick_refused(broker: BrokerDouble) -> None:
    book = Book()
    desk = priced_desk(broker, book)
    with pytest.raises(ValidationError, match="limit price 229.123 is not a multiple of AAPL.STK's tick 0.01: "
                                              "use 229.12 or 229.13, or --round"):
        await desk.place({"symbol": "AAPL", "action": "BUY", "quantity": 1, "limit_price": "229.123",
                          "client_order_id": "off"})
    assert broker.sent == [] and book.get("off") is None
    book.put_order(Order("w1", AAPL, Action.BUY, Decimal(1), OrderType.LMT, limit_price=Decimal("229.00"),
                         status=OrderStatus.SUBMITTED, broker_order_id=5))
    broker.handles["w1"] = 5
    with pytest.raises(ValidationError, match="stop price 229.001 is not a multiple of AAPL.STK's tick 0.01"):
        await desk.modify("w1", stop_price="229.001")
    with pytest.raises(ValidationError, match="limit price 228.999 .* use 228.99 or 229.00"):
        await desk.modify("w1", limit_price="228.999")
    assert broker.modified == [] and book.order("w1").limit_price == Decimal("229.00")


def test_a_what_if_order_reports_the_broker_preview_and_the_risk_verdict_and_sends_nothing(
        broker: BrokerDouble) -> None:
    asyncio.run(_what_if(broker))


async def _what_if(broker: BrokerDouble) -> None:
    book = Book()
    desk = priced_desk(broker, book)
    desk.risk.update(RiskSettings(max_order_quantity=Decimal(50)))
    small = await desk.what_if({"symbol": "AAPL", "action": "BUY", "quantity": 10, "limit_price": "229.10",
                                "stop_loss_percent": "1"})
    assert small["risk"] == {"passed": True, "limit": None, "message": ""}
    assert small["broker"] == dataclasses.asdict(broker.preview) and small["order"].limit_price == Decimal("229.10")
    assert [c.stop_price for c in small["children"]] == [Decimal("226.80")]  # 226.809: a sell stop goes down
    assert [(r["field"], r["sent"]) for r in small["rounded"]] == [("stop_price", Decimal("226.80"))]
    big = await desk.what_if({"symbol": "AAPL", "action": "SELL", "quantity": 100, "client_order_id": "big"})
    assert not big["risk"]["passed"] and big["risk"]["limit"] == "max_order_quantity"
    assert big["risk"]["client_order_id"] == "big" and "exceeds 50" in big["risk"]["message"]
    assert [o.quantity for o in broker.what_ifs] == [Decimal(10), Decimal(100)]  # the entries only
    assert broker.sent == [] and len(book) == 0 and desk.recorder.pending == 0
    assert desk.risk.orders_last_minute() == 0
    with pytest.raises(ValidationError, match="use 229.12 or 229.13"):
        await desk.what_if({"symbol": "AAPL", "action": "BUY", "quantity": 1, "limit_price": "229.123"})
