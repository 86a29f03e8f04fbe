"""Reconciliation with the broker after every (re)connect: what the broker reports, matched to the book.

The broker lists its open and completed orders and the day's executions (IB:
fetched as ib_async connects). :func:`broker_state` turns them into a
:class:`~trader.trading.book.BrokerState` keyed by broker order id: open orders
carry their id; completed orders may not (IB reports only their permId), so
their id comes from the book's order of the same client order id, or from an
execution with the same permId. Each order of ours also carries the order as
the broker describes it, so the book can adopt an order the journal lacks (or
holds as never sent). :func:`reconcile` then lets the book take the broker's
truth, journals every change and returns the differences, which the trader
service logs and publishes.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import OrderReport
from trader.errors import NotFound
from trader.trading.book import Book, BrokerOrder, BrokerState, Difference
from trader.trading.desk import Desk
from trader.trading.totals import positions_by_key

log = logging.getLogger(__name__)

__all__ = ["broker_state", "reconcile"]


def _order_id(report: OrderReport, book: Book, by_perm: dict[int, int]) -> int | None:
    if report.broker_order_id:
        return report.broker_order_id
    if report.client_order_id is not None:
        try:
            own = book.order(report.client_order_id).broker_order_id
        except NotFound:
            own = None
        if own is not None:
            return own
    return by_perm.get(report.perm_id) if report.perm_id else None


def broker_state(broker: Broker, book: Book, *, complete: bool) -> BrokerState:
    """Return what the broker reports for this session's client: its orders, the executions, the positions.

    ``complete``: whether the completed orders and the executions were fetched
    (see ``Broker.view_complete``); without them, an order the broker does not
    report is not proof that it never reached it. A completed order's average
    price, which IB does not give, comes from its executions.
    """
    fills = broker.executions()
    by_perm: dict[int, int] = {}
    done: dict[int, tuple[Decimal, Decimal]] = {}  # permId -> (quantity, notional) of its executions
    for fill in fills:
        if fill.perm_id:
            if fill.broker_order_id:
                by_perm[fill.perm_id] = fill.broker_order_id
            qty, notional = done.get(fill.perm_id, (Decimal(0), Decimal(0)))
            done[fill.perm_id] = (qty + fill.quantity, notional + fill.quantity * fill.price)
    orders: dict[int, BrokerOrder] = {}
    for report in broker.open_orders() + broker.completed_orders():
        order_id = _order_id(report, book, by_perm)
        if order_id is None or report.status is None:
            continue
        avg = report.avg_fill_price
        if avg is None and report.filled and report.perm_id in done:
            qty, notional = done[report.perm_id]
            avg = notional / qty if qty else None
        orders[order_id] = BrokerOrder(
            broker_order_id=order_id, perm_id=report.perm_id, status=report.status, filled=report.filled,
            avg_fill_price=avg if report.filled else None, order_ref=report.order_ref, order=report.order)
    return BrokerState(orders=orders, fills=fills, positions=positions_by_key(broker.positions()), complete=complete)


async def reconcile(desk: Desk) -> list[dict[str, Any]]:
    """Bring the book to the broker's truth; journal and return the differences."""
    desk.synced = False
    state = broker_state(desk.adapter, desk.book, complete=desk.adapter.view_complete)
    differences: list[Difference] = desk.book.reconcile(state)
    # The book has changed: what cannot be journalled now is kept for the next reconcile (its retry).
    desk.unjournalled.extend(desk.book.journal_entries(differences))
    while desk.unjournalled:
        await desk.recorder.write(desk.unjournalled[0])
        del desk.unjournalled[0]
    reported = [d.to_dict() for d in differences + desk.book.position_differences(state)]
    for d in reported:
        log.warning("reconcile: %s %s: book %s, broker %s (%s)", d["kind"], d["key"], d["book"], d["broker"],
                    d["action"])
    if reported:
        desk.recorder.publish("order.reconciled", reported)
    desk.synced = True
    log.info("reconciled with the broker: %d orders, %d executions, %d differences", len(state.orders),
             len(state.fills), len(reported))
    return reported
