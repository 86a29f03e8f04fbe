"""Reconciliation: the book brought to the broker's truth (``reconcile_book``), and with the broker's view (``reconcile``)."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from tests.trading.broker_double import BrokerDouble
from tests.trading.test_book import MSFT, S, assert_same, make_fill, make_order, replay, snap
from trader.brokers.records import OrderReport
from trader.domain import Action, Fill, Order, OrderStatus, OrderType
from trader.messaging import codec
from trader.trading.book import Book, never_sent
from trader.trading.reconcile import (
    BrokerOrder,
    BrokerState,
    Difference,
    journal_entries,
    position_differences,
    reconcile,
    reconcile_book,
)


def state(orders: list[BrokerOrder] = (), fills: list[Fill] = (),  # type: ignore[assignment]
          positions: dict[str, Decimal] | None = None, complete: bool = True) -> BrokerState:
    return BrokerState({o.broker_order_id: o for o in orders}, list(fills), positions or {},
                       complete)


# --- reconcile --------------------------------------------------------------------


def working(cid: str, bid: int | None, *, minute: int = 0, **kwargs: Any) -> Order:
    kwargs.setdefault("status", S.SUBMITTED)
    return make_order(cid, 10, minute=minute, broker_order_id=bid, **kwargs)


def test_reconcile_brings_orders_to_the_broker_even_against_the_transition_table() -> None:
    book = Book()
    book.put_order(working("a", 1, status=S.PARTIALLY_FILLED, filled_quantity=Decimal(4),
                           avg_fill_price=Decimal(10)))
    book.put_order(working("b", 2, minute=1))
    broker = state([BrokerOrder(1, 101, S.SUBMITTED, Decimal(4), Decimal(10)),
                    BrokerOrder(2, 102, S.FILLED, Decimal(10), Decimal("9.5"))])
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key, d.book, d.broker, d.action) for d in diffs] == [
        ("status", "a", S.PARTIALLY_FILLED, S.SUBMITTED, "updated the book"),
        ("perm_id", "a", None, 101, "updated the book"),
        ("status", "b", S.SUBMITTED, S.FILLED, "updated the book"),
        ("filled", "b", Decimal(0), Decimal(10), "updated the book"),
        ("avg_fill_price", "b", None, Decimal("9.5"), "updated the book"),
        ("perm_id", "b", None, 102, "updated the book"),
    ]
    a, b = book.order("a"), book.order("b")
    assert (a.status, a.perm_id, a.filled_quantity) == (S.SUBMITTED, 101, Decimal(4))
    assert (b.status, b.filled_quantity, b.avg_fill_price) == (S.FILLED, 10, Decimal("9.5"))
    assert book.find(perm_id=102) is b
    assert reconcile_book(book, broker) == []


def test_reconcile_never_sent_orders() -> None:
    book = Book()
    book.put_order(working("gone", 5))
    book.put_order(working("pending", None, status=S.PENDING_SUBMIT, minute=1))
    book.put_order(working("done", 6, status=S.CANCELLED, minute=2))  # terminal: left alone
    diffs = reconcile_book(book, state())
    assert [(d.kind, d.key, d.book, d.broker, d.action) for d in diffs] == [
        ("never_sent", "gone", {"status": S.SUBMITTED, "broker_order_id": 5}, None,
         "marked REJECTED"),
        ("never_sent", "pending", {"status": S.PENDING_SUBMIT, "broker_order_id": None}, None,
         "marked REJECTED"),
    ]
    gone = book.order("gone")
    assert (gone.status, gone.broker_order_id) == (S.REJECTED, None)
    assert book.find(broker_order_id=5) is None  # the id may be reused
    assert book.order("pending").status is S.REJECTED
    assert book.order("done").status is S.CANCELLED
    assert reconcile_book(book, state()) == []


def test_reconcile_incomplete_broker_state_is_no_proof() -> None:
    book = Book()
    book.put_order(working("a", 5))
    book.put_order(working("p", None, status=S.PENDING_SUBMIT, minute=1))
    diffs = reconcile_book(book, state(complete=False))
    assert [(d.kind, d.key) for d in diffs] == [("never_sent", "p")]
    assert book.order("a").status is S.SUBMITTED and book.order("a").broker_order_id == 5


def test_reconcile_treats_a_reused_broker_id_with_another_perm_id_as_not_ours() -> None:
    book = Book()
    book.put_order(working("old", 5, perm_id=500))
    broker = state([BrokerOrder(5, 999, S.SUBMITTED, Decimal(0), None)])
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key, d.action) for d in diffs] == [
        ("never_sent", "old", "marked REJECTED"),
        ("unknown_order", "5", "reported only"),
    ]
    assert reconcile_book(book, broker) == []


def test_reconcile_adds_missing_fills_by_broker_id_or_perm_id() -> None:
    book = Book()
    book.put_order(working("a", 1, perm_id=101))
    book.put_order(working("b", 2, perm_id=102, minute=1))
    book.add_fill(make_fill("known", "a", 4, "10", broker_order_id=1))
    by_id = make_fill("x1", None, 6, "11", minute=3, broker_order_id=1)
    by_perm = make_fill("x2", None, 10, "12", minute=2, perm_id=102)
    orphan = make_fill("x3", None, 1, "13", minute=4, broker_order_id=77)
    broker = state(
        [BrokerOrder(1, 101, S.FILLED, Decimal(10), Decimal("10.6")),
         BrokerOrder(2, 102, S.FILLED, Decimal(10), Decimal(12)),
         BrokerOrder(77, 7700, S.FILLED, Decimal(1), Decimal(13))],
        [make_fill("known", None, 4, "10", broker_order_id=1), by_id, by_perm, orphan],
    )
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key, d.action) for d in diffs] == [
        ("status", "a", "updated the book"),
        ("filled", "a", "updated the book"),
        ("avg_fill_price", "a", "updated the book"),
        ("status", "b", "updated the book"),
        ("filled", "b", "updated the book"),
        ("avg_fill_price", "b", "updated the book"),
        ("missing_fill", "x2", "added the fill"),
        ("missing_fill", "x1", "added the fill"),
        ("unknown_order", "x3", "reported only"),
        ("unknown_order", "77", "reported only"),
    ]
    assert diffs[6].broker == dataclasses.replace(by_perm, client_order_id="b")
    assert [f.exec_id for f in book.fills("a")] == ["known", "x1"]
    assert [f.exec_id for f in book.fills("b")] == ["x2"]
    assert "x3" not in {f.exec_id for f in book.fills()}
    a = book.order("a")  # the broker's numbers, not doubled by the added fill
    assert (a.status, a.filled_quantity, a.avg_fill_price) == (S.FILLED, 10, Decimal("10.6"))
    assert reconcile_book(book, broker) == []


def test_reconcile_refused_broker_values_are_reported_once() -> None:
    book = Book()
    book.put_order(working("a", 1))
    broker = state([BrokerOrder(1, None, S.FILLED, Decimal(20), Decimal(1))])  # 20 of 10
    diffs = reconcile_book(book, broker)
    assert {(d.kind, d.action) for d in diffs} == {("status", "reported only"),
                                                   ("filled", "reported only"),
                                                   ("avg_fill_price", "reported only")}
    assert book.order("a").status is S.SUBMITTED
    assert reconcile_book(book, broker) == []


def test_position_differences_are_reported_only() -> None:
    book = Book()
    book.add_fill(make_fill("a", None, 100, "150"))
    book.add_fill(make_fill("b", None, 5, "410", contract=MSFT))
    broker = state(positions={"AAPL.STK": Decimal(100), "MSFT.STK": Decimal(15),
                              "IBM.STK": Decimal(-3), "FLAT.STK": Decimal(0)})
    expected = [Difference("position", "IBM.STK", Decimal(0), Decimal(-3), "reported only"),
                Difference("position", "MSFT.STK", Decimal(5), Decimal(15), "reported only")]
    assert position_differences(book, broker) == expected
    assert position_differences(book, broker) == expected  # reported on every call
    assert reconcile_book(book, broker) == []


def test_reconcile_journal_entries_replay_to_the_reconciled_book() -> None:
    entries = [snap(working("a", 1)), snap(working("gone", 2, minute=1)),
               snap(working("p", None, status=S.PENDING_SUBMIT, minute=2))]
    book = replay(entries)
    broker = state([BrokerOrder(1, 101, S.FILLED, Decimal(10), Decimal("10.5")),
                    BrokerOrder(9, None, S.SUBMITTED, Decimal(0), None, order_ref="tws")],
                   [make_fill("x1", None, 10, "10.5", broker_order_id=1),
                    make_fill("x2", None, 1, "1", broker_order_id=9)])
    diffs = reconcile_book(book, broker)
    new = journal_entries(book, diffs)
    assert [e["type"] for e in new] == ["fill", "order", "order", "order", "reconcile"]
    assert [e["order"].client_order_id for e in new if e["type"] == "order"] == \
        ["a", "gone", "p"]
    assert all(e["event"] == "reconciled" and e["reason"] for e in new if e["type"] == "order")
    assert new[-1]["differences"] == [d.to_dict() for d in diffs]
    assert codec.decode(codec.encode(new[-1]))["differences"][-1]["broker"]["order_ref"] == "tws"
    assert_same(replay(entries + new), book)
    assert journal_entries(book, []) == []


def test_reconcile_adopts_an_order_of_ours_the_journal_lacks() -> None:
    # The service died after sending "lost" to the broker and before its journal append was in Redis.
    placed = make_order("lost", order_type=OrderType.LMT, limit_price=Decimal("10.5"), order_ref="demo")
    child = make_order("lost-sl", action=Action.SELL, order_type=OrderType.STP, stop_price=Decimal(9),
                       parent_id="lost", order_ref="demo")
    book = Book()
    book.put_order(working("known", 1))
    broker = state([BrokerOrder(1, 101, S.SUBMITTED, Decimal(0), None),
                    BrokerOrder(5, 105, S.PARTIALLY_FILLED, Decimal(4), Decimal("10.5"), "demo#lost", placed),
                    BrokerOrder(6, 106, S.PRE_SUBMITTED, Decimal(0), None, "demo#lost-sl", child),
                    BrokerOrder(9, None, S.SUBMITTED, Decimal(0), None, order_ref="tws")],
                   [make_fill("x1", "lost", 4, "10.5", broker_order_id=5, perm_id=105)])
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key, d.action) for d in diffs] == [
        ("perm_id", "known", "updated the book"),
        ("adopted", "lost", "added the order"),
        ("adopted", "lost-sl", "added the order"),
        ("missing_fill", "x1", "added the fill"),
        ("unknown_order", "9", "reported only"),
    ]
    lost = book.order("lost")
    assert (lost.status, lost.filled_quantity, lost.avg_fill_price, lost.broker_order_id, lost.perm_id) == \
        (S.PARTIALLY_FILLED, 4, Decimal("10.5"), 5, 105)
    assert (lost.limit_price, lost.order_ref) == (Decimal("10.5"), "demo")
    assert [o.client_order_id for o in book.children("lost")] == ["lost-sl"]
    assert book.order("lost-sl").stop_price == 9
    assert book.positions() == {"AAPL.STK": Decimal(4)}
    assert reconcile_book(book, broker) == []
    entries = journal_entries(book, diffs)
    assert [e["order"].client_order_id for e in entries if e["type"] == "order"] == ["known", "lost", "lost-sl"]
    assert_same(replay([snap(working("known", 1)), *entries]), book)


def test_reconcile_never_adopts_over_an_order_the_book_has() -> None:
    book = Book()
    book.put_order(working("mine", 1, perm_id=101))
    other = make_order("mine", 99)  # the same client id reported under another broker id
    broker = state([BrokerOrder(1, 101, S.SUBMITTED, Decimal(0), None),
                    BrokerOrder(2, 102, S.SUBMITTED, Decimal(0), None, "manual#mine", other)])
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key) for d in diffs] == [("unknown_order", "2")]
    assert book.order("mine").quantity == 10


def test_reconcile_adopts_over_an_order_booked_as_never_sent() -> None:
    # "refused" was refused by the risk gate, "lost" marked never_sent by an earlier reconcile: both are
    # REJECTED without a broker id, so a retry sent them; the service died before journalling that.
    refused = make_order("refused", status=S.REJECTED)
    book = replay([snap(refused, "rejected"), snap(working("lost", None, status=S.REJECTED, minute=1))])
    book.put_order(working("ib-rejected", 3, status=S.REJECTED, minute=2))  # the broker refused it: not ours to replace
    placed = dataclasses.replace(refused, status=S.PENDING_SUBMIT, order_type=OrderType.LMT,
                                 limit_price=Decimal(10))
    retried = dataclasses.replace(placed, client_order_id="lost", quantity=Decimal(10))
    broker = state([BrokerOrder(3, 103, S.REJECTED, Decimal(0), None, "manual#ib-rejected",
                                dataclasses.replace(placed, client_order_id="ib-rejected")),
                    BrokerOrder(7, 107, S.SUBMITTED, Decimal(0), None, "manual#refused", placed),
                    BrokerOrder(8, 108, S.FILLED, Decimal(10), Decimal("9.9"), "manual#lost", retried)],
                   [make_fill("x8", "lost", 10, "9.9", broker_order_id=8, perm_id=108)])
    diffs = reconcile_book(book, broker)
    assert [(d.kind, d.key, d.book, d.action) for d in diffs] == [
        ("adopted", "refused", {"status": S.REJECTED, "broker_order_id": None}, "replaced the order"),
        ("adopted", "lost", {"status": S.REJECTED, "broker_order_id": None}, "replaced the order"),
        ("missing_fill", "x8", None, "added the fill"),
    ]
    r, lost = book.order("refused"), book.order("lost")
    assert (r.status, r.broker_order_id, r.perm_id, r.limit_price) == (S.SUBMITTED, 7, 107, Decimal(10))
    assert (lost.status, lost.filled_quantity, lost.broker_order_id) == (S.FILLED, 10, 8)
    assert book.order("ib-rejected").broker_order_id == 3 and book.order("ib-rejected").quantity == 10
    assert book.positions() == {"AAPL.STK": Decimal(10)}
    assert reconcile_book(book, broker) == []
    entries = journal_entries(book, diffs)
    assert_same(replay([snap(refused, "rejected"), snap(working("lost", None, status=S.REJECTED, minute=1)),
                        snap(working("ib-rejected", 3, status=S.REJECTED, minute=2)), *entries]), book)


def test_reconcile_never_adopts_over_a_never_sent_order_under_another_orders_broker_id() -> None:
    book = Book()
    book.put_order(working("sent", 7, perm_id=107))
    book.put_order(make_order("refused", status=S.REJECTED, minute=1))
    other = make_order("refused")
    broker = state([BrokerOrder(7, 107, S.SUBMITTED, Decimal(0), None, "manual#refused", other)])
    assert reconcile_book(book, broker) == []
    assert book.order("refused").status is S.REJECTED and book.order("sent").broker_order_id == 7


# --- reconcile with IB (trader.trading.reconcile) ---------------------------------------


class FakeRecorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def write(self, entry: dict[str, Any], *_: Any) -> str:
        self.entries.append(entry)
        return "0-1"

    def publish(self, topic: str, payload: Any) -> None:
        pass


def fake_desk(book: Book, reports: list[OrderReport] = (), *, complete: bool = True) -> Any:  # type: ignore[assignment]
    broker = BrokerDouble()
    broker.held_orders, broker.view_complete = list(reports), complete
    return SimpleNamespace(adapter=broker, book=book, synced=False, recorder=FakeRecorder(), unjournalled=[])


def broker_report(order: Order, order_id: int, perm_id: int, status: OrderStatus = S.SUBMITTED) -> OrderReport:
    """An order of ours as the broker lists it: working, nothing filled, the order as placed."""
    at_broker = dataclasses.replace(order, broker_order_id=order_id, perm_id=perm_id)
    return OrderReport(order.client_order_id, f"{order.order_ref}#{order.client_order_id}", order_id, perm_id,
                       status, str(status), Decimal(0), order.quantity, order=at_broker)


def test_a_retry_sent_but_never_journalled_is_adopted_and_no_longer_resendable() -> None:
    # The gate refused "c1"; its retry passed and reached IB; the service died before journalling it.
    refused = make_order("c1", 5, status=S.REJECTED)
    book = replay([snap(refused, "rejected")])
    report = broker_report(make_order("c1", 5, order_type=OrderType.LMT, limit_price=Decimal(10)), 7, 107)
    assert never_sent(book.order("c1")), "a retry may send it"
    desk = fake_desk(book, [report])
    reported = asyncio.run(reconcile(desk))
    assert [(d["kind"], d["key"], d["action"]) for d in reported] == [("adopted", "c1", "replaced the order")]
    c1 = book.order("c1")
    assert (c1.status, c1.broker_order_id, c1.perm_id, c1.limit_price) == (S.SUBMITTED, 7, 107, Decimal(10))
    assert not never_sent(c1), "a retry returns the order the broker has, and sends nothing"
    assert desk.synced
    assert [(e["type"], e.get("event")) for e in desk.recorder.entries] == [("order", "reconciled"),
                                                                             ("reconcile", None)]
    assert_same(replay([snap(refused, "rejected"), *desk.recorder.entries]), book)


def test_never_sent_is_concluded_only_from_a_complete_view_of_the_broker() -> None:
    # IB's completed orders or executions could not be fetched: an order it does not report may have filled.
    book = Book()
    book.put_order(working("w", 5))
    partial = fake_desk(book, complete=False)
    assert asyncio.run(reconcile(partial)) == []
    assert book.order("w").status is S.SUBMITTED and not never_sent(book.order("w"))
    full = fake_desk(book, complete=True)
    assert [(d["kind"], d["key"]) for d in asyncio.run(reconcile(full))] == [("never_sent", "w")]
    assert never_sent(book.order("w")) and book.order("w").status is S.REJECTED


def test_reconcile_takes_the_quantity_and_prices_the_broker_holds() -> None:
    # The journal has a modification IB never got (the service died before sending it) or refused:
    # IB's open order says what is working.
    book = Book()
    lmt = working("lmt", 1, order_type=OrderType.LMT, limit_price=Decimal("10.05"))
    stp = working("stp", 2, action=Action.SELL, order_type=OrderType.STP, stop_price=Decimal(9))
    trail = working("trail", 3, action=Action.SELL, order_type=OrderType.TRAIL, trail_amount=Decimal("0.5"))
    for order in (lmt, stp, trail):
        book.put_order(order)
    at_ib = state([
        BrokerOrder(1, None, S.SUBMITTED, Decimal(0), None, "manual#lmt",
                    dataclasses.replace(lmt, quantity=Decimal(8), limit_price=Decimal("10.00"))),
        BrokerOrder(2, None, S.SUBMITTED, Decimal(0), None, "manual#stp", dataclasses.replace(stp)),
        # a trailing stop moves with the market at the broker: its stop is not the book's to take
        BrokerOrder(3, None, S.SUBMITTED, Decimal(0), None, "manual#trail",
                    dataclasses.replace(trail, stop_price=Decimal("9.75"))),
    ])
    diffs = reconcile_book(book, at_ib)
    assert [(d.kind, d.key, d.book, d.broker) for d in diffs] == [
        ("quantity", "lmt", Decimal(10), Decimal(8)), ("limit_price", "lmt", Decimal("10.05"), Decimal("10.00"))]
    assert (book.order("lmt").quantity, book.order("lmt").limit_price) == (Decimal(8), Decimal("10.00"))
    assert book.working()["AAPL.STK"].buy == Decimal(8)
    assert reconcile_book(book, at_ib) == []
