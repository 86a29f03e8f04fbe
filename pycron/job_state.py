"""What a supervised job shows the rest of pycron: its state, a snapshot of it, and the signal of every change.

:class:`pycron.job.SupervisedJob` moves a job between the states of
:class:`JobState`; the supervisor, the control API and the client read the
snapshot (:class:`JobStatus`). The moves:

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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["ChangeSignal", "HeartbeatInfo", "JobState", "JobStatus"]


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
