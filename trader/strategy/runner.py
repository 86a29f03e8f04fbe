"""One strategy, live: its state, bars, targets, ledger, logs, and its calls under a time budget.

A :class:`StrategyRunner` owns one plugin's strategy inside the strategy
service. Everything that reaches it (closed bars, fills, ticks) is an event
on its own queue, worked by its own task, so a slow or broken strategy delays
only itself. Strategy code (``signals`` and every hook) runs on the runner's
own worker thread under the config's ``time_budget`` (trader.strategy.budget):
past it the strategy goes to ERROR (the thread is abandoned, it cannot be
killed) and the others carry on. ``on_tick`` calls are queued to that thread in order without
waiting (a strategy without its own ``on_tick`` gets no ticks at all); one
that overruns is found at the next tick.

States (trader.strategy.states): INSTALLED (loaded, not started), WAITING_HISTORY (subscribed, warming
up from the trader service's history and live bars), RUNNING (trading at each
closed bar), DISABLED, ERROR (an exception or a broken target: the reason and
traceback are in its log; ``enable`` starts it again, through DISABLED). A
RUNNING strategy goes back to WAITING_HISTORY while the trader service it
trades through is restarted (:meth:`StrategyRunner.wait_for_trader`), until
its instruments are streamed and its positions read again. A RUNNING strategy
whose instruments send no ticks (the service's watchdog, trader.strategy.starvation)
is DEGRADED with the reason (:meth:`StrategyRunner.starve`), trading nothing, and
RUNNING again once they do (:meth:`StrategyRunner.fed`); a waiting one keeps its
state and gets the reason added. The moves between them are those of
``TRANSITIONS``; any other raises Conflict.

What the runner trades: at each closed bar, the last value of ``signals``
over the rolling window is the target. Only a change of target from the last
one traded sends an order, for the difference between the sized target and
the strategy's own position (its :class:`Ledger`). So a stop-out does not
re-enter until the signal changes. The order goes through the trader service
(its risk gate applies) with a client order id fixed by the bar, retried
under that id while the trader service is away, so it is placed once
(trader.strategy.orders). Its log lines are kept for ``strategy logs``
(trader.strategy.logfile's LogCapture).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from trader.domain import Bar, Fill, Tick
from trader.strategy.bars import RollingBars, parse_bar_size
from trader.strategy.base import Strategy
from trader.strategy.budget import BudgetExceeded, StrategyThread
from trader.strategy.ledger import Ledger
from trader.strategy.logfile import LogCapture
from trader.strategy.orders import Call, Sleep, StrategyOrders, order_retry, root_order_id
from trader.strategy.plugins import Plugin
from trader.strategy.sizing import SignalError, check_target
from trader.strategy.states import StrategyMoves, StrategyState

__all__ = ["StrategyRunner"]

log = logging.getLogger(__name__)

MAX_QUEUED_TICKS = 10_000  # ticks waiting for a slow on_tick before new ones are dropped


class StrategyRunner(StrategyMoves, StrategyOrders):
    """Runs one plugin's strategy; see the module docstring."""

    def __init__(self, plugin: Plugin, call: Call, publish: Callable[[str, Any], None], *,
                 equity: Callable[[], Awaitable[Decimal | None]], log_lines: int = 500,
                 order_retry_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.plugin = plugin
        self.strategy = plugin.strategy
        self.name = self.strategy.name
        self.config = self.strategy.config
        self.bar_seconds = parse_bar_size(self.strategy.bar_size)
        self._call = call
        self._publish = publish
        self._equity = equity
        self.order_retry_seconds = order_retry_seconds
        self._order_retry = order_retry(order_retry_seconds)  # under the same client order id
        self._clock = clock  # the order retries' clock and sleep: virtual time in tests
        self._sleep = sleep
        self.state = StrategyState.INSTALLED
        self.reason = ""
        self.keys: dict[str, str] = {}  # configured symbol -> contract key
        self.bars: dict[str, RollingBars] = {}
        self.targets: dict[str, float | None] = {}
        self.last_price: dict[str, Decimal] = {}
        self.ledger = Ledger()
        self.order_ids: set[str] = set()
        self.orders_sent = 0
        self.bars_seen = 0
        self.last_signal_ms = 0.0
        self.ticks_seen = 0
        self.ticks_dropped = 0
        self._ticks_sent = 0  # written by the loop thread only
        self._ticks_done = 0  # written by the strategy's thread only
        self._tick_started = 0.0  # monotonic time the running on_tick call began (0: none running)
        #: Whether the strategy has an ``on_tick`` of its own: if not, the service does not feed it ticks.
        self.wants_ticks = type(self.strategy).on_tick is not Strategy.on_tick
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._warmed = asyncio.Event()  # set once the history is in and on_start has run
        self.thread = StrategyThread(self.name, self.config.time_budget, on_replace=self._ticks_lost)
        self.waiting_for_trader = False  # see wait_for_trader
        self.starved: str | None = None  # why its instruments send no ticks (see starve), None while they do
        self._reason_fed = ""  # a waiting strategy's reason before starve added to it
        self.logger = self.strategy.log
        self.capture = LogCapture(self.publish, log_lines)
        self.logger.addHandler(self.capture)

    # -- state -----------------------------------------------------------------------
    def publish(self, event: str, payload: Any) -> None:
        self._publish(f"strategy.{self.name}.{event}", payload)

    def fail(self, what: str, exc: BaseException | None = None) -> None:
        """Put the strategy in ERROR with the reason (and the traceback in its log).

        A failure reported once the strategy has stopped (a tick its abandoned
        thread finished late) is logged and leaves the state as it is.
        """
        if not self.active and self.state is not StrategyState.ERROR:
            self.logger.warning("%s failed after the strategy stopped: %s", what, exc)
            return
        if exc is not None and not isinstance(exc, (BudgetExceeded, SignalError)):
            self.logger.error("%s raised", what, exc_info=(type(exc), exc, exc.__traceback__))
            reason = f"{what} raised {type(exc).__name__}: {exc}"
        else:
            reason = f"{what}: {exc}" if exc is not None else what
        self.move(StrategyState.ERROR, reason)

    def info(self) -> dict[str, Any]:
        """The strategy's line in ``strategy list``."""
        return {
            "name": self.name,
            "state": self.state.value,
            "reason": self.reason,
            "class": type(self.strategy).__name__,
            "file": str(self.plugin.module_file),
            "instruments": list(self.strategy.instruments),
            "keys": dict(self.keys),
            "bar_size": self.strategy.bar_size,
            "warmup": self.strategy.warmup,
            "bars": {k: len(b) for k, b in self.bars.items()},
            "targets": dict(self.targets),
            "orders": self.orders_sent,
            "ticks": self.ticks_seen,
            "ticks_dropped": self.ticks_dropped,
            "signal_ms": round(self.last_signal_ms, 3),
            "starved": self.starved,
            **self.ledger.summary(),
        }

    def carry_over(self, previous: StrategyRunner) -> None:
        """Take what a user reads from the runner this one replaces (a reload): its log lines, order count, marks."""
        self.capture.lines.extend(previous.capture.lines)  # before this runner logs anything
        self.orders_sent = max(self.orders_sent, previous.orders_sent)
        self.order_ids |= previous.order_ids
        self.last_price = {**previous.last_price, **self.last_price}
        self.ledger.marks = {**previous.ledger.marks, **self.ledger.marks}
        self.ledger.ticks = {**previous.ledger.ticks, **self.ledger.ticks}

    # -- lifecycle -------------------------------------------------------------------
    def begin(self, keys: dict[str, str]) -> None:
        """Start working events for ``keys`` (symbol -> contract key) from a clean slate."""
        self.keys = dict(keys)
        self.waiting_for_trader = False
        self.starved = None
        self.bars = {key: RollingBars(self.strategy.window) for key in keys.values()}
        self.targets = {key: None for key in keys.values()}
        self.thread.start()
        self.queue = asyncio.Queue()
        self._warmed = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"strategy-{self.name}")
        self.move(StrategyState.WAITING_HISTORY, f"warming up ({self.strategy.warmup} bars of {self.strategy.bar_size})")

    async def end(self, state: StrategyState = StrategyState.DISABLED, reason: str = "") -> None:
        """Stop working events, call ``on_stop`` and move to ``state``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        failed = self.state is StrategyState.ERROR
        if not failed:  # a failed strategy's hooks are not trusted to return
            try:
                await self.thread.run_budgeted("on_stop", self.strategy.on_stop)
            except Exception as exc:  # noqa: BLE001 - reported, the stop goes on
                self.logger.warning("on_stop failed: %s", exc)
        self.thread.stop()
        self.starved = None
        if not (failed and reason == "stopping"):  # the service stopping keeps an ERROR on show
            self.move(state, reason)

    def close(self) -> None:
        """Let the strategy go: its log capture and its plugin's module (a reload loads a new generation)."""
        self.logger.removeHandler(self.capture)
        self.plugin.unload()

    def _ticks_lost(self) -> None:
        self._ticks_done = self._ticks_sent  # what the abandoned thread had queued is gone

    # -- warm-up ---------------------------------------------------------------------
    async def warm_up(self, history: dict[str, list[Bar]]) -> None:
        """Seed the rolling windows with history bars, call ``on_start`` and run if warm enough."""
        for key, bars in history.items():
            rolling = self.bars.get(key)
            if rolling is not None:
                for bar in bars:
                    rolling.append(bar)
                if bars:
                    self.last_price[key] = Decimal(repr(bars[-1].close))
                    self.ledger.mark(key, self.last_price[key])  # after a (re)start: the mark is back at once
        try:
            await self.thread.run_budgeted("on_start", self.strategy.on_start)
        except Exception as exc:  # noqa: BLE001 - a broken hook is the strategy's ERROR
            self.fail("on_start", exc)
            return
        finally:
            self._warmed.set()  # the worker takes the live bars queued meanwhile, after the history
        self._check_warm()

    def trader_back(self) -> None:
        """End :meth:`wait_for_trader`: RUNNING again once the window is warm."""
        self.waiting_for_trader = False
        if self.active:
            self._check_warm()
            if self.state is StrategyState.WAITING_HISTORY:  # not warm yet: say so, not why it waited
                self.move(StrategyState.WAITING_HISTORY,
                          f"warming up ({self.strategy.warmup} bars of {self.strategy.bar_size})")

    def _check_warm(self) -> None:
        if self.waiting_for_trader:
            return
        if self.state is StrategyState.WAITING_HISTORY and all(len(b) >= self.strategy.warmup for b in self.bars.values()):
            self.move(StrategyState.RUNNING)

    # -- events (from the service's Rx subscriptions) --------------------------------
    def on_tick(self, tick: Tick) -> None:
        """Hand ``tick`` to the strategy's ``on_tick`` on its thread, in order; police its time budget."""
        executor = self.thread.executor
        if not self.active or executor is None or not self._warmed.is_set():
            return  # no tick before on_start
        started = self._tick_started
        if started and time.monotonic() - started > self.config.time_budget:
            self._tick_started = 0.0
            self.thread.replace()
            self.fail("on_tick", BudgetExceeded(f"on_tick took longer than its time budget of "
                                                f"{self.config.time_budget:g} s"))
            return
        if self._ticks_sent - self._ticks_done >= MAX_QUEUED_TICKS:
            self.ticks_dropped += 1
            if self.ticks_dropped == 1:
                self.logger.warning("on_tick cannot keep up: ticks dropped (counted in ticks_dropped)")
            return
        self.ticks_seen += 1
        self._ticks_sent += 1
        executor.submit(self._tick, tick, asyncio.get_running_loop())

    def _tick(self, tick: Tick, loop: asyncio.AbstractEventLoop) -> None:  # on the strategy's thread
        self._tick_started = time.monotonic()
        try:
            self.strategy.on_tick(tick)
        except Exception as exc:  # noqa: BLE001 - the strategy's bug, isolated
            loop.call_soon_threadsafe(self.fail, "on_tick", exc)
        finally:
            self._tick_started = 0.0
            self._ticks_done += 1

    def on_bar(self, bar: Bar) -> None:
        if self.active:
            self.queue.put_nowait(("bar", bar))

    def on_target(self, key: str, target: Any) -> None:
        """A target from the strategy's own Rx pipeline (the escape hatch)."""
        if self.active:
            self.queue.put_nowait(("target", (key, target, datetime.now(UTC))))

    def on_fill(self, fill: Fill) -> None:
        if self.ledger.apply(fill.contract.key, fill):
            self.logger.info("fill %s %s %s @ %s (%s)", fill.action.value, fill.quantity, fill.contract.key,
                             fill.price, fill.client_order_id)
            self.publish("fill", fill)
            if self.active:
                self.queue.put_nowait(("fill", fill))

    def resync(self, orders: list[Any], fills: list[Fill]) -> None:
        """Rebuild the ledger from the trader service's book: this strategy's orders and their fills."""
        mine = {o.client_order_id for o in orders if o.order_ref == self.name}
        self.order_ids |= mine
        # The book remembers the orders placed before a reload or a restart: the count goes on from there.
        self.orders_sent = max(self.orders_sent, len({root_order_id(coid) for coid in mine}))
        self.ledger.reset()
        for fill in fills:
            if fill.client_order_id in self.order_ids:
                self.ledger.apply(fill.contract.key, fill)
        self.targets = {key: None for key in self.targets}  # the next bar trades target vs. position
        summary = self.ledger.summary()
        self.logger.info("resynced: %d orders, %d fills, positions %s", len(self.order_ids), summary["fills"],
                         {k: str(v) for k, v in summary["positions"].items()} or "flat")

    # -- the worker ------------------------------------------------------------------
    async def _work(self) -> None:
        await self._warmed.wait()
        try:
            await self._work_events()
        except Exception as exc:  # noqa: BLE001 - a bug of the runner's: the strategy stops, visibly
            self.fail("the strategy runner", exc)

    async def _work_events(self) -> None:
        while True:
            events = [await self.queue.get()]
            while not self.queue.empty():  # catch up: many bars for one instrument make one decision
                events.append(self.queue.get_nowait())
            touched: dict[str, Bar] = {}
            for kind, item in events:
                if not self.active:
                    break
                if kind == "bar":
                    touched[item.instrument] = item
                    await self._bar(item)
                elif kind == "fill":
                    await self._hook("on_fill", self.strategy.on_fill, item)
                elif kind == "target" and self.state is StrategyState.RUNNING:
                    key, target, stamp = item
                    await self._apply(key, target, stamp, "pipeline")
            self._check_warm()
            for key, bar in touched.items():
                if self.state is StrategyState.RUNNING:
                    await self._decide(key, bar)

    async def _hook(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await self.thread.run_budgeted(what, fn, *args)
        except Exception as exc:  # noqa: BLE001 - isolated
            self.fail(what, exc)

    async def _bar(self, bar: Bar) -> None:
        rolling = self.bars.get(bar.instrument)
        if rolling is None:
            return
        rolling.append(bar)
        self.bars_seen += 1
        self.last_price[bar.instrument] = Decimal(repr(bar.close))
        self.ledger.mark(bar.instrument, self.last_price[bar.instrument])
        await self._hook("on_bar", self.strategy.on_bar, bar)

    async def _decide(self, key: str, bar: Bar) -> None:
        frame = self.bars[key].frame()
        started = time.perf_counter()
        try:
            series = await self.thread.run_budgeted("signals", self.strategy.signals, frame)
        except Exception as exc:  # noqa: BLE001 - isolated
            self.fail("signals", exc)
            return
        self.last_signal_ms = (time.perf_counter() - started) * 1000
        if not isinstance(series, pd.Series) or len(series) != len(frame):
            got = type(series).__name__ if not isinstance(series, pd.Series) else f"length {len(series)}"
            self.fail("signals", SignalError(f"must return a Series as long as prices ({len(frame)}), got {got}"))
            return
        value = series.iloc[-1]
        if pd.isna(value):
            self.logger.warning("signals returned NaN for %s at %s: no trade this bar", key, bar.start)
            return
        await self._apply(key, value, bar.start, "signals")

    async def _apply(self, key: str, value: Any, stamp: datetime, what: str) -> None:
        """Trade ``value``, the target for ``key`` decided at ``stamp``, if it differs from the last one."""
        try:
            target = check_target(value, self.config)
        except SignalError as exc:
            self.fail(what, exc)
            return
        if target == self.targets.get(key):
            return
        self.publish("signal", {"instrument": key, "target": target, "time": stamp})
        await self._trade(key, target, stamp)
