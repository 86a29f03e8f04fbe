"""The engine's order book: history oldest first, live indexes that drop done orders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from trader.domain import Action, Order, OrderStatus, OrderType
from trader.sim.catalogue import SimInstrument
from trader.sim.order_book import OrderBook
from trader.sim.orders import OrderTicket, SimOrder

_T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def sim(
    inst: SimInstrument, order_id: int, perm_id: int, *, client_id: int = 1, parent_id: int = 0
) -> SimOrder:
    ticket = OrderTicket(client_id=client_id, order_id=order_id, instrument=inst, action=Action.BUY,
                         quantity=D(1), order_type=OrderType.MKT, parent_id=parent_id)
    order = Order(f"{client_id}:{order_id}", inst.contract, Action.BUY, D(1), created_at=_T0)
    return SimOrder(ticket=ticket, order=order, perm_id=perm_id)


def cancel(book: OrderBook, order: SimOrder) -> None:
    order.order.transition(OrderStatus.CANCELLED, _T0)
    book.retire(order)


def test_history_and_live_indexes_keep_perm_order(aapl: SimInstrument, es: SimInstrument) -> None:
    book = OrderBook()
    a, b, c = sim(aapl, 5, 1), sim(es, 2, 2, client_id=2), sim(aapl, 3, 3)
    for order in (a, b, c):
        book.add(order)
    assert list(book) == [a, b, c] and len(book) == 3
    assert book.of_client(1) == [a, c] and book.of_client(9) == []
    assert book.live() == [a, b, c] and book.live_on(aapl.conid) == [a, c] and book.live_on(1) == []
    assert book.get((2, 2)) is b and book.get((1, 2)) is None
    assert book.last_order_id(1) == 5 and book.last_order_id(9) == 0


def test_retire_drops_only_done_orders_from_the_live_indexes(aapl: SimInstrument) -> None:
    book = OrderBook()
    a, b = sim(aapl, 1, 1), sim(aapl, 2, 2)
    book.add(a)
    book.add(b)
    book.retire(a)  # not done: stays live
    assert book.live_count == 2
    cancel(book, a)
    assert book.live() == [b] and book.live_on(aapl.conid) == [b] and book.live_count == 1
    assert list(book) == [a, b] and book.get((1, 1)) is a


def test_children_follow_a_reparented_order_and_come_oldest_first(aapl: SimInstrument) -> None:
    book = OrderBook()
    p1, p2 = sim(aapl, 1, 1), sim(aapl, 2, 2)
    older = sim(aapl, 3, 3, parent_id=1)
    younger = sim(aapl, 4, 4, parent_id=2)
    for order in (p1, p2, older, younger):
        book.add(order)
    assert book.children(1, 1) == [older] and book.children(1, 2) == [younger]
    assert book.children(2, 1) == []
    older.ticket = replace(older.ticket, parent_id=2)
    book.reparent(older, 1)
    assert book.children(1, 1) == [] and book.children(1, 2) == [older, younger]
    cancel(book, older)
    assert book.children(1, 2) == [older, younger]  # done children stay: a bracket is small


def test_add_refuses_a_known_key_or_a_perm_id_out_of_order(aapl: SimInstrument) -> None:
    book = OrderBook()
    book.add(sim(aapl, 1, 10))
    with pytest.raises(ValueError, match="already"):
        book.add(sim(aapl, 1, 11))
    with pytest.raises(ValueError, match="perm id"):
        book.add(sim(aapl, 2, 10))
