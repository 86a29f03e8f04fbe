"""strategy_service's own paths back to a trader_service that went away, against a scripted one over real RPC.

The StrategyService runs in the test's loop; trader_service is a small
scripted RPC server on a real ZeroMQ socket (its ``subscribe``, ``orders``,
``trades``, ``history``, ``status``), so each path can be held at the moment
that matters: a restart confirmed while a strategy's start is still reading
its history, a book that cannot be read at the start, a trader_service that
stopped streaming a strategy's key, and the watchdog's virtual clock.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from services.strategy_service import StrategyService
from tests.conftest import StackEnv
from tests.strategy.plugin_texts import counter
from tests.waiting import wait_until
from trader.config import load_settings
from trader.errors import Unavailable
from trader.messaging.pubsub import Subscriber
from trader.messaging.rpc import MethodRegistry, RpcServer
from trader.service.lifecycle import ServiceState
from trader.strategy.feed import TickFeed
from trader.strategy.starvation import TickWatchdog
from trader.strategy.states import StrategyState

KEY = "AAPL.STK"

class Trader:
    """trader_service as strategy_service calls it, scripted: counts calls, can hold ``history`` and refuse ``orders``."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.history_gate = asyncio.Event()
        self.history_gate.set()
        self.refuse_orders = 0  # the next ``orders`` calls raise Unavailable
        self.owners: list[str] = []

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def status(self) -> dict[str, Any]:
        return {"service": "trader_service", "state": "RUNNING", "pid": 1, "connected": True, "synced": True,
                "connects": 1}

    def subscribe(self, symbol: str, owner: str = "user") -> dict[str, Any]:
        self._count("subscribe")
        self.owners.append(owner)
        return {"key": KEY, "topic": f"tick.ib.{KEY}"}

    async def history(self, symbol: str, **_kw: Any) -> list[Any]:
        self._count("history")
        await self.history_gate.wait()
        return []

    def orders(self, open_only: bool = False) -> list[Any]:
        self._count("orders")
        if self.refuse_orders:
            self.refuse_orders -= 1
            raise Unavailable("not connected to IB")
        return []

    def trades(self) -> list[Any]:
        self._count("trades")
        return []

    def registry(self) -> MethodRegistry:
        registry = MethodRegistry()
        for name in ("status", "subscribe", "history", "orders", "trades"):
            registry.register(name, getattr(self, name))
        return registry


async def started(stack_env: StackEnv, tmp_path: Path, trader: Trader,
                  warmup: int = 2) -> tuple[StrategyService, RpcServer]:
    directory = tmp_path / "strategies"
    directory.mkdir(exist_ok=True)
    (directory / "counter.py").write_text(textwrap.dedent(counter(warmup)))
    settings = load_settings(env={**stack_env.env, "TRADER_STRATEGIES__DIRECTORY": str(directory)})
    server = RpcServer(settings.service("trader_service").rpc_endpoint or "", trader.registry())
    await server.start()
    service = StrategyService(settings)
    service.subscriber = Subscriber(settings.bus.sub_endpoint)  # no bus runs: no tick ever comes
    service.subscriber.start()
    service.feed = TickFeed(service.subscriber)
    service._load({})
    return service, server


async def stopped(service: StrategyService, server: RpcServer) -> None:
    await service.on_stop()
    await server.close()


def test_a_restart_confirmed_while_a_start_reads_its_history_subscribes_again_after_it(
        stack_env: StackEnv, tmp_path: Path) -> None:
    async def scenario() -> None:
        trader = Trader()
        trader.history_gate.clear()
        trader.refuse_orders = 2  # and its first reads of the book are refused: retried, not skipped
        service, server = await started(stack_env, tmp_path, trader)
        try:
            runner = service.runners["counter"]
            await wait_until(lambda: trader.calls.get("history") == 1, 10, "the start reading its history")
            assert trader.calls["subscribe"] == 1 and trader.owners == ["strategy"]
            service._on_trader_restart(2)  # the process it subscribed through is gone
            trader.history_gate.set()
            await wait_until(lambda: trader.calls.get("subscribe") == 2, 20, "subscribed again after the start")
            await wait_until(lambda: "counter" not in service._starting, 20, "the rejoin done")
            assert trader.calls["orders"] >= 3  # two refusals, then read (and once more by the rejoin)
            assert runner.state is StrategyState.WAITING_HISTORY and not runner.waiting_for_trader
            assert runner.reason == "warming up (2 bars of 1m)"  # waiting for bars, not for trader_service
        finally:
            await stopped(service, server)

    asyncio.run(scenario())


def test_a_starved_strategy_whose_key_trader_service_does_not_stream_subscribes_again(
        stack_env: StackEnv, tmp_path: Path) -> None:
    async def scenario() -> None:
        trader = Trader()
        service, server = await started(stack_env, tmp_path, trader, warmup=0)
        try:
            runner = service.runners["counter"]
            await wait_until(lambda: runner.state is StrategyState.RUNNING, 20, "started")
            now = [0.0]
            dog = service.starvation.watchdogs["counter"] = TickWatchdog(30.0, clock=lambda: now[0])
            dog.arm([KEY])
            service.lifecycle.move(ServiceState.RUNNING, "started")
            service.watch.adopt(trader.status())
            service.watch.beat = {**trader.status(), "subscriptions": []}  # up and ready, streaming nothing
            service.starvation.check_ticks()
            assert runner.state is StrategyState.RUNNING and service.state is ServiceState.RUNNING
            now[0] = 30.0
            service.starvation.check_ticks()
            assert runner.starved == ("no ticks for AAPL.STK for over 30 s: not streamed by trader_service: "
                                      "subscribing again")
            assert runner.reason == "instruments not streamed: subscribing and resyncing again"
            assert service.state is ServiceState.DEGRADED
            assert service.status_info()["starved"] == {"counter": runner.starved}
            await wait_until(lambda: trader.calls["subscribe"] == 2, 10, "subscribed again")
            await wait_until(lambda: runner.state is StrategyState.RUNNING, 10, "running again")
            service.starvation.check_ticks()  # re-armed by the rejoin: fed
            assert runner.starved is None and service.state is ServiceState.RUNNING
            now[0] = 45.0
            service.watch.beat = {**trader.status(), "subscriptions": [KEY]}
            dog.tick(KEY)
            now[0] = 80.0  # 35 s after its last tick, streamed: the market, not the service
            service.starvation.check_ticks()
            assert runner.state is StrategyState.DEGRADED and "market closed or quiet?" in runner.reason
            now[0] = 81.0
            service.starvation.check_ticks()
            assert trader.calls["subscribe"] == 2  # streamed: nothing to heal
            dog.tick(KEY)
            service.starvation.check_ticks()
            assert runner.state is StrategyState.RUNNING and runner.reason == "ticks flowing again"
        finally:
            await stopped(service, server)

    asyncio.run(scenario())
