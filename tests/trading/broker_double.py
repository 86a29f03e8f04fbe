"""An in-memory Broker: the trading layer's tests drive the seam with domain objects, no broker library involved.

Tests set what the broker holds (``held_positions``, ``held_portfolio``,
``held_values``, ``held_orders``, ``held_executions``) and push events on its
streams as the broker would; it records what the platform asked of it
(``sent``, ``modified``, ``cancelled``, ``global_cancels``, ``what_ifs``); ``preview`` is its
answer to a what-if order. It satisfies
:class:`~trader.brokers.base.Broker` (tests/brokers/test_broker_seam.py checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from reactivex.subject import Subject

from trader.brokers.records import (
    ContractDetails,
    ContractQuery,
    OrderPreview,
    OrderReport,
    Quote,
    SymbolMatch,
)
from trader.domain import AccountValue, Bar, Contract, Fill, Order, Position
from trader.errors import NotFound, Unavailable


class BrokerDouble:
    """A broker connection held in memory."""

    def __init__(self, *, connected: bool = True) -> None:
        self.ticks: Subject[list[dict[str, Any]]] = Subject()
        self.order_updates: Subject[OrderReport] = Subject()
        self.fills: Subject[Fill] = Subject()
        self.position_updates: Subject[Position] = Subject()
        self.portfolio_updates: Subject[Position] = Subject()
        self.account_updates: Subject[AccountValue] = Subject()
        self.errors: Subject[tuple[int, int, str]] = Subject()
        self.connection: Subject[bool] = Subject()
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.connects = 0
        self.last_error: str | None = None
        self.account: str | None = None
        self.view_complete = True
        self.up = connected
        self.held_positions: list[Position] = []
        self.held_portfolio: list[Position] = []
        self.held_values: list[AccountValue] = []
        #: Market values of holdings the domain cannot model (a FOP, a BAG): in the gross, not in ``portfolio()``.
        self.held_unmodelled: list[Decimal] = []
        self.held_orders: list[OrderReport] = []
        self.held_executions: list[Fill] = []
        self.details: dict[str, list[ContractDetails]] = {}  # symbol -> what a lookup finds
        self.quotes: dict[str, Quote] = {}
        self.sent: list[Order] = []
        self.modified: list[Order] = []
        self.cancelled: list[str] = []
        self.global_cancels = 0
        self.what_ifs: list[Order] = []
        self.preview = OrderPreview(Decimal(1), Decimal(1), Decimal(1), "USD", Decimal(0), Decimal(0), Decimal(-1))
        self.handles: dict[str, int | None] = {}  # client order id -> broker order id sent under it
        self.streams: dict[str, set[str]] = {}
        self._next_id = 1

    # -- connection --------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"broker": "double"}

    @property
    def connected(self) -> bool:
        return self.up

    def start(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.up = False

    async def reconnect(self) -> None:
        self.connection.on_next(False)
        for hook in self.on_connected:
            await hook()
        self.connects += 1
        self.connection.on_next(True)

    async def wait_connected(self, timeout: float) -> bool:
        return self.up

    def require_connection(self) -> None:
        if not self.up:
            raise Unavailable("not connected (broker double)")

    async def current_time(self) -> datetime:
        return datetime.now(UTC)

    # -- orders -----------------------------------------------------------------------
    def next_order_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def place_orders(self, orders: Sequence[Order]) -> None:
        for order in orders:
            self.sent.append(order)
            self.handles[order.client_order_id] = order.broker_order_id

    async def what_if(self, order: Order, timeout: float = 10.0) -> OrderPreview:
        self.require_connection()
        self.what_ifs.append(order)
        return self.preview

    def has_order(self, client_order_id: str) -> bool:
        return client_order_id in self.handles

    def sent_order_id(self, client_order_id: str) -> int | None:
        return self.handles.get(client_order_id)

    def modify_order(self, order: Order) -> None:
        self.modified.append(order)

    def cancel_order(self, client_order_id: str) -> None:
        if client_order_id not in self.handles:
            raise NotFound(f"order {client_order_id} unknown")
        self.cancelled.append(client_order_id)

    def cancel_all_orders(self) -> None:
        self.global_cancels += 1

    def open_orders(self) -> list[OrderReport]:
        return [r for r in self.held_orders if r.status is None or not r.status.is_terminal]

    def completed_orders(self) -> list[OrderReport]:
        return [r for r in self.held_orders if r.status is not None and r.status.is_terminal]

    def executions(self) -> list[Fill]:
        return list(self.held_executions)

    # -- account ----------------------------------------------------------------------
    def accounts(self) -> list[str]:
        return sorted({v.account for v in self.held_values})

    def account_values(self) -> list[AccountValue]:
        return list(self.held_values)

    def positions(self) -> list[Position]:
        return list(self.held_positions)

    def portfolio(self) -> list[Position]:
        return list(self.held_portfolio)

    def gross_market_value(self) -> Decimal:
        values = [p.market_value or Decimal(0) for p in self.held_portfolio] + self.held_unmodelled
        return sum((abs(v) for v in values), Decimal(0))

    # -- contracts and market data ------------------------------------------------------
    async def contract_details(self, query: ContractQuery) -> list[ContractDetails]:
        return list(self.details.get(query.symbol, []))

    async def search(self, pattern: str) -> list[SymbolMatch]:
        return []

    def subscribe(self, contract: Contract, owner: str = "user") -> None:
        self.streams.setdefault(contract.key, set()).add(owner)

    def unsubscribe(self, key: str, owner: str = "user") -> bool:
        owners = self.streams.get(key)
        if owners is None or owner not in owners:
            return False
        owners.discard(owner)
        if not owners:
            del self.streams[key]
        return True

    def subscriptions(self) -> dict[str, set[str]]:
        return {key: set(owners) for key, owners in self.streams.items()}

    def quote(self, contract: Contract) -> Quote | None:
        return self.quotes.get(contract.key) if contract.key in self.streams else None

    async def snapshot(self, contract: Contract, timeout: float = 5.0) -> dict[str, Any]:
        quote = self.quotes.get(contract.key, Quote(None, None, None))
        return {"instrument": contract.key, "time": datetime.now(UTC), "bid": quote.bid, "ask": quote.ask,
                "last": quote.last}

    async def history(self, contract: Contract, *, end: str, duration: str, bar_size: str, what_to_show: str,
                      use_rth: bool, timeout: float = 60.0) -> list[Bar]:
        return []

    async def history_frame(self, contract: Contract, *, end: str, duration: str, bar_size: str, what_to_show: str,
                            use_rth: bool, timeout: float = 60.0) -> pd.DataFrame:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"],
                            index=pd.DatetimeIndex([], tz="UTC", name="time"))
