"""Selection: what a command names: orders by symbol or key, strategy and count; holdings; the account.

``trader book --open --symbol AAPL --strategy t1 -n 5``, ``trader close`` and
``trader subscribe stop`` name what they act on the way a trader types it: a
symbol (``AAPL``, ``ES``: every expiry held) or a contract key
(``ES.FUT.202612``), case-insensitive, or any form the resolver reads
(``EURUSD``, ``ES Dec26``, ``CLF7``): :func:`matches` first, then
:func:`key_of`, one rule for every command. The risk gate's blocked and allowed
lists match an order by the same :func:`matches`. The filtering runs
in trader_service, next to the book, so a large book never crosses the wire
to be thrown away by the CLI. An account is named where the broker manages
several (an advisor's login), and defaults to the settings' one, or the only one.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from trader.domain import Contract, Fill, Order
from trader.errors import NotFound, ValidationError

__all__ = ["Named", "choose_account", "key_of", "matches", "select_orders", "strategy_holdings"]

_ZERO = Decimal(0)


class Named(Protocol):
    """What a name can name: a contract, or an order about to be sent (the risk gate's ``OrderIntent``)."""

    @property
    def key(self) -> str: ...

    @property
    def symbol(self) -> str: ...

    @property
    def local_symbol(self) -> str: ...


# The book and the resolver import the risk gate, which matches names here: what is used of them, as protocols.
class Fills(Protocol):
    """What a strategy's holdings are read from: the book's fills and orders."""

    def fills(self) -> list[Fill]: ...

    def get(self, client_order_id: str) -> Order | None: ...


class Resolver(Protocol):
    """What turns a name into one contract: :class:`trader.trading.instruments.Resolver`."""

    async def one(self, symbol: str) -> Any: ...


def matches(contract: Named, name: str) -> bool:
    """Return whether ``name`` names ``contract``: its key, its symbol or its local symbol (any case)."""
    wanted = name.strip().upper()
    return wanted in (contract.key.upper(), contract.symbol.upper(), (contract.local_symbol or "").upper())


async def key_of(name: str, keys: Iterable[str], resolver: Resolver) -> str:
    """Return the contract key ``name`` names: one of ``keys`` in any case, else the one the resolver finds.

    NotFound for a name the broker does not know; ValidationError when it
    names several contracts (see :meth:`Resolver.one`).
    """
    wanted = name.strip().upper()
    for key in keys:
        if key.upper() == wanted:
            return key
    return (await resolver.one(name)).key


async def select_orders(orders: Iterable[Order], *, symbol: str | None = None, strategy: str | None = None,
                        last: int | None = None, resolver: Resolver | None = None) -> list[Order]:
    """Return the orders on ``symbol`` placed by ``strategy`` (None: any), the last ``last`` of them.

    ``symbol`` is matched as :func:`matches` does; a name no order matches
    (``EURUSD``, ``ES Dec26``) is resolved (:func:`key_of`), so an unknown one
    is NotFound rather than an empty list.
    """
    chosen = [o for o in orders if strategy is None or o.order_ref == strategy]
    if symbol is not None:
        named = [o for o in chosen if matches(o.contract, symbol)]
        if not named and resolver is not None:
            key = await key_of(symbol, {o.contract.key for o in chosen}, resolver)
            named = [o for o in chosen if o.contract.key == key]
        chosen = named
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


def strategy_holdings(book: Fills, strategy: str, account: str | None = None) -> dict[str, tuple[Contract, Decimal]]:
    """Return what ``strategy`` holds in ``account`` per contract key, from the fills of its orders (flat keys left out).

    A strategy's position is the platform's own bookkeeping: the broker knows
    only the account's, the sum over every strategy and manual trade. Held
    per account: an order of ``account`` counts, and one that named none (the
    default account, ``account`` when it is the default); ``account`` None: every order.
    """
    held: dict[str, tuple[Contract, Decimal]] = {}
    for fill in book.fills():
        order = book.get(fill.client_order_id) if fill.client_order_id is not None else None
        if order is None or order.order_ref != strategy:
            continue
        if account is not None and order.account not in (None, account):
            continue
        contract, quantity = held.get(fill.contract.key, (fill.contract, _ZERO))
        held[fill.contract.key] = (contract, quantity + fill.signed_quantity)
    return {key: item for key, item in sorted(held.items()) if item[1] != 0}
