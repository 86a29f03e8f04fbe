"""The trader service's RPC API: the account and the book, orders, and market data.

:class:`TraderApi` holds the RPC methods of
:class:`~services.trader_service.TraderService` that answer from the broker,
the book and the desk (the service registers them by name); the service
builds what they act on and keeps its lifecycle, its status and the
connection's RPCs (``reconnect``, ``reconcile``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from trader.brokers.base import Broker
from trader.errors import NotFound, TraderError, ValidationError
from trader.trading.book import Book
from trader.trading.closing import Closer
from trader.trading.desk import Desk
from trader.trading.history_cache import HistoryCache
from trader.trading.instruments import Resolver
from trader.trading.kill_switch import KillSwitch
from trader.trading.requests import takes_hints
from trader.trading.selection import choose_account, key_of, select_orders
from trader.trading.subscriptions import SavedSubscriptions

log = logging.getLogger(__name__)

__all__ = ["OWNERS", "TraderApi"]

BROKER_TIME_WAIT = 2.0  # seconds for reqCurrentTime before a history request counts days on our clock
OWNERS = ("user", "strategy")  # who may ask subscribe for a stream (the desk holds its own)


class TraderApi:
    """The RPC methods on the account, the book, orders and market data (a base of TraderService)."""

    # Built by TraderService (at __init__, the desk and what acts on it at on_start): what the methods act on.
    adapter: Broker
    book: Book
    resolver: Resolver
    history_cache: HistoryCache
    desk: Desk | None
    closer: Closer | None
    switch: KillSwitch | None
    saved: SavedSubscriptions | None

    # -- RPC: account and book -------------------------------------------------------
    def _desk(self) -> Desk:
        assert self.desk is not None
        return self.desk

    def _closer(self) -> Closer:
        assert self.closer is not None
        return self.closer

    def _account(self, account: str | None) -> str | None:
        """Return the account ``account`` names (None: the default one); see ``choose_account``."""
        return choose_account(account, self.adapter.accounts(), self.adapter.account)

    def account(self, account: str | None = None) -> dict[str, Any]:
        """Return the account's id, its values by tag (and currency), and every account managed."""
        name = self._account(account)
        values: dict[str, dict[str, str]] = {}
        for v in self.adapter.account_values():
            if name is None or v.account == name:
                values.setdefault(v.tag, {})[v.currency or ""] = v.value
        return {"account": name, "accounts": self.adapter.accounts(), "values": values}

    def positions(self, account: str | None = None) -> list[Any]:
        """Return the broker's positions (of one account with ``account``; of every account without)."""
        name = self._account(account) if account else None
        return [p for p in self.adapter.positions() if name is None or p.account == name]

    def portfolio(self, account: str | None = None) -> list[Any]:
        """Return positions with market price and value, unrealized and realized PnL (of ``account`` only)."""
        name = self._account(account) if account else None
        return [p for p in self.adapter.portfolio() if name is None or p.account == name]

    async def orders(self, open_only: bool = False, symbol: str | None = None, strategy: str | None = None,
                     last: int | None = None) -> list[Any]:
        """Return the book's orders, oldest first: working ones only, on ``symbol``, of ``strategy``, the ``last``.

        ``symbol`` as every command names a contract (see ``selection.select_orders``): EURUSD or "ES Dec26" too.
        """
        return await select_orders(self.book.orders(open_only=bool(open_only)), symbol=symbol, strategy=strategy,
                                   last=last, resolver=self.resolver)

    def trades(self, client_order_id: str | None = None, limit: int | None = None) -> list[Any]:
        """Return the fills (with commissions), oldest first; the last ``limit`` of them."""
        fills = self.book.fills(client_order_id)
        return fills[-limit:] if limit else fills

    # -- RPC: orders -------------------------------------------------------------------
    async def place_order(self, **order: Any) -> dict[str, Any]:
        """Place an order (see trader.trading.requests.OrderRequest); idempotent on client_order_id."""
        if order.get("account") or (self.adapter.account is None and len(self.adapter.accounts()) > 1):
            # NotFound for an account not managed; several managed, none named and no default: ValidationError
            order["account"] = self._account(order.get("account"))
        return await self._desk().place(order)

    async def close_positions(self, symbol: str | None = None, strategy: str | None = None,
                              account: str | None = None, execute: bool = False,
                              confirmed: dict[str, str] | None = None) -> dict[str, Any]:
        """Flatten ``symbol``'s position (None: every one), the account's or ``strategy``'s (see trading.closing).

        Without ``execute``, only the plan: the positions, the orders that would
        close them and the working orders cancelled first; nothing is sent.
        With it, ``confirmed`` (the plan the user confirmed: contract key ->
        the closing quantity, as text) is checked against the plan made now,
        and a difference is a Conflict, with nothing cancelled or sent.
        """
        closer = self._closer()
        if execute:
            return await closer.close(symbol, strategy=strategy, account=account, confirmed=confirmed)
        plans = await closer.plan(symbol, strategy=strategy, account=account)
        return {"account": closer.account(account), "strategy": strategy,
                "positions": [p.describe() for p in plans]}

    async def what_if(self, **order: Any) -> dict[str, Any]:
        """Return what an order would do (commission, margin, the risk gate's verdict); nothing is sent.

        The account is checked as for ``place_order`` (NotFound for one not managed), by the desk.
        """
        return await self._desk().what_if(order)

    async def modify_order(self, client_order_id: str, abbreviated: bool = False, **changes: Any) -> dict[str, Any]:
        """Change a working order's quantity, limit/stop price or trail.

        ``abbreviated``: the id may be given as a person types it from a table (``Book.resolve_id``: a unique
        prefix or ``96ca…0d3c``); otherwise only the exact id names an order, so a program whose order is gone
        never acts on another that shares its prefix.
        """
        desk = self._desk()
        return await desk.modify(self._order_id(client_order_id, abbreviated), **changes)

    async def cancel_order(self, client_order_id: str, abbreviated: bool = False) -> dict[str, Any]:
        """Cancel a working order (``abbreviated`` as for :meth:`modify_order`)."""
        desk = self._desk()
        return await desk.cancel(self._order_id(client_order_id, abbreviated))

    def _order_id(self, text: str, abbreviated: bool) -> str:
        return self.book.resolve_id(text) if abbreviated else text

    def cancel_all(self, everything: bool = False) -> int:
        """Cancel the platform's open orders (``everything``: every open order of the account); return how many."""
        return self._desk().cancel_all(everything=everything)

    async def kill_switch(self, on: bool, reason: str = "") -> dict[str, Any]:
        """Engage (cancel everything, refuse new orders) or release the kill switch (see trading.kill_switch).

        The reply is the risk status with what engaging did: ``already_engaged``,
        ``replaced_reason``, ``cancel_sent`` (``cancel_error``), ``journal_error``,
        the orders the cancel covered (``orders``, ``brackets``) and how many IB
        confirmed cancelled (``cancelled``; ``cancel_pending`` the rest).
        """
        assert self.switch is not None
        return await self.switch.set(on, reason)


    # -- RPC: market data ------------------------------------------------------------
    async def resolve(self, symbol: str, sec_type: str | None = None, exchange: str | None = None,
                      currency: str | None = None, expiry: str | None = None, strike: Decimal | None = None,
                      right: str | None = None) -> list[dict[str, Any]]:
        """Return what ``symbol`` names (a future without a month: the front month), each as
        ``{"input", "key", "local_symbol", "description", "tick", "min_size", "last_trade", "contract",
        "universes"}`` (``universes``: those holding it; a symbol in one is answered with no broker round trip)."""
        found = await self.resolver.resolve(symbol, sec_type=sec_type, exchange=exchange, currency=currency,
                                            expiry=expiry, strike=strike, right=right)
        if not found:
            raise NotFound(f"unknown symbol {symbol!r}", symbol=symbol)
        return [{"input": symbol, "key": i.key, "local_symbol": i.contract.local_symbol,
                 "description": i.long_name, "tick": i.tick, "min_size": i.min_size, "last_trade": i.last_trade,
                 "contract": i.contract, "universes": self.resolver.universes_of(i.key)} for i in found]

    @takes_hints
    async def snapshot(self, symbol: str, **hints: Any) -> dict[str, Any]:
        """Return the current quote of one instrument, with its ``min_tick`` (the precision its prices show in)."""
        inst = await self.resolver.one(symbol, **hints)
        return {**await self.adapter.snapshot(inst.contract), "min_tick": inst.tick}

    @takes_hints
    async def snapshots(self, symbols: list[str], **hints: Any) -> list[dict[str, Any]]:
        """Return each symbol's quote, asked concurrently: ``{"symbol", "quote"}`` or ``{"symbol", "error"}``."""
        got = await asyncio.gather(*(self.snapshot(s, **hints) for s in symbols), return_exceptions=True)
        rows: list[dict[str, Any]] = []
        for symbol, quote in zip(symbols, got, strict=True):
            if isinstance(quote, TraderError):
                rows.append({"symbol": symbol, "error": quote.to_wire()})
            elif isinstance(quote, BaseException):
                raise quote
            else:
                rows.append({"symbol": symbol, "quote": quote})
        return rows

    @takes_hints
    async def subscribe(self, symbol: str, owner: str = "user", **hints: Any) -> dict[str, Any]:
        """Stream the instrument's ticks on the bus as ``tick.ib.<key>``; return the key, topic, contract and tick.

        ``owner`` "user" (a person's ``subscribe``) is saved in Redis and streamed
        again after a restart; "strategy" (strategy_service, which subscribes its
        strategies itself after a restart) is not, and a user's ``unsubscribe``
        leaves it streaming.
        """
        if owner not in OWNERS:
            raise ValidationError(f"owner must be one of {', '.join(OWNERS)}, not {owner!r}", owner=owner)
        inst = await self.resolver.one(symbol, **hints)
        self.adapter.subscribe(inst.contract, owner)
        if owner == "user" and self.saved is not None:
            await self.saved.add(inst.key)
        return {"key": inst.key, "topic": f"tick.ib.{inst.key}", "contract": inst.contract, "tick": inst.tick}

    async def unsubscribe(self, key: str) -> dict[str, Any]:
        """Stop streaming ``key`` for the user and forget it (others' streams of it go on: the desk's, strategies').

        Return ``{"key", "streaming", "streamed_for", "forgotten"}``: whether the
        key is still streamed and for whom, and whether it was saved for restarts.

        ``key`` is matched as every command names a contract (``selection.key_of``): a streamed or saved key
        in any case, else what the resolver makes of it (``aapl``, ``EURUSD``).
        """
        known = set(self.adapter.subscriptions())
        if self.saved is not None:
            try:
                known.update(await self.saved.load())
            except RedisError as exc:  # the streams still answer; a saved-only key then needs its exact spelling
                log.warning("saved subscriptions not read (%s)", exc)
        key = await key_of(key, sorted(known), self.resolver)
        saved = await self.saved.remove(key) if self.saved is not None else False
        if not self.adapter.unsubscribe(key) and not saved:
            holders = self.adapter.subscriptions().get(key)
            why = f" (streamed for {', '.join(sorted(holders))}: it ends when they let it go)" if holders else ""
            raise NotFound(f"no subscription for {key!r}{why}", key=key)
        owners = sorted(self.adapter.subscriptions().get(key, ()))
        return {"key": key, "streaming": bool(owners), "streamed_for": owners, "forgotten": saved}

    def subscriptions(self) -> list[str]:
        """Return the keys streamed on the bus (those subscribed, and those pricing recent orders)."""
        return sorted(self.adapter.subscriptions())

    @takes_hints
    async def history(self, symbol: str, duration: str = "1 D", bar_size: str = "1 min",
                      what_to_show: str = "TRADES", end: str = "", use_rth: bool = False,
                      **hints: Any) -> list[Any]:
        """Return historical bars as Bar records: the market store's where it holds them, else the broker's.

        The broker is asked (paced to its limits) only for the days the store lacks
        that have a session in the instrument's calendar, and for the day still
        forming; what it answers for closed days is written back; ``use_rth`` is
        cut from the stored full sessions (:mod:`trader.trading.history_cache`).
        """
        inst = await self.resolver.one(symbol, **hints)

        def fetch(end: str, duration: str, rth: bool) -> Any:  # the cache asks full sessions to store them
            return self.adapter.history(inst.contract, end=end, duration=duration, bar_size=bar_size,
                                        what_to_show=what_to_show, use_rth=rth)

        return await self.history_cache.history(inst.key, fetch, end=end, duration=duration, bar_size=bar_size,
                                                what_to_show=what_to_show, use_rth=bool(use_rth),
                                                contract=inst.contract, now=await self._broker_time())

    async def _broker_time(self) -> datetime | None:
        """Return the broker's clock (a replay's is the replayed moment), None if it does not answer in time."""
        try:
            return await asyncio.wait_for(self.adapter.current_time(), BROKER_TIME_WAIT)
        except (TimeoutError, TraderError, ConnectionError) as exc:
            log.info("history: the broker's time is unknown (%s): this machine's clock counts the days", exc)
            return None
