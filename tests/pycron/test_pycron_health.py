"""Health checks: heartbeats off a real bus proxy, the heartbeat rules, tcp and command probes."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

from pycron_helpers import run, wait_until

from pycron.config import CommandHealth, TcpHealth
from pycron.health import CommandCheck, HeartbeatCheck, HeartbeatMonitor, TcpCheck
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Publisher


def beat(state: str) -> dict[str, object]:
    return {
        "service": "svc",
        "state": state,
        "pid": 42,
        "time": datetime.now(timezone.utc),
        "uptime": 1.0,
    }


def test_monitor_records_heartbeats_from_the_bus() -> None:
    proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    proxy.start()
    publisher = Publisher(proxy.pub_endpoint)

    async def scenario() -> None:
        monitor = HeartbeatMonitor(proxy.sub_endpoint)
        monitor.start()
        try:
            # Subscriptions propagate asynchronously: keep beating until one arrives.
            deadline = time.monotonic() + 5
            while monitor.last("svc") is None and time.monotonic() < deadline:
                publisher.publish("heartbeat.svc", beat("RUNNING"))
                publisher.publish("heartbeat", "no service, no mapping: ignored")
                await asyncio.sleep(0.05)
            got = monitor.last("svc")
            assert got is not None and (got.state, got.pid) == ("RUNNING", 42)
            publisher.publish("heartbeat.svc", beat("DEGRADED"))
            await wait_until(lambda: monitor.last("svc").state == "DEGRADED", what="DEGRADED beat")
            assert monitor.last("other") is None
        finally:
            monitor.close()
            monitor.close()

    try:
        run(scenario())
    finally:
        publisher.close()
        proxy.stop()


def test_heartbeat_check_rules() -> None:
    now = [100.0]
    monitor = HeartbeatMonitor("tcp://127.0.0.1:1", clock=lambda: now[0])
    check = HeartbeatCheck(monitor, "svc", timeout=5.0)

    def healthy(since: float) -> bool:
        return asyncio.run(check.check(since))

    assert not healthy(0.0)  # no beat yet
    monitor.record("svc", beat("RUNNING"))
    assert healthy(99.0)
    assert not healthy(100.5)  # the beat is older than the process: a predecessor's
    now[0] = 105.0
    assert healthy(99.0)
    now[0] = 105.1
    assert not healthy(99.0)  # stale
    monitor.record("svc", beat("DEGRADED"))
    assert not healthy(99.0)  # alive, not healthy
    monitor.record("svc", beat("RUNNING"))
    assert healthy(99.0)


def test_tcp_and_command_checks(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert await TcpCheck(TcpHealth("127.0.0.1", port), 1.0).check(0.0)
        server.close()
        await server.wait_closed()
        assert not await TcpCheck(TcpHealth("127.0.0.1", port), 1.0).check(0.0)
        env = {"PATH": "/usr/bin:/bin"}
        assert await CommandCheck(CommandHealth(("true",)), 1.0, tmp_path, env).check(0.0)
        assert not await CommandCheck(CommandHealth(("false",)), 1.0, tmp_path, env).check(0.0)
        assert not await CommandCheck(
            CommandHealth(("no-such-command-xyz",)), 1.0, tmp_path, env
        ).check(0.0)
        started = time.monotonic()
        assert not await CommandCheck(CommandHealth(("sleep", "5")), 0.3, tmp_path, env).check(0.0)
        assert time.monotonic() - started < 2

    run(scenario())
