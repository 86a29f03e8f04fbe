"""Reconciliation with the broker after every (re)connect: what the broker reports, matched to the book.

The broker lists its open and completed orders and the day's executions (IB:
fetched as ib_async connects). :func:`broker_state` turns them into a
:class:`BrokerState` keyed by broker order id: open orders
carry their id; completed orders may not (IB reports only their permId), so
their id comes from the book's order of the same client order id, or from an
execution with the same permId. Each order of ours also carries the order as
the broker describes it, so the book can adopt an order the journal lacks (or
holds as never sent). :func:`reconcile` then lets the book take the broker's
truth, journals every change and returns the differences, which the trader
service logs and publishes.

:func:`reconcile_book` is the book's side: it takes the broker's truth order
by order (a changed status or fill, an order never sent, one to adopt, a
missing fill), reports what it cannot fix once per book (an unknown order),
and :func:`journal_entries` returns the entries that replay the change.
:class:`Resync` is what the trader service runs on every (re)connect: the kill
switch's cancel, then :func:`reconcile`, retried until it succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from trader.brokers.base import Broker
from trader.brokers.records import OrderReport
from trader.domain import Fill, Order, OrderStatus, OrderType
from trader.domain.checks import utc_now
from trader.errors import NotFound, TraderError, ValidationError
from trader.retry import RECOVERY_RETRY
from trader.trading.book import Book, never_sent
from trader.trading.desk import Desk
from trader.trading.kill_switch import KillSwitch
from trader.trading.totals import positions_by_key
from trader.trading.trading_day import TradingDay

log = logging.getLogger(__name__)

__all__ = ["BrokerOrder", "BrokerState", "Difference", "Resync", "broker_state", "journal_entries",
           "position_differences", "reconcile", "reconcile_book"]

_ZERO = Decimal(0)
_ORDER_KINDS = frozenset({"status", "filled", "avg_fill_price", "perm_id", "never_sent", "adopted"})
#: What fails a re-sync for a while (Redis down past the recorder's ~5 s of retries, say): retried while connected.
RESYNC_ERRORS = (RedisError, OSError, TraderError)


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """What the broker reports for one of our orders.

    ``order`` is the order as IB describes it, when its orderRef names our
    client order id: the book adopts it if the journal lacks it (the service
    died after sending it and before its journal append was in).
    """

    broker_order_id: int
    perm_id: int | None
    status: OrderStatus
    filled: Decimal
    avg_fill_price: Decimal | None
    order_ref: str = ""
    order: Order | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class BrokerState:
    """The broker's view: our API client's orders (open and completed), executions, positions.

    ``complete`` is False when completed orders could not be fetched: then an
    order missing from ``orders`` is not proof that it never reached the broker.
    """

    orders: Mapping[int, BrokerOrder]
    fills: Sequence[Fill]
    positions: Mapping[str, Decimal]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the book differed from the broker, and what :func:`reconcile_book` did about it.

    ``kind``: "status", "filled", "avg_fill_price", "perm_id", "quantity",
    "limit_price", "stop_price", "missing_fill", "never_sent", "adopted",
    "unknown_order" or "position". ``action``: "updated
    the book", "added the fill", "added the order", "replaced the order" (an
    adopted order the book held as never sent), "marked REJECTED" or "reported only".
    """

    kind: str
    key: str
    book: Any
    broker: Any
    action: str

    def to_dict(self) -> dict[str, Any]:
        """Return the difference as a dict the codec can carry (a BrokerOrder becomes a dict)."""
        def plain(value: Any) -> Any:
            if isinstance(value, BrokerOrder):
                return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return value

        return {"kind": self.kind, "key": self.key, "book": plain(self.book),
                "broker": plain(self.broker), "action": self.action}


def _terms(order: Order, at_broker: Order | None) -> dict[str, Any]:
    """Return the quantity and prices the broker holds for ``order`` (a modification it refused, or never got).

    A trailing order's stop moves with the market at the broker, so only its
    quantity is compared.
    """
    if at_broker is None:
        return {}
    terms: dict[str, Any] = {"quantity": at_broker.quantity}
    if order.order_type in (OrderType.LMT, OrderType.STP_LMT):
        terms["limit_price"] = at_broker.limit_price
    if order.order_type in (OrderType.STP, OrderType.STP_LMT):
        terms["stop_price"] = at_broker.stop_price
    return terms


def _match(book: Book, broker_order_id: int | None, perm_id: int | None) -> Order | None:
    order = book.find(perm_id=perm_id)
    if order is None and broker_order_id is not None:
        order = book.find(broker_order_id=broker_order_id)
        if order is not None and None not in (order.perm_id, perm_id) and order.perm_id != perm_id:
            return None  # the id was reused by another order
    return order


def _report(
    book: Book, out: list[Difference], kind: str, key: str, broker: Any, in_book: Any = None
) -> None:
    # Report-only differences are reported once per book, so reconcile stays idempotent.
    if (kind, key, broker) not in book.reported:
        book.reported.add((kind, key, broker))
        out.append(Difference(kind, key, in_book, broker, "reported only"))


def reconcile_book(book: Book, broker: BrokerState) -> list[Difference]:
    """Bring the book to the broker's truth; return what differed and what was done.

    Differences come in a stable order: book orders oldest first, then
    adopted orders by broker id, then broker fills by (time, exec_id), then
    the other broker orders by id. A second call with the same state
    returns []. Positions are not compared here: see
    :func:`position_differences`.
    """
    out: list[Difference] = []
    for order in book.orders(open_only=True):
        out.extend(_reconcile_order(book, order, broker))
    for bid, state in sorted(broker.orders.items()):
        out.extend(_adopt(book, bid, state))
    for fill in sorted(broker.fills, key=lambda f: (f.time, f.exec_id)):
        if book.has_fill(fill.exec_id):
            continue
        owner = book.get(fill.client_order_id) if fill.client_order_id else None
        owner = owner or _match(book, fill.broker_order_id, fill.perm_id)
        if owner is None:
            _report(book, out, "unknown_order", fill.exec_id, fill)
            continue
        fill = dataclasses.replace(fill, client_order_id=owner.client_order_id)
        book.add_fill(fill)
        out.append(Difference("missing_fill", fill.exec_id, None, fill, "added the fill"))
    for bid, state in sorted(broker.orders.items()):
        if _match(book, bid, state.perm_id) is None:
            _report(book, out, "unknown_order", str(bid), state)
    return out


def _adopt(book: Book, bid: int, state: BrokerOrder) -> list[Difference]:
    """Take in an order of ours that the broker has and the book lacks, as the broker reports it.

    An order the book holds as never sent (REJECTED without a broker id: refused
    by the risk gate, or marked ``never_sent``) is replaced too: a retry sent it,
    and the service died before journalling that.
    """
    order = state.order
    if order is None:
        return []
    cid = order.client_order_id
    known = book.get(cid)
    if known is not None and not never_sent(known):
        return []
    matched = _match(book, bid, state.perm_id)
    if matched is not None and matched.client_order_id != cid:
        return []
    try:
        book.put_order(dataclasses.replace(
            order, broker_order_id=bid, perm_id=state.perm_id, status=state.status, filled_quantity=state.filled,
            avg_fill_price=state.avg_fill_price if state.filled else None, updated_at=utc_now()))
    except ValidationError as exc:
        log.error("broker order %s (%s) cannot be adopted: %s", bid, cid, exc)
        return []
    if known is None:
        return [Difference("adopted", cid, None, state, "added the order")]
    return [Difference("adopted", cid, {"status": known.status, "broker_order_id": None}, state,
                       "replaced the order")]


def _reconcile_order(book: Book, order: Order, broker: BrokerState) -> list[Difference]:
    cid = order.client_order_id
    state = broker.orders.get(order.broker_order_id) if order.broker_order_id is not None else None
    if state is not None and None not in (order.perm_id, state.perm_id):
        state = state if state.perm_id == order.perm_id else None
    if state is None:
        if order.broker_order_id is None and order.status is not OrderStatus.PENDING_SUBMIT:
            return []
        if order.broker_order_id is not None and not broker.complete:
            log.warning("order %s (broker id %s) not reported; completed orders unknown",
                        cid, order.broker_order_id)
            return []
        book.put_order(dataclasses.replace(
            order, status=OrderStatus.REJECTED, broker_order_id=None, updated_at=utc_now()))
        ours = {"status": order.status, "broker_order_id": order.broker_order_id}
        return [Difference("never_sent", cid, ours, None, "marked REJECTED")]
    avg = order.avg_fill_price if state.avg_fill_price is None else state.avg_fill_price
    wanted = {"status": state.status, "filled_quantity": state.filled,
              "avg_fill_price": None if state.filled == 0 else avg,
              "perm_id": order.perm_id if state.perm_id is None else state.perm_id,
              **_terms(order, state.order)}
    changes = {k: v for k, v in wanted.items() if getattr(order, k) != v}
    if not changes:
        return []
    kinds = {"filled_quantity": "filled"}
    try:
        book.put_order(dataclasses.replace(order, **changes, updated_at=utc_now()))
    except ValidationError as exc:  # e.g. the broker reports more filled than ordered
        log.error("order %s: broker values %s refused: %s", cid, changes, exc)
        out: list[Difference] = []
        for k, v in changes.items():
            _report(book, out, kinds.get(k, k), cid, v, in_book=getattr(order, k))
        return out
    return [Difference(kinds.get(k, k), cid, getattr(order, k), v, "updated the book")
            for k, v in changes.items()]


def position_differences(book: Book, broker: BrokerState) -> list[Difference]:
    """Return the keys whose position differs from the broker's, by key (reported only).

    Not idempotent by design: a mismatch is reported on every call, as the
    account may hold positions from before this journal.
    """
    mine = book.positions()
    theirs = {k: v for k, v in broker.positions.items() if v != 0}
    return [Difference("position", key, mine.get(key, _ZERO), theirs.get(key, _ZERO),
                       "reported only")
            for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key, _ZERO) != theirs.get(key, _ZERO)]


def journal_entries(book: Book, differences: Iterable[Difference]) -> list[dict[str, Any]]:
    """Return the journal entries that replay a reconcile: fills, order snapshots, a summary."""
    differences = list(differences)
    entries: list[dict[str, Any]] = []
    reasons: dict[str, list[str]] = {}
    for d in differences:
        if d.kind == "missing_fill":
            entries.append({"type": "fill", "fill": d.broker})
            reasons.setdefault(d.broker.client_order_id, []).append(f"fill {d.key} added")
        elif d.kind in _ORDER_KINDS and d.action != "reported only":
            reasons.setdefault(d.key, []).append(f"{d.kind}: {d.book!r} -> {d.broker!r}")
    entries += [{"type": "order", "order": book.order(cid), "event": "reconciled",
                 "reason": "; ".join(why)} for cid, why in reasons.items()]
    if differences:
        entries.append({"type": "reconcile", "differences": [d.to_dict() for d in differences]})
    return entries


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
    differences: list[Difference] = reconcile_book(desk.book, state)
    # The book has changed: what cannot be journalled now is kept for the next reconcile (its retry).
    desk.unjournalled.extend(journal_entries(desk.book, differences))
    while desk.unjournalled:
        await desk.recorder.write(desk.unjournalled[0])
        del desk.unjournalled[0]
    reported = [d.to_dict() for d in differences + position_differences(desk.book, state)]
    for d in reported:
        log.warning("reconcile: %s %s: book %s, broker %s (%s)", d["kind"], d["key"], d["book"], d["broker"],
                    d["action"])
    if reported:
        desk.recorder.publish("order.reconciled", reported)
    desk.synced = True
    log.info("reconciled with the broker: %d orders, %d executions, %d differences", len(state.orders),
             len(state.fills), len(reported))
    return reported


class Resync:
    """trader_service's re-sync with the broker after each (re)connect: the kill switch's cancel, the reconcile.

    A failed re-sync is tried again (``retry``, :data:`~trader.retry.RECOVERY_RETRY`)
    while connected: until it succeeds the desk refuses orders, so a long
    outage costs at most the policy's cap once it ends. ``error`` says why the
    last attempt failed while it is retried; ``differences`` are the last
    reconcile's.
    """

    def __init__(self, desk: Desk, switch: KillSwitch, day: TradingDay, degraded: Callable[[str], None]) -> None:
        self.desk = desk
        self.switch = switch
        self.day = day
        self.degraded = degraded  # the service's set_degraded
        self.retry = RECOVERY_RETRY
        self.error: str | None = None  # why the last re-sync attempt failed, while it is retried
        self.differences: list[dict[str, Any]] = []

    async def run(self, *, retry: bool = True) -> None:
        """Re-sync with the broker after a (re)connect: the kill switch's global cancel, then reconcile.

        The global cancel goes first: it needs neither the book nor Redis, and an
        engaged switch must not wait on (or be skipped by) a reconcile that fails.
        A failed reconcile leaves the desk unsynced (orders refused): with ``retry``
        it is tried again (``self.retry``) for as long as the connection holds, the
        service DEGRADED with the error as its reason meanwhile; the adapter reports
        the connection up only once this returns.
        """
        if self.desk.risk.kill_switch_engaged:  # engaged while away, or before a restart: orders may still be working
            log.warning("kill switch engaged: sending IB's global cancel after the (re)connect")
            self.switch.cancel_everything()
        self.error = None
        if retry:
            await self.retry.call(self._reconcile, retry_on=RESYNC_ERRORS, what="re-sync with the broker",
                                  logger=log, on_retry=self._failed,
                                  give_up=lambda: not self.desk.adapter.connected)
        else:
            await self._reconcile()
        self.error = None
        await self.day.roll()

    async def _reconcile(self) -> None:
        self.differences = await reconcile(self.desk)

    def _failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"[:200]
        self.degraded(f"connected, but the re-sync with the broker failed ({self.error}); "
                      "orders refused until it succeeds")
