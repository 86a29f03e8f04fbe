"""Selection: what a command names: orders by symbol or key, strategy and count; holdings; the account.

``trader book --open --symbol AAPL --strategy t1 -n 5`` and ``trader close``
name what they act on the way a trader types it: a symbol (``AAPL``, ``ES``:
every expiry held) or a contract key (``ES.FUT.202612``), case-insensitive;
a strategy by the name its orders carry (``order_ref``). The filtering runs
in trader_service, next to the book, so a large book never crosses the wire
to be thrown away by the CLI. An account is named where the broker manages
several (an advisor's login), and defaults to the settings' one, or the only one.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from trader.domain import Contract, Order
from trader.errors import NotFound, ValidationError
from trader.trading.book import Book

__all__ = ["choose_account", "matches", "select_orders", "strategy_holdings"]

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


def choose_account(account: str | None, managed: list[str], default: str | None) -> str | None:
    """Return the account meant: ``account`` if the broker manages it, else ``default``, else the only one.

    NotFound for an account not in ``managed`` (an empty list, before the
    broker said: any); ValidationError when several are managed, there is no
    default and none was named (None: no account known yet).
    """
    if account:
        if managed and account not in managed:
            raise NotFound(f"unknown account {account!r} (this connection manages {', '.join(managed)})",
                           account=account, accounts=managed)
        return account
    if default or len(managed) <= 1:
        return default or (managed[0] if managed else None)
    raise ValidationError(f"this connection manages several accounts ({', '.join(managed)}): "
                          "name one with --account", accounts=managed)


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
