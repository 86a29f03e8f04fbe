"""The order desk: requests become orders through the risk gate, the broker and the journal; broker events come back.

Placing an order: resolve the instrument, price it from the live market,
build the entry and its bracket children, check each against the risk gate,
give each an IB order id, send it, and answer once the broker has acknowledged
it; the journal gets it right after the answer, ahead of anything recorded
about it meanwhile. A ``client_order_id`` makes the call
idempotent: a retry returns the order already placed and never sends again,
even while the first call is still in flight. IB's ``orderRef`` carries
``<strategy>#<client order id>``, which is how orders are matched again after a
crash or a reconnect, and how reconcile adopts an order the broker got and the
journal did not (the service died in between).

Broker events (status reports, executions with their commissions) update the
book, go to the journal and then to the bus (``order.<event>``, ``fill``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from ib_async import Order as IbOrder
from ib_async import Trade

from trader.brokers.ib import parsing
from trader.brokers.ib.adapter import IbAdapter
from trader.domain import Action, Order, OrderStatus
from trader.domain.checks import utc_now
from trader.errors import (
    Conflict,
    RiskLimitExceeded,
    TraderError,
    Unavailable,
    ValidationError,
)
from trader.trading.book import Book, never_sent
from trader.trading.instruments import Instrument, Resolver
from trader.trading.recorder import Recorder
from trader.trading.requests import (
    BuiltOrders,
    build_orders,
    new_client_order_id,
    parse_request,
    round_to_tick,
)
from trader.trading.risk import Exposure, OrderIntent, RiskGate, notional_price

log = logging.getLogger(__name__)

__all__ = ["Desk", "broker_ref", "client_order_id_of", "parse_broker_ref", "positions_by_key"]

QUOTE_WAIT = 2.0
PNL_TAGS = ("RealizedPnL", "UnrealizedPnL")  # the account values the daily-loss limit counts


def broker_ref(order: Order) -> str:
    """Return the orderRef sent to IB: the strategy (or "manual") and our client order id."""
    return f"{order.order_ref}#{order.client_order_id}"


def parse_broker_ref(order_ref: str) -> tuple[str, str] | None:
    """Return the (strategy, client order id) a :func:`broker_ref` carries, or None for an order placed elsewhere."""
    strategy, sep, coid = order_ref.rpartition("#")
    return (strategy, coid) if sep and coid else None


def client_order_id_of(order_ref: str) -> str | None:
    """Return the client order id an orderRef carries, or None for an order placed elsewhere."""
    parsed = parse_broker_ref(order_ref)
    return None if parsed is None else parsed[1]


def positions_by_key(ib_positions: Iterable[Any]) -> dict[str, Decimal]:
    """Return IB's positions as a signed quantity per contract key (one our domain cannot read is logged, skipped)."""
    positions: dict[str, Decimal] = {}
    for p in ib_positions:
        try:
            pos = parsing.from_ib_position(p)
        except TraderError as exc:
            log.warning("position skipped: %s", exc)
            continue
        positions[pos.contract.key] = positions.get(pos.contract.key, Decimal(0)) + pos.quantity
    return positions


def _number(value: float | None) -> Decimal | None:
    """Return a positive market price as a Decimal; None for NaN, unset or IB's -1 (no quote)."""
    price = parsing.decimal_from_float(value)
    return price if price is not None and price > 0 else None


class BrokerTotals:
    """IB's positions by key, gross exposure and PnL: re-read after IB reports a change, not per order.

    ib_async changes its positions and portfolio only as IB reports them (each
    report is an event) or when the connection is made or lost, so the totals
    are recomputed on the first read after any of those, and cost nothing otherwise.

    The PnL is the account's (its ``RealizedPnL`` and ``UnrealizedPnL`` values,
    in the base currency), not a sum over the portfolio: ib_async drops a
    position from the portfolio once it is closed, and its realized PnL with it.
    """

    def __init__(self, adapter: IbAdapter) -> None:
        self.adapter = adapter
        self._positions: dict[str, Decimal] | None = None
        self._portfolio: tuple[Decimal, Decimal] | None = None  # (gross exposure, unrealized + realized PnL)
        self._pnl: dict[tuple[str, str, str], Decimal] = {}  # (account, tag, currency) -> value
        self._base: dict[str, str] = {}  # account -> its base currency (that of its NetLiquidation)
        adapter.positions.subscribe(lambda _position: self._positions_changed())
        adapter.portfolio.subscribe(lambda _item: self._portfolio_changed())
        adapter.account_values.subscribe(self._on_account_value)
        adapter.connection.subscribe(self._connection_changed)

    def _on_account_value(self, value: Any) -> None:
        if value.tag == "NetLiquidation" and value.currency and value.currency != "BASE":
            self._base[value.account] = value.currency
        elif value.tag in PNL_TAGS:
            try:  # IB sends the value as text: taken exactly
                amount = Decimal(value.value)
            except (InvalidOperation, TypeError):
                return
            if amount.is_finite():
                self._pnl[value.account, value.tag, value.currency] = amount
                self._portfolio = None

    def _positions_changed(self) -> None:
        self._positions = None

    def _portfolio_changed(self) -> None:
        self._portfolio = None

    def _connection_changed(self, connected: bool) -> None:
        if not connected:  # ib_async forgets the account's values with the connection; IB sends them on the next
            self._pnl.clear()
            self._base.clear()
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the totals: the next read recomputes them from ib_async's state."""
        self._positions = self._portfolio = None

    def positions(self) -> dict[str, Decimal]:
        """Return IB's positions as a signed quantity per contract key (do not mutate: it is shared)."""
        if self._positions is None:
            self._positions = positions_by_key(self.adapter.ib.positions())
        return self._positions

    def portfolio(self) -> tuple[Decimal, Decimal]:
        """Return the portfolio's gross exposure (sum of |market value|) and the account's PnL (realized + unrealized)."""
        if self._portfolio is None:
            gross = Decimal(0)
            for item in self.adapter.ib.portfolio():
                gross += abs(parsing.decimal_from_float(item.marketValue) or Decimal(0))
            self._portfolio = (gross, self._account_pnl())
        return self._portfolio

    def _account_pnl(self) -> Decimal:
        """Return realized + unrealized PnL summed over the accounts, each in its base currency ("BASE" if given)."""
        pnl = Decimal(0)
        accounts = {account for account, _, _ in self._pnl}
        for account in accounts:
            for tag in PNL_TAGS:
                value = self._pnl.get((account, tag, "BASE"))
                if value is None:
                    value = self._pnl.get((account, tag, self._base.get(account, "")), Decimal(0))
                pnl += value
        return pnl


class Desk:
    """Places, modifies and cancels orders, and books what the broker reports."""

    def __init__(self, adapter: IbAdapter, resolver: Resolver, book: Book, recorder: Recorder, risk: RiskGate,
                 *, account: str | None = None, ack_timeout: float = 5.0) -> None:
        self.adapter = adapter
        self.resolver = resolver
        self.book = book
        self.recorder = recorder
        self.risk = risk
        self.account = account
        self.ack_timeout = ack_timeout
        self.trades: dict[str, Trade] = {}
        self.reasons: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acks: dict[str, asyncio.Future[None]] = {}  # done at the broker's first answer to a new order
        self._done: dict[str, asyncio.Event] = {}  # set when an order being cancelled reaches its end
        self.pnl_baseline = Decimal(0)  # the account's PnL when the trading day began
        self.synced = False  # reconciled with the broker since the last (re)connect
        self.broker_totals = BrokerTotals(adapter)
        self._quoted: dict[str, float] = {}  # key -> loop time of the last order priced from its stream
        adapter.order_status.subscribe(self.on_status)
        adapter.commissions.subscribe(lambda pair: self.on_fill(*pair))

    # -- queries -------------------------------------------------------------------
    def result(self, coid: str) -> dict[str, Any]:
        """Return an order with its bracket children and the last reason the broker or the gate gave."""
        order = self.book.order(coid)
        children = self.book.children(coid)
        return {"order": order, "children": children, "reason": self.reasons.get(coid, "")}

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
            sent_before = self.trades.get(coid)
            if request.client_order_id != coid:
                request = request.model_copy(update={"client_order_id": coid})
            result = await self._place(request)
        except BaseException as exc:
            if self.trades.get(coid) is sent_before:  # this attempt reached no broker
                self._not_sent(coid, exc)
            future.set_exception(exc)
            future.exception()  # retrieved: a retry that never came must not warn
            raise
        finally:
            del self._inflight[coid]
        future.set_result(result)
        return result

    def _require_synced(self) -> None:
        self.adapter.require_connection()
        if not self.synced:
            raise Unavailable("re-syncing with the broker; retry in a moment")

    async def _place(self, request: Any) -> dict[str, Any]:
        hints = {"sec_type": request.sec_type, "exchange": request.exchange, "currency": request.currency,
                 "expiry": request.expiry}
        inst = await self.resolver.one(request.symbol, **hints)
        market, reference = await self._prices(inst, request.action)
        built = build_orders(request, inst.contract, tick=inst.tick, min_size=inst.min_size,
                             reference_price=reference, account=self.account)
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
            order.broker_order_id = self.adapter.ib.client.getReqId()
        # The broker first: it is the source of truth. The journal gets the orders once the broker has
        # acknowledged them, after the answer (what is recorded about them meanwhile is held behind them);
        # should the service die before, IB still reports the orders, our client ids in their orderRef, and
        # reconcile adopts them. With no connection to Redis, nothing goes to the broker before the journal
        # has it, and the book takes the orders only then: should the write fail, nothing is left behind.
        entries = [self._entry(order, "submitted") for order in built.all]
        ib_orders = self._ib_orders(built)
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
            await self._send(inst, built, ib_orders)
        finally:
            result = self.result(coid)
            if journal_up:
                self.recorder.release(entries, "order.submitted", result)
            else:
                self.recorder.publish("order.submitted", result)
        return result

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

    @staticmethod
    def _ib_orders(built: BuiltOrders) -> list[IbOrder]:
        """Return the IB orders for ``built``: children under the entry's id, only the last one transmitting."""
        last = len(built.all) - 1
        ib_orders = []
        for i, order in enumerate(built.all):
            parent = built.entry.broker_order_id if order is not built.entry else 0
            ib_order = parsing.to_ib_order(order, order_id=order.broker_order_id or 0,
                                           parent_order_id=parent or 0, transmit=(i == last))
            ib_order.orderRef = broker_ref(order)
            ib_orders.append(ib_order)
        return ib_orders

    async def _send(self, inst: Instrument, built: BuiltOrders, ib_orders: list[IbOrder]) -> None:
        """Send the orders; return at the broker's first answer to the entry, or after ``ack_timeout``.

        Everything is ready before the first send, the wait's timer included,
        so that after the last one the task only waits: the broker, woken by a
        send, usually takes this process's CPU at once, and anything left to
        do would then wait for the broker, and its answer for that (see
        ``IbAdapter.place_order``). An order counts toward the rate limit as
        it is sent, one whose send failed too.
        """
        coid = built.entry.client_order_id
        ack = self._acks[coid]
        try:
            async with asyncio.timeout(self.ack_timeout):  # no task per wait, unlike wait_for
                for order, ib_order in zip(built.all, ib_orders, strict=True):
                    self.risk.record_order()
                    self.trades[order.client_order_id] = self.adapter.place_order(inst.ib, ib_order)
                await ack
        except TimeoutError:
            log.warning("order %s: no acknowledgement from the broker within %.0f s", coid, self.ack_timeout)
        finally:
            if self._acks.get(coid) is ack:
                del self._acks[coid]

    async def _prices(self, inst: Instrument, action: Action) -> tuple[Decimal | None, Decimal | None]:
        """Return the market (mid, else last) and the price a market order would pay."""
        ticker = self.adapter.subscribe(inst.key, inst.ib, owner="desk")
        self._quoted[inst.key] = asyncio.get_running_loop().time()
        deadline = asyncio.get_running_loop().time() + QUOTE_WAIT
        while not (ticker.hasBidAsk() or _number(ticker.last)) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        bid, ask, last = _number(ticker.bid), _number(ticker.ask), _number(ticker.last)
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

    def _intent(self, order: Order, inst: Instrument, market: Decimal | None,
                reference: Decimal | None) -> OrderIntent:
        return OrderIntent(
            key=inst.key, symbol=inst.contract.symbol, action=order.action, quantity=order.quantity,
            multiplier=inst.contract.multiplier or Decimal(1),
            reference_price=notional_price(order.action, order.limit_price, order.stop_price, market, reference),
            market_price=market,
            limit_price=order.limit_price, stop_price=order.stop_price, reduces_only=order.parent_id is not None)

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
    def _working(self, coid: str) -> tuple[Order, Trade]:
        order = self.book.order(coid)
        if order.is_done:
            raise Conflict(f"order {coid} is {order.status}: nothing to change", client_order_id=coid)
        trade = self.trades.get(coid)
        if trade is None:
            raise Conflict(f"order {coid} is not known to this IB session yet; retry after the re-sync")
        if self.recorder.holding(coid):
            raise Conflict(f"order {coid} is still being placed; retry once it is acknowledged",
                           client_order_id=coid)
        return order, trade

    async def modify(self, coid: str, *, quantity: Any = None, limit_price: Any = None, stop_price: Any = None,
                     trail_amount: Any = None, trail_percent: Any = None) -> dict[str, Any]:
        """Change a working order's quantity or prices (re-sent to IB under the same order id)."""
        self._require_synced()
        order, trade = self._working(coid)
        changes = {k: v for k, v in {"quantity": quantity, "limit_price": limit_price, "stop_price": stop_price,
                                     "trail_amount": trail_amount, "trail_percent": trail_percent}.items()
                   if v is not None}
        if not changes:
            raise ValidationError("modify_order: nothing to change")
        inst = self.resolver.known(order.contract.key) or await self.resolver.one(order.contract.key)
        fields = parse_request({"symbol": order.contract.key, "action": order.action, "quantity": order.quantity,
                                "order_type": order.order_type, **changes}).model_dump(
            include={"quantity", "limit_price", "stop_price", "trail_amount", "trail_percent"}, exclude_none=True)
        for name in ("limit_price", "stop_price", "trail_amount"):
            if name in fields:
                fields[name] = round_to_tick(fields[name], inst.tick)
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
        ib_order = trade.order
        ib_order.totalQuantity = float(changed.quantity)
        fresh = parsing.to_ib_order(changed, order_id=ib_order.orderId, parent_order_id=ib_order.parentId)
        for attr in ("lmtPrice", "auxPrice", "trailingPercent", "trailStopPrice"):
            setattr(ib_order, attr, getattr(fresh, attr))
        self.adapter.place_order(trade.contract, ib_order)  # an id ib_async knows: its placeOrder
        self.risk.record_order()  # a modification is an order message too: it counts toward the rate
        return self.result(coid)

    async def cancel(self, coid: str) -> dict[str, Any]:
        """Ask IB to cancel a working order; return it once the broker has answered (or after the timeout)."""
        self._require_synced()
        _, trade = self._working(coid)
        event = self._done[coid] = asyncio.Event()
        self.adapter.ib.cancelOrder(trade.order)
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
            self.adapter.ib.reqGlobalCancel()
            return count
        count = 0
        for order in self.book.orders(open_only=True):
            trade = self.trades.get(order.client_order_id)
            if trade is None:  # the re-sync after a (re)connect has not reported it yet
                log.warning("order %s: not known to this IB session yet; not cancelled", order.client_order_id)
                continue
            self.adapter.ib.cancelOrder(trade.order)
            count += 1
        return count

    # -- broker events -------------------------------------------------------------
    def _coid(self, trade: Trade) -> str | None:
        coid = client_order_id_of(trade.order.orderRef or "")
        if coid is not None and self.book.get(coid) is not None:
            return coid
        found = self.book.find(broker_order_id=trade.order.orderId) if trade.order.orderId else None
        if found is None and trade.order.permId:
            found = self.book.find(perm_id=trade.order.permId)
        return found.client_order_id if found is not None else None

    def on_status(self, trade: Trade) -> None:
        """Book a status report: status, filled quantity, average price, permId."""
        coid = self._coid(trade)
        if coid is None:
            log.debug("status for an order not in the book: %s %s", trade.order.orderId, trade.orderStatus.status)
            return
        self.trades.setdefault(coid, trade)
        order = self.book.order(coid)
        st = trade.orderStatus
        filled = parsing.decimal_from_float(st.filled) or Decimal(0)
        remaining = parsing.decimal_from_float(st.remaining) or Decimal(0)
        status = parsing.order_status(st.status, filled, remaining)
        if status is None:
            log.warning("order %s: unknown IB status %r", coid, st.status)
            return
        changed = False
        if trade.order.permId and order.perm_id != trade.order.permId:
            order.perm_id, changed = trade.order.permId, True
        if filled > order.filled_quantity and filled <= order.quantity:
            order.filled_quantity = filled
            order.avg_fill_price = parsing.decimal_from_float(st.avgFillPrice)
            changed = True
        try:
            changed = order.transition(status) or changed
        except Conflict:
            log.info("order %s: stale status %s after %s ignored", coid, status, order.status)
        reason = next((e.message for e in reversed(trade.log) if e.errorCode), "")
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

    def on_fill(self, trade: Trade, ib_fill: Any) -> None:
        """Book an execution once its commission is known; executions seen before are ignored."""
        # An order of ours the re-sync has yet to adopt (IB reports the day's executions while the
        # connection is made, before the re-sync) is still ours: its orderRef says so.
        coid = self._coid(trade) or client_order_id_of(trade.order.orderRef or "")
        try:
            fill = parsing.from_ib_fill(ib_fill, coid)
        except TraderError:
            log.exception("an execution could not be read: %r", ib_fill.execution)
            return
        if self.book.add_fill(fill):
            self.recorder.record({"type": "fill", "fill": fill}, "fill", fill)

    @staticmethod
    def _entry(order: Order, event: str, reason: str = "") -> dict[str, Any]:
        # A copy: the order goes on changing while the entry waits in the recorder's queue (or while a
        # write retries).
        return {"type": "order", "order": copy.copy(order), "event": event, "reason": reason}

