"""Broker totals: the broker's positions by contract key, gross exposure and account PnL, as the risk gate reads them.

Kept apart from the desk: they are the broker's figures, re-read only after
the broker reports a change, while the desk's are its own orders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from trader.brokers.base import Broker
from trader.domain import AccountValue, Position

log = logging.getLogger(__name__)

__all__ = ["PNL_TAGS", "BrokerTotals", "positions_by_key"]

PNL_TAGS = ("RealizedPnL", "UnrealizedPnL")  # the account values the daily-loss limit counts


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

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._positions: dict[str, Decimal] | None = None
        self._portfolio: tuple[Decimal, Decimal] | None = None  # (gross exposure, unrealized + realized PnL)
        self._pnl: dict[tuple[str, str, str], Decimal] = {}  # (account, tag, currency) -> value
        self._base: dict[str, str] = {}  # account -> its base currency (that of its NetLiquidation)
        broker.position_updates.subscribe(lambda _position: self._positions_changed())
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

    def _positions_changed(self) -> None:
        self._positions = None

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
        return self._positions

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
