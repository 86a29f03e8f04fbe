"""strategy_service: runs the strategies/ plugins on the bus's ticks and trades through trader_service.

On start it discovers the plugins (trader.strategy.plugins) and starts each
enabled one: it asks trader_service to stream the strategy's instruments
(``subscribe``), hangs the strategy off the shared tick and bar Observables
(trader.strategy.feed), backfills its warm-up from trader_service's
``history`` and rebuilds its positions from trader_service's book (its
orders carry the strategy's name in orderRef). From then on each closed bar
may turn into an order (trader.strategy.runner). Fills come back on the
bus's ``fill`` topic and are routed by client order id.

If trader_service restarts (a new pid on its heartbeat, confirmed by its own
``status`` once that says it is ready: see trader.strategy.watch), or its
broker connection is made again (its ``connects`` count, confirmed the same
way), every running strategy goes back to WAITING_HISTORY (it trades nothing)
and asks again for its instruments and resyncs its positions, retried
(``TRADER_AWAY_RETRY``) on the errors of a passing outage (``PASSING``) for as long as it runs, then
RUNNING again (trader.strategy.rejoin). A strategy still starting when that happens does the same once
its start is done; its start's own resync is retried the same way.

Every second a watchdog per strategy (trader.strategy.starvation's monitor) looks for
instruments without a tick for ``no_ticks_seconds``: such a strategy is
DEGRADED (a waiting one keeps its state) with the reason and the likely
cause (``no ticks for ES.FUT.202612 for over 30 s: trader_service
restarting``), the service DEGRADED with it, both RUNNING again once ticks
flow; when trader_service is known to be down or its broker disconnected,
at once, not after the threshold. If the cause is that trader_service, up and ready, does not stream the
key, the strategy subscribes again (at most once per threshold). Events
and log lines go out as ``strategy.<name>.<event>``.

``reload`` hands each new runner its predecessor's log lines, order count
and marks; at a start the strategies' last log lines are read back from the
service's log file (trader.strategy.logfile) and the order count from the
book, and a held position without a warm-up price is marked at a snapshot's.

RPC: list, enable, disable, reload, logs, record_drift (and status). Enabling or disabling
over RPC is remembered in Redis (``strategies.switches_key``, trader.strategy.switches)
and outlives a restart; a strategy never switched follows its config's ``enabled:``.
``record_drift``: a strategy's drift from the daily job (trader.strategy.drift_scores).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sys
import time
from collections import deque
from collections.abc import Coroutine
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from reactivex.disposable import CompositeDisposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from trader.config import Settings
from trader.domain import Fill
from trader.errors import ConfigError, NotFound, TraderError
from trader.messaging.pubsub import Message, Subscriber
from trader.messaging.rpc import MethodRegistry, RpcClient
from trader.retry import RECOVERY_RETRY
from trader.service.base import Service, main
from trader.strategy.bars import ib_bar_size, ib_duration
from trader.strategy.drift_scores import DriftScores
from trader.strategy.feed import TickFeed
from trader.strategy.logfile import read_strategy_lines
from trader.strategy.orders import root_order_id
from trader.strategy.plugins import Plugin, PluginError, discover
from trader.strategy.rejoin import PASSING, Rejoin
from trader.strategy.runner import StrategyRunner
from trader.strategy.sizing import strategy_of
from trader.strategy.starvation import StarvationMonitor, TickWatchdog
from trader.strategy.states import StrategyState
from trader.strategy.switches import Switches
from trader.strategy.watch import TraderWatch, trader_view

log = logging.getLogger(__name__)

EQUITY_TTL = 30.0
TRADER = "trader_service"
#: Waiting for trader_service (a strategy's start, its resubscribe and resync after a restart): retried until
#: it succeeds (no give-up).
TRADER_AWAY_RETRY = RECOVERY_RETRY


class StrategyService(Service):
    """Loads the strategy plugins and runs them; see the module docstring."""

    name = "strategy_service"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.opts = settings.strategies
        self.directory = settings.path(self.opts.directory)
        endpoint = settings.service(TRADER).rpc_endpoint
        if endpoint is None:
            raise ConfigError("strategy_service needs services.trader_service.rpc_port")
        self.trader = RpcClient(endpoint, timeout=10.0, curve=self.curve.client)
        self.redis: aioredis.Redis | None = None
        self.subscriber: Subscriber | None = None
        self.feed: TickFeed | None = None
        self.runners: dict[str, StrategyRunner] = {}
        self.errors: list[PluginError] = []
        self._subscriptions: dict[str, CompositeDisposable] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.watch = TraderWatch(lambda: self.trader.call("status", timeout=2.0), self._on_trader_restart,
                                 on_reconnect=self._on_trader_reconnect)
        self.starvation = StarvationMonitor(self.runners, self.watch, self, started=self._started,
                                            starting=self._starting,
                                            rejoin=lambda runner, why: self.rejoin.begin(runner, why))
        self.rejoin = Rejoin(self.trader.call, self._subscribe, self.runners, self.starvation.watchdogs,
                             retry=TRADER_AWAY_RETRY, starting=self._starting, spawn=self._spawn,
                             track_start=self._track_start)
        self.switches: Switches | None = None  # once Redis is there
        self.drift_scores = DriftScores(self.opts.drift_key, publish=self._publish, known=self._runner)
        self.registry.register("record_drift", self.drift_scores.record)
        self._tick_check: asyncio.Task[None] | None = None
        self._equity: tuple[float, Decimal | None] = (0.0, None)
        self._past_logs: dict[str, deque[dict[str, Any]]] = {}  # strategy -> its lines in the log file at the start

    def register_methods(self, registry: MethodRegistry) -> None:
        for name in ("list", "enable", "disable", "reload", "logs"):
            registry.register(name, getattr(self, name))

    # -- lifecycle -------------------------------------------------------------------
    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        r = self.settings.redis
        self.redis = aioredis.Redis(host=r.host, port=r.port,
                                    password=r.password.get_secret_value() if r.password else None)
        self.subscriber = Subscriber(self.settings.bus.sub_endpoint, curve=self.curve.client)
        self.subscriber.start()
        self.feed = TickFeed(self.subscriber, scheduler=AsyncIOScheduler(loop))
        self.subscriber.observe("fill").subscribe(self._on_fill)
        self.subscriber.observe(f"heartbeat.{TRADER}").subscribe(self._on_trader_heartbeat)
        # What the strategies logged before this start: `strategy logs` shows it still.
        self._past_logs = await asyncio.to_thread(
            read_strategy_lines, self.settings.path(self.settings.storage.logs_dir) / f"{self.name}.log",
            self.opts.log_lines)
        self.switches = Switches(self.redis, self.opts.switches_key)
        await self.drift_scores.load(self.redis)
        self._load(await self.switches.load())
        self._tick_check = loop.create_task(self.starvation.run(), name="tick-watchdog")

    async def on_stop(self) -> None:
        await self.watch.close()
        tasks = [*self._starting.values(), *self._tasks, *([self._tick_check] if self._tick_check else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in list(self.runners):
            await self._stop(name, StrategyState.DISABLED, "stopping")
            self.runners[name].close()
        if self.subscriber is not None:
            self.subscriber.close()
        self.trader.close()
        if self.redis is not None:
            await self.redis.aclose()

    def status_info(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for runner in self.runners.values():
            states[runner.state.value] = states.get(runner.state.value, 0) + 1
        return {"strategies": states, "plugin_errors": len(self.errors),
                "starved": {name: r.starved for name, r in sorted(self.runners.items()) if r.starved},
                "trader_service": trader_view(self.watch.seen, self._started, time.monotonic()),
                "unconfirmed_heartbeats": self.watch.unconfirmed,
                "bad_ticks": self.feed.bad_ticks if self.feed else 0}

    # -- plugins -----------------------------------------------------------------------
    def _load(self, enabled: dict[str, bool] | None = None, previous: dict[str, StrategyRunner] | None = None) -> None:
        """Discover the plugins and install each (started if enabled: by ``enabled``, else its config).

        A plugin that replaces a runner of ``previous`` (a reload) keeps its log lines, order count and marks.
        """
        plugins, self.errors = discover(self.directory)
        for error in self.errors:
            log.error("strategy plugin not loaded: %s", error)
        for plugin in plugins:
            if self.opts.only is None or plugin.name in self.opts.only:
                self._install(plugin, (enabled or {}).get(plugin.name), (previous or {}).get(plugin.name))

    def _install(self, plugin: Plugin, enabled: bool | None = None, previous: StrategyRunner | None = None) -> None:
        runner = StrategyRunner(plugin, self.trader.call, self._publish, equity=self._account_equity,
                                log_lines=self.opts.log_lines, order_retry_seconds=self.opts.order_retry_seconds)
        if previous is not None:
            runner.carry_over(previous)
        else:
            runner.capture.lines.extend(self._past_logs.pop(plugin.name, ()))
        self.runners[plugin.name] = runner
        threshold = plugin.strategy.config.no_ticks_seconds
        seconds = self.opts.no_ticks_seconds if threshold is None else threshold
        self.starvation.watchdogs[plugin.name] = TickWatchdog(seconds)
        log.info("strategy %s loaded from %s", plugin.name, plugin.module_file.name)
        if plugin.strategy.config.enabled if enabled is None else enabled:
            self._start(plugin.name)
        else:
            runner.move(StrategyState.DISABLED, "disabled in its config" if enabled is None else "disabled")
            self._spawn(self.rejoin.resync_and_mark(runner))  # its positions (and their PnL) still count

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, holding the task until it ends (the loop keeps only weak refs)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, name: str) -> None:
        self.runners[name].move(StrategyState.WAITING_HISTORY, "starting")
        self._track_start(name, self._run(name))

    def _track_start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as the strategy's start (``_stop`` cancels it; a restart skips it meanwhile)."""
        task = asyncio.get_running_loop().create_task(work, name=f"start-{name}")
        self._starting[name] = task
        task.add_done_callback(lambda _t: self._starting.pop(name, None) if self._starting.get(name) is _t else None)

    async def _run(self, name: str) -> None:
        """Subscribe, warm up and resync one strategy; retried while trader_service is away."""
        runner = self.runners[name]
        try:
            keys = await TRADER_AWAY_RETRY.call(
                lambda: self._subscribe(runner), retry_on=PASSING, what=f"subscribing {name}",
                logger=log,
                on_retry=lambda exc: runner.move(StrategyState.WAITING_HISTORY, f"waiting for trader_service ({exc})"))
        except TraderError as exc:  # an unknown symbol, say: the strategy's config is wrong
            runner.fail("subscribing its instruments", exc)
            return
        runner.begin(keys)
        self._attach(runner)
        history = await self._history(runner)
        try:
            await TRADER_AWAY_RETRY.call(lambda: self.rejoin.resync(runner), retry_on=PASSING,
                                         what=f"reading the book for {name}", logger=log)
        except TraderError as exc:  # not a passing outage: trades on the ledger it has (empty), said in its log
            runner.logger.warning("could not read the book from trader_service: %s", exc)
        await runner.warm_up(history)
        await self.rejoin.mark(runner)

    async def _subscribe(self, runner: StrategyRunner) -> dict[str, str]:
        """Ask trader_service to stream the strategy's instruments; return symbol -> contract key."""
        if self.watch.pid is None:  # the process subscribed to is the one a later restart replaces
            self.watch.adopt(await self.trader.call("status", timeout=2.0))
        keys = {}
        for symbol in runner.strategy.instruments:
            reply = await self.trader.call("subscribe", symbol, owner="strategy")
            keys[symbol] = reply["key"]
            if reply.get("tick"):  # the prices' precision in `strategy list`
                runner.ledger.ticks[reply["key"]] = Decimal(reply["tick"])
        return keys

    def _attach(self, runner: StrategyRunner) -> None:
        assert self.feed is not None
        subs = CompositeDisposable()
        watchdog = self.starvation.watchdogs[runner.name]
        watchdog.arm(runner.keys.values())
        for key in runner.keys.values():
            subs.add(self.feed.ticks(key).subscribe(partial(watchdog.tick, key)))
            if runner.wants_ticks:
                subs.add(self.feed.ticks(key).subscribe(runner.on_tick))
            subs.add(self.feed.bars(key, runner.bar_seconds).subscribe(runner.on_bar))
            try:
                pipeline = runner.strategy.pipeline(key, self.feed.ticks(key))
            except Exception as exc:  # noqa: BLE001 - the strategy's bug, isolated
                runner.fail("pipeline", exc)
                break
            if pipeline is not None:
                subs.add(pipeline.subscribe(partial(runner.on_target, key), lambda exc: runner.fail("pipeline", exc)))
        self._subscriptions[runner.name] = subs

    async def _history(self, runner: StrategyRunner) -> dict[str, list[Any]]:
        strategy = runner.strategy
        if strategy.warmup <= 0:
            return {}
        # The whole window, not just the warm-up: a strategy that holds a position between an entry
        # and an exit needs that entry in its window to agree with the backtest.
        wanted = max(strategy.warmup, strategy.window)
        out: dict[str, list[Any]] = {}
        for key in runner.keys.values():
            show = "MIDPOINT" if ".CASH." in f".{key}." else "TRADES"
            try:
                bars = await self.trader.call("history", key, duration=ib_duration(wanted, runner.bar_seconds),
                                              bar_size=ib_bar_size(runner.bar_seconds), what_to_show=show,
                                              timeout=self.opts.history_timeout)
            except TraderError as exc:
                runner.logger.warning("no warm-up history for %s (%s): warming up from live bars", key, exc)
                continue
            out[key] = [b for b in bars if b.close > 0]
            runner.logger.info("warm-up: %d bars of %s for %s", len(out[key]), strategy.bar_size, key)
        return out

    async def _stop(self, name: str, state: StrategyState, reason: str) -> None:
        task = self._starting.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        subs = self._subscriptions.pop(name, None)
        if subs is not None:
            subs.dispose()
        if name in self.starvation.watchdogs:
            self.starvation.watchdogs[name].disarm()
        runner = self.runners.get(name)
        if runner is not None and (runner.active or runner.state is StrategyState.ERROR):
            await runner.end(state, reason)

    # -- bus events --------------------------------------------------------------------
    def _publish(self, topic: str, payload: Any) -> None:
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    def _on_fill(self, message: Message) -> None:
        fill = message.payload
        if not isinstance(fill, Fill) or not fill.client_order_id:
            return
        runner = self.runners.get(strategy_of(fill.client_order_id))
        if runner is not None and root_order_id(fill.client_order_id) in runner.order_ids:
            runner.on_fill(fill)

    def _on_trader_heartbeat(self, message: Message) -> None:
        self.watch.on_beat(message.payload)

    def _on_trader_restart(self, pid: int) -> None:
        log.warning("trader_service restarted (pid %d): resubscribing and resyncing the strategies", pid)
        self.rejoin.all("trader_service restarted")

    def _on_trader_reconnect(self, pid: int) -> None:
        log.warning("trader_service (pid %d) reconnected to the broker: resubscribing and resyncing the strategies",
                    pid)
        self.rejoin.all("trader_service reconnected to the broker")

    async def _account_equity(self) -> Decimal | None:
        stamp, value = self._equity
        if value is not None and time.monotonic() - stamp < EQUITY_TTL:
            return value
        account = await self.trader.call("account")
        net = (account.get("values") or {}).get("NetLiquidation") or {}
        try:
            value = Decimal(next(iter(net.values()))) if net else None
        except (InvalidOperation, TypeError):
            value = None
        self._equity = (time.monotonic(), value)
        return value

    # -- RPC -----------------------------------------------------------------------------
    def _runner(self, name: str) -> StrategyRunner:
        runner = self.runners.get(name)
        if runner is None:
            known = ", ".join(sorted(self.runners)) or "none"
            raise NotFound(f"no strategy {name!r} (loaded: {known})", name=name)
        return runner

    def list(self) -> dict[str, Any]:
        """Return every strategy's state, instruments, positions, orders and PnL, and the plugin errors."""
        return {"strategies": [{**r.info(), "drift": self.drift_scores.records.get(name)} for name, r in sorted(self.runners.items())],
                "errors": [e.to_dict() for e in self.errors]}

    async def enable(self, name: str) -> dict[str, Any]:
        """Start a disabled (or failed) strategy."""
        runner = self._runner(name)
        if runner.active:
            return runner.info()
        await self._stop(name, StrategyState.DISABLED, "restarting")
        runner.logger.info("enabled")
        self._start(name)
        assert self.switches is not None
        await self.switches.save(name, True)
        return runner.info()

    async def disable(self, name: str, flatten: bool = False) -> dict[str, Any]:
        """Stop a strategy; with ``flatten``, also cancel its working orders and close its positions."""
        runner = self._runner(name)
        await self._stop(name, StrategyState.DISABLED, "disabled")
        assert self.switches is not None
        await self.switches.save(name, False)
        if flatten:
            await runner.flatten()
        return runner.info()

    async def reload(self) -> dict[str, Any]:
        """Stop every strategy, load the plugins again and start the enabled ones."""
        was = {name: r.active for name, r in self.runners.items()}
        previous = {}
        for name in list(self.runners):
            await self._stop(name, StrategyState.DISABLED, "reloading")
            previous[name] = self.runners.pop(name)
            previous[name].close()
        self._load(was, previous)
        return {"loaded": sorted(self.runners), "errors": [e.to_dict() for e in self.errors]}

    def logs(self, name: str, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Return the strategy's last ``limit`` log lines, oldest first."""
        lines = list(self._runner(name).capture.lines)
        return lines[-int(limit):] if limit else lines


if __name__ == "__main__":
    sys.exit(main(StrategyService))
