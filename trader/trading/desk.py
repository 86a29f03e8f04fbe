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
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails, OrderReport
from trader.domain import Action, Fill, Order, OrderStatus
from trader.domain.checks import utc_now
from trader.errors import (
    Conflict,
    RiskLimitExceeded,
    TraderError,
    Unavailable,
    ValidationError,
)
from trader.trading.book import Book, never_sent
from trader.trading.instruments import Resolver
from trader.trading.recorder import Recorder
from trader.trading.requests import (
    BuiltOrders,
    OrderRequest,
    Rounded,
    build_orders,
    new_client_order_id,
    on_tick,
    parse_request,
    rounding_for,
    tick_rounding,
)
from trader.trading.risk import RiskGate
from trader.trading.selection import choose_account
from trader.trading.totals import BrokerTotals
from trader.trading.working import Exposure, OrderIntent, Working, notional_price

log = logging.getLogger(__name__)

__all__ = ["Desk", "Priced"]

QUOTE_WAIT = 2.0


@dataclass(frozen=True, slots=True)
class Priced:
    """A request's orders as they would be sent, with the instrument and the prices they were built from."""

    inst: ContractDetails
    market: Decimal | None
    reference: Decimal | None
    orders: BuiltOrders


class Desk:
    """Places, modifies and cancels orders, and books what the broker reports."""

    def __init__(self, adapter: Broker, resolver: Resolver, book: Book, recorder: Recorder, risk: RiskGate,
                 *, account: str | None = None, ack_timeout: float = 5.0) -> None:
        self.adapter = adapter
        self.resolver = resolver
        self.book = book
        self.recorder = recorder
        self.risk = risk
        self.account = account
        self.ack_timeout = ack_timeout
        self.reasons: dict[str, str] = {}
        # The prices this session put on the tick grid, by entry (or modified order): the result shows them.
        self.rounded: dict[str, tuple[Rounded, ...]] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acks: dict[str, asyncio.Future[None]] = {}  # done at the broker's first answer to a new order
        # Attempts whose orders went to the broker: the broker's handles cannot say so once the
        # connection is gone (they go with it), and a cancelled call must not book a sent order unsent.
        self._sent: set[str] = set()
        self._done: dict[str, asyncio.Event] = {}  # set when an order being cancelled reaches its end
        self.pnl_baseline = Decimal(0)  # the account's PnL when the trading day began
        self.synced = False  # reconciled with the broker since the last (re)connect
        # What a reconcile changed in the book but could not journal yet (Redis down): the next one writes it
        # first, since the book it finds agrees with the broker and would find nothing left to journal.
        self.unjournalled: list[dict[str, Any]] = []
        self.broker_totals = BrokerTotals(adapter)
        self._quoted: dict[str, float] = {}  # key -> loop time of the last order priced from its stream
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

    def _require_synced(self) -> None:
        self.adapter.require_connection()
        if not self.synced:
            raise Unavailable("re-syncing with the broker; retry in a moment")

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

    @staticmethod
    def _rounded_json(rounded: tuple[Rounded, ...]) -> list[dict[str, Any]]:
        return [dataclasses.asdict(r) for r in rounded]  # client_order_id, field, asked, sent, how

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

    async def _prices(self, inst: ContractDetails, action: Action) -> tuple[Decimal | None, Decimal | None]:
        """Return the market (mid, else last) and the price a market order would pay."""
        self.adapter.subscribe(inst.contract, owner="desk")
        loop = asyncio.get_running_loop()
        self._quoted[inst.key] = loop.time()
        deadline = loop.time() + QUOTE_WAIT
        quote = self.adapter.quote(inst.contract)
        while (quote is None or not (quote.bid and quote.ask or quote.last)) and loop.time() < deadline:
            await asyncio.sleep(0.01)
            quote = self.adapter.quote(inst.contract)
        bid, ask, last = quote or (None, None, None)
        market = (bid + ask) / 2 if bid and ask else last
        reference = (ask if action is Action.BUY else bid) or market
        return market, reference

    def release_idle_quotes(self, idle: float) -> list[str]:
        """Let go of the streams opened to price orders on instruments with no order for ``idle`` seconds.

        A stream someone else subscribed to goes on; the next order on a
        released instrument opens it again (and waits for its first quote).
        """
        now = asyncio.get_running_loop().time()
        released = [key for key, last in self._quoted.items() if now - last >= idle]
        for key in released:
            del self._quoted[key]
            self.adapter.unsubscribe(key, owner="desk")
        return released

    def _intent(self, order: Order, inst: ContractDetails, market: Decimal | None,
                reference: Decimal | None) -> OrderIntent:
        return OrderIntent(
            key=inst.key, symbol=inst.contract.symbol, action=order.action, quantity=order.quantity,
            multiplier=inst.contract.multiplier or Decimal(1),
            reference_price=notional_price(order.action, order.limit_price, order.stop_price, market, reference),
            market_price=market,
            limit_price=order.limit_price, stop_price=order.stop_price, reduces_only=order.parent_id is not None,
            local_symbol=inst.contract.local_symbol)

    def exposure(self, *, excluding: str | None = None) -> Exposure:
        """Return the book as the risk gate sees it: broker positions, working orders, exposure, day PnL.

        Nothing here scans the book or the account per order: the book keeps its
        working totals as orders change, and the broker's totals are re-read only
        after IB reported a change. ``excluding`` leaves one working order out.
        """
        gross, pnl = self.broker_totals.portfolio()
        return Exposure(positions=self.broker_totals.positions(), working=self.book.working(excluding=excluding),
                        gross_exposure=gross, daily_pnl=pnl - self.pnl_baseline)

    # -- changing ------------------------------------------------------------------
    def _working(self, coid: str) -> Order:
        order = self.book.order(coid)
        if order.is_done:
            raise Conflict(f"order {coid} is {order.status}: nothing to change", client_order_id=coid)
        if not self.adapter.has_order(coid):
            raise Conflict(f"order {coid} is not known to this broker session yet; retry after the re-sync")
        if self.recorder.holding(coid):
            raise Conflict(f"order {coid} is still being placed; retry once it is acknowledged",
                           client_order_id=coid)
        return order

    async def modify(self, coid: str, *, quantity: Any = None, limit_price: Any = None, stop_price: Any = None,
                     trail_amount: Any = None, trail_percent: Any = None, round_prices: bool = False
                     ) -> dict[str, Any]:
        """Change a working order's quantity or prices (re-sent to the broker under the same order id).

        A price off the tick grid is refused with the nearest valid ones, or
        with ``round_prices`` put on the cautious tick (``rounding_for``; the result's ``rounded``
        says so).
        """
        self._require_synced()
        order = self._working(coid)
        changes = {k: v for k, v in {"quantity": quantity, "limit_price": limit_price, "stop_price": stop_price,
                                     "trail_amount": trail_amount, "trail_percent": trail_percent}.items()
                   if v is not None}
        if not changes:
            raise ValidationError("modify_order: nothing to change")
        inst = self.resolver.known(order.contract.key) or await self.resolver.one(order.contract.key)
        fields = parse_request({"symbol": order.contract.key, "action": order.action, "quantity": order.quantity,
                                "order_type": order.order_type, **changes}).model_dump(
            include={"quantity", "limit_price", "stop_price", "trail_amount", "trail_percent"}, exclude_none=True)
        rounded: list[Rounded] = []
        for name in ("limit_price", "stop_price", "trail_amount"):
            if name in fields:
                asked = fields[name]
                rounding = rounding_for(order.action, name)
                fields[name] = on_tick(asked, inst.tick, what=name.replace("_", " "), symbol=inst.key,
                                       round_prices=bool(round_prices), rounding=rounding)
                if fields[name] != asked:
                    rounded.append(Rounded(coid, name, asked, fields[name], tick_rounding(rounding, inst.tick)))
        try:
            changed = dataclasses.replace(order, **fields)
        except TraderError as exc:
            raise ValidationError(f"modify_order {coid}: {exc}") from None
        if changed.quantity < order.filled_quantity:
            raise ValidationError(f"modify_order {coid}: quantity {changed.quantity} is below the "
                                  f"{order.filled_quantity} already filled")
        if changed.quantity % inst.min_size:
            raise ValidationError(f"modify_order {coid}: quantity {changed.quantity} is not a multiple of "
                                  f"{inst.key}'s minimum size {inst.min_size}")
        parent = self.book.get(order.parent_id) if order.parent_id is not None else None
        if parent is not None and changed.quantity > parent.quantity:
            # A child is exempt from the position limits because it only closes what its parent opens.
            raise ValidationError(f"modify_order {coid}: a bracket child's quantity {changed.quantity} cannot "
                                  f"exceed its parent's {parent.quantity}")
        market, reference = await self._prices(inst, order.action)
        # Checked as the book will be after the change: the order's own working quantity counted once.
        self.risk.check(self._intent(changed, inst, market, reference), self.exposure(excluding=coid))
        self.book.put_order(changed)
        await self.recorder.write(self._entry(changed, "modified"), "order.modified", self.result(coid))
        self.adapter.modify_order(changed)
        self.risk.record_order()  # a modification is an order message too: it counts toward the rate
        result = self.result(coid)
        result["rounded"] = self._rounded_json(tuple(rounded))  # this change's, not the placement's
        return result

    async def cancel(self, coid: str) -> dict[str, Any]:
        """Ask the broker to cancel a working order; return it once the broker has answered (or after the timeout)."""
        self._require_synced()
        self._working(coid)
        event = self._done[coid] = asyncio.Event()
        self.adapter.cancel_order(coid)
        try:
            await asyncio.wait_for(event.wait(), self.ack_timeout)
        except TimeoutError:
            log.warning("order %s: no answer to the cancel within %.0f s", coid, self.ack_timeout)
        return self.result(coid)

    def cancel_all(self, *, everything: bool = False) -> int:
        """Cancel the platform's open orders at the broker; return how many cancels were sent.

        Orders placed elsewhere on the account (in TWS by hand, by another API
        client) are left alone, unless ``everything``: IB's global cancel, which
        cancels every open order of the account (then the count is the book's open orders).
        """
        self.adapter.require_connection()
        if everything:
            count = self.book.open_count()
            self.adapter.cancel_all_orders()
            return count
        count = 0
        for order in self.book.orders(open_only=True):
            if not self.adapter.has_order(order.client_order_id):  # the re-sync has not reported it yet
                log.warning("order %s: not known to this broker session yet; not cancelled", order.client_order_id)
                continue
            self.adapter.cancel_order(order.client_order_id)
            count += 1
        return count

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

