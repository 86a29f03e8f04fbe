"""The matching engine: simulated orders filled against the generated quotes.

Pure and synchronous: the caller feeds it orders (:meth:`MatchingEngine.place`,
:meth:`cancel`) and quotes (:meth:`on_quote`) and gets back the events to
report, in order. Time comes from the injected ``clock``; money is Decimal.

Rules, close to IB's for a simulated venue:

- a marketable order fills at the touch (buy at the ask, sell at the bid), at
  most the displayed size of that quote; the rest waits for the next quote
  (partial fills). Liquidity taken from a quote is gone for other orders until
  the quote refreshes;
- LMT fills when the touch reaches its limit, at the touch (price improvement);
- STP and STP LMT trigger when the touch on their side crosses the stop (a buy
  stop on the ask, a sell stop on the bid), then behave as MKT or LMT;
- TRAIL keeps its stop ``trail amount`` (or ``trail percent``) behind the best
  touch seen and triggers like STP;
- IOC fills what it can on arrival and cancels the rest; FOK fills entirely on
  arrival or is cancelled; DAY and GTC rest (:meth:`expire_day` ends DAY orders);
- an order with ``transmit=False`` is held silently until an order of its
  bracket is sent with ``transmit=True``; children wait (PreSubmitted) until
  their parent fills, are cancelled with it, and behave as one OCA group;
- OCA type 1 cancels the group's other orders on a fill; types 2 and 3 reduce
  them by the filled quantity.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from trader.domain import Action, Fill, OrderStatus, OrderType, TimeInForce
from trader.errors import ValidationError
from trader.sim.catalogue import SimInstrument
from trader.sim.msgids import ErrorCode
from trader.sim.order_book import OrderBook
from trader.sim.order_rules import domain_order, off_tick, price_ok, side_touch, stop_triggered
from trader.sim.orders import (
    EngineEvent,
    Execution,
    OrderChanged,
    OrderError,
    OrderFilled,
    OrderTicket,
    Quote,
    SimOrder,
)

__all__ = ["MatchingEngine"]


class MatchingEngine:
    """Orders of every client, matched against the latest quote of each instrument.

    ``book`` keeps every order; placing an order and matching a quote look only
    at the live ones, so the engine does not slow down as orders fill and cancel.
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        commission: Callable[[SimInstrument, Decimal, Decimal], Decimal],
        *,
        account: str = "DU1234567",
        commission_currency: str = "USD",
        first_perm_id: int = 1_000_000_001,
    ) -> None:
        self._clock = clock
        self._commission = commission
        self.account = account
        self.commission_currency = commission_currency
        self._perm_ids = itertools.count(first_perm_id)
        self._exec_seq = itertools.count(1)
        self.book = OrderBook()
        self._quotes: dict[int, Quote] = {}
        self._taken: dict[int, list[Decimal]] = {}  # conid -> [bid size taken, ask size taken]
        self.executions: list[Execution] = []
        self.reject_next = 0  # control: refuse this many new orders

    # -- queries ---------------------------------------------------------------
    def get(self, client_id: int, order_id: int) -> SimOrder | None:
        return self.book.get((client_id, order_id))

    def orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Return every order (of one client), oldest first."""
        return list(self.book) if client_id is None else self.book.of_client(client_id)

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Return the transmitted orders that are still working, oldest first."""
        live = self.book.live()
        return [o for o in live if o.is_working and (client_id is None or o.client_id == client_id)]

    def completed_orders(self) -> list[SimOrder]:
        """Return the transmitted orders that are done, oldest first."""
        return [o for o in self.book if o.order.is_done and not o.held]

    def quote(self, conid: int) -> Quote | None:
        return self._quotes.get(conid)

    # -- orders ----------------------------------------------------------------
    def place(self, ticket: OrderTicket) -> list[EngineEvent]:
        """Accept a new order or modify a working one (same client and order id)."""
        existing = self.book.get(ticket.key)
        if existing is not None:
            return self._modify(existing, ticket)
        if self.reject_next > 0:
            self.reject_next -= 1
            return [self._error(ticket, ErrorCode.ORDER_REJECTED, "Order rejected - reason:rejected by tws-sim control")]
        problem = off_tick(ticket)
        if problem is not None:
            return [problem]
        if ticket.parent_id and self.book.get((ticket.client_id, ticket.parent_id)) is None:
            return [self._error(ticket, ErrorCode.ORDER_REJECTED, f"Order rejected - reason:parent order {ticket.parent_id} not found")]
        try:
            order = domain_order(ticket, None, clock=self._clock, account=self.account)
        except ValidationError as exc:
            return [self._error(ticket, ErrorCode.ORDER_REJECTED, f"Order rejected - reason:{exc}")]
        order.perm_id = next(self._perm_ids)
        sim = SimOrder(ticket=ticket, order=order, perm_id=order.perm_id, held=not ticket.transmit)
        self.book.add(sim)
        if sim.held:
            return []
        events: list[EngineEvent] = []
        for waiting in self._held_bracket(sim):
            events += self._activate(waiting)
        events += self._activate(sim)
        return events

    def preview(self, ticket: OrderTicket) -> SimOrder | OrderError:
        """Check a what-if order as :meth:`place` checks a new one; return it unbooked, or IB's refusal.

        Nothing is kept: the engine neither books nor matches it.
        """
        problem = off_tick(ticket)
        if problem is not None:
            return problem
        try:
            order = domain_order(ticket, None, clock=self._clock, account=self.account)
        except ValidationError as exc:
            return self._error(ticket, ErrorCode.ORDER_REJECTED, f"Order rejected - reason:{exc}")
        order.transition(OrderStatus.PRE_SUBMITTED, self._clock())
        return SimOrder(ticket=ticket, order=order, perm_id=0)

    def price_estimate(self, ticket: OrderTicket) -> Decimal | None:
        """Return the price a what-if order is costed at: its limit (else stop), else the touch it would take."""
        price = ticket.limit_price or ticket.stop_price
        if price is not None:
            return price
        quote = self._quotes.get(ticket.instrument.conid)
        if quote is None:
            return None
        return quote.ask if ticket.action is Action.BUY else quote.bid

    def commission(self, ticket: OrderTicket, price: Decimal) -> Decimal:
        """Return what the commission schedule charges for ``ticket`` filled whole at ``price``."""
        return self._commission(ticket.instrument, ticket.quantity, price)

    def cancel(self, client_id: int, order_id: int, reason: str = "") -> list[EngineEvent]:
        """Cancel an order; refuse with IB's codes when it is unknown or done."""
        sim = self.book.get((client_id, order_id))
        if sim is None:
            return [OrderError(client_id, order_id, ErrorCode.CANCEL_UNKNOWN_ORDER,
                               f"OrderId {order_id} that needs to be cancelled is not found.")]
        if sim.order.is_done:
            state = "Filled" if sim.status is OrderStatus.FILLED else "Cancelled"
            return [OrderError(client_id, order_id, ErrorCode.CANCEL_FILLED_ORDER,
                               f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}.")]
        return self._cancel(sim, reason)

    def cancel_all(self) -> list[EngineEvent]:
        """Cancel every working or held order of every client (reqGlobalCancel)."""
        events: list[EngineEvent] = []
        for sim in self.book.live():
            if not sim.order.is_done:  # a parent cancelled earlier in the loop took its children
                events += self._cancel(sim, "global cancel")
        return events

    def expire_day(self) -> list[EngineEvent]:
        """End of the trading day: cancel the working DAY orders."""
        events: list[EngineEvent] = []
        for sim in self.book.live():
            if sim.is_working and sim.ticket.tif is TimeInForce.DAY:
                events += self._cancel(sim, "day order expired")
        return events

    # -- market ----------------------------------------------------------------
    def on_quote(self, conid: int, quote: Quote) -> list[EngineEvent]:
        """Take a new quote for ``conid`` and fill whatever it allows, oldest order first."""
        self._quotes[conid] = quote
        self._taken[conid] = [Decimal(0), Decimal(0)]
        events: list[EngineEvent] = []
        for sim in self.book.live_on(conid):
            if sim.is_working:  # a fill earlier in the loop may have cancelled it (OCA, bracket)
                events += self._try_fill(sim)
        return events

    # -- internals -------------------------------------------------------------
    def _error(self, ticket: OrderTicket, code: int, text: str) -> OrderError:
        return OrderError(ticket.client_id, ticket.order_id, code, text)

    def _modify(self, sim: SimOrder, ticket: OrderTicket) -> list[EngineEvent]:
        if sim.order.is_done:
            if sim.status is OrderStatus.FILLED:
                return [self._error(ticket, ErrorCode.CANNOT_MODIFY_FILLED, "Cannot modify a filled order.")]
            return [self._error(ticket, ErrorCode.DUPLICATE_ORDER_ID, "Duplicate order id")]
        if ticket.instrument.conid != sim.instrument.conid or ticket.action is not sim.ticket.action:
            return [self._error(ticket, ErrorCode.ORDER_REJECTED,
                                "Order rejected - reason:a modification cannot change the contract or side")]
        problem = off_tick(ticket)
        if problem is not None:
            return [problem]
        if ticket.quantity < sim.order.filled_quantity:
            return [self._error(ticket, ErrorCode.ORDER_REJECTED,
                                f"Order rejected - reason:quantity {ticket.quantity} is below the filled {sim.order.filled_quantity}")]
        try:
            order = domain_order(ticket, sim, clock=self._clock, account=self.account)
        except ValidationError as exc:
            return [self._error(ticket, ErrorCode.ORDER_REJECTED, f"Order rejected - reason:{exc}")]
        was_held, old_parent_id = sim.held, sim.ticket.parent_id
        sim.ticket, sim.order = ticket, order
        self.book.reparent(sim, old_parent_id)
        if ticket.order_type is not OrderType.TRAIL:
            sim.trail_stop = None
        sim.triggered = False
        if was_held:
            if not ticket.transmit:
                return []
            sim.held = False
            events: list[EngineEvent] = []
            for waiting in self._held_bracket(sim):
                events += self._activate(waiting)
            return events + self._activate(sim)
        if sim.order.filled_quantity == sim.order.quantity:  # reduced to what was already filled
            sim.order.transition(OrderStatus.FILLED, self._clock())
            self._finish(sim)
            return [OrderChanged(sim)]
        return [OrderChanged(sim), *self._try_fill(sim)]

    def _held_bracket(self, sim: SimOrder) -> list[SimOrder]:
        """Return held orders sent with ``sim``: its parent and its parent's other children."""
        root = sim.ticket.parent_id or sim.order_id
        family = self.book.children(sim.client_id, root)
        parent = self.book.get((sim.client_id, root))
        if parent is not None:
            family.append(parent)
        found = sorted((o for o in family if o is not sim and o.held), key=lambda o: o.perm_id)
        for other in found:
            other.held = False
        return found

    def _parent(self, sim: SimOrder) -> SimOrder | None:
        if not sim.ticket.parent_id:
            return None
        return self.book.get((sim.client_id, sim.ticket.parent_id))

    def _waits_for_parent(self, sim: SimOrder) -> bool:
        parent = self._parent(sim)
        return parent is not None and parent.status is not OrderStatus.FILLED

    def _activate(self, sim: SimOrder) -> list[EngineEvent]:
        now = self._clock()
        parent = self._parent(sim)
        if parent is not None and parent.order.is_done and parent.status is not OrderStatus.FILLED:
            sim.order.transition(OrderStatus.CANCELLED, now)
            self._finish(sim)
            return [OrderChanged(sim), OrderError(sim.client_id, sim.order_id, ErrorCode.ORDER_CANCELLED,
                                                  "Order Canceled - reason:parent order is cancelled")]
        if self._waits_for_parent(sim):
            sim.order.transition(OrderStatus.PRE_SUBMITTED, now)
            return [OrderChanged(sim)]
        tif = sim.ticket.tif
        if tif is TimeInForce.FOK and self._available(sim) < sim.order.remaining:
            sim.order.transition(OrderStatus.CANCELLED, now)
            self._finish(sim)
            return [OrderChanged(sim), OrderError(sim.client_id, sim.order_id, ErrorCode.ORDER_CANCELLED,
                                                  "Order Canceled - reason:fill or kill: not enough size at the price")]
        sim.order.transition(OrderStatus.SUBMITTED, now)
        events: list[EngineEvent] = [OrderChanged(sim), *self._try_fill(sim)]
        if tif is TimeInForce.IOC and not sim.order.is_done:
            events += self._cancel(sim, "immediate or cancel: unfilled remainder")
        return events

    def _cancel(self, sim: SimOrder, reason: str) -> list[EngineEvent]:
        now = self._clock()
        sim.order.transition(OrderStatus.CANCELLED, now)
        self._finish(sim)
        events: list[EngineEvent] = []
        if not sim.held:
            events += [OrderChanged(sim), OrderError(sim.client_id, sim.order_id, ErrorCode.ORDER_CANCELLED,
                                                     f"Order Canceled - reason:{reason}")]
        for child in self.book.children(sim.client_id, sim.order_id):
            if not child.order.is_done:
                events += self._cancel(child, "parent order is cancelled")
        return events

    def _finish(self, sim: SimOrder) -> None:
        sim.completed_time = self._clock()
        sim.completed_status = "Filled" if sim.status is OrderStatus.FILLED else "Cancelled"
        self.book.retire(sim)

    def _side_touch(self, sim: SimOrder, quote: Quote) -> tuple[Decimal, Decimal]:
        """Return (price, size still available) on the side ``sim`` trades against."""
        return side_touch(sim, quote, self._taken.setdefault(sim.instrument.conid, [Decimal(0), Decimal(0)]))

    def _available(self, sim: SimOrder) -> Decimal:
        """Return the size ``sim`` could take right now at its price (for FOK)."""
        quote = self._quotes.get(sim.instrument.conid)
        if quote is None or sim.ticket.order_type not in (OrderType.MKT, OrderType.LMT):
            return Decimal(0)
        price, size = self._side_touch(sim, quote)
        if not price_ok(sim, price):
            return Decimal(0)
        return size

    def _try_fill(self, sim: SimOrder) -> list[EngineEvent]:
        quote = self._quotes.get(sim.instrument.conid)
        if quote is None or not sim.is_working or self._waits_for_parent(sim):
            return []
        kind = sim.ticket.order_type
        if kind in (OrderType.STP, OrderType.STP_LMT, OrderType.TRAIL) and not sim.triggered:
            if not stop_triggered(sim, quote):
                return []
            sim.triggered = True
        price, size = self._side_touch(sim, quote)
        if size <= 0 or not price_ok(sim, price):
            return []
        quantity = min(size, sim.order.remaining)
        return self._execute(sim, quantity, price)

    def _execute(self, sim: SimOrder, quantity: Decimal, price: Decimal) -> list[EngineEvent]:
        now = self._clock()
        inst = sim.instrument
        taken = self._taken.setdefault(inst.conid, [Decimal(0), Decimal(0)])
        taken[1 if sim.ticket.action is Action.BUY else 0] += quantity
        commission = self._commission(inst, quantity, price)
        exec_id = f"0000e{next(self._exec_seq):03x}.{sim.perm_id:08x}.01.01"
        fill = Fill(exec_id, sim.order.client_order_id, inst.contract, sim.ticket.action, quantity, price, now,
                    commission=commission, broker_order_id=sim.order_id, perm_id=sim.perm_id,
                    account=sim.order.account)
        sim.order.apply_fill(fill)
        sim.last_fill_price = price
        assert sim.order.avg_fill_price is not None
        execution = Execution(
            exec_id=exec_id, time=now, client_id=sim.client_id, order_id=sim.order_id, perm_id=sim.perm_id,
            instrument=inst, action=sim.ticket.action, shares=quantity, price=price,
            cum_qty=sim.order.filled_quantity, avg_price=sim.order.avg_fill_price, commission=commission,
            commission_currency=self.commission_currency, account=sim.order.account or self.account,
            order_ref=sim.ticket.order_ref,
        )
        self.executions.append(execution)
        events: list[EngineEvent] = [OrderFilled(sim, execution)]
        if sim.order.is_done:
            self._finish(sim)
        events.append(OrderChanged(sim))
        events += self._after_fill(sim, quantity)
        return events

    def _after_fill(self, sim: SimOrder, quantity: Decimal) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        group = sim.ticket.oca_group
        if group:
            for other in self.book.live():
                if other is sim or not other.is_working or other.ticket.oca_group != group:
                    continue
                if sim.ticket.oca_type in (2, 3):
                    events += self._reduce(other, quantity)
                else:
                    events += self._cancel(other, f"OCA group {group} filled")
        if sim.ticket.parent_id:
            for other in self._siblings(sim):
                events += self._reduce(other, quantity)
        if sim.status is OrderStatus.FILLED:
            for child in self.book.children(sim.client_id, sim.order_id):
                if child.is_working:
                    child.order.transition(OrderStatus.SUBMITTED, self._clock())
                    events += [OrderChanged(child), *self._try_fill(child)]
        return events

    def _siblings(self, sim: SimOrder) -> Iterable[SimOrder]:
        for other in self.book.children(sim.client_id, sim.ticket.parent_id):
            if other is not sim and other.is_working:
                yield other

    def _reduce(self, sim: SimOrder, quantity: Decimal) -> list[EngineEvent]:
        left = sim.order.quantity - quantity
        if left <= sim.order.filled_quantity:
            return self._cancel(sim, "OCA group or bracket sibling filled")
        sim.ticket = replace(sim.ticket, quantity=left)
        sim.order.quantity = left
        return [OrderChanged(sim)]
