"""pycron's restarts with real processes: a kill is back healthy within 2 s each time, a crash loop FAILS.

The jobs below keep pycron's defaults (backoff initial 0.1 s doubling to 60 s,
5 restarts within 60 s) except where a test says otherwise, so these tests hold
the defaults to the promise: a single ``kill -9`` of a job is back healthy
within 2 s, however often it happened before as long as the job stayed healthy
for ``reset_after`` seconds in between, and a job that keeps dying still ends
in FAILED, healthy in between or not.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pycron_helpers import events, jobs_from, run, running, wait_until

from pycron.config import BackoffModel, parse_jobs
from pycron.job import JobState, SupervisedJob
from pycron.supervisor import Supervisor
from trader.config import Settings, load_settings, read_yaml
from trader.errors import ConfigError

BACK_WITHIN = 2.0  # seconds from a kill -9 to healthy again: the promise
REPO = Path(__file__).resolve().parents[2]


async def kill_and_time_recovery(job: SupervisedJob) -> tuple[float, float]:
    """SIGKILL the job's process; return the seconds until its new process started, and until healthy."""
    old_pid = job.status().pid
    assert old_pid is not None and job.ready
    killed = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    await wait_until(lambda: job.ready and job.status().pid not in (None, old_pid), timeout=10,
                     what="back healthy", interval=0.005)
    back = time.monotonic() - killed
    assert job.process is not None and job.process.started_mono is not None
    return job.process.started_mono - killed, back


def test_the_defaults_restart_quickly_and_forget_failures_after_reset_after() -> None:
    defaults = BackoffModel()
    assert (defaults.initial, defaults.factor, defaults.max, defaults.reset_after) == (0.1, 2.0, 60.0, 10.0)


def test_a_job_killed_again_and_again_is_back_healthy_within_two_seconds_each_time(
    pycron_settings: Settings, free_port: Callable[[], int]
) -> None:
    # Six kills: the doubling would reach 1.6 s by the fifth. Each kill comes after the job was
    # healthy for longer than reset_after (shortened to 0.5 s to keep the test short), so each
    # starts afresh. Six exits within restart_window are a crash loop whatever the health in
    # between, so the budget is raised here (the chaos run this models had six kills in 90 s).
    record = pycron_settings.home / "record"
    port = free_port()
    config = jobs_from(
        f"""
        jobs:
          worker:
            command: {{child}} worker {record} --listen {port}
            health: {{tcp: {port}}}
            backoff: {{reset_after: 0.5}}
            max_restarts: 6
        """,
        pycron_settings,
    )
    times: list[float] = []

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            worker = supervisor.jobs["worker"]
            assert await supervisor.wait_ready(10)
            for _ in range(6):
                await asyncio.sleep(0.8)  # the interval between kills: healthy for longer than reset_after
                times.append((await kill_and_time_recovery(worker))[1])
            status = worker.status()
            assert status.state is JobState.RUNNING and status.restarts == 6
            assert status.last_exit == -signal.SIGKILL

    run(scenario(), timeout=60)
    print("back healthy after each kill -9 (s):", " ".join(f"{t:.3f}" for t in times))
    assert all(t < BACK_WITHIN for t in times), times
    assert len([e for e in events(record) if e.kind == "start"]) == 7


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param("--exit 1", id="exits-at-once"),
        pytest.param("--exit 1 --after 0.3", id="healthy-briefly-then-exits"),
    ],
)
def test_a_crash_loop_still_ends_in_failed(
    pycron_settings: Settings, free_port: Callable[[], int], behaviour: str
) -> None:
    # Defaults throughout (reset_after 10 s): a job healthy for 0.3 s is no proof of health.
    record = pycron_settings.home / "record"
    port = free_port()
    config = jobs_from(
        f"""
        jobs:
          crasher:
            command: {{child}} crasher {record} --listen {port} {behaviour}
            health: {{tcp: {port}}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            crasher = supervisor.jobs["crasher"]
            await wait_until(lambda: crasher.state is JobState.FAILED, timeout=20, what="FAILED")
            status = crasher.status()
            assert (status.restarts, status.last_exit, status.healthy) == (5, 1, False)

    run(scenario(), timeout=40)
    starts = [e.time for e in events(record) if e.kind == "start"]
    assert len(starts) == 6  # the first run and max_restarts (5) restarts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for gap, delay in zip(gaps, (0.1, 0.2, 0.4, 0.8, 1.6), strict=True):
        assert gap >= delay * 0.95, gaps  # the backoff doubled each time: nothing was forgotten
    log = Path(crasher_log(pycron_settings)).read_text()
    assert "crash loop: 6 exits within 60s" in log


def test_a_job_that_exits_with_the_config_code_fails_at_once(pycron_settings: Settings) -> None:
    # Its configuration is bad: a restart would fail alike, five times over, ending in "crash loop".
    config = jobs_from(
        f"""
        jobs:
          misconfigured:
            command: {sys.executable} -c "import sys; print('bad key'); sys.exit({ConfigError.exit_code})"
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            job = supervisor.jobs["misconfigured"]
            await wait_until(lambda: job.state is JobState.FAILED, timeout=20, what="FAILED")
            status = job.status()
            assert (status.restarts, status.last_exit) == (0, 78)

    run(scenario(), timeout=30)
    log = (pycron_settings.path(pycron_settings.storage.logs_dir) / "misconfigured.out").read_text()
    assert "bad key" in log and "configuration error (exit 78): not restarting" in log
    assert "crash loop" not in log


def test_a_job_healthy_a_while_before_each_crash_still_ends_in_failed(
    pycron_settings: Settings, free_port: Callable[[], int]
) -> None:
    # The reviewer's case, scaled down: healthy for longer than reset_after (11 s against 10 s
    # there, 0.8 s against 0.5 s here), then a crash, again and again. Before, each healthy
    # stretch cleared the failures and the job restarted forever; now each restart comes after
    # the initial delay (it proved healthy) but the sixth exit within the window is FAILED.
    record = pycron_settings.home / "record"
    port = free_port()
    config = jobs_from(
        f"""
        jobs:
          flapper:
            command: {{child}} flapper {record} --listen {port} --exit 1 --after 0.8
            health: {{tcp: {port}, interval: 0.1}}
            backoff: {{reset_after: 0.5}}
        """,
        pycron_settings,
    )

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            flapper = supervisor.jobs["flapper"]
            await wait_until(lambda: flapper.state is JobState.FAILED, timeout=30, what="FAILED")
            assert flapper.status().restarts == 5

    run(scenario(), timeout=40)
    starts = [e.time for e in events(record) if e.kind == "start"]
    assert len(starts) == 6
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap < 0.8 + 0.1 + 1.0 for gap in gaps), gaps  # the initial delay each time, no doubling


def crasher_log(settings: Settings) -> Path:
    return settings.path(settings.storage.logs_dir) / "crasher.out"


@pytest.mark.slow
def test_each_job_of_the_real_stack_is_restarted_at_once_after_a_kill(
    stack_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The repository's jobs file (profile test), as `trader up` runs it: redis, the bus, tws-sim,
    # trader_service, strategy_service and history_service. Each is killed once, the stack whole again in between;
    # then trader_service five times more, as the chaos run that found the doubling backoff did
    # (with reset_after cut to 1 s to keep the test short). pycron's own share is the time to the
    # new process; the rest is the service's start-up.
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the jobs run in the home: this checkout's code first
    settings = load_settings("test")
    jobs_file = read_yaml(settings.config_path(settings.pycron.config))
    jobs_file["jobs"]["trader_service"]["backoff"] = {"reset_after": 1.0}
    # Six exits within restart_window are a crash loop; the chaos run had them in 90 s, here in ~20 s.
    jobs_file["jobs"]["trader_service"]["max_restarts"] = 6
    config = parse_jobs(jobs_file, settings, "pycron.yaml")
    times: list[tuple[str, float, float]] = []

    async def scenario() -> None:
        supervisor = Supervisor(config, settings, trader_env=settings.locator_env())
        await supervisor.start()
        try:
            assert await supervisor.wait_ready(60), [s.to_dict() for s in supervisor.status()]
            for name in [*config.jobs, *["trader_service"] * 5]:
                times.append((name, *await kill_and_time_recovery(supervisor.jobs[name])))
                assert await supervisor.wait_ready(30), [s.to_dict() for s in supervisor.status()]
                await asyncio.sleep(1.5)  # the interval between kills: healthy for longer than reset_after
            assert supervisor.jobs["trader_service"].status().restarts == 6
            assert all(s.state is JobState.RUNNING for s in supervisor.status())
        finally:
            await supervisor.shutdown()

    run(scenario(), timeout=240)
    print("kill -9, new process, healthy (s):", "; ".join(f"{n} {a:.3f} {b:.3f}" for n, a, b in times))
    assert {name for name, _, _ in times} == {"redis", "bus", "tws", "trader_service", "strategy_service",
                                              "history_service"}
    assert all(spawned < 0.5 for _, spawned, _ in times), times  # the initial delay, nothing more
    # The rest is the service's own start-up (0.3-1 s of imports on an idle host, more on a busy
    # one): the 2 s holds on an idle host (docs/ARCHITECTURE.md); here only what is pycron's is held
    # to it, and the whole to a bound that a doubling backoff would break.
    assert all(back < BACK_WITHIN + 2.0 for _, _, back in times), times
