"""The supervisor with real child processes: order, restarts, crash loops, manual control, schedules."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pycron_helpers import events, jobs_from, run, running, wait_until

from pycron.job import JobState
from pycron.runfiles import pid_alive
from trader.config import Settings
from trader.errors import Conflict, NotFound


def shifted_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that reads ``start`` now and then runs at the real pace."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def test_jobs_start_after_their_dependencies_are_healthy(
    pycron_settings: Settings, free_port: Callable[[], int]
) -> None:
    record = pycron_settings.home / "record"
    port = free_port()
    # db takes 0.5 s to listen: app must not start before db is healthy, web not before app.
    config = jobs_from(
        f"""
        jobs:
          web:
            command: {{child}} web {record}
            depends_on: [app]
            settle_time: 0.2
          app:
            command: {{child}} app {record}
            depends_on: [db]
            settle_time: 0.3
          db:
            command: {{child}} db {record} --delay 0.5 --listen {port}
            health: {{tcp: {port}}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            assert supervisor.jobs["app"].state is JobState.PENDING
            assert await supervisor.wait_ready(10)
            started = {e.name: e.time for e in events(record) if e.kind == "start"}
            assert started["db"] < started["app"] < started["web"]
            assert started["web"] - started["app"] >= 0.25  # app had to settle first

    run(scenario())


def test_killed_job_is_restarted_with_a_new_pid(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          worker:
            command: {{child}} worker {record}
            settle_time: 0.2
            backoff: {{initial: 0.1}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            worker = supervisor.jobs["worker"]
            assert await supervisor.wait_ready(10)
            old_pid = worker.status().pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            await wait_until(
                lambda: worker.ready and worker.status().pid not in (None, old_pid),
                what="restart with a new pid",
            )
            status = worker.status()
            assert status.restarts == 1
            assert status.last_exit == -signal.SIGKILL
            assert not pid_alive(old_pid)
            # READY after settle_time says the process lives, not that it has run its first line yet (a loaded machine)
            await wait_until(lambda: len([e for e in events(record) if e.kind == "start"]) >= 2, what="its start line")
            assert [e.pid for e in events(record) if e.kind == "start"] == [old_pid, status.pid]

    run(scenario())


def test_crash_loop_backs_off_then_fails_until_a_manual_start(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          crasher:
            command: {{child}} crasher {record} --exit 1
            backoff: {{initial: 0.2, factor: 2, max: 10}}
            max_restarts: 3
            restart_window: 30
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            crasher = supervisor.jobs["crasher"]
            await wait_until(lambda: crasher.state is JobState.FAILED, timeout=10, what="FAILED")
            starts = [e.time for e in events(record) if e.kind == "start"]
            assert len(starts) == 4  # the first run and max_restarts restarts
            gaps = [b - a for a, b in itertools.pairwise(starts)]
            for gap, delay in zip(gaps, (0.2, 0.4, 0.8), strict=True):  # each gap: the delay, then a start
                assert gap >= delay * 0.95, gaps  # (no order between gaps: a child's start time varies more)
            status = crasher.status()
            assert (status.restarts, status.last_exit, status.healthy) == (3, 1, False)
            assert "crash loop" in Path(status.log).read_text()
            # FAILED means nothing restarts it any more ...
            await asyncio.sleep(0.6)
            assert len([e for e in events(record) if e.kind == "start"]) == 4
            # ... until a manual start.
            await supervisor.start_job("crasher")
            await wait_until(
                lambda: len([e for e in events(record) if e.kind == "start"]) == 5,
                what="manual start",
            )

    run(scenario())


def test_shutdown_stops_in_reverse_dependency_order(
    pycron_settings: Settings, free_port: Callable[[], int]
) -> None:
    record = pycron_settings.home / "record"
    port_a, port_b = free_port(), free_port()
    config = jobs_from(
        f"""
        jobs:
          a:
            command: {{child}} a {record} --listen {port_a}
            health: {{tcp: {port_a}}}
          b:
            command: {{child}} b {record} --listen {port_b}
            health: {{tcp: {port_b}}}
            depends_on: [a]
          c:
            command: {{child}} c {record}
            depends_on: [b]
            settle_time: 0.2
          d:
            command: {{child}} d {record}
            depends_on: [a]
            settle_time: 0.2
        """,
        pycron_settings,
    )

    async def scenario() -> list[int]:
        async with running(config, pycron_settings) as supervisor:
            assert await supervisor.wait_ready(10)
            # every child has set its SIGTERM handler (it writes "start" after) before the shutdown is asked
            await wait_until(lambda: {e.name for e in events(record) if e.kind == "start"} >= {"a", "b", "c", "d"},
                             what="every child's start line")
            pids = [s.pid for s in supervisor.status()]
        assert all(s.state is JobState.STOPPED for s in supervisor.status())
        return [p for p in pids if p is not None]

    pids = run(scenario())
    terms = [e.name for e in events(record) if e.kind == "term"]
    assert sorted(terms) == ["a", "b", "c", "d"]
    assert terms.index("c") < terms.index("b") < terms.index("a")
    assert terms.index("d") < terms.index("a")
    assert len(pids) == 4 and not any(pid_alive(p) for p in pids)


def test_manual_stop_stays_stopped_and_clashing_operations_conflict(
    pycron_settings: Settings,
) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          stubborn:
            command: {{child}} stubborn {record} --ignore-term
            settle_time: 0.2
            grace_period: 0.8
            backoff: {{initial: 0.1}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            job = supervisor.jobs["stubborn"]
            assert await supervisor.wait_ready(10)
            with pytest.raises(Conflict, match="already RUNNING"):
                await supervisor.start_job("stubborn")
            with pytest.raises(NotFound, match="no job 'ghost'"):
                await supervisor.stop_job("ghost")
            pid = job.status().pid
            stopping = asyncio.ensure_future(supervisor.stop_job("stubborn"))
            await wait_until(lambda: job.state is JobState.STOPPING, what="STOPPING")
            # It ignores SIGTERM, so the stop takes the whole grace period: clashing operations fail fast.
            for operation in (supervisor.restart_job, supervisor.stop_job, supervisor.start_job):
                with pytest.raises(Conflict, match="a stop is already in progress"):
                    await operation("stubborn")
            status = await stopping
            assert status.state is JobState.STOPPED and status.last_exit == -signal.SIGKILL
            assert pid is not None and not pid_alive(pid)
            # A manual stop is not a crash: nothing restarts the job.
            await asyncio.sleep(0.4)
            assert job.state is JobState.STOPPED and job.status().restarts == 0
            assert (
                await supervisor.stop_job("stubborn")
            ).state is JobState.STOPPED  # stop twice is fine
            restarted = await supervisor.start_job("stubborn")
            assert restarted.state is JobState.RUNNING and restarted.pid not in (None, pid)

    run(scenario())


def test_job_that_never_becomes_healthy_is_stopped_and_fails(
    pycron_settings: Settings, free_port: Callable[[], int]
) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          deaf:
            command: {{child}} deaf {record}
            health: {{tcp: {free_port()}}}
            start_timeout: 0.5
            restart: on-failure
            max_restarts: 0
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            deaf = supervisor.jobs["deaf"]
            await wait_until(lambda: deaf.state is JobState.FAILED, what="FAILED")
            assert deaf.status().last_exit == 0  # it took the SIGTERM and exited
            assert "not healthy within 0.5s" in Path(deaf.status().log).read_text()
            assert [e.kind for e in events(record)] == ["start", "term"]

    run(scenario())


def test_cron_one_shot_fires_every_second(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          tick:
            command: {{child}} tick {record} --exit 0
            schedule: {{run: "* * * * * *", timezone: UTC}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            tick = supervisor.jobs["tick"]
            await wait_until(
                lambda: tick.state is JobState.SCHEDULED and tick.next_run is not None,
                what="SCHEDULED",
            )
            await wait_until(lambda: len(events(record)) >= 2, timeout=5, what="two runs")
            await wait_until(lambda: tick.state is JobState.SCHEDULED, what="back to SCHEDULED")
            status = tick.status()
            assert status.last_exit == 0 and status.ready and status.restarts == 0

    run(scenario())


def test_nightly_job_runs_at_its_time_on_an_injected_clock(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          nightly:
            command: {{child}} nightly {record} --exit 0
            schedule: {{run: "0 2 * * *", timezone: UTC}}
        """,
        pycron_settings,
    )
    clock = shifted_clock(datetime(2024, 3, 5, 1, 59, 59, 500_000, tzinfo=timezone.utc))

    async def scenario() -> None:
        async with running(config, pycron_settings, clock=clock) as supervisor:
            nightly = supervisor.jobs["nightly"]
            await wait_until(lambda: nightly.state is JobState.SCHEDULED, what="SCHEDULED")
            assert nightly.next_run == datetime(2024, 3, 5, 2, 0, tzinfo=timezone.utc)
            assert events(record) == []
            await wait_until(lambda: len(events(record)) == 1, timeout=5, what="the 02:00 run")
            await wait_until(
                lambda: nightly.next_run == datetime(2024, 3, 6, 2, 0, tzinfo=timezone.utc),
                what="next night",
            )
            assert nightly.status().last_exit == 0

    run(scenario())


def test_window_job_runs_while_open_and_stops_at_close(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          session:
            command: {{child}} session {record}
            settle_time: 0.1
            schedule: {{start: "0 9 * * *", stop: "0 16 * * *", timezone: UTC}}
        """,
        pycron_settings,
    )
    # One second before the window closes: it must start now, then stop at 16:00.
    clock = shifted_clock(datetime(2024, 3, 5, 15, 59, 59, tzinfo=timezone.utc))

    async def scenario() -> None:
        async with running(config, pycron_settings, clock=clock) as supervisor:
            session = supervisor.jobs["session"]
            await wait_until(
                lambda: session.state is JobState.RUNNING, what="RUNNING in the window"
            )
            await wait_until(
                lambda: session.state is JobState.SCHEDULED, timeout=5, what="stopped at close"
            )
            assert session.next_run == datetime(2024, 3, 6, 9, 0, tzinfo=timezone.utc)
            assert [e.kind for e in events(record)] == ["start", "term"]

    run(scenario())
