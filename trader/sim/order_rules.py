"""The rules one order is held to, alone: its prices on the tick grid, its domain Order, its price against a quote.

:class:`trader.sim.engine.MatchingEngine` applies these to each order; what
depends on other orders (the book, brackets, OCA groups, the liquidity already
taken from a quote) stays in the engine. Each function here reads one ticket
or one order and at most one quote, and changes nothing but a trailing stop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TypedDict

from trader.domain import Action, Order, OrderStatus, OrderType
from trader.sim.msgids import ErrorCode
from trader.sim.orders import OrderError, OrderTicket, Quote, SimOrder

__all__ = ["domain_order", "off_tick", "price_ok", "side_touch", "stop_triggered"]

_HUNDRED = Decimal(100)


def _on_tick(price: Decimal, tick: Decimal) -> bool:
    return price % tick == 0


def off_tick(ticket: OrderTicket) -> OrderError | None:
    """Return IB's error 110 if a limit, stop or trail amount of ``ticket`` is off its tick grid, else None."""
    tick = ticket.instrument.tick_size
    for price in (ticket.limit_price, ticket.stop_price, ticket.trail_amount):
        if price is not None and not _on_tick(price, tick):
            return OrderError(ticket.client_id, ticket.order_id, ErrorCode.PRICE_VARIATION,
                              "The price does not conform to the minimum price variation for this contract.")
    return None


class _Lifecycle(TypedDict, total=False):
    """What a modified order keeps of the order it replaces (a new one: only its creation time)."""

    status: OrderStatus
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    perm_id: int | None
    created_at: datetime


def domain_order(ticket: OrderTicket, previous: SimOrder | None, *, clock: Callable[[], datetime],
                 account: str) -> Order:
    """Return the domain Order of ``ticket``, keeping ``previous``'s lifecycle when it modifies one.

    A new order is created at ``clock()``; ``account`` is the one an order
    that names none goes to. Raises ValidationError when the Order refuses
    the ticket's terms.
    """
    client_order_id = f"{ticket.client_id}:{ticket.order_id}"
    lifecycle: _Lifecycle
    if previous is not None:
        old = previous.order
        lifecycle = {
            "status": old.status,
            "filled_quantity": old.filled_quantity,
            "avg_fill_price": old.avg_fill_price,
            "perm_id": previous.perm_id,
            "created_at": old.created_at,
        }
    else:
        lifecycle = {"created_at": clock()}
    return Order(
        client_order_id,
        ticket.instrument.contract,
        ticket.action,
        ticket.quantity,
        ticket.order_type,
        limit_price=ticket.limit_price,
        stop_price=ticket.stop_price,
        trail_amount=ticket.trail_amount,
        trail_percent=ticket.trail_percent,
        tif=ticket.tif,
        outside_rth=ticket.outside_rth,
        parent_id=f"{ticket.client_id}:{ticket.parent_id}" if ticket.parent_id else None,
        oca_group=ticket.oca_group or None,
        order_ref=ticket.order_ref or "api",
        account=ticket.account or account,
        broker_order_id=ticket.order_id,
        **lifecycle,
    )


def side_touch(sim: SimOrder, quote: Quote, taken: list[Decimal]) -> tuple[Decimal, Decimal]:
    """Return (price, size still available) on the side ``sim`` trades against.

    ``taken`` is [bid size, ask size] already taken from ``quote`` by other fills.
    """
    if sim.ticket.action is Action.BUY:
        return quote.ask, max(Decimal(0), quote.ask_size - taken[1])
    return quote.bid, max(Decimal(0), quote.bid_size - taken[0])


def _limit(sim: SimOrder) -> Decimal | None:
    kind = sim.ticket.order_type
    if kind is OrderType.LMT or kind is OrderType.STP_LMT:
        return sim.ticket.limit_price
    return None


def price_ok(sim: SimOrder, price: Decimal) -> bool:
    """Return whether ``sim`` may fill at ``price``: any price without a limit, else at or better than it."""
    limit = _limit(sim)
    if limit is None:
        return True
    return price <= limit if sim.ticket.action is Action.BUY else price >= limit


def stop_triggered(sim: SimOrder, quote: Quote) -> bool:
    """Move a trailing stop after ``quote``'s touch and return whether the stop is triggered."""
    ticket = sim.ticket
    buy = ticket.action is Action.BUY
    touch = quote.ask if buy else quote.bid
    stop: Decimal | None
    if ticket.order_type is OrderType.TRAIL:
        tick = sim.instrument.tick_size
        if ticket.trail_percent is not None:
            offset = touch * ticket.trail_percent / _HUNDRED
        else:
            offset = ticket.trail_amount or Decimal(0)
        if buy:
            candidate = ((touch + offset) / tick).to_integral_value(ROUND_CEILING) * tick
            if sim.trail_stop is None:
                sim.trail_stop = ticket.stop_price or candidate
            sim.trail_stop = min(sim.trail_stop, candidate)
        else:
            candidate = ((touch - offset) / tick).to_integral_value(ROUND_FLOOR) * tick
            if sim.trail_stop is None:
                sim.trail_stop = ticket.stop_price or candidate
            sim.trail_stop = max(sim.trail_stop, candidate)
        stop = sim.trail_stop
    else:
        stop = ticket.stop_price
    assert stop is not None
    return touch >= stop if buy else touch <= stop
