"""Health checks: heartbeats off a real bus proxy, the heartbeat rules, tcp and command probes."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from pycron_helpers import jobs_from, run, running, wait_until

from pycron.config import CommandHealth, TcpHealth
from pycron.health import UNSUPERVISED, CommandCheck, HeartbeatCheck, HeartbeatMonitor, TcpCheck
from pycron.job import JobState
from trader.config import Settings
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
        monitor.expect("svc", lambda: 42)
        monitor.start()
        try:
            # Subscriptions propagate asynchronously: keep beating until one arrives.
            deadline = time.monotonic() + 5
            while monitor.last("svc") is None and time.monotonic() < deadline:
                publisher.publish("heartbeat.svc", beat("RUNNING"))
                publisher.publish("heartbeat", "no service, no mapping: ignored")
                publisher.publish("heartbeat.other", {**beat("RUNNING"), "blob": "x" * 100_000})
                await asyncio.sleep(0.05)
            got = monitor.last("svc")
            assert got is not None and (got.state, got.pid) == ("RUNNING", 42)
            publisher.publish("heartbeat.svc", beat("DEGRADED"))
            await wait_until(lambda: monitor.last("svc").state == "DEGRADED", what="DEGRADED beat")
            assert monitor.last("other") is None and monitor.ignored[UNSUPERVISED] > 0
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
    monitor.expect("svc", lambda: 42)
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


def test_beats_of_a_supervised_service_count_only_from_its_pid() -> None:
    monitor = HeartbeatMonitor("tcp://127.0.0.1:1")
    pid: list[int | None] = [None]
    monitor.expect("svc", lambda: pid[0])
    check = HeartbeatCheck(monitor, "svc", timeout=5.0)
    assert monitor.record("svc", beat("RUNNING")) is None  # no process runs: nobody may beat for it
    pid[0] = 4242
    assert monitor.record("svc", beat("RUNNING")) is None  # pid 42 is someone else
    for forged in (None, "42", -1, 0, 2**80, 4242.0, True):
        assert monitor.record("svc", {**beat("RUNNING"), "pid": forged}) is None, forged
    assert monitor.last("svc") is None and not asyncio.run(check.check(0.0))
    assert monitor.ignored == {"svc": 9}
    assert monitor.record("svc", {**beat("RUNNING"), "pid": 4242}) is not None
    assert asyncio.run(check.check(0.0))
    # A forged DEGRADED beat cannot make the real process look unhealthy either.
    assert monitor.record("svc", beat("DEGRADED")) is None and asyncio.run(check.check(0.0))
    # A process in the job's session (started by a wrapper the job runs) counts.
    pid[0] = os.getsid(0)
    assert monitor.record("svc", {**beat("DEGRADED"), "pid": os.getpid()}) is not None
    # A service pycron does not supervise is only counted: no payload of it is kept
    # (before, the last payload of up to 256 made-up names, each up to a bus frame of 8 MB).
    blob = "x" * 1_000_000
    for n in range(300):
        assert monitor.record(f"other{n}", {**beat("RUNNING"), "blob": blob}) is None
    assert monitor.last("other0") is None and monitor.ignored[UNSUPERVISED] == 300
    assert not hasattr(monitor.last("svc"), "payload")


def test_a_forged_heartbeat_on_the_bus_does_not_make_a_job_healthy(pycron_settings: Settings) -> None:
    """The probe's finding: RUNNING beats with another pid made a job that never beats look healthy."""
    proxy = BusProxy(pycron_settings.bus.pub_endpoint, pycron_settings.bus.sub_endpoint)
    proxy.start()
    publisher = Publisher(proxy.pub_endpoint)
    config = jobs_from(
        f"""
        jobs:
          quiet:
            command: {{child}} quiet {pycron_settings.home / "record"}
            health: {{heartbeat: quiet}}
            start_timeout: 3
            max_restarts: 0
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            job = supervisor.jobs["quiet"]
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                publisher.publish("heartbeat.quiet", {**beat("RUNNING"), "service": "quiet", "pid": os.getpid()})
                await asyncio.sleep(0.05)
            assert not job.healthy and job.state is not JobState.RUNNING
            assert supervisor.monitor.ignored.get("quiet", 0) > 10
            assert supervisor.summary()["heartbeats_ignored"]["quiet"] > 10

    try:
        run(scenario())
    finally:
        publisher.close()
        proxy.stop()
