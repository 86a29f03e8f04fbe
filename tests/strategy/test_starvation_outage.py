"""A known outage of trader_service starves the strategies at once, in virtual time; a forged beat does not."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.strategy.runner_fakes import KEY, Harness, run
from trader.errors import Timeout
from trader.service.lifecycle import ServiceState
from trader.strategy.starvation import BACK, LATE_BEAT, StarvationMonitor, TickWatchdog
from trader.strategy.states import StrategyState
from trader.strategy.watch import TraderWatch

THRESHOLD = 30.0  # the no-ticks threshold: every outage below is named long before it


class Trader:
    """trader_service's ``status`` as the real process behind the RPC port answers it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.connected = True
        self.alive = True

    async def status(self) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        if not self.alive:
            raise Timeout("no reply")
        return {"pid": self.pid, "state": "RUNNING" if self.connected else "DEGRADED", "connected": self.connected,
                "synced": self.connected, "connects": 1}


class Health:
    """The strategy service's own state, as the monitor sets it."""

    def __init__(self) -> None:
        self.state = ServiceState.RUNNING
        self.reason = ""

    def set_degraded(self, reason: str) -> None:
        self.state, self.reason = ServiceState.DEGRADED, reason

    def set_running(self, reason: str = "") -> None:
        self.state, self.reason = ServiceState.RUNNING, reason


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.002)


def test_a_known_outage_degrades_at_once_and_ticks_bring_it_back() -> None:
    async def scenario() -> None:
        now = [100.0]
        trader = Trader(pid=1000)
        watch = TraderWatch(trader.status, lambda _pid: None, clock=lambda: now[0])
        h = Harness()
        await h.start()
        dog = TickWatchdog(THRESHOLD, clock=lambda: now[0])
        dog.arm([KEY])
        health = Health()
        monitor = StarvationMonitor({"s": h.runner}, watch, health, started=now[0], starting=set(),
                                    rejoin=lambda _runner, _why: None, clock=lambda: now[0])
        monitor.watchdogs["s"] = dog

        def beat(**fields: Any) -> None:
            watch.on_beat({"pid": 1000, "state": "RUNNING", "connected": True, "synced": True, "connects": 1,
                           **fields})

        def look(seconds: float) -> tuple[StrategyState, str]:
            now[0] += seconds
            monitor.check_ticks()
            return h.runner.state, h.runner.reason

        beat()
        await settle()
        assert watch.pid == 1000
        dog.tick(KEY)
        assert look(1.0)[0] is StrategyState.RUNNING
        trader.alive = False  # trader_service killed: no beat, no tick, no status. Not yet late: RUNNING; late: DEGRADED at once, not after 30 s.
        assert look(LATE_BEAT - 1.0)[0] is StrategyState.RUNNING
        state, why = look(1.5)
        assert state is StrategyState.DEGRADED, why
        assert why == f"no ticks for {KEY}: trader_service silent: stopped or restarting?"
        assert health.state is ServiceState.DEGRADED and h.runner.starved == why
        assert look(3.0) == (StrategyState.DEGRADED, f"no ticks for {KEY}: trader_service down")
        # its successor beats (or a forger does): a hint that names the cause, nothing more
        watch.on_beat({"pid": 2000})
        await settle()
        assert look(0.1) == (StrategyState.DEGRADED, f"no ticks for {KEY}: trader_service restarting")
        # the process beats again (it was only stalled): DEGRADED until its ticks flow, then RUNNING at once
        now[0] += 10.0
        trader.alive = True
        beat()
        assert look(0.1) == (StrategyState.DEGRADED, f"no ticks for {KEY} yet: {BACK}")
        dog.tick(KEY)
        assert look(0.1) == (StrategyState.RUNNING, "ticks flowing again")
        assert health.state is ServiceState.RUNNING

        # The broker disconnects: trader_service's beat says so, its status confirms it: DEGRADED at once.
        trader.connected = False
        now[0] += 1.0
        beat(state="DEGRADED", connected=False, synced=False)
        await settle()
        assert look(0.1) == (StrategyState.DEGRADED, f"no ticks for {KEY}: broker disconnected")
        # A forged "all is well" beat with the real pid: the status still says disconnected.
        now[0] += 1.0
        beat()
        await settle()
        assert look(0.1)[0] is StrategyState.DEGRADED
        trader.connected = True  # reconnected: beats and status agree, its ticks come
        now[0] += 1.0
        beat()
        await settle()
        dog.tick(KEY)
        assert look(0.1) == (StrategyState.RUNNING, "ticks flowing again")
        # A forged "disconnected" beat with the real pid: the status says connected, the strategy stays RUNNING.
        now[0] += 1.0
        beat(state="DEGRADED", connected=False)
        await settle()
        dog.tick(KEY)
        assert look(0.1)[0] is StrategyState.RUNNING
        assert look(0.1)[0] is StrategyState.RUNNING
        await h.runner.end()

    run(scenario)


def test_a_threshold_of_zero_is_never_starved_even_by_an_outage() -> None:
    async def scenario() -> None:
        now = [100.0]
        watch = TraderWatch(Trader(pid=1000).status, lambda _pid: None, clock=lambda: now[0])
        h = Harness()
        await h.start()
        dog = TickWatchdog(0.0, clock=lambda: now[0])
        dog.arm([KEY])
        monitor = StarvationMonitor({"s": h.runner}, watch, Health(), started=now[0], starting=set(),
                                    rejoin=lambda _runner, _why: None, clock=lambda: now[0])
        monitor.watchdogs["s"] = dog
        watch.on_beat({"pid": 1000, "state": "RUNNING", "connected": True, "synced": True, "connects": 1})
        await settle()
        now[0] += 60.0
        monitor.check_ticks()
        assert h.runner.state is StrategyState.RUNNING
        await h.runner.end()

    run(scenario)
