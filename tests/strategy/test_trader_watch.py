"""TraderWatch: a forged trader_service heartbeat never causes a resync; a restart confirmed by status does."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from trader.errors import Timeout
from trader.strategy.watch import TraderWatch


class Trader:
    """trader_service's ``status`` as the watch calls it: the pid of the process behind the RPC port."""

    def __init__(self, pid: int) -> None:
        self.pid: int | None = pid
        self.calls = 0
        self.ready = True  # RUNNING, connected and re-synced; False: up but still connecting

    async def status(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.pid is None:
            raise Timeout("no reply")
        if not self.ready:
            return {"service": "trader_service", "state": "DEGRADED", "pid": self.pid, "connected": False,
                    "synced": False}
        return {"service": "trader_service", "state": "RUNNING", "pid": self.pid, "connected": True, "synced": True}


async def settle(watch: TraderWatch) -> None:
    for _ in range(50):
        await asyncio.sleep(0.005)


def test_forged_beats_are_confirmed_at_a_bounded_rate_and_never_resync() -> None:
    now = [100.0]
    restarts: list[int] = []
    trader = Trader(pid=1000)

    async def scenario() -> None:
        watch = TraderWatch(trader.status, restarts.append, interval=1.0, clock=lambda: now[0])
        watch.on_beat({"pid": 1000})  # the first beat: confirmed, no restart
        await settle(watch)
        assert (watch.pid, restarts, trader.calls) == (1000, [], 1)
        assert watch.seen == 100.0
        # The probe's flood: 200 beats with other pids (and garbage) within one second.
        rng = random.Random(7)
        for n in range(200):
            forged: Any = rng.choice([{"pid": rng.randrange(2, 2**22)}, {"pid": "1000"}, {"pid": None},
                                      {"pid": 2**80}, "not a mapping", {"pid": True}, {}])
            watch.on_beat(forged)
            now[0] += 0.004
        await settle(watch)
        assert restarts == [] and watch.pid == 1000
        assert trader.calls <= 2  # at most one status call per interval, not one per beat
        assert watch.unconfirmed == 201  # and the very first, before its confirmation
        # The real trader_service's beats still say it is up.
        seen = watch.seen
        now[0] += 1.0
        watch.on_beat({"pid": 1000})
        assert watch.seen == now[0] != seen
        # A real restart: the new pid is confirmed by status, acted on once.
        trader.pid = 2000
        now[0] += 1.0
        for _ in range(20):
            watch.on_beat({"pid": 2000})
        await settle(watch)
        assert restarts == [2000] and watch.pid == 2000
        # trader_service away: a beat cannot be confirmed, nothing happens, it is asked again later.
        trader.pid = None
        now[0] += 1.0
        watch.on_beat({"pid": 3000})
        await settle(watch)
        assert restarts == [2000] and watch.pid == 2000
        trader.pid = 3000
        watch.on_beat({"pid": 3000})
        await settle(watch)
        assert restarts == [2000]  # within the interval: not asked yet
        now[0] += 1.0
        watch.on_beat({"pid": 3000})
        await settle(watch)
        assert restarts == [2000, 3000]
        await watch.close()

    asyncio.run(scenario())


def test_a_restarted_pid_counts_only_once_it_is_ready() -> None:
    # A new trader_service beats and answers status before it is connected to IB and re-synced:
    # a strategy asking it to subscribe then is refused. The restart is acted on once it is ready.
    now = [100.0]
    restarts: list[int] = []
    trader = Trader(pid=1000)

    async def scenario() -> None:
        watch = TraderWatch(trader.status, restarts.append, interval=1.0, clock=lambda: now[0])
        watch.on_beat({"pid": 1000})
        await settle(watch)
        trader.pid, trader.ready = 2000, False
        for _ in range(3):
            now[0] += 1.0
            watch.on_beat({"pid": 2000})
            await settle(watch)
            assert restarts == [] and watch.pid == 1000
        trader.ready = True
        now[0] += 1.0
        watch.on_beat({"pid": 2000})
        await settle(watch)
        assert restarts == [2000] and watch.pid == 2000

    asyncio.run(scenario())


def test_a_pid_adopted_before_any_beat_makes_its_successor_a_restart() -> None:
    # strategy_service subscribed through trader_service before confirming any beat, and it died:
    # the new process's pid is a restart (its strategies must subscribe again), not a first sighting.
    now = [100.0]
    restarts: list[int] = []
    trader = Trader(pid=2000)

    async def scenario() -> None:
        watch = TraderWatch(trader.status, restarts.append, interval=1.0, clock=lambda: now[0])
        watch.adopt({"pid": 1000, "state": "DEGRADED"})
        watch.adopt({"pid": 1500})  # a pid is known: not replaced
        assert watch.pid == 1000
        watch.on_beat({"pid": 2000})
        await settle(watch)
        assert restarts == [2000] and watch.pid == 2000

    asyncio.run(scenario())


def test_a_broker_reconnect_of_the_same_pid_counts_once_status_says_ready_with_a_new_count() -> None:
    # trader_service stays up while its broker connection is lost and made again: same pid, a new
    # ``connects``. Its strategies resync once status confirms it ready; a forged count resyncs nothing.
    now = [100.0]
    restarts: list[int] = []
    reconnects: list[int] = []
    connects = [1]
    trader = Trader(pid=1000)

    async def status() -> dict[str, Any]:
        return {**await trader.status(), "connects": connects[0]}

    async def scenario() -> None:
        watch = TraderWatch(status, restarts.append, on_reconnect=reconnects.append, interval=1.0,
                            clock=lambda: now[0])
        watch.on_beat({"pid": 1000, "connects": 1})
        await settle(watch)
        assert (watch.pid, watch.connects, reconnects) == (1000, 1, [])
        assert watch.beat is None  # the first beat only asked status: not confirmed yet when it came
        now[0] += 1.0
        watch.on_beat({"pid": 1000, "connects": 1, "state": "RUNNING"})
        assert watch.beat == {"pid": 1000, "connects": 1, "state": "RUNNING"}
        # forged: the confirmed pid with another count; status says 1 still
        calls = trader.calls
        for _ in range(50):
            watch.on_beat({"pid": 1000, "connects": 7})
        await settle(watch)
        assert reconnects == [] and trader.calls == calls + 1
        # the broker connection is lost and made again: connects 2, not re-synced at first
        connects[0], trader.ready = 2, False
        now[0] += 1.0
        watch.on_beat({"pid": 1000, "connects": 2})
        await settle(watch)
        assert reconnects == []  # not ready: asked again at its next beat
        trader.ready = True
        now[0] += 1.0
        watch.on_beat({"pid": 1000, "connects": 2})
        await settle(watch)
        assert (reconnects, restarts, watch.connects) == ([1000], [], 2)
        now[0] += 1.0
        watch.on_beat({"pid": 1000, "connects": 2})
        await settle(watch)
        assert reconnects == [1000]  # once
        # beats of another pid: a restart may be under way (a hint for the starvation message)
        assert not watch.restarting(5.0)
        watch.on_beat({"pid": 2000, "connects": 1})
        assert watch.restarting(5.0)
        now[0] += 6.0
        assert not watch.restarting(5.0)
        await watch.close()

    asyncio.run(scenario())
