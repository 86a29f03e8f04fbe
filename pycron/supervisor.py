"""The supervisor: runs a profile's jobs in dependency order, answers control operations, shuts down in reverse.

Every job gets a runner at ``start()``; a runner waits until all its
dependencies are healthy before it spawns, so jobs start in dependency order
and as early as their own dependencies allow. ``shutdown()`` stops each job
once every job that depends on it has stopped. Control operations (start,
stop, restart a job) that clash with one already in progress on the same job
raise ``Conflict`` at once instead of queueing. One asyncio loop, owned by
the caller (``pycron.__main__`` or a test).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from functools import partial
from typing import Any

from pycron import graph
from pycron.config import HeartbeatHealth, PycronConfig
from pycron.health import HeartbeatMonitor, make_check
from pycron.job import ChangeSignal, JobState, JobStatus, SupervisedJob
from pycron.output import Rotation
from pycron.process import child_environment
from trader.config import Settings
from trader.errors import Conflict, NotFound
from trader.messaging.curve import CurveKeys

log = logging.getLogger(__name__)

# States from which a manual start would clash with the job's current life.
_ALREADY_UP = frozenset({JobState.PENDING, JobState.STARTING, JobState.RUNNING, JobState.STOPPING})


def _running_pid(supervised: SupervisedJob) -> int | None:
    """Return the pid of the job's current process while it runs, else None."""
    proc = supervised.process
    return proc.pid if proc is not None and proc.running else None


def utc_now() -> datetime:
    """Return the current time, aware, in UTC (the supervisor's default clock)."""
    return datetime.now(timezone.utc)


class Supervisor:
    """Run and watch the jobs of one profile.

    ``trader_env`` is what every child gets on top of os.environ so it loads
    the same settings (TRADER_HOME, TRADER_PROFILE, TRADER_CONFIG). ``clock``
    drives the cron schedules only; inject one to test schedules quickly.
    """

    def __init__(
        self,
        config: PycronConfig,
        settings: Settings,
        *,
        trader_env: Mapping[str, str] | None = None,
        monitor: HeartbeatMonitor | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.settings = settings
        self.monitor = monitor or HeartbeatMonitor(settings.bus.sub_endpoint,
                                                   curve=CurveKeys.from_settings(settings).client)
        self.clock = clock
        self.changes = ChangeSignal()
        self.pid = os.getpid()
        self.jobs: dict[str, SupervisedJob] = {}
        locators = dict(trader_env or {})
        rotation = Rotation(settings.logging.max_bytes, settings.logging.backups)
        for name, job in config.jobs.items():
            env = child_environment(locators, job.env, name=job.name)
            check = make_check(
                job,
                monitor=self.monitor,
                heartbeat_timeout=settings.pycron.heartbeat_timeout,
                env=env,
            )
            self.jobs[name] = SupervisedJob(
                job, env=env, check=check, monitor=self.monitor, changes=self.changes, clock=clock,
                rotation=rotation,
            )
        for supervised in self.jobs.values():
            supervised.dependencies = tuple(self.jobs[d] for d in supervised.job.depends_on)
            if isinstance(supervised.job.health, HeartbeatHealth):
                # Only the beats of the process pycron runs for the job count (see pycron.health).
                self.monitor.expect(supervised.job.health.service, partial(_running_pid, supervised))
        self._busy: dict[str, str] = {}
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Start listening for heartbeats and launch every job's runner; returns at once. Safe twice."""
        if self._started:
            return
        self._started = True
        self.monitor.start()
        log.info(
            "supervising %d jobs of profile %s: %s",
            len(self.jobs),
            self.config.profile,
            ", ".join(self.jobs),
        )
        for supervised in self.jobs.values():
            supervised.launch()

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every job is ready (healthy, or waiting for its schedule); False on timeout."""
        return await self.changes.wait_for(
            lambda: all(j.ready for j in self.jobs.values()), timeout
        )

    async def shutdown(self) -> None:
        """Stop every job, each after all the jobs that depend on it; safe to call twice."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        log.info("shutting down: stopping jobs in reverse dependency order")
        sorter = graph.stop_sorter(self.config.graph())
        stopping: dict[asyncio.Task[None], str] = {}
        while sorter.is_active():
            for name in sorter.get_ready():
                task = asyncio.get_running_loop().create_task(
                    self.jobs[name].halt(), name=f"pycron-halt:{name}"
                )
                stopping[task] = name
            done, _ = await asyncio.wait(stopping, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                name = stopping.pop(task)
                if task.exception() is not None:
                    log.error("%s: error while stopping", name, exc_info=task.exception())
                sorter.done(name)
        self.monitor.close()
        log.info("all jobs stopped")
        self._closed.set()

    @property
    def closing(self) -> bool:
        """Whether a shutdown has begun."""
        return self._closing

    async def wait_closed(self) -> None:
        """Wait until a shutdown has finished."""
        await self._closed.wait()

    # -- reading ------------------------------------------------------------------
    def job(self, name: str) -> SupervisedJob:
        """Return the supervised job called ``name``, or raise NotFound."""
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(self.jobs) or "none"
            raise NotFound(
                f"no job {name!r} in profile {self.config.profile!r} (jobs: {known})"
            ) from None

    def status(self) -> list[JobStatus]:
        """Return a snapshot of every job, in the jobs file's order."""
        return [j.status() for j in self.jobs.values()]

    def summary(self) -> dict[str, Any]:
        """Return the control API's ``/status`` result."""
        return {
            "profile": self.config.profile,
            "pid": self.pid,
            "closing": self._closing,
            "heartbeats_ignored": dict(self.monitor.ignored),
            "jobs": [s.to_dict() for s in self.status()],
        }

    # -- control operations -----------------------------------------------------------
    async def start_job(self, name: str) -> JobStatus:
        """Start a stopped, failed or completed job (a scheduled one runs now); wait until it settles."""
        async with self._operation(name, "start") as supervised:
            if supervised.state in _ALREADY_UP:
                raise Conflict(f"job {name} is already {supervised.state.value}")
            await self._relaunch(supervised)
            return supervised.status()

    async def stop_job(self, name: str) -> JobStatus:
        """Stop a job and keep it stopped (no restart) until a manual start."""
        async with self._operation(name, "stop") as supervised:
            await supervised.halt()
            return supervised.status()

    async def restart_job(self, name: str) -> JobStatus:
        """Stop the job if it runs, then start it; wait until it settles."""
        async with self._operation(name, "restart") as supervised:
            await supervised.halt()
            await self._relaunch(supervised)
            return supervised.status()

    async def _relaunch(self, supervised: SupervisedJob) -> None:
        if supervised.active:
            # A runner waiting on a schedule or a backoff: replace it with a fresh start.
            await supervised.halt()
        supervised.launch(now=True)
        job = supervised.job
        await self.changes.wait_for(
            lambda: supervised.settled,
            timeout=job.start_timeout + job.settle_time + job.grace_period,
        )

    @contextlib.asynccontextmanager
    async def _operation(self, name: str, op: str) -> AsyncIterator[SupervisedJob]:
        supervised = self.job(name)
        if self._closing:
            raise Conflict(f"pycron is shutting down; cannot {op} job {name}")
        busy = self._busy.get(name)
        if busy is not None:
            raise Conflict(f"job {name}: a {busy} is already in progress")
        self._busy[name] = op
        log.info("%s: manual %s", name, op)
        try:
            yield supervised
        finally:
            del self._busy[name]
