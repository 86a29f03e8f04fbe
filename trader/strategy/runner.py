"""One strategy, live: its state, bars, targets, ledger, logs, and its calls under a time budget.

A :class:`StrategyRunner` owns one plugin's strategy inside the strategy
service. Everything that reaches it (closed bars, fills, ticks) is an event
on its own queue, worked by its own task, so a slow or broken strategy delays
only itself. Strategy code (``signals`` and every hook) runs on the runner's
own worker thread under the config's ``time_budget``: past it the strategy
goes to ERROR (the thread is abandoned, it cannot be killed) and the others
carry on. ``on_tick`` calls are queued to that thread in order without
waiting (a strategy without its own ``on_tick`` gets no ticks at all); one
that overruns is found at the next tick.

States: INSTALLED (loaded, not started), WAITING_HISTORY (subscribed, warming
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
under that id while the trader service is away, so it is placed once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from trader.domain import Bar, Fill, Order, Tick
from trader.errors import RiskLimitExceeded, Timeout, TraderError, Unavailable
from trader.retry import RetryPolicy
from trader.service.lifecycle import check_move
from trader.strategy.bars import RollingBars, parse_bar_size
from trader.strategy.base import Strategy
from trader.strategy.ledger import Ledger
from trader.strategy.plugins import Plugin
from trader.strategy.sizing import (
    SignalError,
    check_target,
    client_order_id,
    order_for,
    target_quantity,
)

__all__ = ["TRANSITIONS", "StrategyRunner", "StrategyState", "root_order_id"]

log = logging.getLogger(__name__)

Call = Callable[..., Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]
MAX_QUEUED_TICKS = 10_000  # ticks waiting for a slow on_tick before new ones are dropped


class StrategyState(enum.StrEnum):
    """Where a strategy is in its life; published as ``strategy.<name>.state``."""

    INSTALLED = "INSTALLED"
    WAITING_HISTORY = "WAITING_HISTORY"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


_S = StrategyState
#: The legal moves (a move to the current state, with a new reason, is always allowed). Enabling a
#: failed strategy goes through DISABLED (``end`` first), so ERROR leads only there.
TRANSITIONS: dict[StrategyState, frozenset[StrategyState]] = {
    _S.INSTALLED: frozenset({_S.WAITING_HISTORY, _S.DISABLED}),
    _S.WAITING_HISTORY: frozenset({_S.RUNNING, _S.DISABLED, _S.ERROR}),
    _S.RUNNING: frozenset({_S.WAITING_HISTORY, _S.DEGRADED, _S.DISABLED, _S.ERROR}),  # waiting: trader restarted
    _S.DEGRADED: frozenset({_S.RUNNING, _S.WAITING_HISTORY, _S.DISABLED, _S.ERROR}),  # degraded: no ticks
    _S.DISABLED: frozenset({_S.WAITING_HISTORY}),
    _S.ERROR: frozenset({_S.DISABLED}),
}


class BudgetExceeded(Exception):
    """A strategy call took longer than its time budget."""


class _Capture(logging.Handler):
    """Keeps a strategy's log lines for ``strategy logs`` and publishes each on the bus."""

    def __init__(self, runner: StrategyRunner, maxlen: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.runner = runner

    def emit(self, record: logging.LogRecord) -> None:
        line = {"time": datetime.fromtimestamp(record.created, UTC), "level": record.levelname,
                "message": record.getMessage()}
        if record.exc_info:
            line["message"] += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.lines.append(line)
        self.runner.publish("log", line)


class StrategyRunner:
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
        self._order_retry = RetryPolicy(0.25, 5.0, deadline=order_retry_seconds)  # under the same client order id
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
        self._executor: ThreadPoolExecutor | None = None
        self.waiting_for_trader = False  # see wait_for_trader
        self.starved: str | None = None  # why its instruments send no ticks (see starve), None while they do
        self._reason_fed = ""  # a waiting strategy's reason before starve added to it
        self.logger = self.strategy.log
        self.capture = _Capture(self, log_lines)
        self.logger.addHandler(self.capture)

    # -- state -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state in (StrategyState.WAITING_HISTORY, StrategyState.RUNNING, StrategyState.DEGRADED)

    def publish(self, event: str, payload: Any) -> None:
        self._publish(f"strategy.{self.name}.{event}", payload)

    def move(self, state: StrategyState, reason: str = "") -> None:
        """Move to ``state`` with ``reason``, log and publish it; raise Conflict if ``TRANSITIONS`` forbids it."""
        if state == self.state and reason == self.reason:
            return
        check_move(f"strategy {self.name}", TRANSITIONS, self.state, state)
        self.state, self.reason = state, reason
        level = logging.ERROR if state is StrategyState.ERROR else logging.INFO
        self.logger.log(level, "%s%s", state.value, f": {reason}" if reason else "")
        self.publish("state", {"state": state.value, "reason": reason})

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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"strategy-{self.name}")
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
                await self.run_budgeted("on_stop", self.strategy.on_stop)
            except Exception as exc:  # noqa: BLE001 - reported, the stop goes on
                self.logger.warning("on_stop failed: %s", exc)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.starved = None
        if not (failed and reason == "stopping"):  # the service stopping keeps an ERROR on show
            self.move(state, reason)

    def close(self) -> None:
        """Let the strategy go: its log capture and its plugin's module (a reload loads a new generation)."""
        self.logger.removeHandler(self.capture)
        self.plugin.unload()

    async def run_budgeted(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the strategy's thread; raise BudgetExceeded past the time budget."""
        if self._executor is None:
            raise RuntimeError("strategy is not started")
        future = asyncio.wrap_future(self._executor.submit(fn, *args))
        try:
            return await asyncio.wait_for(future, self.config.time_budget)
        except TimeoutError:
            self._replace_executor()
            raise BudgetExceeded(f"{what} took longer than its time budget of {self.config.time_budget:g} s") from None

    def _replace_executor(self) -> None:
        """Give the strategy a fresh thread: a stuck call cannot be stopped, only abandoned."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"strategy-{self.name}")
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
            await self.run_budgeted("on_start", self.strategy.on_start)
        except Exception as exc:  # noqa: BLE001 - a broken hook is the strategy's ERROR
            self.fail("on_start", exc)
            return
        finally:
            self._warmed.set()  # the worker takes the live bars queued meanwhile, after the history
        self._check_warm()

    def wait_for_trader(self, reason: str) -> None:
        """Trade nothing until :meth:`trader_back`: WAITING_HISTORY with ``reason`` (bars still fill the window).

        For a trader service that restarted: it streams nothing for the strategy,
        and its book may differ, until the strategy has subscribed and resynced again.
        """
        self.waiting_for_trader = True
        self.move(StrategyState.WAITING_HISTORY, reason)

    def starve(self, reason: str) -> None:
        """Say the strategy's instruments send no ticks: RUNNING becomes DEGRADED, a waiting one adds ``reason``."""
        if self.state is StrategyState.WAITING_HISTORY:
            if self.starved is None or self.reason != f"{self._reason_fed}; {self.starved}":
                self._reason_fed = self.reason
            self.starved = reason
            self.move(StrategyState.WAITING_HISTORY, f"{self._reason_fed}; {reason}")
        elif self.state in (StrategyState.RUNNING, StrategyState.DEGRADED):
            self.starved = reason
            self.move(StrategyState.DEGRADED, reason)

    def fed(self) -> None:
        """End :meth:`starve`: ticks flow again (DEGRADED to RUNNING, a waiting one's reason as it was)."""
        if self.starved is None:
            return
        starved, self.starved = self.starved, None
        if self.state is StrategyState.DEGRADED:
            self.move(StrategyState.RUNNING, "ticks flowing again")
        elif self.state is StrategyState.WAITING_HISTORY and self.reason == f"{self._reason_fed}; {starved}":
            self.move(StrategyState.WAITING_HISTORY, self._reason_fed)

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
        if not self.active or self._executor is None or not self._warmed.is_set():
            return  # no tick before on_start
        started = self._tick_started
        if started and time.monotonic() - started > self.config.time_budget:
            self._tick_started = 0.0
            self._replace_executor()
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
        self._executor.submit(self._tick, tick, asyncio.get_running_loop())

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
                    await self._apply(*item, "pipeline")
            self._check_warm()
            for key, bar in touched.items():
                if self.state is StrategyState.RUNNING:
                    await self._decide(key, bar)

    async def _hook(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await self.run_budgeted(what, fn, *args)
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
            series = await self.run_budgeted("signals", self.strategy.signals, frame)
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

    async def _trade(self, key: str, target: float, stamp: datetime) -> None:
        try:
            equity = await self._equity() if self.config.sizing.kind == "equity_percent" else None
        except TraderError as exc:  # the target stays untraded: the next bar tries again
            self.logger.warning("cannot size target %g for %s: no account equity (%s)", target, key, exc)
            return
        try:
            quantity = target_quantity(target, self.config, price=self.last_price.get(key), equity=equity)
        except SignalError as exc:
            self.logger.warning("cannot size target %g for %s: %s", target, key, exc)
            return
        coid = client_order_id(self.name, key, _ns(stamp))
        trade = order_for(self.config, self.name, key, current=self.ledger.position(key), target=quantity, coid=coid)
        self.targets[key] = target
        if trade is None:
            return
        self.order_ids.add(coid)
        self.logger.info("target %g for %s: %s %s (position %s -> %s)", target, key, trade.request["action"],
                         trade.request["quantity"], trade.current, trade.target)
        try:
            result = await self._place(trade.request)
        except RiskLimitExceeded as exc:
            self.logger.warning("order refused by the risk gate: %s", exc)
            self.publish("order", {"client_order_id": coid, "status": "REJECTED", "reason": str(exc)})
            return
        except TraderError as exc:
            self.logger.error("order %s failed: %s", coid, exc)
            self.publish("order", {"client_order_id": coid, "status": "FAILED", "reason": str(exc)})
            return
        self.orders_sent += 1
        # place_order answers {"order": Order, "children": [...], "reason": str} (Desk.result)
        order = result.get("order")
        status = order.status.value if isinstance(order, Order) else ""
        if not status:
            self.logger.error("place_order for %s answered without an order: %r", coid, result)
        event = {"client_order_id": coid, "status": status, "instrument": key,
                 "action": trade.request["action"], "quantity": trade.request["quantity"]}
        if result.get("reason"):
            event["reason"] = result["reason"]
        self.publish("order", event)

    async def flatten(self) -> None:
        """Cancel the strategy's working orders and close its positions (after ``end``)."""
        for order in await self._call("orders", open_only=True):
            if order.order_ref == self.name:
                try:
                    await self._call("cancel_order", order.client_order_id)
                except TraderError as exc:
                    self.logger.warning("could not cancel %s: %s", order.client_order_id, exc)
        now = _ns(datetime.now(UTC))
        for key, quantity in self.ledger.summary()["positions"].items():
            coid = client_order_id(self.name, key, now, attempt=1)
            trade = order_for(self.config, self.name, key, current=quantity, target=Decimal(0), coid=coid)
            if trade is None:
                continue
            self.order_ids.add(coid)
            self.logger.info("flatten %s: %s %s", key, trade.request["action"], trade.request["quantity"])
            try:
                await self._place(trade.request)
                self.orders_sent += 1
            except TraderError as exc:
                self.logger.error("flattening %s failed: %s", key, exc)
        self.targets = {key: 0.0 for key in self.targets}

    async def _place(self, request: dict[str, Any]) -> dict[str, Any]:
        """Place ``request``, retrying under its client order id while the trader service is away."""
        return await self._order_retry.call(lambda: self._call("place_order", **request),
                                            retry_on=(Unavailable, Timeout),
                                            what=f"place_order {request['client_order_id']}", logger=self.logger,
                                            sleep=self._sleep, clock=self._clock)


def root_order_id(client_order_id: str) -> str:
    """Return a bracket child's parent id (``X.sl`` -> ``X``), or the id itself."""
    head, _, tail = client_order_id.rpartition(".")
    return head if tail in ("sl", "tp") and head.count(".") >= 1 else client_order_id


def _ns(stamp: datetime) -> int:
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000
