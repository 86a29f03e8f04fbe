"""Tests for Order: instruction validation, the status table, transitions and fills."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.domain import Action, Contract, Fill, Order, OrderStatus, OrderType, TimeInForce
from trader.errors import Conflict, ValidationError

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
AAPL = Contract("AAPL")
S = OrderStatus
TERMINAL = {S.FILLED, S.CANCELLED, S.API_CANCELLED, S.REJECTED, S.INACTIVE}


def order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "client_order_id": "o-1",
        "contract": AAPL,
        "action": Action.BUY,
        "quantity": Decimal(100),
        "created_at": T0,
    }
    fields.update(changes)
    return Order(**fields)


def fill(quantity: str, price: str, **changes: Any) -> Fill:
    fields: dict[str, Any] = {
        "exec_id": f"e-{quantity}-{price}",
        "client_order_id": "o-1",
        "contract": AAPL,
        "action": Action.BUY,
        "quantity": Decimal(quantity),
        "price": Decimal(price),
        "time": T0 + timedelta(seconds=1),
    }
    fields.update(changes)
    return Fill(**fields)


# --- Construction -------------------------------------------------------------------


def test_a_new_order_is_pending_and_unfilled() -> None:
    new = order()
    assert new.status is S.PENDING_SUBMIT
    assert new.filled_quantity == 0
    assert new.remaining == Decimal(100)
    assert new.avg_fill_price is None
    assert new.order_type is OrderType.MKT
    assert new.tif is TimeInForce.DAY
    assert new.order_ref == "manual"
    assert new.updated_at == new.created_at == T0
    assert not new.is_done


def test_a_copy_is_a_snapshot_of_every_field() -> None:
    original = order(order_type=OrderType.LMT, limit_price=Decimal("187.25"), broker_order_id=7)
    snapshot = copy.copy(original)
    assert snapshot == original and snapshot is not original and type(snapshot) is Order
    original.transition(OrderStatus.SUBMITTED)
    original.apply_fill(fill("1", "187.25"))
    assert snapshot.status is OrderStatus.PENDING_SUBMIT and snapshot.filled_quantity == 0
    assert (snapshot.limit_price, snapshot.broker_order_id, snapshot.contract) == (
        Decimal("187.25"), 7, original.contract)


def test_created_at_defaults_to_now_in_utc() -> None:
    new = Order("o-2", AAPL, Action.SELL, Decimal(1))
    assert new.created_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - new.created_at) < timedelta(seconds=5)
    assert new.signed_quantity == Decimal(-1)


def test_times_in_another_zone_are_stored_in_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    new = order(created_at=datetime(2026, 3, 2, 9, 30, tzinfo=eastern))
    assert new.created_at.tzinfo is UTC
    assert new.created_at == T0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantity": Decimal(0)}, r"Order.quantity must be > 0, got Decimal\('0'\)"),
        ({"quantity": Decimal(-5)}, "Order.quantity must be > 0"),
        ({"quantity": 1.5}, "Order.quantity must be a Decimal, got float"),
        ({"quantity": "NaN"}, "Order.quantity must be finite"),
        ({"quantity": "lots"}, "Order.quantity must be a decimal number"),
        ({"client_order_id": ""}, "Order.client_order_id must not be empty"),
        ({"contract": "AAPL"}, "Order.contract must be a Contract"),
        ({"action": "HOLD"}, "Order.action must be one of BUY, SELL"),
        ({"order_type": OrderType.LMT}, "LMT order 'o-1' needs a limit_price > 0"),
        ({"order_type": OrderType.LMT, "limit_price": Decimal(0)}, "Order.limit_price must be > 0"),
        ({"limit_price": Decimal(10)}, "MKT order 'o-1' takes no limit_price"),
        ({"stop_price": Decimal(10)}, "MKT order 'o-1' takes no stop_price"),
        ({"trail_amount": Decimal(1)}, "MKT order 'o-1' takes no trail_amount or trail_percent"),
        ({"order_type": OrderType.STP}, "STP order 'o-1' needs a stop_price > 0"),
        (
            {"order_type": OrderType.STP, "stop_price": Decimal(9), "limit_price": Decimal(9)},
            "takes no limit_price",
        ),
        (
            {"order_type": OrderType.STP_LMT, "stop_price": Decimal(9)},
            "STP_LMT order 'o-1' needs a limit_price",
        ),
        (
            {"order_type": OrderType.STP_LMT, "limit_price": Decimal(9)},
            "STP_LMT order 'o-1' needs a stop_price",
        ),
        (
            {"order_type": OrderType.TRAIL},
            "needs exactly one of trail_amount and trail_percent \\(got 0\\)",
        ),
        (
            {
                "order_type": OrderType.TRAIL,
                "trail_amount": Decimal(1),
                "trail_percent": Decimal(1),
            },
            "needs exactly one of trail_amount and trail_percent \\(got 2\\)",
        ),
        (
            {"order_type": OrderType.TRAIL, "trail_percent": Decimal(100)},
            "trail_percent must be < 100",
        ),
        (
            {"order_type": OrderType.TRAIL, "trail_amount": Decimal(-1)},
            "Order.trail_amount must be > 0",
        ),
        (
            {"order_type": OrderType.TRAIL, "trail_amount": Decimal(1), "limit_price": Decimal(5)},
            "takes no limit_price",
        ),
        ({"tif": "FOREVER"}, "Order.tif must be one of DAY, GTC, IOC, FOK"),
        ({"outside_rth": 1}, "Order.outside_rth must be a bool"),
        ({"parent_id": "o-1"}, "cannot be its own parent"),
        ({"created_at": datetime(2026, 3, 2, 14, 30)}, "Order.created_at must be timezone-aware"),
        ({"updated_at": datetime(2026, 3, 2, 14, 30)}, "Order.updated_at must be timezone-aware"),
        (
            {"filled_quantity": Decimal(101), "avg_fill_price": Decimal(1)},
            "filled_quantity 101 exceeds quantity 100",
        ),
        ({"filled_quantity": Decimal(-1)}, "Order.filled_quantity must be >= 0"),
        ({"filled_quantity": Decimal(5)}, "has fills but no avg_fill_price"),
        ({"broker_order_id": "12"}, "Order.broker_order_id must be an int"),
    ],
)
def test_invalid_orders_are_refused_with_a_clear_message(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        order(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"order_type": OrderType.LMT, "limit_price": Decimal("189.12")},
        {"order_type": OrderType.STP, "stop_price": Decimal("180")},
        {
            "order_type": OrderType.STP_LMT,
            "stop_price": Decimal("180"),
            "limit_price": Decimal("179.5"),
        },
        {"order_type": OrderType.TRAIL, "trail_amount": Decimal("0.5")},
        {
            "order_type": OrderType.TRAIL,
            "trail_percent": Decimal("1.5"),
            "stop_price": Decimal("185"),
        },
        {"order_type": "LMT", "limit_price": "189.12", "quantity": 3, "tif": "GTC"},
    ],
)
def test_valid_order_types(changes: dict[str, Any]) -> None:
    built = order(**changes)
    assert isinstance(built.order_type, OrderType)
    assert isinstance(built.quantity, Decimal)
    assert isinstance(built.tif, TimeInForce)


# --- The status table ----------------------------------------------------------------


def test_every_status_has_a_row_and_the_terminal_ones_are_exactly_these() -> None:
    for status in S:
        assert isinstance(status.next_statuses, frozenset)
    assert {status for status in S if status.is_terminal} == TERMINAL


def test_no_status_lists_itself() -> None:
    assert all(not status.can_transition(status) for status in S)


def test_every_live_status_can_reach_a_terminal_one() -> None:
    for start in S:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in frontier.pop().next_statuses:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, start


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (S.PENDING_SUBMIT, S.SUBMITTED),
        (S.PENDING_SUBMIT, S.PRE_SUBMITTED),
        (S.PENDING_SUBMIT, S.REJECTED),
        (S.PENDING_SUBMIT, S.FILLED),  # a market order can fill before Submitted arrives
        (S.PENDING_SUBMIT, S.API_CANCELLED),
        (S.PRE_SUBMITTED, S.SUBMITTED),
        (S.SUBMITTED, S.PARTIALLY_FILLED),
        (S.SUBMITTED, S.FILLED),
        (S.SUBMITTED, S.PENDING_CANCEL),
        (S.SUBMITTED, S.INACTIVE),
        (S.PARTIALLY_FILLED, S.FILLED),
        (S.PARTIALLY_FILLED, S.CANCELLED),
        (S.PENDING_CANCEL, S.CANCELLED),
        (S.PENDING_CANCEL, S.FILLED),  # the fill won the race with the cancel
        (S.PENDING_CANCEL, S.SUBMITTED),  # the cancel was refused
    ],
)
def test_legal_transitions(start: OrderStatus, end: OrderStatus) -> None:
    assert start.can_transition(end)
    live = order(status=start)
    assert live.transition(end, at=T0 + timedelta(minutes=1)) is True
    assert live.status is end
    assert live.updated_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (S.SUBMITTED, S.PENDING_SUBMIT),
        (S.SUBMITTED, S.PRE_SUBMITTED),
        (S.PARTIALLY_FILLED, S.SUBMITTED),
        (S.PARTIALLY_FILLED, S.REJECTED),
        (S.SUBMITTED, S.API_CANCELLED),
        (S.FILLED, S.CANCELLED),
        (S.CANCELLED, S.SUBMITTED),
        (S.REJECTED, S.SUBMITTED),
        (S.INACTIVE, S.SUBMITTED),
        (S.API_CANCELLED, S.FILLED),
    ],
)
def test_illegal_transitions_raise_conflict_and_change_nothing(
    start: OrderStatus, end: OrderStatus
) -> None:
    assert not start.can_transition(end)
    live = order(status=start)
    with pytest.raises(Conflict, match=f"order 'o-1' cannot go from {start} to {end}") as raised:
        live.transition(end, at=T0 + timedelta(minutes=1))
    assert raised.value.details == {
        "client_order_id": "o-1",
        "status": str(start),
        "requested": str(end),
    }
    assert live.status is start
    assert live.updated_at == T0


@pytest.mark.parametrize("status", sorted(S))
def test_a_repeated_status_is_a_no_op(status: OrderStatus) -> None:
    live = order(status=status)
    assert live.transition(status, at=T0 + timedelta(minutes=1)) is False
    assert live.updated_at == T0


def test_transition_accepts_the_status_string_and_refuses_naive_times() -> None:
    live = order()
    assert live.transition("SUBMITTED") is True  # type: ignore[arg-type]
    assert live.status is S.SUBMITTED
    with pytest.raises(ValidationError, match="must be timezone-aware"):
        live.transition(S.CANCELLED, at=datetime(2026, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(S), max_size=12))
def test_any_status_sequence_follows_the_table(steps: list[OrderStatus]) -> None:
    live = order()
    for step in steps:
        before = live.status
        if step is before:
            assert live.transition(step) is False
        elif before.can_transition(step):
            assert live.transition(step) is True
        else:
            with pytest.raises(Conflict):
                live.transition(step)
            assert live.status is before
        if live.status.is_terminal:
            assert all(live.status is s or not live.status.can_transition(s) for s in S)


# --- Fills ------------------------------------------------------------------------


def test_fills_accumulate_and_average_exactly() -> None:
    live = order(status=S.SUBMITTED)
    live.apply_fill(fill("30", "189.10"))
    assert live.status is S.PARTIALLY_FILLED
    assert live.remaining == Decimal(70)
    live.apply_fill(fill("70", "189.20"))
    assert live.status is S.FILLED
    assert live.remaining == 0
    assert live.avg_fill_price == Decimal("189.17")
    assert live.updated_at == T0 + timedelta(seconds=1)
    assert live.is_done


def test_a_fill_may_land_while_a_cancel_is_pending() -> None:
    live = order(status=S.PENDING_CANCEL)
    live.apply_fill(fill("100", "189"))
    assert live.status is S.FILLED


@pytest.mark.parametrize(
    ("start", "the_fill", "message"),
    [
        (S.SUBMITTED, fill("101", "1"), "overfills order 'o-1'"),
        (S.SUBMITTED, fill("1", "1", client_order_id="o-2"), "is for 'o-2', not order 'o-1'"),
        (S.SUBMITTED, fill("1", "1", action=Action.SELL), "is a SELL, order 'o-1' is a BUY"),
        (S.CANCELLED, fill("1", "1"), "in status CANCELLED cannot take fill"),
        (S.FILLED, fill("1", "1"), "overfills"),
    ],
)
def test_fills_that_do_not_fit_raise_conflict(
    start: OrderStatus, the_fill: Fill, message: str
) -> None:
    filled = Decimal(100) if start is S.FILLED else Decimal(0)
    live = order(
        status=start, filled_quantity=filled, avg_fill_price=Decimal(1) if filled else None
    )
    with pytest.raises(Conflict, match=message):
        live.apply_fill(the_fill)
    assert live.status is start
    assert live.filled_quantity == filled
