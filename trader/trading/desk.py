"""The order desk: requests become orders through the risk gate, the broker and the journal; broker events come back.

Placing an order: resolve the instrument, price it from the live market,
build the entry and its bracket children, check each against the risk gate,
give each a broker order id, send it, and answer once the broker has acknowledged
it; the journal gets it right after the answer, ahead of anything recorded
about it meanwhile. A ``client_order_id`` makes the call
idempotent: a retry returns the order already placed and never sends again,
even while the first call is still in flight. The broker carries the order's
strategy and client order id (IB: ``orderRef = <strategy>#<client order id>``),
which is how orders are matched again after a crash or a reconnect, and how
reconcile adopts an order the broker got and the journal did not (the service
died in between). The desk talks to the broker only through the
:class:`~trader.brokers.base.Broker` seam, in domain objects.

Broker events (status reports, executions with their commissions) update the
book, go to the journal and then to the bus (``order.<event>``, ``fill``).

The desk is built in layers, one concept each: :mod:`trader.trading.desk_events`
(broker events booked, the answer about an order), :mod:`trader.trading.desk_changes`
(prices, the risk gate's view of the book, modify and cancel) and this module (placing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails
from trader.domain import OrderStatus
from trader.domain.checks import utc_now
from trader.errors import Conflict, RiskLimitExceeded
from trader.trading.book import Book, never_sent
from trader.trading.desk_changes import QUOTE_WAIT, DeskChanges
from trader.trading.instruments import Resolver
from trader.trading.recorder import Recorder
from trader.trading.requests import (
    BuiltOrders,
    OrderRequest,
    build_orders,
    new_client_order_id,
    parse_request,
)
from trader.trading.risk import RiskGate
from trader.trading.selection import choose_account
from trader.trading.working import Working

log = logging.getLogger(__name__)

__all__ = ["QUOTE_WAIT", "Desk", "Priced"]


@dataclass(frozen=True, slots=True)
class Priced:
    """A request's orders as they would be sent, with the instrument and the prices they were built from."""

    inst: ContractDetails
    market: Decimal | None
    reference: Decimal | None
    orders: BuiltOrders


class Desk(DeskChanges):
    """Places, modifies and cancels orders, and books what the broker reports."""

    def __init__(self, adapter: Broker, resolver: Resolver, book: Book, recorder: Recorder, risk: RiskGate,
                 *, account: str | None = None, ack_timeout: float = 5.0) -> None:
        super().__init__(adapter, resolver, book, recorder, risk, ack_timeout=ack_timeout)
        self.account = account
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Attempts whose orders went to the broker: the broker's handles cannot say so once the
        # connection is gone (they go with it), and a cancelled call must not book a sent order unsent.
        self._sent: set[str] = set()
        # What a reconcile changed in the book but could not journal yet (Redis down): the next one writes it
        # first, since the book it finds agrees with the broker and would find nothing left to journal.
        self.unjournalled: list[dict[str, Any]] = []

    # -- placing -------------------------------------------------------------------
    async def place(self, data: dict[str, Any]) -> dict[str, Any]:
        """Place the order ``data`` describes (see OrderRequest); idempotent on its client_order_id."""
        request = parse_request(data)
        coid = request.client_order_id or new_client_order_id()
        self._require_synced()
        inflight = self._inflight.get(coid)
        if inflight is not None:  # before the book: a resend in flight still shows its old, refused state
            return await asyncio.shield(inflight)
        existing = self.book.get(coid)
        if existing is not None and not never_sent(existing):  # never sent: a retry with its id places it
            if existing.action is not request.action or (
                    request.quantity is not None and request.quantity != existing.quantity):
                raise Conflict(f"client_order_id {coid} is already used by {existing.action} {existing.quantity} "
                               f"{existing.contract.key}", client_order_id=coid)
            return self.result(coid)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[coid] = future
        try:
            # A retry of an order the journal holds but the broker never got (the service died
            # in between) sends it now: the caller still wants it, and it cannot be a duplicate.
            sent_before = self.adapter.sent_order_id(coid)
            if request.client_order_id != coid:
                request = request.model_copy(update={"client_order_id": coid})
            result = await self._place(request)
        except BaseException as exc:
            if coid not in self._sent and self.adapter.sent_order_id(coid) == sent_before:  # reached no broker
                self._not_sent(coid, exc)
            future.set_exception(exc)
            future.exception()  # retrieved: a retry that never came must not warn
            raise
        finally:
            del self._inflight[coid]
            self._sent.discard(coid)
        future.set_result(result)
        return result

    async def build(self, request: OrderRequest) -> Priced:
        """Return the orders ``request`` asks for, as they would be sent, with the instrument and its prices.

        The one way from a request to orders, shared by :meth:`place`,
        :meth:`what_if` and the closer: the symbol resolved with the request's
        hints (:meth:`OrderRequest.hints`), priced from the live market, built
        (:func:`build_orders`: tick grid, minimum size, bracket), for the
        account :func:`choose_account` names (NotFound for one the broker does
        not manage). Nothing is sent, booked or charged.
        """
        account = choose_account(request.account, self.adapter.accounts(), self.account)
        inst = await self.resolver.one(request.symbol, **request.hints())
        market, reference = await self._prices(inst, request.action)
        built = build_orders(request, inst.contract, tick=inst.tick, min_size=inst.min_size,
                             reference_price=reference, account=account)
        return Priced(inst, market, reference, built)

    def verdict(self, priced: Priced, *, without: Iterable[str] = ()) -> dict[str, Any]:
        """Return the risk gate's verdict on every order of ``priced`` (the first refusal, else passed); charge nothing.

        ``without``: working orders left out, as they will be when the orders go (a close cancels them first).
        """
        exposure = self.exposure()
        if without:
            working = dict(exposure.working)
            for coid in without:
                order = self.book.order(coid)
                if order.contract.key in working:
                    rest = working[order.contract.key].minus(Working.of(order))
                    working[order.contract.key] = rest
            exposure = dataclasses.replace(exposure, working={k: w for k, w in working.items() if w})
        verdict: dict[str, Any] = {"passed": True, "limit": None, "message": ""}
        for order in priced.orders.all:
            verdict = self.risk.verdict(self._intent(order, priced.inst, priced.market, priced.reference), exposure,
                                        batch=len(priced.orders.all))
            if not verdict["passed"]:
                verdict["client_order_id"] = order.client_order_id
                break
        return verdict

    async def _place(self, request: OrderRequest) -> dict[str, Any]:
        priced = await self.build(request)
        inst, market, reference, built = priced.inst, priced.market, priced.reference, priced.orders
        exposure = self.exposure()
        try:
            for order in built.all:
                self.risk.check(self._intent(order, inst, market, reference), exposure, batch=len(built.all))
        except RiskLimitExceeded as exc:
            built.entry.transition(OrderStatus.REJECTED)
            self.book.put_order(built.entry)
            self.reasons[built.entry.client_order_id] = str(exc)
            await self.recorder.write(self._entry(built.entry, "rejected", str(exc)), "order.rejected",
                                      self.result(built.entry.client_order_id))
            raise
        for order in built.all:
            order.broker_order_id = self.adapter.next_order_id()
        if built.rounded:
            self.rounded[built.entry.client_order_id] = built.rounded
        # The broker first: it is the source of truth. The journal gets the orders once the broker has
        # acknowledged them, after the answer (what is recorded about them meanwhile is held behind them);
        # should the service die before, IB still reports the orders, our client ids in their orderRef, and
        # reconcile adopts them. With no connection to Redis, nothing goes to the broker before the journal
        # has it, and the book takes the orders only then: should the write fail, nothing is left behind.
        entries = [self._entry(order, "submitted") for order in built.all]
        coid = built.entry.client_order_id
        journal_up = self.recorder.journal.connected
        if not journal_up:
            await self.recorder.write_now(entries)
        loop = asyncio.get_running_loop()
        for order in built.all:
            self.book.put_order(order)
            self._acks[order.client_order_id] = loop.create_future()
        if journal_up:
            self.recorder.hold(order.client_order_id for order in built.all)
        try:
            await self._send(built)
        finally:
            result = self.result(coid)
            if journal_up:
                self.recorder.release(entries, "order.submitted", result)
            else:
                self.recorder.publish("order.submitted", result)
        return result

    async def what_if(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return what the order ``data`` describes would do, sending nothing and booking nothing.

        The orders as they would be sent (:meth:`build`, as for :meth:`place`:
        the contract the hints name, the account checked, prices on the tick
        grid or refused off it), the prices rounded, the risk gate's
        verdict on each (``risk``: the first refusal, else passed) and the
        broker's what-if answer for the entry (commission, margin changes;
        a bracket's children only close what it opens). Nothing is journalled
        and the order rate is not charged.
        """
        request = parse_request(data)
        self._require_synced()
        coid = request.client_order_id or new_client_order_id()
        if request.client_order_id != coid:
            request = request.model_copy(update={"client_order_id": coid})
        priced = await self.build(request)
        built = priced.orders
        verdict = self.verdict(priced)
        preview = await self.adapter.what_if(built.entry, timeout=self.ack_timeout)
        return {"order": built.entry, "children": list(built.children), "rounded": self._rounded_json(built.rounded),
                "risk": verdict, "broker": dataclasses.asdict(preview), "market": priced.market,
                "reference_price": priced.reference}

    def _not_sent(self, coid: str, exc: BaseException) -> None:
        """Book the orders this attempt booked and could not send (their send failed) as never sent.

        The broker never got them, so a retry with the same id sends them
        (see ``never_sent``), as it does after a refusal by the risk gate; the
        journal gets that after their "submitted" entries.
        """
        for order in (self.book.get(coid), *self.book.children(coid)):
            if order is None or order.broker_order_id is None or order.status is not OrderStatus.PENDING_SUBMIT:
                continue  # not booked by this attempt (only a never-sent order is placed again), or sent
            unsent = dataclasses.replace(order, status=OrderStatus.REJECTED, broker_order_id=None,
                                         updated_at=utc_now())
            self.book.put_order(unsent)
            reason = self.reasons[unsent.client_order_id] = f"not sent: {type(exc).__name__}: {exc}"
            self.recorder.record(self._entry(unsent, "not_sent", reason), "order.rejected",
                                 self.result(unsent.client_order_id))

    async def _send(self, built: BuiltOrders) -> None:
        """Send the orders; return at the broker's first answer to the entry, or after ``ack_timeout``.

        Everything is ready before the first send, the wait's timer included,
        so that after the last one the task only waits: the broker, woken by a
        send, usually takes this process's CPU at once, and anything left to
        do would then wait for the broker, and its answer for that (see
        :mod:`trader.brokers.ib.orders`). The orders count toward the rate
        limit as they go to the broker, one whose send failed too.
        """
        coid = built.entry.client_order_id
        ack = self._acks[coid]
        try:
            async with asyncio.timeout(self.ack_timeout):  # no task per wait, unlike wait_for
                for _ in built.all:
                    self.risk.record_order()
                self.adapter.place_orders(built.all)
                self._sent.add(coid)
                await ack
        except TimeoutError:
            log.warning("order %s: no acknowledgement from the broker within %.0f s", coid, self.ack_timeout)
        finally:
            if self._acks.get(coid) is ack:
                del self._acks[coid]
