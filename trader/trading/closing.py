"""Closing positions: the working orders on a position cancelled, then one market order for what is still held.

``trader close AAPL`` / ``trader close --all`` flatten the *account's* position
by default (what the broker holds, whoever traded it); ``--strategy NAME``
flattens one strategy's position instead (the platform's own bookkeeping: the
fills of the orders that strategy placed in that account), with an order placed
in its name, so that its position reads zero afterwards. A strategy's close is
capped at the account's position on the same side: the account may hold less
than the strategy's fills say (an account-level close, booked as "manual", or
a trade outside the platform), and selling the strategy's 100 when the account
holds 40 would open a short of 60. The plan says so (``note``); nothing at all
on that side is refused (an error row), not sent.

For each position, in this order, so that a close that cannot go is refused
while the position still has its stops:

1. every check that can refuse the closing order runs first, the risk gate's
   verdict included (:meth:`Desk.build`, :meth:`Desk.verdict`: the symbol,
   the account, the price, the tick grid, the limits, the kill switch);
2. every working order of the platform on that contract (of that strategy
   only, with ``--strategy``; of that account) is cancelled, entries first,
   bracket legs after, since a working order would open the position again (a
   take-profit) or fight the close (a stop);
3. the closing order is sized from the position *now*: the one planned plus
   whatever the cancelled orders filled meanwhile (a take-profit at the touch
   fills during its cancel: the plan's SELL 100 would then go short 100), never
   from the plan alone; flat by then, nothing is sent (``flat``);
4. a market order opposite the position goes through :meth:`Desk.place`, so
   the risk gate, the rate limit and the journal apply to it as to any order.
   Should it still fail after the cancels (a limit reached meanwhile, the
   broker's refusal), the answer names the position in ``unprotected``: its
   stops and take-profits are gone and it is still open.

A close run from the CLI carries the plan the user confirmed (``confirmed``:
key -> quantity); a plan made again that differs is a Conflict, before
anything is cancelled. IB may report a position after the Filled status of
the order that changed it: the closer keeps what its own closes should have
left (from their fills) until the broker's position moves, so the next close
does not read a stale position and close it twice.

The kill switch stops a close too, and before anything is cancelled: an
emergency stop means no new order at all. Release the switch (``trader
kill-switch off``) to flatten. A real desk that lets reducing orders through a
kill switch does so by configuration; this one has no such setting yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trader.domain import Action, Contract, OrderStatus
from trader.errors import Conflict, RiskLimitExceeded, TraderError, Unavailable, ValidationError
from trader.trading.desk import Desk
from trader.trading.requests import new_client_order_id, parse_request
from trader.trading.selection import choose_account, key_of, matches, strategy_holdings

log = logging.getLogger(__name__)

__all__ = ["Closer", "Flatten", "closing_quantity"]

SETTLE_WAIT = 5.0  # how long a close waits for its orders to end (fill) before it answers
_ZERO = Decimal(0)
_CANCELLED = frozenset({OrderStatus.CANCELLED, OrderStatus.API_CANCELLED})


def closing_quantity(held: Decimal, account_held: Decimal) -> tuple[Decimal, str]:
    """Return how much closes ``held`` without passing the account's ``account_held``, and why it is less.

    For an account's close the two are the same. For a strategy's, the close
    may not exceed what the account holds on the same side: beyond that it
    would open a position the other way.
    """
    same_side = account_held if account_held * held > 0 else _ZERO
    if abs(held) <= abs(same_side):
        return abs(held), ""
    if same_side == 0:
        return _ZERO, (f"the account holds {account_held.normalize():f}: closing {held.normalize():f} would open a "
                       "position, so nothing is sent")
    return abs(same_side), (f"capped at the account's {same_side.normalize():f}: more would open a position "
                            "the other way")


@dataclass(frozen=True, slots=True)
class Flatten:
    """One position to close: what is held, how much the close sends, the working orders cancelled first.

    ``account_held`` is the account's position on the contract (the same as
    ``held`` for an account's close); ``filled`` what each order to cancel had
    filled when the plan was made, so fills during the cancels are counted.
    """

    contract: Contract
    held: Decimal
    account: str | None
    cancels: tuple[str, ...]
    account_held: Decimal = _ZERO
    filled: tuple[Decimal, ...] = ()

    @property
    def action(self) -> Action:
        """Return the closing order's side: opposite the position."""
        return Action.SELL if self.held > 0 else Action.BUY

    @property
    def quantity(self) -> Decimal:
        """Return the closing order's quantity (capped at the account's position on the same side)."""
        return closing_quantity(self.held, self.account_held)[0]

    def describe(self) -> dict[str, Any]:
        """Return the plan as the RPC's reply shows it."""
        return {"key": self.contract.key, "contract": self.contract, "held": self.held, "account": self.account,
                "account_held": self.account_held, "action": str(self.action), "quantity": self.quantity,
                "note": closing_quantity(self.held, self.account_held)[1], "cancel": list(self.cancels)}


class Closer:
    """Plans and sends the closes of positions through a desk."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        # One close at a time: a second one (a user typing it twice) plans once the first has its answers,
        # so it finds the positions flat instead of closing them a second time (and opening the other way).
        self._lock = asyncio.Lock()
        # (account, key) -> (the broker's position when a close was planned, what that close left): IB may
        # report the position after the close's Filled status; until the broker's number moves, it is stale.
        self._left: dict[tuple[str | None, str], tuple[Decimal, Decimal]] = {}

    def account(self, account: str | None) -> str | None:
        """Return the account meant (see :func:`~trader.trading.selection.choose_account`)."""
        return choose_account(account, self.desk.adapter.accounts(), self.desk.account)

    def positions(self, account: str | None) -> dict[str, tuple[Contract, Decimal]]:
        """Return the account's positions by key, with what this closer's own closes left where IB lags."""
        held: dict[str, tuple[Contract, Decimal]] = {}
        for p in self.desk.adapter.positions():
            if account is not None and p.account != account:
                continue
            stale = self._left.get((account, p.contract.key))
            quantity = p.quantity
            if stale is not None:
                if p.quantity == stale[0]:
                    quantity = stale[1]
                else:  # the broker reported since
                    del self._left[(account, p.contract.key)]
            if quantity != 0:
                held[p.contract.key] = (p.contract, quantity)
        return held

    async def plan(self, symbol: str | None, *, strategy: str | None = None,
                   account: str | None = None) -> list[Flatten]:
        """Return the positions to close: ``symbol``'s (None: every one), the account's or ``strategy``'s.

        An unknown symbol is NotFound; a known one not held is an empty plan.
        """
        acct = self.account(account)
        in_account = self.positions(acct)
        held = strategy_holdings(self.desk.book, strategy, acct) if strategy is not None else in_account
        if symbol is not None:
            chosen = {k: v for k, v in held.items() if matches(v[0], symbol)}
            if not chosen:  # another spelling of a held contract (EURUSD), or not held, or unknown: NotFound
                key = await key_of(symbol, held, self.desk.resolver)
                chosen = {k: v for k, v in held.items() if k == key}
            held = chosen
        plans = []
        for key, (contract, quantity) in sorted(held.items()):
            cancels = self._working(key, strategy, acct)
            plans.append(Flatten(contract, quantity, acct, cancels, in_account.get(key, (contract, _ZERO))[1],
                                 tuple(self.desk.book.order(c).filled_quantity for c in cancels)))
        return plans

    def _working(self, key: str, strategy: str | None, account: str | None) -> tuple[str, ...]:
        """Return the working orders on ``key`` a close cancels: entries first, then bracket legs."""
        orders = [o for o in self.desk.book.orders(open_only=True)
                  if o.contract.key == key and (strategy is None or o.order_ref == strategy)
                  and o.account in (None, account)]
        orders.sort(key=lambda o: o.parent_id is not None)
        return tuple(o.client_order_id for o in orders)

    async def close(self, symbol: str | None, *, strategy: str | None = None, account: str | None = None,
                    confirmed: dict[str, str] | None = None) -> dict[str, Any]:
        """Close the positions :meth:`plan` finds; return the orders cancelled and sent, and what failed.

        ``confirmed`` (key -> closing quantity) is the plan the user agreed to:
        Conflict if the plan made now differs. One position that cannot be
        closed (refused before anything was cancelled, a cancel that did not go
        through, an order refused) is reported in ``errors`` (and, its stops
        gone, in ``unprotected``) and the others still close. Closes run one at a time.
        """
        async with self._lock:
            return await self._close(symbol, strategy=strategy, account=account, confirmed=confirmed)

    async def _close(self, symbol: str | None, *, strategy: str | None, account: str | None,
                     confirmed: dict[str, str] | None) -> dict[str, Any]:
        self.desk.adapter.require_connection()
        if not self.desk.synced:  # the positions and working orders read now would not be the broker's
            raise Unavailable("re-syncing with the broker; retry in a moment")
        plans = await self.plan(symbol, strategy=strategy, account=account)
        if confirmed is not None:
            self._require_confirmed(plans, confirmed)
        risk = self.desk.risk
        if plans and risk.kill_switch_engaged:
            raise RiskLimitExceeded(
                f"kill_switch: engaged ({risk.kill_switch_reason}): closing is refused too, and nothing was "
                "cancelled; release it with `trader kill-switch off` to flatten", limit="kill_switch",
                reason=risk.kill_switch_reason)
        reply: dict[str, Any] = {"account": plans[0].account if plans else self.account(account),
                                 "strategy": strategy, "positions": [p.describe() for p in plans],
                                 "cancelled": [], "orders": [], "errors": [], "flat": [], "unprotected": []}
        sent: list[tuple[Flatten, Decimal, str]] = []  # the plan, the account's position before the order, its id
        for flatten in plans:
            done = await self._one(flatten, strategy, reply)
            if done is not None:
                sent.append((flatten, *done))
        await self._settle([coid for _plan, _before, coid in sent])
        reply["orders"] = [self.desk.result(coid) for _plan, _before, coid in sent]
        for flatten, before, coid in sent:
            order = self.desk.book.order(coid)
            self._remember(flatten, before + order.filled_quantity * order.action.sign)
        return reply

    @staticmethod
    def _require_confirmed(plans: list[Flatten], confirmed: dict[str, str]) -> None:
        """Raise Conflict if ``plans`` is not the plan the user confirmed (key -> closing quantity)."""
        try:
            wanted = {key: Decimal(str(quantity)) for key, quantity in confirmed.items()}
        except ArithmeticError:
            raise ValidationError(f"confirmed: a quantity is not a number ({confirmed})") from None
        now = {p.contract.key: p.quantity for p in plans}
        if now != wanted:
            said = ", ".join(f"{k} {v.normalize():f}" for k, v in sorted(wanted.items())) or "nothing"
            found = ", ".join(f"{k} {v.normalize():f}" for k, v in sorted(now.items())) or "nothing"
            raise Conflict(f"the positions changed since the close was confirmed (confirmed: {said}; now: "
                           f"{found}): nothing was cancelled or sent; run the close again",
                           confirmed=confirmed, now={k: str(v) for k, v in now.items()})

    async def _one(self, flatten: Flatten, strategy: str | None, reply: dict[str, Any]) -> tuple[Decimal, str] | None:
        """Close one position (the steps of the module's docstring); return the account's position then and the id.

        None when nothing was sent: refused, or flat once the cancels were answered.
        """
        key = flatten.contract.key
        if flatten.quantity == 0:  # a strategy's close the account's position does not allow
            note = closing_quantity(flatten.held, flatten.account_held)[1]
            reply["errors"].append({"key": key, "error": Conflict(f"{key} not closed: {note}").to_wire()})
            return None
        coid = new_client_order_id()
        try:  # every check that can refuse, while the position still has its stops
            priced = await self.desk.build(parse_request(self._order(flatten, strategy, flatten.quantity, coid)))
            verdict = self.desk.verdict(priced, without=flatten.cancels)
            if not verdict["passed"]:
                raise RiskLimitExceeded(f"{verdict['message']} (nothing was cancelled)", limit=verdict["limit"])
        except TraderError as exc:
            log.warning("close of %s refused: %s", key, exc)
            reply["errors"].append({"key": key, "error": exc.to_wire()})
            return None
        try:
            reply["cancelled"] += await self._cancel(flatten)
        except TraderError as exc:
            log.warning("close of %s failed: %s", key, exc)
            self._failed(flatten, exc, reply)
            return None
        delta = self._filled_since(flatten)
        held, account_held = flatten.held + delta, flatten.account_held + delta
        self._remember(flatten, account_held)  # what the account holds now, whenever IB reports it
        quantity = closing_quantity(held, account_held)[0]
        if delta:
            log.warning("close of %s: the cancelled orders filled %s meanwhile: closing %s, not %s", key,
                        delta, quantity, flatten.quantity)
        if quantity == 0:
            reply["flat"].append({"key": key, "filled_while_cancelling": delta})
            return None
        action = Action.SELL if held > 0 else Action.BUY
        try:
            placed = await self.desk.place(self._order(flatten, strategy, quantity, coid, action))
        except TraderError as exc:
            log.error("close of %s failed after its working orders were cancelled: %s", key, exc)
            self._failed(flatten, exc, reply)
            return None
        reply["orders"].append(placed)
        return account_held, placed["order"].client_order_id

    @staticmethod
    def _order(flatten: Flatten, strategy: str | None, quantity: Decimal, coid: str,
               action: Action | None = None) -> dict[str, Any]:
        """Return the market order closing ``flatten``, as the desk's ``place`` takes it (an OrderRequest's fields)."""
        return {
            "symbol": flatten.contract.key, "action": str(action or flatten.action), "quantity": quantity,
            "order_type": "MKT", "strategy": strategy or "manual", "client_order_id": coid,
            **({"account": flatten.account} if flatten.account else {})}

    def _filled_since(self, flatten: Flatten) -> Decimal:
        """Return what the orders cancelled for ``flatten`` filled since the plan, signed (a sell negative)."""
        book = self.desk.book
        return sum(((book.order(c).filled_quantity - before) * book.order(c).action.sign
                    for c, before in zip(flatten.cancels, flatten.filled, strict=True)), _ZERO)

    def _failed(self, flatten: Flatten, exc: TraderError, reply: dict[str, Any]) -> None:
        """Report a position not closed; say loudly when orders that protected it were cancelled."""
        key = flatten.contract.key
        book = self.desk.book
        gone = [c for c in flatten.cancels if book.order(c).status in _CANCELLED]
        row: dict[str, Any] = {"key": key, "error": exc.to_wire()}
        if gone:
            row["unprotected"] = gone
            row["error"]["message"] = (f"{exc} -- the position is still open and its working orders "
                                       f"({', '.join(gone)}) were cancelled: it has no stop now")
            reply["unprotected"].append({"key": key, "cancelled": gone})
        reply["errors"].append(row)

    def _remember(self, flatten: Flatten, left: Decimal) -> None:
        """Keep ``left`` as the account's position on the contract until the broker's number moves.

        The platform's own fills say what its orders did before IB's position
        message does (it may come after the Filled status).
        """
        where = (flatten.account, flatten.contract.key)
        raw = next((p.quantity for p in self.desk.adapter.positions()
                    if p.contract.key == flatten.contract.key
                    and (flatten.account is None or p.account == flatten.account)), _ZERO)
        if raw != left:
            self._left[where] = (raw, left)
        else:
            self._left.pop(where, None)

    async def _settle(self, coids: list[str]) -> None:
        """Wait up to ``SETTLE_WAIT`` seconds for the closing orders to end (fill) and their fills to be booked.

        The answer then shows their fills, and the next close (after the lock)
        finds the positions as these orders left them: a strategy's from the
        book's fills, the account's from the broker, or from :meth:`_remember`
        while the broker's position message lags the order's Filled status.
        """
        if not await self.desk.book.wait_done(coids, SETTLE_WAIT):
            log.warning("close: orders %s not settled (ended, their fills booked) within %.0f s; the next close "
                        "reads the positions as they are then", ", ".join(coids), SETTLE_WAIT)

    async def _cancel(self, flatten: Flatten) -> list[Any]:
        """Cancel the working orders on the position; return them all as they ended (legs a parent took too).

        An order that ended by filling (a take-profit at the touch) is out of
        the way too: the closing order is sized with its fills. Raise Conflict
        naming one still working after its cancel.
        """
        book = self.desk.book
        for coid in flatten.cancels:
            if book.order(coid).is_done:  # a bracket leg its parent's cancel took with it, or filled
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
