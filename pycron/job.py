"""One supervised job's life: wait for dependencies, start, become healthy, restart with backoff, schedule.

A ``SupervisedJob`` owns one runner task at a time. The runner walks the
states (:mod:`pycron.job_state` shows their moves) and is the only writer of
them while it runs; ``halt()`` cancels it, stops the process (SIGTERM, then
SIGKILL after the grace period) and leaves the job STOPPED. Every state change
wakes the ``ChangeSignal`` the supervisor shares between its jobs, so
dependents and control operations wait on conditions instead of polling.
Whether and when an exit is followed by a restart is the job's
:class:`pycron.restarts.RestartRecord`'s call; whether its process is healthy,
its :class:`pycron.job_health.ProcessHealth`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pycron.config import HeartbeatHealth, Job
from pycron.health import HealthCheck, HeartbeatMonitor
from pycron.job_health import ProcessHealth
from pycron.job_state import ChangeSignal, HeartbeatInfo, JobState, JobStatus
from pycron.output import DEFAULT_ROTATION, Rotation
from pycron.process import ChildProcess, append_log, describe_exit
from pycron.restarts import RestartRecord
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

__all__ = ["ChangeSignal", "HeartbeatInfo", "JobState", "JobStatus", "SupervisedJob"]

log = logging.getLogger(__name__)

# Longest single sleep while waiting for a cron time, so a clock change is noticed.
MAX_SLEEP = 30.0
SPAWN_FAILED = 127
# A job exiting with ConfigError's code (78, EX_CONFIG) said its configuration is bad: a restart
# would fail alike, so it goes FAILED at once, with the reason, instead of running into a crash loop.
CONFIG_EXIT = ConfigError.exit_code


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
        self._record = RestartRecord(job)
        self._health = ProcessHealth(job, check)
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
            if not self._record.wants_restart(success):
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
            if not self._record.wants_restart(success):
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
        self._record.new_process()
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
            if self.job.oneshot or await self._health.become_healthy(proc):
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

    async def _watch_health(self, proc: ChildProcess) -> None:
        while (ok := await self._health.next_change(proc, self.healthy)) is not None:
            self._set_healthy(ok)
            if ok:
                log.info("%s: healthy again", self.name)
            else:
                log.warning("%s: unhealthy (pid %s still running)", self.name, proc.pid)
            self.changes.notify()

    def _set_healthy(self, ok: bool) -> None:
        """Set ``healthy``, timing the healthy stretches that the backoff's reset rule reads."""
        self._record.health(ok)
        self.healthy = ok

    def _forget_failures(self) -> None:
        """Start afresh: no exits in the window, the next restart after the initial delay."""
        self._record.forget()

    async def _backoff(self, code: int) -> bool:
        """Count an unexpected exit; sleep the backoff and return True, or go FAILED (False).

        The restart record (:class:`pycron.restarts.RestartRecord`) judges the
        exit: a crash loop, or the delay before the restart.
        """
        delay = self._record.exited()
        if delay is None:
            why = (
                f"crash loop: {self._record.exits} exits within {self.job.restart_window:g}s "
                f"(last: {describe_exit(code)}); not restarting until a manual start"
            )
            log.error("%s: %s", self.name, why)
            append_log(self.job.log, f"{self.name} {why}")
            self._set(JobState.FAILED)
            return False
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
