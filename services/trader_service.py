"""The trader service: the one process that talks to the broker; orders, book, portfolio, risk, journal.

``python -m services.trader_service`` connects to the broker the settings name
(``broker:``; ``ib``: the IB API endpoint of ``ib:``, tws-sim by default) through
the :class:`~trader.brokers.base.Broker` seam, rebuilds its book from
the Redis journal, reconciles it with the broker, and serves the RPC methods
below on ``services.trader_service.rpc_port``. It publishes ``tick.ib.<key>``
for subscribed instruments, ``order.<event>``, ``fill`` and ``portfolio`` on
the bus, and beats DEGRADED while the broker connection is down.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trader.brokers.factory import create_broker
from trader.config import Settings, TradingHours
from trader.domain import Order, OrderStatus
from trader.errors import NotFound, TraderError, ValidationError
from trader.messaging.rpc import MethodRegistry
from trader.retry import RetryPolicy
from trader.service.base import Service, main
from trader.trading.book import Book, rebuild
from trader.trading.closing import Closer
from trader.trading.desk import Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.reconcile import reconcile
from trader.trading.recorder import Recorder
from trader.trading.requests import takes_hints
from trader.trading.risk import RiskGate, trading_day
from trader.trading.selection import choose_account, key_of, select_orders
from trader.trading.subscriptions import SavedSubscriptions

log = logging.getLogger(__name__)

PORTFOLIO_INTERVAL = 1.0
DAY_CHECK_INTERVAL = 30.0  # how often a new trading day is looked for
#: A failed re-sync (Redis down past the recorder's ~5 s of retries, say) is tried again while connected:
#: until it succeeds the desk refuses orders, so a long outage costs at most RESYNC_RETRY.cap once it ends.
RESYNC_RETRY = RetryPolicy(0.5, 10.0, jitter=0.2)
RESYNC_ERRORS = (RedisError, OSError, TraderError)
KILL_CONFIRM_WAIT = 2.0  # how long the kill switch waits for IB to confirm its cancels before it answers
_CANCELLED = frozenset({OrderStatus.CANCELLED, OrderStatus.API_CANCELLED})
OWNERS = ("user", "strategy")  # who may ask subscribe for a stream (the desk holds its own)


class TraderService(Service):
    """Owns the IB connection and everything that trades through it."""

    name = "trader_service"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.redis: aioredis.Redis | None = None
        self.journal: Journal | None = None
        self.book = Book()
        self.risk = RiskGate(settings.risk, lambda: datetime.now(UTC))
        self.adapter = create_broker(settings)
        self.resolver = Resolver(self.adapter)
        self.recorder: Recorder | None = None
        self.desk: Desk | None = None
        self.closer: Closer | None = None
        self.differences: list[dict[str, Any]] = []
        self._portfolio_due = 0.0
        self._day: str | None = None  # the trading day whose PnL baseline is set
        self._day_task: asyncio.Task[None] | None = None
        self._quotes_task: asyncio.Task[None] | None = None
        self.resync_error: str | None = None  # why the last re-sync attempt failed, while it is retried
        self.saved: SavedSubscriptions | None = None  # the user's subscriptions, streamed again after a restart
        self._restoring: asyncio.Task[None] | None = None
        self._restore_again = False

    def register_methods(self, registry: MethodRegistry) -> None:
        for name in ("account", "positions", "portfolio", "orders", "trades", "place_order", "what_if", "modify_order",
                     "cancel_order", "cancel_all", "close_positions", "snapshot", "snapshots", "resolve", "subscribe", "unsubscribe",
                     "subscriptions", "history", "kill_switch", "reconnect", "reconcile"):
            registry.register(name, getattr(self, name), urgent=name == "kill_switch")

    # -- lifecycle -------------------------------------------------------------------
    async def on_start(self) -> None:
        r = self.settings.redis
        self.redis = aioredis.Redis(host=r.host, port=r.port,
                                    password=r.password.get_secret_value() if r.password else None)
        self.journal = Journal(self.redis, self.settings.trading.journal_stream)
        self.saved = SavedSubscriptions(self.redis, f"{self.settings.trading.snapshot_key}:subscriptions")
        await rebuild(self.journal, self.book, risk=self.risk)  # the book, and the kill switch as it was
        self.recorder = Recorder(self.journal, self._publish)
        self.recorder.start()
        self.desk = Desk(self.adapter, self.resolver, self.book, self.recorder, self.risk,
                         account=self.adapter.account)
        self.closer = Closer(self.desk)
        self.adapter.on_connected.append(self._resync)
        self.adapter.connection.subscribe(self._on_connection)
        self.adapter.ticks.subscribe(self._on_ticks)
        self.adapter.portfolio_updates.subscribe(lambda _item: self._portfolio_changed())
        self.adapter.start()
        self._day_task = asyncio.get_running_loop().create_task(self._day_loop(), name="trading-day")
        self._quotes_task = asyncio.get_running_loop().create_task(self._quotes_loop(), name="idle-quotes")
        if not await self.adapter.wait_connected(self.settings.trading.connect_timeout):
            why = "not connected to IB" if not self.adapter.connected else \
                f"connected, re-syncing with the broker ({self.resync_error or 'in progress'})"
            asyncio.get_running_loop().call_soon(self.set_degraded, why)

    async def on_stop(self) -> None:
        for task in (self._day_task, self._quotes_task, self._restoring):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.adapter.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.journal is not None:
            await self.journal.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def _resync(self, *, retry: bool = True) -> None:
        """Re-sync with the broker after a (re)connect: the kill switch's global cancel, then reconcile.

        The global cancel goes first: it needs neither the book nor Redis, and an
        engaged switch must not wait on (or be skipped by) a reconcile that fails.
        A failed reconcile leaves the desk unsynced (orders refused): with ``retry``
        it is tried again (``RESYNC_RETRY``) for as long as the connection holds, the
        service DEGRADED with the error as its reason meanwhile; the adapter reports
        the connection up only once this returns.
        """
        assert self.desk is not None
        if self.risk.kill_switch_engaged:  # engaged while away, or before a restart: orders may still be working
            log.warning("kill switch engaged: sending IB's global cancel after the (re)connect")
            self._cancel_everything()
        self.resync_error = None
        if retry:
            await RESYNC_RETRY.call(self._reconcile, retry_on=RESYNC_ERRORS, what="re-sync with the broker",
                                    logger=log, on_retry=self._resync_failed,
                                    give_up=lambda: not self.adapter.connected)
        else:
            await self._reconcile()
        self.resync_error = None
        await self._roll_day()

    async def _reconcile(self) -> None:
        assert self.desk is not None
        self.differences = await reconcile(self.desk)

    def _resync_failed(self, exc: BaseException) -> None:
        self.resync_error = f"{type(exc).__name__}: {exc}"[:200]
        self.set_degraded(f"connected, but the re-sync with the broker failed ({self.resync_error}); "
                          "orders refused until it succeeds")

    def _cancel_everything(self) -> str | None:
        """Send IB's global cancel for the kill switch; return why it could not be sent, or None.

        Never raises: the switch holds whether or not the cancel went out.
        """
        try:
            self._desk().cancel_all(everything=True)
        except Exception as exc:
            log.exception("kill switch: the global cancel could not be sent")
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _roll_day(self) -> None:
        """At the first sight of a new trading day, take the account's PnL as the day's baseline.

        The daily-loss limit counts from there. Days begin at ``risk.trading_hours``'s
        start (09:30 New York without one). The baseline is kept in Redis with its
        day, so a restart within the day keeps counting from the same point.
        """
        assert self.desk is not None and self.journal is not None
        hours = self.settings.risk.trading_hours or TradingHours()  # no hours guard: days begin 09:30 New York
        day = trading_day(hours, datetime.now(UTC)).isoformat()
        if day == self._day or not self.desk.synced:
            return
        key = f"{self.settings.trading.snapshot_key}:day"
        try:
            saved = await self.journal.load_snapshot(key)
        except (RedisError, TraderError) as exc:
            log.warning("cannot read the day's PnL baseline (%s); taking the current PnL", exc)
            saved = None
        if saved and saved.get("day") == day:
            baseline = Decimal(saved["baseline"])
        else:
            baseline = self.desk.broker_totals.portfolio()[1]
            try:
                await self.journal.save_snapshot(key, {"day": day, "baseline": baseline})
            except RedisError as exc:
                log.warning("cannot save the day's PnL baseline: %s", exc)
        self.desk.pnl_baseline, self._day = baseline, day
        log.info("trading day %s: daily PnL counts from the account's PnL of %s", day, baseline)

    async def _day_loop(self) -> None:
        while True:
            await asyncio.sleep(DAY_CHECK_INTERVAL)
            try:
                await self._roll_day()
            except Exception:  # the next check tries again
                log.exception("rolling the trading day failed")

    async def _quotes_loop(self) -> None:
        idle = self.settings.trading.quote_idle_release
        while True:
            await asyncio.sleep(min(60.0, max(0.25, idle / 4)))
            if self.desk is None:
                continue
            for key in self.desk.release_idle_quotes(idle):
                log.info("market data for %s released: no order for %.0f s", key, idle)

    def _on_connection(self, connected: bool) -> None:
        if not connected and self.desk is not None:
            self.desk.synced = False
        if connected:
            self.set_running("connected to IB")
            self._restore_again = True  # after each (re)connect: the saved streams (a restore under way goes again)
            if self._restoring is None or self._restoring.done():
                self._restoring = asyncio.get_running_loop().create_task(self._restore(), name="restore-subs")
        else:
            self.set_degraded("IB connection lost; reconnecting")

    async def _restore(self) -> None:
        """Stream again every subscription a user made (saved in Redis) that is not streamed now."""
        saved = self.saved
        assert saved is not None

        async def again(key: str) -> None:
            inst = await self.resolver.one(key)
            self.adapter.subscribe(inst.contract)

        async def once() -> None:
            streamed = [k for k, owners in self.adapter.subscriptions().items() if "user" in owners]
            await saved.restore(again, streamed)

        while self._restore_again and self.adapter.connected:
            self._restore_again = False
            try:
                await RESYNC_RETRY.call(once, retry_on=RedisError, what="reading the saved subscriptions",
                                        logger=log, give_up=lambda: not self.adapter.connected)
            except RedisError as exc:  # the connection went meanwhile: the next connect restores them
                log.error("saved subscriptions not restored, Redis unreadable until the IB connection went (%s)",
                          exc)

    def status_info(self) -> dict[str, Any]:
        return {
            "connected": self.adapter.connected,
            # Reconciled since the last (re)connect: orders are taken. Ready = RUNNING, connected and synced.
            "synced": self.desk is not None and self.desk.synced,
            "resync_error": self.resync_error,
            **self.adapter.describe(),
            "accounts": self.adapter.accounts(),
            "connects": self.adapter.connects,
            "last_error": self.adapter.last_error,
            "orders": len(self.book),
            "open_orders": self.book.open_count(),
            "fills": self.book.fill_count(),
            "subscriptions": sorted(self.adapter.subscriptions()),
            "subscriptions_failed": dict(self.saved.errors) if self.saved is not None else {},
            "kill_switch": self.risk.kill_switch_engaged,
            "kill_switch_reason": self.risk.kill_switch_reason,
            "journal_pending": self.recorder.pending if self.recorder else 0,
            "live": self.settings.trading.live,
            "differences": len(self.differences),
            "trading_day": self._day,
            "daily_pnl": self.desk.exposure().daily_pnl if self.desk is not None and self.desk.synced else None,
        }

    # -- bus -------------------------------------------------------------------------
    def _publish(self, topic: str, payload: Any) -> None:
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    def _on_ticks(self, ticks: list[dict[str, Any]]) -> None:
        for tick in ticks:
            self._publish(f"tick.ib.{tick['instrument']}", tick)

    def _portfolio_changed(self) -> None:
        now = time.monotonic()
        if now < self._portfolio_due:
            return
        self._portfolio_due = now + PORTFOLIO_INTERVAL
        asyncio.get_running_loop().create_task(self._snapshot())

    async def _snapshot(self) -> None:
        await asyncio.sleep(PORTFOLIO_INTERVAL / 2)  # let the rest of the burst of updates land
        items = self.portfolio()
        self._publish("portfolio", items)
        if self.journal is not None:
            try:
                await self.journal.save_snapshot(self.settings.trading.snapshot_key,
                                                 {"time": datetime.now(UTC), "portfolio": items})
            except Exception:
                log.exception("saving the portfolio snapshot failed")

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

    async def modify_order(self, client_order_id: str, **changes: Any) -> dict[str, Any]:
        """Change a working order's quantity, limit/stop price or trail."""
        return await self._desk().modify(client_order_id, **changes)

    async def cancel_order(self, client_order_id: str) -> dict[str, Any]:
        """Cancel a working order."""
        return await self._desk().cancel(client_order_id)

    def cancel_all(self, everything: bool = False) -> int:
        """Cancel the platform's open orders (``everything``: every open order of the account); return how many."""
        return self._desk().cancel_all(everything=everything)

    async def kill_switch(self, on: bool, reason: str = "") -> dict[str, Any]:
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
        assert self.recorder is not None
        on = bool(on)
        reply: dict[str, Any] = {}
        covered: list[Order] = []
        if on:
            reply["already_engaged"] = self.risk.kill_switch_engaged
            replaced = self.risk.engage_kill_switch(reason or None)
            if replaced is not None:
                reply["replaced_reason"] = replaced
            cancelled = False
            if self.adapter.connected:  # an emergency stop: every open order of the account, ours or not
                covered = self.book.orders(open_only=True)
                error = self._cancel_everything()  # the switch is engaged and journalled all the same
                cancelled = error is None
                if error is not None:
                    reply["cancel_error"] = error
            reply["cancel_sent"] = cancelled
        else:
            self.risk.release_kill_switch()
        why = self.risk.kill_switch_reason if on else reason
        try:
            await self.recorder.write({"type": "kill_switch", "engaged": on, "reason": why},
                                      "risk.kill_switch", {"engaged": on, "reason": why})
        except (RedisError, OSError, TraderError) as exc:  # Redis unreachable (after the recorder's retries)
            log.error("kill switch %s but not journalled (%s: %s): a restart would not know it",
                      "engaged" if on else "released", type(exc).__name__, exc)
            reply["journal_error"] = f"{type(exc).__name__}: {exc}"
        if on:
            reply.update(await self._cancelled(covered if reply.get("cancel_sent") else []))
        return {**self.risk.status(), **reply}

    async def _cancelled(self, covered: list[Order]) -> dict[str, Any]:
        """Wait a moment for IB to confirm the cancels; return the orders covered, brackets named, and the counts."""
        deadline = time.monotonic() + KILL_CONFIRM_WAIT
        while any(not self.book.order(o.client_order_id).is_done for o in covered) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        now = [self.book.order(o.client_order_id) for o in covered]
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

    async def reconnect(self) -> dict[str, Any]:
        """Drop the IB connection and make it again; return the status once re-synced (or after 15 s)."""
        await self.adapter.reconnect()  # the connector task runs from here: wait_connected waits for it
        await self.adapter.wait_connected(15)
        return self.status_info()

    async def reconcile(self) -> list[dict[str, Any]]:
        """Reconcile the book with the broker now; return the differences."""
        self.adapter.require_connection()
        await self._resync(retry=False)
        return self.differences

    # -- RPC: market data ------------------------------------------------------------
    async def resolve(self, symbol: str, sec_type: str | None = None, exchange: str | None = None,
                      currency: str | None = None, expiry: str | None = None, strike: Decimal | None = None,
                      right: str | None = None) -> list[dict[str, Any]]:
        """Return what ``symbol`` names (a future without a month: the front month), each as
        ``{"input", "key", "local_symbol", "description", "tick", "contract"}``."""
        found = await self.resolver.resolve(symbol, sec_type=sec_type, exchange=exchange, currency=currency,
                                            expiry=expiry, strike=strike, right=right)
        if not found:
            raise NotFound(f"unknown symbol {symbol!r}", symbol=symbol)
        return [{"input": symbol, "key": i.key, "local_symbol": i.contract.local_symbol,
                 "description": i.long_name, "tick": i.tick, "contract": i.contract} for i in found]

    @takes_hints
    async def snapshot(self, symbol: str, **hints: Any) -> dict[str, Any]:
        """Return the current quote of one instrument."""
        inst = await self.resolver.one(symbol, **hints)
        return await self.adapter.snapshot(inst.contract)

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

    async def unsubscribe(self, key: str) -> bool:
        """Stop streaming ``key`` for the user and forget it (others' streams of it go on: the desk's, strategies').

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
            owners = self.adapter.subscriptions().get(key)
            why = f" (streamed for {', '.join(sorted(owners))}: it ends when they let it go)" if owners else ""
            raise NotFound(f"no subscription for {key!r}{why}", key=key)
        return True

    def subscriptions(self) -> list[str]:
        """Return the keys streamed on the bus (those subscribed, and those pricing recent orders)."""
        return sorted(self.adapter.subscriptions())

    async def history(self, symbol: str, duration: str = "1 D", bar_size: str = "1 min",
                      what_to_show: str = "TRADES", end: str = "", use_rth: bool = False,
                      **hints: Any) -> list[Any]:
        """Return historical bars from the broker (paced to its limits) as Bar records."""
        inst = await self.resolver.one(symbol, **hints)
        return await self.adapter.history(inst.contract, end=end, duration=duration, bar_size=bar_size,
                                          what_to_show=what_to_show, use_rth=bool(use_rth))


if __name__ == "__main__":
    sys.exit(main(TraderService))
