"""Strategy orders: a target turned into an order through the trader service, placed once, and flattening.

At a change of target the runner (trader.strategy.runner) calls
:meth:`StrategyOrders._trade`: the target is sized (trader.strategy.sizing)
against the strategy's own position (its ledger) and the difference is one
order, with a client order id fixed by the bar's time, so the order is
retried under that id while the trader service is away (``order_retry_seconds``)
and placed once. The trader service's risk gate applies; a refusal or a
failure is logged and published as ``strategy.<name>.order``, never fatal.
``flatten`` (``strategy disable --flatten``) cancels the strategy's working
orders and closes its positions. A bracket child's id (``X.sl``, ``X.tp``)
belongs to its parent's order (:func:`root_order_id`). Before an order that
changes a position the strategy holds with a stop loss or take profit, those
working children are cancelled: they protect the position as it was, and left
working after a signal closed it, a stop would open the opposite position
(found by the parity test, tests/backtest/test_parity.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from trader.domain import Order
from trader.errors import RiskLimitExceeded, Timeout, TraderError, Unavailable
from trader.retry import RetryPolicy
from trader.strategy.base import StrategyConfig
from trader.strategy.ledger import Ledger
from trader.strategy.sizing import SignalError, client_order_id, order_for, target_quantity

__all__ = ["Call", "Sleep", "StrategyOrders", "order_retry", "root_order_id"]

Call = Callable[..., Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]


def order_retry(seconds: float) -> RetryPolicy:
    """Return how an order is retried under the same client order id: for ``seconds`` at most."""
    return RetryPolicy(0.25, 5.0, deadline=seconds)


class StrategyOrders:
    """The runner's orders (a mixin of :class:`~trader.strategy.runner.StrategyRunner`); see the module docstring."""

    name: str
    config: StrategyConfig
    ledger: Ledger
    logger: logging.Logger
    targets: dict[str, float | None]
    last_price: dict[str, Decimal]
    order_ids: set[str]
    orders_sent: int
    _call: Call
    _equity: Callable[[], Awaitable[Decimal | None]]
    _order_retry: RetryPolicy
    _clock: Callable[[], float]
    _sleep: Sleep

    def publish(self, event: str, payload: Any) -> None:
        raise NotImplementedError  # the runner's

    async def _trade(self, key: str, target: float, stamp: datetime) -> None:
        try:
            equity = await self._equity() if self.config.sizing.kind == "equity_percent" else None
        except TraderError as exc:  # the target stays untraded: the next bar tries again
            self.logger.warning("cannot size target %g for %s: no account equity (%s)", target, key, exc)
            return
        try:
            quantity = target_quantity(target, self.config, price=self.last_price.get(key), equity=equity)
        except SignalError as exc:
            self.logger.warning("cannot size target %g for %s: %s", target, key, exc)
            return
        coid = client_order_id(self.name, key, _ns(stamp))
        trade = order_for(self.config, self.name, key, current=self.ledger.position(key), target=quantity, coid=coid)
        self.targets[key] = target
        if trade is None:
            return
        self.order_ids.add(coid)
        if trade.current != 0 and (self.config.stop_loss_percent is not None
                                   or self.config.take_profit_percent is not None):
            await self._cancel_exits(key)
        self.logger.info("target %g for %s: %s %s (position %s -> %s)", target, key, trade.request["action"],
                         trade.request["quantity"], trade.current, trade.target)
        try:
            result = await self._place(trade.request)
        except RiskLimitExceeded as exc:
            self.logger.warning("order refused by the risk gate: %s", exc)
            self.publish("order", {"client_order_id": coid, "status": "REJECTED", "reason": str(exc)})
            return
        except TraderError as exc:
            self.logger.error("order %s failed: %s", coid, exc)
            self.publish("order", {"client_order_id": coid, "status": "FAILED", "reason": str(exc)})
            return
        self.orders_sent += 1
        # place_order answers {"order": Order, "children": [...], "reason": str} (Desk.result)
        order = result.get("order")
        status = order.status.value if isinstance(order, Order) else ""
        if not status:
            self.logger.error("place_order for %s answered without an order: %r", coid, result)
        event = {"client_order_id": coid, "status": status, "instrument": key,
                 "action": trade.request["action"], "quantity": trade.request["quantity"]}
        if result.get("reason"):
            event["reason"] = result["reason"]
        self.publish("order", event)

    async def _cancel_exits(self, key: str) -> None:
        """Cancel the strategy's working stop loss / take profit orders in ``key`` (bracket children)."""
        try:
            working = await self._call("orders", open_only=True)
        except TraderError as exc:
            self.logger.warning("could not read the working orders to cancel %s's exits: %s", key, exc)
            return
        for order in working:
            coid = order.client_order_id
            if order.order_ref == self.name and order.contract.key == key and root_order_id(coid) != coid:
                try:
                    await self._call("cancel_order", coid)
                    self.logger.info("cancelled %s: the position it protects changes", coid)
                except TraderError as exc:  # filled or cancelled meanwhile (its sibling's fill, say)
                    self.logger.warning("could not cancel %s: %s", coid, exc)

    async def flatten(self) -> None:
        """Cancel the strategy's working orders and close its positions (after ``end``)."""
        for order in await self._call("orders", open_only=True):
            if order.order_ref == self.name:
                try:
                    await self._call("cancel_order", order.client_order_id)
                except TraderError as exc:
                    self.logger.warning("could not cancel %s: %s", order.client_order_id, exc)
        now = _ns(datetime.now(UTC))
        for key, quantity in self.ledger.summary()["positions"].items():
            coid = client_order_id(self.name, key, now, attempt=1)
            trade = order_for(self.config, self.name, key, current=quantity, target=Decimal(0), coid=coid)
            if trade is None:
                continue
            self.order_ids.add(coid)
            self.logger.info("flatten %s: %s %s", key, trade.request["action"], trade.request["quantity"])
            try:
                await self._place(trade.request)
                self.orders_sent += 1
            except TraderError as exc:
                self.logger.error("flattening %s failed: %s", key, exc)
        self.targets = {key: 0.0 for key in self.targets}

    async def _place(self, request: dict[str, Any]) -> dict[str, Any]:
        """Place ``request``, retrying under its client order id while the trader service is away."""
        return await self._order_retry.call(lambda: self._call("place_order", **request),
                                            retry_on=(Unavailable, Timeout),
                                            what=f"place_order {request['client_order_id']}", logger=self.logger,
                                            sleep=self._sleep, clock=self._clock)


def root_order_id(client_order_id: str) -> str:
    """Return a bracket child's parent id (``X.sl`` -> ``X``), or the id itself."""
    head, _, tail = client_order_id.rpartition(".")
    return head if tail in ("sl", "tp") and head.count(".") >= 1 else client_order_id


def _ns(stamp: datetime) -> int:
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000
