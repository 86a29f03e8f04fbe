"""What tws-sim's request handlers read and change of the simulated world.

The handlers are written against this Protocol rather than the class that
implements it (:class:`trader.sim.world.SimWorld`), which owns the handlers:
so neither module imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from trader.sim.account import Account
from trader.sim.catalogue import Catalogue
from trader.sim.engine import MatchingEngine
from trader.sim.market import MarketGenerator
from trader.sim.orders import EngineEvent
from trader.sim.pacing import HistoryPacing
from trader.sim.session import Session

__all__ = ["World"]


class World(Protocol):
    """The catalogue, market, engine and account, and the clients that trade in them."""

    catalogue: Catalogue
    market: MarketGenerator
    engine: MatchingEngine
    account: Account
    """The default account: where an order that names none goes."""
    accounts: dict[str, Account]
    """Every account the login manages (managedAccounts), by id, the default one first."""
    pacing: HistoryPacing
    """IB's historical-data pacing rules, across every client of the login."""

    def clock(self) -> datetime:
        """Return the current time."""

    def register(self, session: Session, client_id: int) -> bool:
        """Claim ``client_id`` for ``session``; False if another live session holds it."""

    def next_order_id(self, client_id: int) -> int:
        """Return the next order id for ``client_id``."""

    def reserve_ids(self, client_id: int, count: int) -> int:
        """Reserve ``count`` order ids for ``client_id``; return the first."""

    def dispatch(self, events: Iterable[EngineEvent]) -> None:
        """Report engine events to the clients that own the orders."""

    def mark(self, conid: int) -> Decimal | None:
        """Return the instrument's mark price."""

    def fx_rate(self, currency: str) -> Decimal | None:
        """Return how many base-currency units one unit of ``currency`` is worth."""
