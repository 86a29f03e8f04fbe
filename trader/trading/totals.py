"""Broker totals: the broker's positions by contract key, gross exposure and account PnL, as the risk gate reads them.

Kept apart from the desk: they are the broker's figures, re-read only after
the broker reports a change, while the desk's are its own orders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

from trader.brokers.base import Broker
from trader.domain import AccountValue, Fill, Position

log = logging.getLogger(__name__)

__all__ = ["PNL_TAGS", "BrokerTotals", "positions_by_key"]

PNL_TAGS = ("RealizedPnL", "UnrealizedPnL")  # the account values the daily-loss limit counts
#: How long a fill the broker has not reported a position for yet counts on top of its positions (IB's
#: position message follows the fill within a second; a fill that never gets one stops counting then).
UNREPORTED_FOR = 5.0


def positions_by_key(positions: Iterable[Position]) -> dict[str, Decimal]:
    """Return positions as a signed quantity per contract key, summed over the accounts."""
    by_key: dict[str, Decimal] = {}
    for pos in positions:
        by_key[pos.contract.key] = by_key.get(pos.contract.key, Decimal(0)) + pos.quantity
    return by_key


class BrokerTotals:
    """The broker's positions by key, gross exposure and PnL: re-read after the broker reports a change, not per order.

    The broker's positions and portfolio change only as it reports them (each
    report is an event) or when the connection is made or lost, so the totals
    are recomputed on the first read after any of those, and cost nothing otherwise.

    The PnL is the account's (its ``RealizedPnL`` and ``UnrealizedPnL`` values,
    in the base currency), not a sum over the portfolio: IB (ib_async) drops a
    position from the portfolio once it is closed, and its realized PnL with it.
    """

    def __init__(self, broker: Broker, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.clock = clock
        self._positions: dict[str, Decimal] | None = None
        #: Fills booked since the broker last reported the position of their key: (when, signed quantity).
        self._unreported: dict[str, list[tuple[float, Decimal]]] = {}
        self._portfolio: tuple[Decimal, Decimal] | None = None  # (gross exposure, unrealized + realized PnL)
        self._pnl: dict[tuple[str, str, str], Decimal] = {}  # (account, tag, currency) -> value
        self._base: dict[str, str] = {}  # account -> its base currency (that of its NetLiquidation)
        broker.position_updates.subscribe(self._on_position)
        broker.portfolio_updates.subscribe(lambda _item: self._portfolio_changed())
        broker.account_updates.subscribe(self._on_account_value)
        broker.connection.subscribe(self._connection_changed)

    def _on_account_value(self, value: AccountValue) -> None:
        if value.tag == "NetLiquidation" and value.currency and value.currency != "BASE":
            self._base[value.account] = value.currency
        elif value.tag in PNL_TAGS:
            try:  # the broker sends the value as text: taken exactly
                amount = Decimal(value.value)
            except (InvalidOperation, TypeError):
                return
            if amount.is_finite():
                self._pnl[value.account, value.tag, value.currency] = amount
                self._portfolio = None

    def _on_position(self, position: Position) -> None:
        self._unreported.pop(position.contract.key, None)  # the broker's position now holds those fills
        self._positions = None

    def fill_booked(self, fill: Fill) -> None:
        """Count ``fill`` on top of the broker's positions until the broker reports its key's position.

        An order ends (Filled) before the broker's position message arrives;
        in between, the gate would see neither the working order nor the
        position it made, and let an order past the position limit through.
        """
        self._unreported.setdefault(fill.contract.key, []).append(
            (self.clock(), fill.quantity * fill.action.sign))

    def _portfolio_changed(self) -> None:
        self._portfolio = None

    def _connection_changed(self, connected: bool) -> None:
        if not connected:  # the account's values go with the connection; the broker sends them on the next
            self._pnl.clear()
            self._base.clear()
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the totals: the next read recomputes them from the broker's."""
        self._positions = self._portfolio = None

    def positions(self) -> dict[str, Decimal]:
        """Return the broker's positions as a signed quantity per contract key (do not mutate: it is shared)."""
        if self._positions is None:
            self._positions = positions_by_key(self.broker.positions())
        if not self._unreported:
            return self._positions
        since = self.clock() - UNREPORTED_FOR
        merged = dict(self._positions)
        for key in list(self._unreported):
            recent = [(at, qty) for at, qty in self._unreported[key] if at >= since]
            if not recent:
                del self._unreported[key]
                continue
            self._unreported[key] = recent
            merged[key] = merged.get(key, Decimal(0)) + sum((qty for _, qty in recent), Decimal(0))
        return merged

    def portfolio(self) -> tuple[Decimal, Decimal]:
        """Return the portfolio's gross exposure (sum of |market value|) and the account's PnL (realized + unrealized)."""
        if self._portfolio is None:  # every holding, those the domain cannot model (a FOP, a BAG...) too
            self._portfolio = (self.broker.gross_market_value(), self._account_pnl())
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
