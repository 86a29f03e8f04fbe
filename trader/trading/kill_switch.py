"""The kill switch: engaging it (IB's global cancel, the journal entry, what it cancelled) and releasing it.

The switch's state (engaged, its reason, since when) is the risk gate's
(``RiskGate.engage_kill_switch``): the gate refuses every new order while it is
engaged, and ``book.rebuild`` sets it as it was last journalled. This module
acts on it for the trader service's ``kill_switch`` method and its re-sync:
an emergency stop refuses new orders and sends IB's global cancel before it
waits on Redis for the journal entry, then waits up to ``KILL_CONFIRM_WAIT``
seconds for IB to confirm the cancels, and names the orders it covered, each
bracket's legs under their parent.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from trader.domain import Order, OrderStatus
from trader.errors import TraderError
from trader.trading.desk import Desk

log = logging.getLogger(__name__)

__all__ = ["KILL_CONFIRM_WAIT", "KillSwitch"]

KILL_CONFIRM_WAIT = 2.0  # how long the kill switch waits for IB to confirm its cancels before it answers
_CANCELLED = frozenset({OrderStatus.CANCELLED, OrderStatus.API_CANCELLED})


class KillSwitch:
    """Engage and release the desk's kill switch; see the module docstring."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def cancel_everything(self) -> str | None:
        """Send IB's global cancel for the kill switch; return why it could not be sent, or None.

        Never raises: the switch holds whether or not the cancel went out.
        """
        try:
            self.desk.cancel_all(everything=True)
        except Exception as exc:
            log.exception("kill switch: the global cancel could not be sent")
            return f"{type(exc).__name__}: {exc}"
        return None

    async def set(self, on: bool, reason: str = "") -> dict[str, Any]:
        """Engage (cancel everything, refuse new orders) or release the kill switch.

        Engaging refuses new orders and sends IB's global cancel before the
        journal entry is written: an emergency stop does not wait for Redis. A
        failed journal write is logged and reported in the reply (``journal_error``):
        the switch holds in this process, but a restart would not know of it.
        Engaging again without a reason keeps the reason in force; a new one
        replaces it (``replaced_reason``; ``already_engaged`` says whether it was). The reply names the platform's open
        orders the cancel covered (``orders``, ``brackets``: each parent with its
        children) and how many of them IB confirmed cancelled within
        ``KILL_CONFIRM_WAIT`` seconds (``cancelled``; ``cancel_pending`` the rest).
        """
        risk = self.desk.risk
        on = bool(on)
        reply: dict[str, Any] = {}
        covered: list[Order] = []
        if on:
            reply["already_engaged"] = risk.kill_switch_engaged
            replaced = risk.engage_kill_switch(reason or None)
            if replaced is not None:
                reply["replaced_reason"] = replaced
            cancelled = False
            if self.desk.adapter.connected:  # an emergency stop: every open order of the account, ours or not
                covered = self.desk.book.orders(open_only=True)
                error = self.cancel_everything()  # the switch is engaged and journalled all the same
                cancelled = error is None
                if error is not None:
                    reply["cancel_error"] = error
            reply["cancel_sent"] = cancelled
        else:
            risk.release_kill_switch()
        why = risk.kill_switch_reason if on else reason
        try:
            await self.desk.recorder.write({"type": "kill_switch", "engaged": on, "reason": why},
                                           "risk.kill_switch", {"engaged": on, "reason": why})
        except (RedisError, OSError, TraderError) as exc:  # Redis unreachable (after the recorder's retries)
            log.error("kill switch %s but not journalled (%s: %s): a restart would not know it",
                      "engaged" if on else "released", type(exc).__name__, exc)
            reply["journal_error"] = f"{type(exc).__name__}: {exc}"
        if on:
            reply.update(await self._cancelled(covered if reply.get("cancel_sent") else []))
        return {**risk.status(), **reply}

    async def _cancelled(self, covered: list[Order]) -> dict[str, Any]:
        """Wait a moment for IB to confirm the cancels; return the orders covered, brackets named, and the counts."""
        book = self.desk.book
        await book.wait_done([o.client_order_id for o in covered], KILL_CONFIRM_WAIT, booked=False)
        now = [book.order(o.client_order_id) for o in covered]
        ids = {o.client_order_id for o in now}
        brackets: dict[str, dict[str, Any]] = {}
        for order in now:
            if order.parent_id is None:
                continue
            parent = order.parent_id
            entry = brackets.setdefault(parent, {"parent": parent if parent in ids else None, "key": order.contract.key,
                                                 "children": []})
            entry["children"].append(order.client_order_id)
        for parent, entry in brackets.items():
            if entry["parent"] is None:  # the parent had filled: only its children were working
                entry["parent"] = parent
                entry["parent_working"] = False
            else:
                entry["parent_working"] = True
        return {
            "cancelled": sum(1 for o in now if o.status in _CANCELLED),
            "cancel_pending": sum(1 for o in now if not o.is_done),
            "orders": [{"client_order_id": o.client_order_id, "key": o.contract.key, "parent_id": o.parent_id,
                        "status": o.status} for o in now],
            "brackets": list(brackets.values()),
        }
