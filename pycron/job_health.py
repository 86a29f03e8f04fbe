"""A job's process judged healthy: probed until healthy (or settled) at its start, then watched while it runs.

The checks themselves (tcp, heartbeat, command) are :mod:`pycron.health`'s;
this applies one to the current process of a job for
:class:`pycron.job.SupervisedJob`, which keeps the job's ``healthy`` flag and
reports its changes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pycron.config import HeartbeatHealth, Job
from pycron.health import HealthCheck
from pycron.process import ChildProcess

__all__ = ["HEARTBEAT_POLL", "START_POLL", "ProcessHealth"]

log = logging.getLogger(__name__)

# Seconds between health probes while waiting for a start, and between heartbeat checks once up.
START_POLL = 0.1
HEARTBEAT_POLL = 0.5


class ProcessHealth:
    """The health of one job's processes, by its check (None: a process that stays up settles as healthy)."""

    def __init__(self, job: Job, check: HealthCheck | None) -> None:
        self.job = job
        self.check = check

    async def become_healthy(self, proc: ChildProcess) -> bool:
        """Wait until ``proc`` is healthy (True), or exits or stays unhealthy past ``start_timeout`` (False)."""
        if self.check is None:
            return await proc.wait_for(min(self.job.settle_time, self.job.start_timeout)) is None
        deadline = time.monotonic() + self.job.start_timeout
        while True:
            if await self.probe(proc):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await proc.wait_for(min(START_POLL, remaining)) is not None:
                return False

    async def probe(self, proc: ChildProcess) -> bool:
        """Run the check once for ``proc``; a check that raises counts as unhealthy."""
        assert self.check is not None and proc.started_mono is not None
        try:
            ok = await self.check.check(proc.started_mono)
        except Exception:
            log.exception("%s: health check raised; counted as unhealthy", self.job.name)
            ok = False
        # A port held by some other process must not make a dead job look healthy.
        return ok and proc.running

    async def next_change(self, proc: ChildProcess, healthy: bool) -> bool | None:
        """Probe ``proc`` at the job's interval; return its health once it differs from ``healthy``, None once it ends."""
        interval = HEARTBEAT_POLL if isinstance(self.job.health, HeartbeatHealth) else self.job.health_interval
        while proc.running:
            await asyncio.sleep(interval)
            ok = await self.probe(proc)
            if ok != healthy and proc.running:
                return ok
        return None
