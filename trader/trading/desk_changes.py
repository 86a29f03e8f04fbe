"""The desk's working orders: priced from the market, weighed by the risk gate, modified and cancelled.

What placing and changing an order share: the broker connection and the
re-sync it needs (:meth:`DeskChanges._require_synced`), an instrument's
prices from its live stream (opened for the desk, let go once idle), and the
book as the risk gate sees it (:meth:`DeskChanges.exposure`). A modification
is re-sent under the order's broker id after the tick grid, the filled
quantity, the minimum size, a bracket parent's quantity and the risk gate
allow it; a cancel waits for the broker's answer. Placing is in
:class:`~trader.trading.desk.Desk`, which derives from :class:`DeskChanges`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from decimal import Decimal
from typing import Any

from trader.brokers.base import Broker
from trader.brokers.records import ContractDetails
from trader.domain import Action, Order
from trader.errors import Conflict, TraderError, Unavailable, ValidationError
from trader.trading.book import Book
from trader.trading.desk_events import DeskEvents
from trader.trading.instruments import Resolver
from trader.trading.recorder import Recorder
from trader.trading.requests import Rounded, on_tick, parse_request, rounding_for, tick_rounding
from trader.trading.risk import RiskGate
from trader.trading.working import Exposure, OrderIntent, notional_price

log = logging.getLogger(__name__)

__all__ = ["QUOTE_WAIT", "DeskChanges"]

QUOTE_WAIT = 2.0


class DeskChanges(DeskEvents):
    """Prices orders and weighs them against the risk gate; modifies and cancels working orders."""

    def __init__(self, adapter: Broker, resolver: Resolver, book: Book, recorder: Recorder, risk: RiskGate,
                 *, ack_timeout: float = 5.0) -> None:
        super().__init__(adapter, book, recorder)
        self.resolver = resolver
        self.risk = risk
        self.ack_timeout = ack_timeout
        self.pnl_baseline = Decimal(0)  # the account's PnL when the trading day began
        self.synced = False  # reconciled with the broker since the last (re)connect
        self._quoted: dict[str, float] = {}  # key -> loop time of the last order priced from its stream

    def _require_synced(self) -> None:
        self.adapter.require_connection()
        if not self.synced:
            raise Unavailable("re-syncing with the broker; retry in a moment")


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
