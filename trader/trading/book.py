"""Book: the trader service's orders and fills, rebuilt from the journal and reconciled with the broker.

**Fills vs order snapshots.** The journal is the log of the book's own
operations: :meth:`Book.apply` replays an order entry through
:meth:`Book.put_order` and a fill entry through :meth:`Book.add_fill`, the
same calls the live service makes, so replaying a journal reproduces the live
book exactly, whatever the order of status reports and executions, and even
when the service died between journalling a fill and the order snapshot after it.

* An order snapshot is authoritative: it replaces the order (status, filled
  quantity, average price, ids).
* A fill is recorded once per ``exec_id`` (positions and commissions come from
  the fills) and is *counted* into its order at most once. The book keeps, per
  order, the quantity of the fills counted so far. A new fill for a known order
  changes the order only if the order does not already account for it: if its
  ``filled_quantity`` is already >= counted + this fill (a status report came
  first and its snapshot says so), the fill is counted and the order left as
  is; if the order says exactly what was counted before, ``Order.apply_fill``
  books the fill; otherwise (a stale snapshot) the order is brought to the
  counted quantity at the fills' average price. A fill of the wrong side, or
  one that would overfill, is recorded but never counted (logged).
* A repeated ``exec_id`` is not a new fill (``add_fill`` returns False), but
  a commission the stored copy lacks is taken (IB reports it afterwards).

The book owns its orders: ``add_fill`` and ``reconcile`` may replace an Order
object, so read it back with :meth:`Book.order`; an order changed in place must
be put back (:meth:`Book.put_order`), which keeps the indexes, the open set and
the working totals per contract (:meth:`Book.working`, what the risk gate reads
on every order) up to date without scanning the book. After a change the service
journals the entries that replay it (:meth:`Book.journal_entries` for a
reconcile). ``reconcile`` assumes no placement is in flight (call it at
start-up or while submissions are paused): a PENDING_SUBMIT order without a
broker id is taken as never sent.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trader.domain import Fill, Order, OrderStatus, OrderType
from trader.domain.checks import utc_now
from trader.errors import NotFound, ValidationError
from trader.trading.risk import NOTHING_WORKING, RiskGate, Working

if TYPE_CHECKING:
    from trader.trading.journal import Journal

__all__ = ["Book", "BrokerOrder", "BrokerState", "Difference", "never_sent", "rebuild"]

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
_ORDER_KINDS = frozenset({"status", "filled", "avg_fill_price", "perm_id", "never_sent", "adopted"})


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
    """One way the book differed from the broker, and what :meth:`Book.reconcile` did about it.

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


def _take_out(totals: dict[str, Working], key: str, share: Working) -> None:
    """Subtract one order's ``share`` from ``totals[key]``, dropping the key once nothing is left."""
    rest = totals[key].minus(share)
    if rest:
        totals[key] = rest
    else:
        del totals[key]


def never_sent(order: Order) -> bool:
    """Return whether ``order`` is booked as never having reached the broker (REJECTED, no broker id).

    A retry with the same client order id may send such an order, and only
    such an order: this is the one record of what is resendable. The risk
    gate's refusals, the orders whose send failed (the desk books them so), and
    those reconcile marks ``never_sent`` (the broker does not have them) are such.
    """
    return order.status is OrderStatus.REJECTED and order.broker_order_id is None


class Book:
    """Orders by our client_order_id, fills by exec_id; rebuilt from the journal."""

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._sort_key: dict[str, tuple[datetime, int]] = {}  # client id -> (created_at, insertion)
        self._counter = itertools.count()
        self._by_broker_id: dict[int, str] = {}
        self._by_perm_id: dict[int, str] = {}
        self._fills: dict[str, Fill] = {}
        self._counted: dict[str, dict[str, Decimal]] = {}  # client id -> exec id -> quantity
        self._reported: set[tuple[str, str, Any]] = set()
        self._ordered: list[str] = []  # client ids oldest first, by _sort_keys
        self._sort_keys: list[tuple[datetime, int]] = []  # (created_at, seq), parallel to _ordered
        self._children: dict[str, list[str]] = {}  # parent client id -> its bracket children
        # Kept as orders change, so no query on the order path scans the whole book:
        self._open: set[str] = set()  # client ids of the orders not done
        self._working: dict[str, Working] = {}  # contract key -> what its open orders would add, per side
        self._working_by_order: dict[str, tuple[str, Working]] = {}  # client id -> (key, its share)

    # --- replay and updates ---------------------------------------------------

    def apply(self, entry: Mapping[str, Any]) -> None:
        """Replay one journal entry: order snapshots replace, fills are added; others ignored."""
        kind = entry.get("type")
        if kind == "order":
            order = entry.get("order")
            if isinstance(order, Order):
                self.put_order(order)
            else:
                log.error("journal order entry without an Order: %r", entry)
        elif kind == "fill":
            fill = entry.get("fill")
            if isinstance(fill, Fill):
                self.add_fill(fill)
            else:
                log.error("journal fill entry without a Fill: %r", entry)

    def put_order(self, order: Order) -> None:
        """Insert or replace ``order`` (by client_order_id) and index its broker and perm ids."""
        if not isinstance(order, Order):
            raise ValidationError(f"put_order needs an Order, got {type(order).__name__}")
        cid = order.client_order_id
        old = self._orders.get(cid)
        if old is not None:
            for index, key in ((self._by_broker_id, old.broker_order_id),
                               (self._by_perm_id, old.perm_id)):
                if key is not None and index.get(key) == cid:
                    del index[key]
            created, seq = self._sort_key[cid]
            if created != order.created_at:
                at = bisect.bisect_left(self._sort_keys, (created, seq))
                del self._sort_keys[at], self._ordered[at]
                self._insert_sorted(cid, (order.created_at, seq))
        else:
            self._insert_sorted(cid, (order.created_at, next(self._counter)))
            if order.parent_id is not None:
                self._children.setdefault(order.parent_id, []).append(cid)
        self._orders[cid] = order
        if order.broker_order_id is not None:
            self._by_broker_id[order.broker_order_id] = cid
        if order.perm_id is not None:
            self._by_perm_id[order.perm_id] = cid
        self._track(order)

    def _insert_sorted(self, cid: str, sort_key: tuple[datetime, int]) -> None:
        # Orders mostly come oldest first: an insertion near the end, not a re-sort of the book.
        self._sort_key[cid] = sort_key
        at = bisect.bisect(self._sort_keys, sort_key)
        self._sort_keys.insert(at, sort_key)
        self._ordered.insert(at, cid)

    def _track(self, order: Order) -> None:
        """Bring the open set and the working totals up to date with ``order`` (after any change to it)."""
        cid = order.client_order_id
        share = NOTHING_WORKING if order.is_done else Working.of(order)
        key = order.contract.key
        known = self._working_by_order.get(cid)
        if known != (key, share):  # most changes are of status alone: the totals stay
            if known is not None:
                del self._working_by_order[cid]
                _take_out(self._working, *known)
            if share:
                self._working_by_order[cid] = (key, share)
                self._working[key] = self._working[key].plus(share) if key in self._working else share
        if order.is_done:
            self._open.discard(cid)
        else:
            self._open.add(cid)

    def add_fill(self, fill: Fill) -> bool:
        """Record ``fill``; return False if its exec_id is already known (see the module rule)."""
        if not isinstance(fill, Fill):
            raise ValidationError(f"add_fill needs a Fill, got {type(fill).__name__}")
        known = self._fills.get(fill.exec_id)
        if known is not None:
            if known.commission is None and fill.commission is not None:
                self._fills[fill.exec_id] = dataclasses.replace(known, commission=fill.commission)
            return False
        self._fills[fill.exec_id] = fill
        cid = fill.client_order_id
        order = self._orders.get(cid) if cid is not None else None
        if order is not None:
            self._count(order, fill)
        return True

    def _count(self, order: Order, fill: Fill) -> None:
        cid = order.client_order_id
        counted = self._counted.setdefault(cid, {})
        before = sum(counted.values(), _ZERO)
        after = before + fill.quantity
        if fill.action is not order.action or after > order.quantity:
            log.warning("fill %s (%s %s) does not fit order %s (%s %s, %s counted): not counted",
                        fill.exec_id, fill.action, fill.quantity, cid, order.action,
                        order.quantity, before)
            return
        counted[fill.exec_id] = fill.quantity
        if order.filled_quantity >= after:
            return  # the snapshot (a status report) already accounts for this fill
        status = OrderStatus.FILLED if after == order.quantity else OrderStatus.PARTIALLY_FILLED
        allowed = status is order.status or order.status.can_transition(status)
        if order.filled_quantity == before and allowed:
            order.apply_fill(fill)
            self._track(order)
            return
        cost = sum((self._fills[x].price * q for x, q in counted.items()), _ZERO)
        if not allowed:
            log.warning("order %s in %s takes fill %s; status kept", cid, order.status, fill.exec_id)
        self.put_order(dataclasses.replace(
            order, filled_quantity=after, avg_fill_price=cost / after,
            status=status if allowed else order.status, updated_at=fill.time,
        ))

    # --- queries --------------------------------------------------------------

    def order(self, client_order_id: str) -> Order:
        """Return the order ``client_order_id``; raise NotFound if the book has none."""
        try:
            return self._orders[client_order_id]
        except KeyError:
            raise NotFound(f"no order {client_order_id!r} in the book",
                           client_order_id=client_order_id) from None

    def get(self, client_order_id: str) -> Order | None:
        """Return the order ``client_order_id``, or None if the book has none."""
        return self._orders.get(client_order_id)

    def find(self, *, broker_order_id: int | None = None, perm_id: int | None = None) -> Order | None:
        """Return the order with this perm id, else with this broker order id, else None."""
        cid = self._by_perm_id.get(perm_id) if perm_id is not None else None
        if cid is None and broker_order_id is not None:
            cid = self._by_broker_id.get(broker_order_id)
        return self._orders.get(cid) if cid is not None else None

    def orders(self, *, open_only: bool = False) -> list[Order]:
        """Return the orders oldest first (created_at, then insertion); ``open_only``: not done."""
        if open_only:
            return [self._orders[c] for c in self._ordered if c in self._open]
        return [self._orders[c] for c in self._ordered]

    def __len__(self) -> int:
        """Return how many orders the book holds."""
        return len(self._orders)

    def open_count(self) -> int:
        """Return how many orders are not done."""
        return len(self._open)

    def fill_count(self) -> int:
        """Return how many fills the book holds."""
        return len(self._fills)

    def working(self, *, excluding: str | None = None) -> dict[str, Working]:
        """Return what the open orders would add per contract key if they filled (see ``Working``).

        Kept up to date as orders change (:meth:`put_order`, fills), so it costs
        nothing per order however large the book grows. ``excluding`` leaves one
        order out (an order being modified is checked as it would be after).
        """
        totals = dict(self._working)
        known = self._working_by_order.get(excluding) if excluding is not None else None
        if known is not None:
            _take_out(totals, *known)
        return totals

    def children(self, client_order_id: str) -> list[Order]:
        """Return the bracket children of an order, in the order they were placed."""
        return [self._orders[c] for c in self._children.get(client_order_id, ())]

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        """Return the fills in arrival order, all or those of one order."""
        if client_order_id is None:
            return list(self._fills.values())
        return [f for f in self._fills.values() if f.client_order_id == client_order_id]

    def positions(self) -> dict[str, Decimal]:
        """Return the signed quantity per contract key from the fills (flat keys omitted)."""
        totals: dict[str, Decimal] = {}
        for fill in self._fills.values():
            key = fill.contract.key
            totals[key] = totals.get(key, _ZERO) + fill.signed_quantity
        return {key: qty for key, qty in sorted(totals.items()) if qty != 0}

    def commissions(self) -> Decimal:
        """Return the sum of the fills' commissions (those not yet reported count as zero)."""
        return sum((f.commission for f in self._fills.values() if f.commission is not None), _ZERO)

    # --- reconciliation ---------------------------------------------------------

    def _match(self, broker_order_id: int | None, perm_id: int | None) -> Order | None:
        order = self.find(perm_id=perm_id)
        if order is None and broker_order_id is not None:
            order = self.find(broker_order_id=broker_order_id)
            if order is not None and None not in (order.perm_id, perm_id) and order.perm_id != perm_id:
                return None  # the id was reused by another order
        return order

    def _report(
        self, out: list[Difference], kind: str, key: str, broker: Any, book: Any = None
    ) -> None:
        # Report-only differences are reported once per book, so reconcile stays idempotent.
        if (kind, key, broker) not in self._reported:
            self._reported.add((kind, key, broker))
            out.append(Difference(kind, key, book, broker, "reported only"))

    def reconcile(self, broker: BrokerState) -> list[Difference]:
        """Bring the book to the broker's truth; return what differed and what was done.

        Differences come in a stable order: book orders oldest first, then
        adopted orders by broker id, then broker fills by (time, exec_id), then
        the other broker orders by id. A second call with the same state
        returns []. Positions are not compared here: see
        :meth:`position_differences`.
        """
        out: list[Difference] = []
        for order in self.orders(open_only=True):
            out.extend(self._reconcile_order(order, broker))
        for bid, state in sorted(broker.orders.items()):
            out.extend(self._adopt(bid, state))
        for fill in sorted(broker.fills, key=lambda f: (f.time, f.exec_id)):
            if fill.exec_id in self._fills:
                continue
            order = self._orders.get(fill.client_order_id) if fill.client_order_id else None
            order = order or self._match(fill.broker_order_id, fill.perm_id)
            if order is None:
                self._report(out, "unknown_order", fill.exec_id, fill)
                continue
            fill = dataclasses.replace(fill, client_order_id=order.client_order_id)
            self.add_fill(fill)
            out.append(Difference("missing_fill", fill.exec_id, None, fill, "added the fill"))
        for bid, state in sorted(broker.orders.items()):
            if self._match(bid, state.perm_id) is None:
                self._report(out, "unknown_order", str(bid), state)
        return out

    def _adopt(self, bid: int, state: BrokerOrder) -> list[Difference]:
        """Take in an order of ours that the broker has and the book lacks, as the broker reports it.

        An order the book holds as never sent (REJECTED without a broker id: refused
        by the risk gate, or marked ``never_sent``) is replaced too: a retry sent it,
        and the service died before journalling that.
        """
        order = state.order
        if order is None:
            return []
        cid = order.client_order_id
        known = self._orders.get(cid)
        if known is not None and not never_sent(known):
            return []
        matched = self._match(bid, state.perm_id)
        if matched is not None and matched.client_order_id != cid:
            return []
        try:
            self.put_order(dataclasses.replace(
                order, broker_order_id=bid, perm_id=state.perm_id, status=state.status, filled_quantity=state.filled,
                avg_fill_price=state.avg_fill_price if state.filled else None, updated_at=utc_now()))
        except ValidationError as exc:
            log.error("broker order %s (%s) cannot be adopted: %s", bid, cid, exc)
            return []
        if known is None:
            return [Difference("adopted", cid, None, state, "added the order")]
        return [Difference("adopted", cid, {"status": known.status, "broker_order_id": None}, state,
                           "replaced the order")]

    def _reconcile_order(self, order: Order, broker: BrokerState) -> list[Difference]:
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
            self.put_order(dataclasses.replace(
                order, status=OrderStatus.REJECTED, broker_order_id=None, updated_at=utc_now()))
            book = {"status": order.status, "broker_order_id": order.broker_order_id}
            return [Difference("never_sent", cid, book, None, "marked REJECTED")]
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
            self.put_order(dataclasses.replace(order, **changes, updated_at=utc_now()))
        except ValidationError as exc:  # e.g. the broker reports more filled than ordered
            log.error("order %s: broker values %s refused: %s", cid, changes, exc)
            out: list[Difference] = []
            for k, v in changes.items():
                self._report(out, kinds.get(k, k), cid, v, book=getattr(order, k))
            return out
        return [Difference(kinds.get(k, k), cid, getattr(order, k), v, "updated the book")
                for k, v in changes.items()]

    def position_differences(self, broker: BrokerState) -> list[Difference]:
        """Return the keys whose position differs from the broker's, by key (reported only).

        Not idempotent by design: a mismatch is reported on every call, as the
        account may hold positions from before this journal.
        """
        mine = self.positions()
        theirs = {k: v for k, v in broker.positions.items() if v != 0}
        return [Difference("position", key, mine.get(key, _ZERO), theirs.get(key, _ZERO),
                           "reported only")
                for key in sorted(mine.keys() | theirs.keys())
                if mine.get(key, _ZERO) != theirs.get(key, _ZERO)]

    def journal_entries(self, differences: Iterable[Difference]) -> list[dict[str, Any]]:
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
        entries += [{"type": "order", "order": self.order(cid), "event": "reconciled",
                     "reason": "; ".join(why)} for cid, why in reasons.items()]
        if differences:
            entries.append({"type": "reconcile", "differences": [d.to_dict() for d in differences]})
        return entries


async def rebuild(journal: Journal, book: Book | None = None, *, risk: RiskGate | None = None) -> Book:
    """Restore what ``journal`` holds: replay its orders and fills into ``book`` (a new one by default).

    The one way state comes back from the journal, at start-up and in tests.
    An entry the book cannot read is logged and skipped. With ``risk``, the
    kill switch is set as it was last journalled. Nothing else is kept beside
    the book: which orders a retry may send again is read from it (:func:`never_sent`).
    """
    book = Book() if book is None else book
    count = 0
    async for _, entry in journal.entries():
        count += 1
        book.apply(entry)
        if risk is not None and entry.get("type") == "kill_switch":
            if entry.get("engaged"):
                risk.engage_kill_switch(str(entry.get("reason", "")))
            else:
                risk.release_kill_switch()
    log.info("book rebuilt from %d journal entries: %d orders (%d open), %d fills%s", count, len(book),
             book.open_count(), book.fill_count(),
             "; kill switch ENGAGED" if risk is not None and risk.kill_switch_engaged else "")
    return book
