"""Reconciliation with the broker after every (re)connect: what IB reports, matched to the book.

ib_async fetches the open orders, the completed orders and the executions as
it connects. :func:`broker_state` turns them into a
:class:`~trader.trading.book.BrokerState` keyed by IB order id: open orders
carry their id; completed orders do not (IB reports only their permId), so
their id comes from the client order id in their orderRef, or from an
execution with the same permId. Each order whose orderRef names a client order
id also carries the order as IB describes it, so the book can adopt an order
the journal lacks (or holds as never sent). :func:`reconcile` then lets the book take the broker's
truth, journals every change and returns the differences, which the trader
service logs and publishes.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from ib_async import IB, Trade

from trader.brokers.ib import parsing
from trader.domain import Order
from trader.errors import NotFound, TraderError
from trader.trading.book import Book, BrokerOrder, BrokerState, Difference
from trader.trading.desk import Desk, client_order_id_of, parse_broker_ref, positions_by_key

log = logging.getLogger(__name__)

__all__ = ["broker_state", "reconcile"]


def _order_id(trade: Trade, book: Book, by_perm: dict[int, int]) -> int | None:
    if trade.order.orderId:
        return int(trade.order.orderId)
    coid = client_order_id_of(trade.order.orderRef or "")
    if coid is not None:
        try:
            own = book.order(coid).broker_order_id
        except NotFound:
            own = None
        if own is not None:
            return own
    return by_perm.get(trade.order.permId) if trade.order.permId else None


def _progress(trade: Trade, done: dict[int, tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal, Decimal | None]:
    """Return (filled, remaining, average price) of a trade as IB reports it.

    A completed order (from reqCompletedOrders) carries no order status beyond
    its state: its filled quantity is the order's ``filledQuantity`` and its
    average price comes from its executions.
    """
    st = trade.orderStatus
    filled = parsing.decimal_from_float(st.filled) or Decimal(0)
    total = parsing.decimal_from_float(trade.order.totalQuantity) or Decimal(0)
    if not filled:
        filled = parsing.decimal_from_float(trade.order.filledQuantity) or Decimal(0)
    remaining = parsing.decimal_from_float(st.remaining) if st.remaining else None
    avg = parsing.decimal_from_float(st.avgFillPrice) if st.avgFillPrice else None
    if avg is None and filled and trade.order.permId in done:
        qty, notional = done[trade.order.permId]
        avg = notional / qty if qty else None
    return filled, total - filled if remaining is None else remaining, avg if filled else None


def _as_placed(trade: Trade, parent_id: str | None) -> Order | None:
    """Return the order of ours ``trade`` carries, as placed, or None if its orderRef names no client order id."""
    parsed = parse_broker_ref(trade.order.orderRef or "")
    if parsed is None:
        return None
    strategy, coid = parsed
    try:
        return parsing.from_ib_order(trade.contract, trade.order, client_order_id=coid, order_ref=strategy,
                                     parent_id=parent_id)
    except TraderError as exc:
        log.warning("broker order %s (%s) cannot be read: %s", trade.order.orderId, coid, exc)
        return None


def broker_state(ib: IB, book: Book, client_id: int, *, complete: bool) -> BrokerState:
    """Return what IB reports for this API client: its orders, the executions, the positions.

    ``complete``: whether the completed orders and the executions were fetched
    (see ``IbAdapter.view_complete``); without them, an order IB does not report
    is not proof that it never reached IB.
    """
    fills = []
    by_perm: dict[int, int] = {}
    done: dict[int, tuple[Decimal, Decimal]] = {}  # permId -> (quantity, notional) of its executions
    for ib_fill in ib.fills():
        execution = ib_fill.execution
        if execution.clientId not in (client_id, 0):
            continue
        if execution.permId and execution.orderId:
            by_perm[execution.permId] = execution.orderId
        coid = client_order_id_of(execution.orderRef or "")
        try:
            fill = parsing.from_ib_fill(ib_fill, coid)
        except TraderError as exc:
            log.warning("execution %s skipped: %s", execution.execId, exc)
            continue
        fills.append(fill)
        if execution.permId:
            qty, notional = done.get(execution.permId, (Decimal(0), Decimal(0)))
            done[execution.permId] = (qty + fill.quantity, notional + fill.quantity * fill.price)
    orders: dict[int, BrokerOrder] = {}
    trades = [t for t in ib.trades() if t.order.clientId in (client_id, 0)]
    coids = {t.order.orderId: client_order_id_of(t.order.orderRef or "") for t in trades if t.order.orderId}
    for trade in trades:
        order_id = _order_id(trade, book, by_perm)
        filled, remaining, avg = _progress(trade, done)
        status = parsing.order_status(trade.orderStatus.status, filled, remaining)
        if order_id is None or status is None:
            continue
        orders[order_id] = BrokerOrder(
            broker_order_id=order_id, perm_id=trade.order.permId or None, status=status, filled=filled,
            avg_fill_price=avg, order_ref=trade.order.orderRef or "",
            order=_as_placed(trade, coids.get(trade.order.parentId)))
    return BrokerState(orders=orders, fills=fills, positions=positions_by_key(ib.positions()), complete=complete)


async def reconcile(desk: Desk, client_id: int) -> list[dict[str, Any]]:
    """Bring the book to the broker's truth; journal and return the differences."""
    ib = desk.adapter.ib
    for trade in ib.trades():  # the handles modify and cancel need, for orders still working
        coid = client_order_id_of(trade.order.orderRef or "")
        if coid is not None and trade.order.orderId:
            desk.trades[coid] = trade
    desk.synced = False
    state = broker_state(ib, desk.book, client_id, complete=desk.adapter.view_complete)
    differences: list[Difference] = desk.book.reconcile(state)
    for entry in desk.book.journal_entries(differences):
        await desk.recorder.write(entry)
    reported = [d.to_dict() for d in differences + desk.book.position_differences(state)]
    for d in reported:
        log.warning("reconcile: %s %s: book %s, broker %s (%s)", d["kind"], d["key"], d["book"], d["broker"],
                    d["action"])
    if reported:
        desk.recorder.publish("order.reconciled", reported)
    desk.synced = True
    log.info("reconciled with IB: %d orders, %d executions, %d differences", len(state.orders),
             len(state.fills), len(reported))
    return reported
