"""Closing positions: the working orders on a position cancelled, then one market order for the quantity held.

``trader close AAPL`` / ``trader close --all`` flatten the *account's* position
by default (what the broker holds, whoever traded it); ``--strategy NAME``
flattens one strategy's position instead (the platform's own bookkeeping: the
fills of the orders that strategy placed), with an order placed in its name,
so that its position reads zero afterwards.

For each position: every working order of the platform on that contract (of
that strategy only, with ``--strategy``; of that account's) is cancelled
first, bracket legs included, since a working order would open the position
again (a take-profit) or fight the close (a stop); then a market order
opposite the position, for the quantity held, goes through
:meth:`Desk.place`, so the risk gate, the rate limit and the journal apply to
it as to any order. A close moves the position toward zero, so the position,
exposure and loss limits let it through (see :mod:`trader.trading.risk`).

The kill switch stops a close too, and before anything is cancelled: an
emergency stop means no new order at all, and cancelling the stops of a
position that then could not be closed would leave it unprotected. Release
the switch (``trader kill-switch off``) to flatten. A real desk that lets
reducing orders through a kill switch does so by configuration; this one has
no such setting yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.domain import Action, Contract
from trader.errors import Conflict, RiskLimitExceeded, TraderError, Unavailable
from trader.trading.desk import Desk
from trader.trading.requests import new_client_order_id
from trader.trading.selection import choose_account, matches, strategy_holdings

log = logging.getLogger(__name__)

__all__ = ["Closer", "Flatten"]

SETTLE_WAIT = 5.0  # how long a close waits for its orders to end (fill) before it answers


@dataclass(frozen=True, slots=True)
class Flatten:
    """One position to close: what is held, the order that closes it, the working orders cancelled first."""

    contract: Contract
    held: Decimal
    account: str | None
    cancels: tuple[str, ...]

    @property
    def action(self) -> Action:
        """Return the closing order's side: opposite the position."""
        return Action.SELL if self.held > 0 else Action.BUY

    def describe(self) -> dict[str, Any]:
        """Return the plan as the RPC's reply shows it."""
        return {"key": self.contract.key, "contract": self.contract, "held": self.held, "account": self.account,
                "action": str(self.action), "quantity": abs(self.held), "cancel": list(self.cancels)}


class Closer:
    """Plans and sends the closes of positions through a desk."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        # One close at a time: a second one (a user typing it twice) plans once the first has its answers,
        # so it finds the positions flat instead of closing them a second time (and opening the other way).
        self._lock = asyncio.Lock()

    def account(self, account: str | None) -> str | None:
        """Return the account meant (see :func:`~trader.trading.selection.choose_account`)."""
        return choose_account(account, self.desk.adapter.accounts(), self.desk.account)

    async def plan(self, symbol: str | None, *, strategy: str | None = None,
                   account: str | None = None) -> list[Flatten]:
        """Return the positions to close: ``symbol``'s (None: every one), the account's or ``strategy``'s.

        An unknown symbol is NotFound; a known one not held is an empty plan.
        """
        acct = self.account(account)
        if strategy is not None:
            held = strategy_holdings(self.desk.book, strategy)
        else:
            held = {p.contract.key: (p.contract, p.quantity) for p in self.desk.adapter.positions()
                    if p.quantity != 0 and (acct is None or p.account == acct)}
        if symbol is not None:
            chosen = {k: v for k, v in held.items() if matches(v[0], symbol)}
            if not chosen:  # another spelling of a held contract (EURUSD), or not held, or unknown: NotFound
                key = (await self.desk.resolver.one(symbol)).key
                chosen = {k: v for k, v in held.items() if k == key}
            held = chosen
        return [Flatten(contract, quantity, acct, self._working(key, strategy, acct))
                for key, (contract, quantity) in sorted(held.items())]

    def _working(self, key: str, strategy: str | None, account: str | None) -> tuple[str, ...]:
        """Return the working orders on ``key`` a close cancels: entries first, then bracket legs."""
        orders = [o for o in self.desk.book.orders(open_only=True)
                  if o.contract.key == key and (strategy is None or o.order_ref == strategy)
                  and o.account in (None, account)]
        orders.sort(key=lambda o: o.parent_id is not None)
        return tuple(o.client_order_id for o in orders)

    async def close(self, symbol: str | None, *, strategy: str | None = None,
                    account: str | None = None) -> dict[str, Any]:
        """Close the positions :meth:`plan` finds; return the orders cancelled and sent, and what failed.

        One position that cannot be closed (a cancel that did not go through,
        an order refused) is reported in ``errors`` and the others still close.
        Closes run one at a time.
        """
        async with self._lock:
            return await self._close(symbol, strategy=strategy, account=account)

    async def _close(self, symbol: str | None, *, strategy: str | None, account: str | None) -> dict[str, Any]:
        self.desk.adapter.require_connection()
        if not self.desk.synced:  # the positions and working orders read now would not be the broker's
            raise Unavailable("re-syncing with the broker; retry in a moment")
        plans = await self.plan(symbol, strategy=strategy, account=account)
        risk = self.desk.risk
        if plans and risk.kill_switch_engaged:
            raise RiskLimitExceeded(
                f"kill_switch: engaged ({risk.kill_switch_reason}): closing is refused too, and nothing was "
                "cancelled; release it with `trader kill-switch off` to flatten", limit="kill_switch",
                reason=risk.kill_switch_reason)
        reply: dict[str, Any] = {"account": plans[0].account if plans else self.account(account),
                                 "strategy": strategy, "positions": [p.describe() for p in plans],
                                 "cancelled": [], "orders": [], "errors": []}
        for flatten in plans:
            try:
                reply["cancelled"] += await self._cancel(flatten)
                reply["orders"].append(await self.desk.place({
                    "symbol": flatten.contract.key, "action": str(flatten.action), "quantity": abs(flatten.held),
                    "order_type": "MKT", "strategy": strategy or "manual", "client_order_id": new_client_order_id(),
                    **({"account": flatten.account} if flatten.account else {})}))
            except TraderError as exc:
                log.warning("close of %s failed: %s", flatten.contract.key, exc)
                reply["errors"].append({"key": flatten.contract.key, "error": exc.to_wire()})
        await self._settle([item["order"].client_order_id for item in reply["orders"]])
        reply["orders"] = [self.desk.result(item["order"].client_order_id) for item in reply["orders"]]
        return reply

    async def _settle(self, coids: list[str]) -> None:
        """Wait up to ``SETTLE_WAIT`` seconds for the closing orders to end (fill).

        The answer then shows their fills, and the next close (after the lock)
        finds the broker's positions as these orders left them.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_WAIT
        while any(not self.desk.book.order(c).is_done for c in coids) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def _cancel(self, flatten: Flatten) -> list[Any]:
        """Cancel the working orders on the position; return them all as they ended (legs a parent took too).

        Raise Conflict naming one still working after its cancel.
        """
        book = self.desk.book
        for coid in flatten.cancels:
            if book.order(coid).is_done:  # a bracket leg its parent's cancel took with it
                continue
            try:
                await self.desk.cancel(coid)
            except Conflict:  # ended meanwhile (a leg), or unknown to the session yet: the check below says
                log.info("close of %s: order %s not cancelled", flatten.contract.key, coid)
        still = [c for c in flatten.cancels if not book.order(c).is_done]
        if still:
            raise Conflict(f"{flatten.contract.key} not closed: order {still[0]} is still working after its "
                           "cancel", client_order_id=still[0])
        return [book.order(c) for c in flatten.cancels]
