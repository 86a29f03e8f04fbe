"""Book: the trader service's orders and fills, rebuilt from the journal.

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

The book owns its orders: ``add_fill`` and a reconcile may replace an Order
object, so read it back with :meth:`Book.order`; an order changed in place must
be put back (:meth:`Book.put_order`), which keeps the indexes, the open set and
the working totals per contract (:meth:`Book.working`, what the risk gate reads
on every order) up to date without scanning the book. After a change the service
journals the entries that replay it (``reconcile.journal_entries`` for a
reconcile). Reconciliation with the broker is ``reconcile.reconcile_book``: it
assumes no placement is in flight (call it at start-up or while submissions are
paused): a PENDING_SUBMIT order without a broker id is taken as never sent.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trader.domain import Fill, Order, OrderStatus
from trader.errors import NotFound, ValidationError
from trader.trading.risk import RiskGate
from trader.trading.working import Working

if TYPE_CHECKING:
    from trader.trading.journal import Journal

__all__ = ["Book", "never_sent", "rebuild"]

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
MIN_ID_PREFIX = 4  # the fewest characters of an order id that name it (Book.resolve_id)
ELLIPSIS = "…"  # what a narrow table puts in the middle of an id it abbreviates (cli.layout.abbreviate)


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
        #: Report-only differences reconcile found already (``reconcile.reconcile_book``): each is reported once.
        self.reported: set[tuple[str, str, Any]] = set()
        self._ordered: list[str] = []  # client ids oldest first, by _sort_keys
        self._sort_keys: list[tuple[datetime, int]] = []  # (created_at, seq), parallel to _ordered
        self._children: dict[str, list[str]] = {}  # parent client id -> its bracket children
        # Kept as orders change, so no query on the order path scans the whole book:
        self._open: set[str] = set()  # client ids of the orders not done
        self._working: dict[str, Working] = {}  # contract key -> what its open orders would add, per side
        self._working_by_order: dict[str, tuple[str, Working]] = {}  # client id -> (key, its share)
        # wait_done's: the ids not settled yet, whether fills must be booked too, and the event set when none is left
        self._seen_open: set[str] = set()  # orders this book saw open (their unbooked fills count as working)
        self._waiters: list[tuple[set[str], bool, asyncio.Event]] = []

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
        if not order.is_done:
            self._seen_open.add(cid)
        # What its status says it filled and no booked execution holds yet counts only for an order seen open
        # here: one adopted already done (yesterday's, whose executions IB no longer sends) never gets them.
        booked = sum(self._counted.get(cid, {}).values(), _ZERO) if cid in self._seen_open else order.filled_quantity
        share = Working.of(order, order.filled_quantity - booked)
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
            self._wake(order)
        else:
            self._open.add(cid)

    def _settled(self, order: Order, booked: bool = True) -> bool:
        """Return whether ``order`` has ended and (``booked``) every fill its status reports is booked here."""
        if not order.is_done:
            return False
        return not booked or sum(self._counted.get(order.client_order_id, {}).values(), _ZERO) >= order.filled_quantity

    def _wake(self, order: Order) -> None:
        """Tell the waiters of :meth:`wait_done` that ``order`` has settled, as each asked, if it has."""
        if not self._waiters or not order.is_done:
            return
        for pending, booked, ended in self._waiters:
            if order.client_order_id in pending and self._settled(order, booked):
                pending.discard(order.client_order_id)
                if not pending:
                    ended.set()

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
            self._track(order)  # its share drops what the fill now holds; a waiter may be done
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

    def resolve_id(self, text: str) -> str:
        """Return the client order id ``text`` names: the id, a unique prefix, or a table's ``96ca…0d3c``.

        The exact id wins; else a prefix of at least ``MIN_ID_PREFIX``
        characters, or the abbreviated form a narrow table shows (prefix, an
        ellipsis ``…`` or ``...``, suffix), that matches exactly one order
        (or one order and its bracket legs: then the order).
        NotFound when none matches, ValidationError (``candidates``) when
        several do. One resolver for every command that names an order.
        """
        text = text.strip()
        if text in self._orders:
            return text
        head, dots, tail = text.partition(ELLIPSIS)
        if not dots:
            head, dots, tail = text.partition("...")
        if len(head) + len(tail) >= MIN_ID_PREFIX:
            found = [cid for cid in self._ordered if cid.startswith(head) and cid.endswith(tail)
                     and len(cid) >= len(head) + len(tail) + (1 if dots else 0)]
            if len(found) > 1:  # a bracket's legs share their parent's prefix: the prefix names the parent
                found = [cid for cid in found if self._orders[cid].parent_id not in found]
            if len(found) == 1:
                return found[0]
            if found:
                raise ValidationError(f"{text!r} names {len(found)} orders: {', '.join(found[:10])}"
                                      f"{', ...' if len(found) > 10 else ''}; give more of the id",
                                      client_order_id=text, candidates=found)
        raise NotFound(f"no order {text!r} in the book (give the id, at least {MIN_ID_PREFIX} of its first "
                       f"characters, or its abbreviated form 96ca…0d3c)", client_order_id=text)

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

    def has_fill(self, exec_id: str) -> bool:
        """Return whether the book holds the fill ``exec_id``."""
        return exec_id in self._fills

    async def wait_done(self, client_order_ids: Iterable[str], timeout: float, *, booked: bool = True) -> bool:
        """Wait until every order named has settled, at most ``timeout`` seconds; return whether they all have.

        Settled: done, and with ``booked`` every fill its status reports booked
        here (IB may send an order's Filled status before its executions; a
        close sizes the next one from them). The kill switch waits for done
        alone (``booked=False``): it counts cancels. Woken by the orders' own
        updates (:meth:`put_order`, :meth:`add_fill`), not by polling.
        NotFound for an id the book does not hold.
        """
        pending = {c for c in client_order_ids if not self._settled(self.order(c), booked)}
        if not pending:
            return True
        waiter = (pending, booked, asyncio.Event())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[2].wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(waiter)
        return True

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
