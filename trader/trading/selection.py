"""Selection: the book's orders and the holdings a command names, by symbol or key, strategy and count.

``trader book --open --symbol AAPL --strategy t1 -n 5`` and ``trader close``
name what they act on the way a trader types it: a symbol (``AAPL``, ``ES``:
every expiry held) or a contract key (``ES.FUT.202612``), case-insensitive;
a strategy by the name its orders carry (``order_ref``). The filtering runs
in trader_service, next to the book, so a large book never crosses the wire
to be thrown away by the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from trader.domain import Contract, Order
from trader.trading.book import Book

__all__ = ["matches", "select_orders", "strategy_holdings"]

_ZERO = Decimal(0)


def matches(contract: Contract, name: str) -> bool:
    """Return whether ``name`` names ``contract``: its key, its symbol or its local symbol (any case)."""
    wanted = name.strip().upper()
    return wanted in (contract.key.upper(), contract.symbol.upper(), contract.local_symbol.upper())


def select_orders(orders: Iterable[Order], *, symbol: str | None = None, strategy: str | None = None,
                  last: int | None = None) -> list[Order]:
    """Return the orders on ``symbol`` placed by ``strategy`` (None: any), the last ``last`` of them."""
    chosen = [o for o in orders
              if (symbol is None or matches(o.contract, symbol)) and (strategy is None or o.order_ref == strategy)]
    return chosen[-last:] if last else chosen


def strategy_holdings(book: Book, strategy: str) -> dict[str, tuple[Contract, Decimal]]:
    """Return what ``strategy`` holds per contract key, from the fills of its orders (flat keys left out).

    A strategy's position is the platform's own bookkeeping: the broker knows
    only the account's, the sum over every strategy and manual trade.
    """
    held: dict[str, tuple[Contract, Decimal]] = {}
    for fill in book.fills():
        order = book.get(fill.client_order_id) if fill.client_order_id is not None else None
        if order is None or order.order_ref != strategy:
            continue
        contract, quantity = held.get(fill.contract.key, (fill.contract, _ZERO))
        held[fill.contract.key] = (contract, quantity + fill.signed_quantity)
    return {key: item for key, item in sorted(held.items()) if item[1] != 0}
