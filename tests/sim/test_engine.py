"""The matching engine in virtual time: no sockets, quotes and clock set by the test."""

from __future__ import annotations

import itertools
from decimal import Decimal as D
from types import MemberDescriptorType
from typing import cast

import pytest

from tests.sim.conftest import ManualClock
from trader.domain import Action, OrderStatus, OrderType, TimeInForce
from trader.sim.catalogue import SimInstrument
from trader.sim.engine import MatchingEngine
from trader.sim.msgids import ErrorCode
from trader.sim.orders import (
    EngineEvent,
    OrderChanged,
    OrderError,
    OrderFilled,
    OrderTicket,
    Quote,
    SimOrder,
)


def quote(bid: str, ask: str, bid_size: int = 100, ask_size: int = 100) -> Quote:
    return Quote(D(bid), D(ask), D(bid_size), D(ask_size))


def ticket(inst: SimInstrument, order_id: int, action: str = "BUY", qty: int = 100,
           kind: OrderType = OrderType.MKT, client_id: int = 1, **kw: object) -> OrderTicket:
    return OrderTicket(client_id=client_id, order_id=order_id, instrument=inst, action=Action(action),
                       quantity=D(qty), order_type=kind, **kw)  # type: ignore[arg-type]


def fills(events: list[EngineEvent]) -> list[tuple[D, D]]:
    return [(e.execution.shares, e.execution.price) for e in events if isinstance(e, OrderFilled)]


def errors(events: list[EngineEvent]) -> list[int]:
    return [e.code for e in events if isinstance(e, OrderError)]


def test_market_order_fills_at_the_touch_up_to_displayed_size(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=30))
    events = engine.place(ticket(aapl, 1, qty=100))
    assert fills(events) == [(D(30), D("100.01"))]
    order = engine.get(1, 1)
    assert order is not None and order.status is OrderStatus.PARTIALLY_FILLED
    assert [type(e) for e in events] == [OrderChanged, OrderFilled, OrderChanged]
    # the next quotes bring more size; the order is filled in parts, avg price exact
    assert fills(engine.on_quote(aapl.conid, quote("100.01", "100.02", ask_size=50))) == [(D(50), D("100.02"))]
    assert fills(engine.on_quote(aapl.conid, quote("100.02", "100.04", ask_size=50))) == [(D(20), D("100.04"))]
    assert order.status is OrderStatus.FILLED and order.order.filled_quantity == D(100)
    assert order.order.avg_fill_price == (D(30) * D("100.01") + D(50) * D("100.02") + D(20) * D("100.04")) / 100
    assert [e.cum_qty for e in engine.executions] == [D(30), D(80), D(100)]


def test_liquidity_taken_is_gone_until_the_quote_refreshes(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=50))
    assert fills(engine.place(ticket(aapl, 1, qty=40))) == [(D(40), D("100.01"))]
    assert fills(engine.place(ticket(aapl, 2, qty=40))) == [(D(10), D("100.01"))]


def test_limit_order_rests_then_fills_with_price_improvement(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.05"))
    assert fills(engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("100.02")))) == []
    assert engine.get(1, 1).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    assert fills(engine.on_quote(aapl.conid, quote("99.98", "100.03"))) == []
    assert fills(engine.on_quote(aapl.conid, quote("99.97", "99.99"))) == [(D(100), D("99.99"))]


def test_a_partial_fill_modified_down_to_its_filled_quantity_is_filled(
    engine: MatchingEngine, aapl: SimInstrument
) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=40))
    limit = {"kind": OrderType.LMT, "limit_price": D("100.01")}
    assert fills(engine.place(ticket(aapl, 1, qty=100, **limit))) == [(D(40), D("100.01"))]
    engine.place(ticket(aapl, 1, qty=40, **limit))  # down to what already filled
    order = engine.get(1, 1)
    assert order is not None and order.status is OrderStatus.FILLED and order.completed_status == "Filled"
    assert fills(engine.on_quote(aapl.conid, quote("100.00", "100.01"))) == []  # nothing left to match


def test_sell_limit_and_stop_orders(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, "SELL", kind=OrderType.LMT, limit_price=D("100.50")))
    engine.place(ticket(aapl, 2, "SELL", kind=OrderType.STP, stop_price=D("99.50")))
    engine.place(ticket(aapl, 3, "BUY", kind=OrderType.STP_LMT, stop_price=D("100.40"), limit_price=D("100.45")))
    assert fills(engine.on_quote(aapl.conid, quote("100.30", "100.41"))) == [(D(100), D("100.41"))]  # order 3
    assert fills(engine.on_quote(aapl.conid, quote("100.50", "100.52"))) == [(D(100), D("100.50"))]  # order 1
    assert fills(engine.on_quote(aapl.conid, quote("99.60", "99.62"))) == []
    assert fills(engine.on_quote(aapl.conid, quote("99.49", "99.51"))) == [(D(100), D("99.49"))]  # order 2


def test_triggered_stop_limit_waits_for_its_limit(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, "SELL", kind=OrderType.STP_LMT, stop_price=D("99.50"), limit_price=D("99.40")))
    assert fills(engine.on_quote(aapl.conid, quote("99.30", "99.35"))) == []  # triggered, below the limit
    assert engine.get(1, 1).triggered  # type: ignore[union-attr]
    assert fills(engine.on_quote(aapl.conid, quote("99.45", "99.46"))) == [(D(100), D("99.45"))]


def test_trailing_stop_follows_the_market_and_triggers(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, "SELL", kind=OrderType.TRAIL, trail_amount=D("1.00")))
    order = engine.get(1, 1)
    assert order is not None and order.trail_stop == D("99.00")
    engine.on_quote(aapl.conid, quote("102.00", "102.01"))
    assert order.trail_stop == D("101.00")
    engine.on_quote(aapl.conid, quote("101.50", "101.51"))
    assert order.trail_stop == D("101.00")  # never moves back
    assert fills(engine.on_quote(aapl.conid, quote("100.99", "101.00"))) == [(D(100), D("100.99"))]


def test_trailing_percent_buy(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("99.99", "100.00"))
    engine.place(ticket(aapl, 1, "BUY", kind=OrderType.TRAIL, trail_percent=D(2)))
    order = engine.get(1, 1)
    assert order is not None and order.trail_stop == D("102.00")
    engine.on_quote(aapl.conid, quote("89.99", "90.00"))
    assert order.trail_stop == D("91.80")
    assert fills(engine.on_quote(aapl.conid, quote("91.79", "91.80"))) == [(D(100), D("91.80"))]


def test_ioc_and_fok(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=30))
    ioc = engine.place(ticket(aapl, 1, qty=50, tif=TimeInForce.IOC))
    assert fills(ioc) == [(D(30), D("100.01"))] and ErrorCode.ORDER_CANCELLED in errors(ioc)
    assert engine.get(1, 1).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=30))
    fok = engine.place(ticket(aapl, 2, qty=50, tif=TimeInForce.FOK))
    assert fills(fok) == [] and engine.get(1, 2).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert fills(engine.place(ticket(aapl, 3, qty=30, tif=TimeInForce.FOK))) == [(D(30), D("100.01"))]


def test_day_orders_expire_gtc_stay(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D(90)))
    engine.place(ticket(aapl, 2, kind=OrderType.LMT, limit_price=D(90), tif=TimeInForce.GTC))
    engine.expire_day()
    assert [o.order_id for o in engine.open_orders()] == [2]


def test_modify_and_cancel(engine: MatchingEngine, aapl: SimInstrument, clock: ManualClock) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("99.00")))
    perm = engine.get(1, 1).perm_id  # type: ignore[union-attr]
    clock.advance(5)
    events = engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("100.01"), qty=60))
    assert fills(events) == [(D(60), D("100.01"))]
    assert engine.get(1, 1).perm_id == perm  # type: ignore[union-attr]
    assert errors(engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D(100)))) == [104]
    assert errors(engine.cancel(1, 1)) == [10148]
    assert errors(engine.cancel(1, 99)) == [10147]
    engine.place(ticket(aapl, 2, kind=OrderType.LMT, limit_price=D("99.00")))
    cancel = engine.cancel(1, 2)
    assert errors(cancel) == [202] and engine.get(1, 2).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert engine.get(1, 2).completed_time == clock.now  # type: ignore[union-attr]
    assert errors(engine.place(ticket(aapl, 2, kind=OrderType.LMT, limit_price=D("99.00")))) == [103]


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"kind": OrderType.LMT, "limit_price": D("100.005")}, ErrorCode.PRICE_VARIATION),
        ({"kind": OrderType.LMT}, ErrorCode.ORDER_REJECTED),  # no limit price
        ({"kind": OrderType.TRAIL}, ErrorCode.ORDER_REJECTED),  # no trail amount
        ({"parent_id": 77}, ErrorCode.ORDER_REJECTED),
    ],
)
def test_refusals(engine: MatchingEngine, aapl: SimInstrument, kw: dict[str, object], code: int) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    assert errors(engine.place(ticket(aapl, 1, **kw))) == [code]  # type: ignore[arg-type]
    assert engine.get(1, 1) is None


def test_reject_next_n(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.reject_next = 2
    assert errors(engine.place(ticket(aapl, 1))) == [201]
    assert errors(engine.place(ticket(aapl, 2))) == [201]
    assert fills(engine.place(ticket(aapl, 3)))


def test_bracket_is_held_until_transmitted_and_children_wait_for_the_parent(
    engine: MatchingEngine, aapl: SimInstrument
) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    assert engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("99.00"), transmit=False)) == []
    assert engine.place(ticket(aapl, 2, "SELL", kind=OrderType.LMT, limit_price=D("101.00"),
                               parent_id=1, transmit=False)) == []
    events = engine.place(ticket(aapl, 3, "SELL", kind=OrderType.STP, stop_price=D("98.00"), parent_id=1))
    statuses = {e.order.order_id: e.order.status for e in events if isinstance(e, OrderChanged)}
    assert statuses == {1: OrderStatus.SUBMITTED, 2: OrderStatus.PRE_SUBMITTED, 3: OrderStatus.PRE_SUBMITTED}
    engine.on_quote(aapl.conid, quote("97.50", "99.50"))  # the stop would trigger; the parent is not filled
    assert engine.get(1, 3).status is OrderStatus.PRE_SUBMITTED  # type: ignore[union-attr]
    engine.on_quote(aapl.conid, quote("98.90", "98.95"))  # parent fills; children go live
    assert engine.get(1, 1).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert engine.get(1, 2).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    events = engine.on_quote(aapl.conid, quote("101.00", "101.02"))  # take profit fills, stop loss goes
    assert fills(events) == [(D(100), D("101.00"))]
    assert engine.get(1, 3).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


def test_cancelling_a_parent_cancels_its_children(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("90.00"), transmit=False))
    engine.place(ticket(aapl, 2, "SELL", kind=OrderType.LMT, limit_price=D("110.00"), parent_id=1))
    engine.cancel(1, 1)
    assert engine.get(1, 2).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


@pytest.mark.parametrize(("oca_type", "left"), [(1, None), (2, D(60)), (3, D(60))])
def test_oca_groups(engine: MatchingEngine, aapl: SimInstrument, oca_type: int, left: D | None) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", bid_size=40))
    engine.place(ticket(aapl, 1, "SELL", kind=OrderType.LMT, limit_price=D("101.00"), oca_group="g", oca_type=oca_type))
    engine.place(ticket(aapl, 2, "SELL", kind=OrderType.LMT, limit_price=D("102.00"), oca_group="g", oca_type=oca_type))
    engine.on_quote(aapl.conid, quote("101.00", "101.01", bid_size=40))  # order 1 fills 40 of 100
    other = engine.get(1, 2)
    assert other is not None
    if left is None:
        assert other.status is OrderStatus.CANCELLED
    else:
        assert other.is_working and other.order.quantity == left


def test_global_cancel_covers_every_client(engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("90.00"), client_id=1))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("90.00"), client_id=2))
    engine.cancel_all()
    assert engine.open_orders() == []
    assert len(engine.completed_orders()) == 2


def test_commissions_by_kind(engine: MatchingEngine, aapl: SimInstrument, es: SimInstrument) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01", ask_size=1000))
    engine.on_quote(es.conid, quote("5925.00", "5925.25"))
    engine.place(ticket(aapl, 1, qty=500))
    engine.place(ticket(es, 2, qty=3))
    assert [e.commission for e in engine.executions] == [D("2.50"), D("6.75")]


def test_modifying_a_child_onto_another_parent_moves_it_to_that_bracket(
    engine: MatchingEngine, aapl: SimInstrument
) -> None:
    engine.on_quote(aapl.conid, quote("100.00", "100.01"))
    engine.place(ticket(aapl, 1, kind=OrderType.LMT, limit_price=D("90.00")))
    engine.place(ticket(aapl, 2, kind=OrderType.LMT, limit_price=D("91.00")))
    engine.place(ticket(aapl, 3, "SELL", kind=OrderType.LMT, limit_price=D("110.00"), parent_id=1))
    engine.place(ticket(aapl, 3, "SELL", kind=OrderType.LMT, limit_price=D("110.00"), parent_id=2))
    engine.cancel(1, 1)
    assert engine.get(1, 3).status is OrderStatus.PRE_SUBMITTED  # type: ignore[union-attr]
    engine.cancel(1, 2)
    assert engine.get(1, 3).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Record (by id) every SimOrder whose field or property is read from now on."""
    seen: set[int] = set()

    def spy(attr: object) -> property:
        if isinstance(attr, property):
            getter = attr.fget
            assert getter is not None
            return property(lambda self: (seen.add(id(self)), getter(self))[1])
        slot = cast(MemberDescriptorType, attr)
        return property(lambda self: (seen.add(id(self)), slot.__get__(self))[1],
                        lambda self, value: slot.__set__(self, value))

    for name, attr in list(vars(SimOrder).items()):
        if isinstance(attr, property | MemberDescriptorType):
            monkeypatch.setattr(SimOrder, name, spy(attr))
    return seen


def test_orders_and_quotes_touch_only_live_orders_however_many_are_done(
    engine: MatchingEngine, aapl: SimInstrument, es: SimInstrument, reads: set[int]
) -> None:
    deep = {"bid_size": 1_000_000, "ask_size": 1_000_000}
    engine.on_quote(aapl.conid, quote("100.00", "100.01", **deep))
    far = {"kind": OrderType.LMT, "limit_price": D("50.00")}
    ids = itertools.count(1)
    for _ in range(600):  # history: 2,400 done orders of every kind
        engine.place(ticket(aapl, next(ids), qty=1))
        engine.place(ticket(aapl, cancelled := next(ids), **far))
        engine.cancel(1, cancelled)
        engine.place(ticket(aapl, parent := next(ids), **far, transmit=False))
        engine.place(ticket(aapl, next(ids), "SELL", **far, parent_id=parent))
        engine.cancel(1, parent)
    assert sum(o.order.is_done for o in engine.orders()) == 2400
    engine.place(ticket(aapl, resting := next(ids), **far))
    partner = {"kind": OrderType.LMT, "limit_price": D(150), "oca_group": "x"}
    engine.place(ticket(aapl, next(ids), "SELL", **partner))
    live = {id(o) for o in engine.orders() if not o.order.is_done}
    assert len(live) == 2

    reads.clear()
    new_ids = [next(ids) for _ in range(3)]
    # a fill that cancels its OCA partner, a bracket sent with its last child, a modification
    engine.place(ticket(aapl, new_ids[0], qty=1, oca_group="x", oca_type=1))
    engine.place(ticket(aapl, new_ids[1], **far, transmit=False))
    stop = {"kind": OrderType.STP, "stop_price": D(40), "parent_id": new_ids[1]}
    engine.place(ticket(aapl, new_ids[2], "SELL", **stop))
    engine.place(ticket(aapl, resting, kind=OrderType.LMT, limit_price=D("51.00")))
    engine.on_quote(aapl.conid, quote("100.01", "100.02", **deep))
    engine.on_quote(es.conid, quote("5925.00", "5925.25"))
    engine.cancel(1, new_ids[1])
    engine.place(ticket(aapl, new_ids[1], **far))  # refused: done (a duplicate id)
    engine.open_orders()
    engine.expire_day()
    engine.cancel_all()
    read_done = reads - live - {id(engine.get(1, i)) for i in new_ids}
    assert not read_done, f"{len(read_done)} orders that were already done were read"
    assert engine.book.live_count == 0 and sum(o.order.is_done for o in engine.orders()) == 2405
