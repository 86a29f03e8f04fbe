"""The desk's book-keeping of broker events: status reports and executions booked, journalled and published.

A status report updates the order in the book (status, filled quantity,
average price, perm id), wakes a :meth:`~trader.trading.desk.Desk.place`
waiting for the broker's first answer or a cancel waiting for the order's
end, and goes to the journal and then to the bus (``order.<event>``). An
execution is booked once its commission is known (``fill``). Reports are
matched to the book by client order id, else by the broker's order or perm id.
:class:`DeskEvents` is the base of the :class:`~trader.trading.desk.Desk`: it
holds what every part of the desk shares (the broker, the book, the recorder)
and answers what the desk knows of an order (:meth:`DeskEvents.result`).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import OrderReport
from trader.domain import Fill, Order, OrderStatus
from trader.errors import Conflict
from trader.trading.book import Book
from trader.trading.recorder import Recorder
from trader.trading.requests import Rounded
from trader.trading.totals import BrokerTotals

log = logging.getLogger(__name__)

__all__ = ["DeskEvents"]


class DeskEvents:
    """Books what the broker reports about orders, and answers what the desk knows of one."""

    def __init__(self, adapter: Broker, book: Book, recorder: Recorder) -> None:
        self.adapter = adapter
        self.book = book
        self.recorder = recorder
        self.reasons: dict[str, str] = {}
        # The prices this session put on the tick grid, by entry (or modified order): the result shows them.
        self.rounded: dict[str, tuple[Rounded, ...]] = {}
        self._acks: dict[str, asyncio.Future[None]] = {}  # done at the broker's first answer to a new order
        self._done: dict[str, asyncio.Event] = {}  # set when an order being cancelled reaches its end
        self.broker_totals = BrokerTotals(adapter)
        adapter.order_updates.subscribe(self.on_status)
        adapter.fills.subscribe(self.on_fill)

    # -- queries -------------------------------------------------------------------
    def result(self, coid: str) -> dict[str, Any]:
        """Return an order with its bracket children, the last reason the broker or the gate gave, and the prices
        this session put on the tick grid when it placed the order (``rounded``: field, asked, sent, how)."""
        order = self.book.order(coid)
        children = self.book.children(coid)
        return {"order": order, "children": children, "reason": self.reasons.get(coid, ""),
                "rounded": self._rounded_json(self.rounded.get(coid, ()))}


    @staticmethod
    def _rounded_json(rounded: tuple[Rounded, ...]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(r) for r in rounded]  # client_order_id, field, asked, sent, how

    # -- broker events -------------------------------------------------------------
    def _coid(self, report: OrderReport) -> str | None:
        coid = report.client_order_id
        if coid is not None and self.book.get(coid) is not None:
            return coid
        found = self.book.find(broker_order_id=report.broker_order_id) if report.broker_order_id else None
        if found is None and report.perm_id:
            found = self.book.find(perm_id=report.perm_id)
        return found.client_order_id if found is not None else None

    def on_status(self, report: OrderReport) -> None:
        """Book a status report: status, filled quantity, average price, perm id."""
        coid = self._coid(report)
        if coid is None:
            log.debug("status for an order not in the book: %s %s", report.broker_order_id, report.status_text)
            return
        order = self.book.order(coid)
        status, filled = report.status, report.filled
        if status is None:
            log.warning("order %s: unknown broker status %r", coid, report.status_text)
            return
        changed = False
        if report.perm_id and order.perm_id != report.perm_id:
            order.perm_id, changed = report.perm_id, True
        if filled > order.filled_quantity and filled <= order.quantity:
            order.filled_quantity = filled
            order.avg_fill_price = report.avg_fill_price
            changed = True
        try:
            changed = order.transition(status) or changed
        except Conflict:
            log.info("order %s: stale status %s after %s ignored", coid, status, order.status)
        reason = report.reason
        if reason:
            self.reasons[coid] = reason
        if changed:
            self.book.put_order(order)
        # Wake the waiting place() before the recorder's task: the caller's answer does not wait
        # for this status's append (it never did), and the bus still sees the status only after it.
        if order.status is not OrderStatus.PENDING_SUBMIT:
            ack = self._acks.pop(coid, None)
            if ack is not None and not ack.done():
                ack.set_result(None)
        if changed:
            self.recorder.record(self._entry(order, "status", reason), f"order.{str(order.status).lower()}",
                                 self.result(coid))
        if order.is_done and coid in self._done:
            self._done.pop(coid).set()

    def on_fill(self, fill: Fill) -> None:
        """Book an execution once its commission is known; executions seen before are ignored."""
        if fill.client_order_id is None:  # not ours by its reference: perhaps by its broker ids
            found = self.book.find(broker_order_id=fill.broker_order_id, perm_id=fill.perm_id)
            if found is not None:
                fill = dataclasses.replace(fill, client_order_id=found.client_order_id)
        if self.book.add_fill(fill):
            self.broker_totals.fill_booked(fill)  # counted until the broker reports the position it makes
            self.recorder.record({"type": "fill", "fill": fill}, "fill", fill)

    @staticmethod
    def _entry(order: Order, event: str, reason: str = "") -> dict[str, Any]:
        # A copy: the order goes on changing while the entry waits in the recorder's queue (or while a
        # write retries).
        return {"type": "order", "order": copy.copy(order), "event": event, "reason": reason}
