"""One supervised job's life: wait for dependencies, start, become healthy, restart with backoff, schedule.

A ``SupervisedJob`` owns one runner task at a time. The runner walks the
states below and is the only writer of them while it runs; ``halt()`` cancels
it, stops the process (SIGTERM, then SIGKILL after the grace period) and
leaves the job STOPPED. Every state change wakes the ``ChangeSignal`` the
supervisor shares between its jobs, so dependents and control operations
wait on conditions instead of polling.

    PENDING -> STARTING -> RUNNING -> (exit) -> BACKOFF -> PENDING ...
                                             -> FAILED     (crash loop, or policy says no restart)
                                             -> COMPLETED  (exit 0 and policy says no restart)
    SCHEDULED: a one-shot job between runs, or a window job while its window is closed
    STOPPING -> STOPPED: manual stop or shutdown; a stopped job stays stopped
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pycron.config import HeartbeatHealth, Job, RestartPolicy
from pycron.health import HealthCheck, HeartbeatMonitor
from pycron.output import DEFAULT_ROTATION, Rotation
from pycron.process import ChildProcess, append_log, describe_exit
from pycron.schedule import (
    RunSchedule,
    WindowSchedule,
    next_run,
    seconds_until,
    window_close,
    window_is_open,
    window_open,
)
from trader.errors import ConfigError

log = logging.getLogger(__name__)

# Seconds between health probes while waiting for a start, and between heartbeat checks once up.
START_POLL = 0.1
HEARTBEAT_POLL = 0.5
# Longest single sleep while waiting for a cron time, so a clock change is noticed.
MAX_SLEEP = 30.0
SPAWN_FAILED = 127
# A job exiting with ConfigError's code (78, EX_CONFIG) said its configuration is bad: a restart
# would fail alike, so it goes FAILED at once, with the reason, instead of running into a crash loop.
CONFIG_EXIT = ConfigError.exit_code


class JobState(str, enum.Enum):
    """Where a job is in its life (see the module docstring for the moves)."""

    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SCHEDULED = "SCHEDULED"
    COMPLETED = "COMPLETED"


class ChangeSignal:
    """Wake every waiter whenever something changes; each waiter re-checks its own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake the current waiters."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until ``predicate()`` holds; return False if ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate():
            event = self._event
            if deadline is None:
                await event.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return True


@dataclass(frozen=True, slots=True)
class HeartbeatInfo:
    """The last heartbeat of a heartbeat-checked job: its state and age in seconds."""

    state: str
    age: float


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A snapshot of one job, as the control API reports it."""

    name: str
    state: JobState
    pid: int | None
    started_at: datetime | None
    uptime: float | None
    restarts: int
    healthy: bool
    ready: bool
    last_exit: int | None
    heartbeat: HeartbeatInfo | None
    next_run: datetime | None
    log: str

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready values."""
        out = asdict(self)
        out["state"] = self.state.value
        out["started_at"] = self.started_at.isoformat() if self.started_at else None
        out["next_run"] = self.next_run.isoformat() if self.next_run else None
        out["uptime"] = None if self.uptime is None else round(self.uptime, 3)
        return out


class SupervisedJob:
    """A job, its current process and its restart bookkeeping."""

    def __init__(
        self,
        job: Job,
        *,
        env: Mapping[str, str],
        check: HealthCheck | None,
        monitor: HeartbeatMonitor,
        changes: ChangeSignal,
        clock: Callable[[], datetime],
        rotation: Rotation = DEFAULT_ROTATION,
    ) -> None:
        self.job = job
        self.rotation = rotation
        self.name = job.name
        self.env = dict(env)
        self.check = check
        self.monitor = monitor
        self.changes = changes
        self.clock = clock
        self.dependencies: Sequence[SupervisedJob] = ()
        self.state = JobState.PENDING
        self.healthy = False
        self.process: ChildProcess | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self.next_run: datetime | None = None
        self._failures: deque[float] = deque()  # exit times within restart_window: the crash-loop verdict
        self._proven_at = float("-inf")  # monotonic: the last exit after a healthy stretch of reset_after
        self._healthy_since: float | None = None  # monotonic start of the current healthy stretch
        self._healthy_longest = 0.0  # seconds: the current process's longest healthy stretch
        self._task: asyncio.Task[None] | None = None

    # -- what others read --------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the job is where it should be: up and healthy, or waiting for its schedule."""
        return (self.state is JobState.RUNNING and self.healthy) or self.state in (
            JobState.SCHEDULED,
            JobState.COMPLETED,
        )

    @property
    def settled(self) -> bool:
        """Whether a start has come to a result: ready, or failed, backing off, or stopped."""
        return self.ready or self.state in (JobState.FAILED, JobState.BACKOFF, JobState.STOPPED)

    @property
    def active(self) -> bool:
        """Whether the runner task is alive."""
        return self._task is not None and not self._task.done()

    def status(self) -> JobStatus:
        """Return a snapshot of the job."""
        proc = self.process
        running = proc is not None and proc.running
        heartbeat = None
        if isinstance(self.job.health, HeartbeatHealth):
            beat = self.monitor.last(self.job.health.service)
            if beat is not None:
                heartbeat = HeartbeatInfo(beat.state, round(self.monitor.age(beat), 3))
        return JobStatus(
            name=self.name,
            state=self.state,
            pid=proc.pid if running and proc is not None else None,
            started_at=proc.started_at if running and proc is not None else None,
            uptime=proc.uptime if proc is not None else None,
            restarts=self.restarts,
            healthy=self.healthy,
            ready=self.ready,
            last_exit=self.last_exit,
            heartbeat=heartbeat,
            next_run=self.next_run,
            log=str(self.job.log),
        )

    # -- control -----------------------------------------------------------------
    def launch(self, *, now: bool = False) -> None:
        """Start the runner: the job's whole life per its restart policy and schedule.

        ``now`` runs a scheduled job at once (a one-shot runs once, a window job
        runs until its next stop time) before it follows its schedule again.
        """
        if self.active:
            raise RuntimeError(f"{self.name}: runner already active")
        self._forget_failures()
        self._set(JobState.PENDING)
        self._task = asyncio.get_running_loop().create_task(
            self._main(now), name=f"pycron-job:{self.name}"
        )

    async def halt(self) -> None:
        """Cancel the runner, stop the process and leave the job STOPPED. Safe to call twice."""
        task, proc = self._task, self.process
        if (task is not None and not task.done()) or (proc is not None and proc.running):
            self._set(JobState.STOPPING)
        if task is not None and not task.done():
            task.cancel()
            # asyncio.wait, not await task: our own cancellation must not be mistaken for the runner's.
            await asyncio.wait({task})
        if proc is not None:
            await proc.stop()
            self.last_exit = proc.returncode
        self.healthy = False
        self.next_run = None
        self._set(JobState.STOPPED)

    # -- the runner ----------------------------------------------------------------
    async def _main(self, now: bool) -> None:
        try:
            schedule = self.job.schedule
            if isinstance(schedule, RunSchedule):
                await self._follow_runs(schedule, now)
            elif isinstance(schedule, WindowSchedule):
                await self._follow_windows(schedule, now)
            else:
                await self._serve()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: supervisor error; job marked FAILED", self.name)
            self.healthy = False
            self._set(JobState.FAILED)

    async def _serve(self) -> None:
        """Keep the job running, restarting it per policy, until it ends for good."""
        while True:
            await self._wait_dependencies()
            code, success = await self._attempt()
            if code == CONFIG_EXIT and not success:
                why = (f"configuration error (exit {code}): not restarting, since it would fail alike; "
                       "fix the configuration (its log says what) and start it again")
                log.error("%s: %s", self.name, why)
                append_log(self.job.log, f"{self.name} {why}")
                self._set(JobState.FAILED)
                return
            if not self._wants_restart(success):
                self._set(JobState.COMPLETED if success else JobState.FAILED)
                return
            if not await self._backoff(code):
                return

    async def _follow_runs(self, schedule: RunSchedule, now: bool) -> None:
        while True:
            if not now:
                self.next_run = next_run(schedule, self.clock())
                self._idle()
                await self._sleep_until(self.next_run)
            now = False
            self.next_run = None
            self._forget_failures()
            await self._run_once()

    async def _run_once(self) -> None:
        """One scheduled run, retried per policy; ends SCHEDULED on success, FAILED otherwise."""
        while True:
            await self._wait_dependencies()
            code, success = await self._attempt()
            if success:
                self._set(JobState.SCHEDULED)
                return
            if not self._wants_restart(success):
                self._set(JobState.FAILED)
                return
            if not await self._backoff(code):
                return

    async def _follow_windows(self, schedule: WindowSchedule, now: bool) -> None:
        while True:
            current = self.clock()
            if not (now or window_is_open(schedule, current)):
                self.next_run = window_open(schedule, current)
                self._idle()
                await self._sleep_until(self.next_run)
                continue
            now = False
            self.next_run = window_close(schedule, current)
            self._forget_failures()
            serve = asyncio.get_running_loop().create_task(
                self._serve(), name=f"pycron-window:{self.name}"
            )
            closer = asyncio.get_running_loop().create_task(self._sleep_until(self.next_run))
            try:
                await asyncio.wait({serve, closer}, return_when=asyncio.FIRST_COMPLETED)
                if not serve.done():
                    log.info("%s: window closed; stopping", self.name)
                    self._set(JobState.STOPPING)
                    serve.cancel()
                await closer
            finally:
                for task in (serve, closer):
                    task.cancel()
                await asyncio.wait({serve, closer})
            if not serve.cancelled() and serve.exception() is not None:
                raise serve.exception()  # type: ignore[misc]
            self.healthy = False

    async def _attempt(self) -> tuple[int, bool]:
        """Run the command once: spawn, wait until healthy, run until it exits.

        Return the returncode and whether the run succeeded: it became healthy
        and exited 0. A job stopped for not becoming healthy failed, whatever
        its exit code after our SIGTERM.
        """
        self._set_healthy(False)
        self._healthy_longest = 0.0
        self._set(JobState.STARTING)
        try:
            for path in self.job.makedirs:
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return self._spawn_failed(exc), False
        proc = ChildProcess(
            self.name,
            self.job.argv,
            cwd=self.job.cwd,
            env=self.env,
            log_path=self.job.log,
            grace_period=self.job.grace_period,
            rotation=self.rotation,
        )
        self.process = proc
        try:
            await proc.start()
        except OSError as exc:
            return self._spawn_failed(exc), False
        started = False
        try:
            if self.job.oneshot or await self._become_healthy(proc):
                started = True
                self._set_healthy(True)
                self._set(JobState.RUNNING)
                watcher = None
                if self.check is not None and not self.job.oneshot:
                    watcher = asyncio.get_running_loop().create_task(self._watch_health(proc))
                try:
                    code = await proc.wait()
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        await asyncio.wait({watcher})
            else:
                if proc.running:
                    why = f"not healthy within {self.job.start_timeout:g}s; stopping it"
                    log.warning("%s: %s", self.name, why)
                    append_log(self.job.log, f"{self.name} {why}")
                if proc.running:
                    await proc.stop()
                code = await proc.wait()
        finally:
            # Cancelled (manual stop, shutdown, window close) or not: no process outlives its attempt.
            if proc.running:
                await proc.stop()
            self.last_exit = proc.returncode
            self._set_healthy(False)
        return code, started and code == 0

    def _spawn_failed(self, exc: OSError) -> int:
        log.error("%s: cannot start %s: %s", self.name, self.job.argv[0], exc)
        append_log(self.job.log, f"cannot start {self.name}: {exc}")
        self.last_exit = SPAWN_FAILED
        return SPAWN_FAILED

    async def _become_healthy(self, proc: ChildProcess) -> bool:
        if self.check is None:
            return await proc.wait_for(min(self.job.settle_time, self.job.start_timeout)) is None
        deadline = time.monotonic() + self.job.start_timeout
        while True:
            if await self._probe(proc):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await proc.wait_for(min(START_POLL, remaining)) is not None:
                return False

    async def _probe(self, proc: ChildProcess) -> bool:
        assert self.check is not None and proc.started_mono is not None
        try:
            ok = await self.check.check(proc.started_mono)
        except Exception:
            log.exception("%s: health check raised; counted as unhealthy", self.name)
            ok = False
        # A port held by some other process must not make a dead job look healthy.
        return ok and proc.running

    async def _watch_health(self, proc: ChildProcess) -> None:
        interval = (
            HEARTBEAT_POLL
            if isinstance(self.job.health, HeartbeatHealth)
            else self.job.health_interval
        )
        while proc.running:
            await asyncio.sleep(interval)
            ok = await self._probe(proc)
            if ok != self.healthy and proc.running:
                self._set_healthy(ok)
                if ok:
                    log.info("%s: healthy again", self.name)
                else:
                    log.warning("%s: unhealthy (pid %s still running)", self.name, proc.pid)
                self.changes.notify()

    def _set_healthy(self, ok: bool) -> None:
        """Set ``healthy``, timing the healthy stretches that the backoff's reset rule reads."""
        now = time.monotonic()
        if ok and self._healthy_since is None:
            self._healthy_since = now
        elif not ok and self._healthy_since is not None:
            self._healthy_longest = max(self._healthy_longest, now - self._healthy_since)
            self._healthy_since = None
        self.healthy = ok

    def _wants_restart(self, success: bool) -> bool:
        policy = self.job.restart
        return policy is RestartPolicy.ALWAYS or (
            policy is RestartPolicy.ON_FAILURE and not success
        )

    def _forget_failures(self) -> None:
        """Start afresh: no exits in the window, the next restart after the initial delay."""
        self._failures.clear()
        self._proven_at = float("-inf")

    async def _backoff(self, code: int) -> bool:
        """Count an unexpected exit; sleep the backoff and return True, or go FAILED (False).

        Two counts, two rules. The crash-loop verdict counts every exit within
        ``restart_window``: more than ``max_restarts`` is FAILED, however long
        the job was healthy in between (a job that is healthy 11 s and then
        crashes, again and again, is a crash loop). The delay counts the exits
        within the window since the job last stayed healthy for
        ``backoff.reset_after`` seconds: a job that proved healthy restarts
        after the initial delay again.
        """
        now = time.monotonic()
        proven = self._healthy_longest >= self.job.backoff.reset_after
        if proven and not self.job.oneshot:
            self._proven_at = now
            if self._failures:
                log.info("%s: healthy for %.1fs before this exit; the backoff starts again from %gs",
                         self.name, self._healthy_longest, self.job.backoff.initial)
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.job.restart_window:
            self._failures.popleft()
        if len(self._failures) > self.job.max_restarts:
            why = (
                f"crash loop: {len(self._failures)} exits within {self.job.restart_window:g}s "
                f"(last: {describe_exit(code)}); not restarting until a manual start"
            )
            log.error("%s: %s", self.name, why)
            append_log(self.job.log, f"{self.name} {why}")
            self._set(JobState.FAILED)
            return False
        delay = self.job.backoff_delay(sum(1 for t in self._failures if t >= self._proven_at))
        log.warning("%s: %s; restarting in %.2fs", self.name, describe_exit(code), delay)
        self._set(JobState.BACKOFF)
        await asyncio.sleep(delay)
        self.restarts += 1
        return True

    async def _wait_dependencies(self) -> None:
        def healthy() -> bool:
            return all(d.state is JobState.RUNNING and d.healthy for d in self.dependencies)

        if not healthy():
            self._set(JobState.PENDING)
            await self.changes.wait_for(healthy)

    async def _sleep_until(self, target: datetime) -> None:
        while (remaining := seconds_until(target, self.clock())) > 0:
            await asyncio.sleep(min(remaining, MAX_SLEEP))

    def _idle(self) -> None:
        """Wait for the schedule: SCHEDULED, unless the last run failed (that stays visible)."""
        if self.state is JobState.FAILED:
            self.changes.notify()
        else:
            self._set(JobState.SCHEDULED)

    def _set(self, state: JobState) -> None:
        if state is not self.state:
            log.info("%s: %s -> %s", self.name, self.state.value, state.value)
            self.state = state
        self.changes.notify()
