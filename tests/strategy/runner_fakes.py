"""Runner fakes: a scripted strategy and a fake trader service, to test StrategyRunner on its own.

The runner is the unit under test, so the trader service it calls is a small
fake (``FakeTrader``) answering ``place_order``, ``orders`` and
``cancel_order`` in the shape trader_service answers them over RPC (a place
answers ``Desk.result``: the Order, its children and a reason). Order retries
run in virtual time: the runner takes a clock and a sleep. Strategy code runs
on the runner's real worker thread, so its time budget is real (a fraction of
a second).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from tests.waiting import wait_until
from trader.domain import Action, Bar, Contract, Fill, Order, OrderStatus, Tick
from trader.strategy import Strategy, StrategyConfig
from trader.strategy.plugins import Plugin
from trader.strategy.runner import StrategyRunner

D = Decimal
KEY = Contract("AAPL").key
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
Script = Callable[[pd.DataFrame], Any]


class Scripted(Strategy):
    """A strategy whose targets are whatever its ``script`` returns for the prices."""

    instruments = ("AAPL",)
    bar_size = "1m"
    warmup = 2

    def __init__(self, config: StrategyConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        self.script: Script = lambda prices: pd.Series(0.0, index=prices.index)
        self.calls = 0
        self.ticks: list[Tick] = []
        self.tick_hook: Callable[[Tick], None] | None = None

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        self.calls += 1
        return self.script(prices)

    def on_tick(self, tick: Tick) -> None:
        if self.tick_hook is not None:
            self.tick_hook(tick)
        self.ticks.append(tick)


def targets(*values: float) -> Script:
    """Return a script whose last target is the next of ``values`` at each call."""
    it = iter(values)

    def script(prices: pd.DataFrame) -> pd.Series:
        out = pd.Series(0.0, index=prices.index)
        out.iloc[-1] = next(it)
        return out

    return script


class FakeTrader:
    """trader_service's RPC as the runner calls it: idempotent ``place_order``, ``orders``, ``cancel_order``."""

    def __init__(self) -> None:
        self.book: dict[str, Order] = {}
        self.attempts: list[str] = []  # the client order id of every place_order call, refused ones too
        self.refusals: list[Exception] = []  # raised by the next place_order calls, in turn
        self.status = OrderStatus.SUBMITTED
        self.reason = ""
        self.cancelled: list[str] = []
        self.on_place: Callable[[Order], None] | None = None

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self, method)(*args, **kwargs)

    async def place_order(self, **request: Any) -> dict[str, Any]:
        coid = request["client_order_id"]
        self.attempts.append(coid)
        if self.refusals:
            raise self.refusals.pop(0)
        order = self.book.get(coid)
        if order is None:  # a retry under a known id is answered, not placed again
            order = Order(coid, Contract(request["symbol"].split(".")[0]), Action(request["action"]),
                          D(request["quantity"]), order_ref=request["strategy"], status=self.status)
            self.book[coid] = order
            if self.on_place is not None:
                self.on_place(order)
        return {"order": order, "children": [], "reason": self.reason}

    async def orders(self, open_only: bool = False) -> list[Order]:
        return [o for o in self.book.values() if not open_only or o.status is OrderStatus.SUBMITTED]

    async def cancel_order(self, client_order_id: str) -> dict[str, Any]:
        self.cancelled.append(client_order_id)
        return {"order": self.book[client_order_id], "children": [], "reason": ""}


class Harness:
    """One runner with its fake trader, its bus events, a virtual clock and the bars fed so far."""

    def __init__(self, script: Script | None = None, *, equity: Decimal | None = D(100_000),
                 **config: Any) -> None:
        self.strategy = Scripted(StrategyConfig.model_validate(config))
        if script is not None:
            self.strategy.script = script
        self.trader = FakeTrader()
        self.events: list[tuple[str, Any]] = []
        self.now = 0.0
        self.sleeps: list[float] = []
        self.equity: Decimal | None | Exception = equity
        self.runner = StrategyRunner(Plugin(self.strategy, Path(__file__), None), self.trader,
                                     lambda topic, payload: self.events.append((topic, payload)),
                                     equity=self._equity, order_retry_seconds=2.0, clock=lambda: self.now,
                                     sleep=self._sleep)
        self.minute = itertools.count()
        _OPEN.append(self.runner)

    async def _equity(self) -> Decimal | None:
        if isinstance(self.equity, Exception):
            raise self.equity
        return self.equity

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def bar(self, close: float = 100.0) -> Bar:
        start = T0 + timedelta(minutes=next(self.minute))
        return Bar(KEY, start, "1m", close, close, close, close, 10.0)

    async def start(self, history: int = 2) -> None:
        """Begin and warm up with ``history`` bars."""
        self.runner.begin({"AAPL": KEY})
        await self.runner.warm_up({KEY: [self.bar() for _ in range(history)]})

    async def decide(self, close: float = 100.0) -> None:
        """Feed one closed bar and wait for the strategy's ``signals`` to have seen it."""
        calls = self.strategy.calls
        self.runner.on_bar(self.bar(close))
        await wait_until(lambda: self.strategy.calls > calls or not self.runner.active, 5, "signals called")

    def published(self, event: str) -> list[Any]:
        return [p for t, p in self.events if t == f"strategy.{self.strategy.name}.{event}"]

    def states(self) -> list[str]:
        return [p["state"] for p in self.published("state")]

    def fill(self, order: Order, price: str = "100") -> None:
        self.runner.on_fill(Fill(f"x-{order.client_order_id}", order.client_order_id, order.contract,
                                 order.action, order.quantity, D(price), T0))


_OPEN: list[StrategyRunner] = []  # runners whose log handler is still on their strategy's logger


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh loop (30 s at most), then detach the log handlers of the runners it made."""
    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        close_runners()


def close_runners() -> None:
    """Detach the log handlers of every runner a Harness made (a test that does not ``run`` calls this)."""
    while _OPEN:
        _OPEN.pop().close()


async def orders_published(h: Harness, n: int) -> list[dict[str, Any]]:
    await wait_until(lambda: len(h.published("order")) >= n, 5, f"{n} order events")
    return h.published("order")
