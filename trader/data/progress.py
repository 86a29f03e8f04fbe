"""A download job's progress: the figures (instruments done, bars written, rate, ETA) and their bus events.

Events go out as ``job.<id>.<event>`` (payload a dict):

- ``started``: a run of the job began (``runs`` > 1: resumed after a crash, or retried);
- ``window``: one window written (``key``, ``start``, ``end``, ``bars``, ``empty``: it came empty, nothing written);
- ``instrument``: an instrument ended (``key``, ``state`` DONE or FAILED, ``bars``, ``error``);
- ``progress``: the figures below, after every window;
- ``waiting``: the window of ``key`` waits on IB's pacing (the pacer's hold or a
  back-off after a violation) for a few seconds or more: ``waiting`` is
  ``{"until", "reason", "key"}`` (None once it goes on); the job keeps it too;
- ``done``, ``partial``, ``failed``, ``cancelled``: the run ended in that state (the job's state, lower case).

Every payload but ``window``'s carries the figures: ``instruments`` (done +
failed), ``total``, ``failed``, ``bars`` (written by the job, all runs), ``empty``
(windows that came empty, all runs),
``rate`` (bars a second in this run), ``elapsed`` (seconds of this run),
``share`` (0..1, of the instruments' time ranges covered) and ``eta``
(seconds left, None until something is known). The ETA counts the share of
the ranges covered, not instruments, so one long instrument does not read as
nearly done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from trader.data.job import Item, ItemState, Job

__all__ = ["JobProgress", "covered"]


def covered(item: Item, end: datetime) -> float:
    """Return the share (0..1) of ``item``'s range written: 1 once it ended, done or failed."""
    if item.state in (ItemState.DONE, ItemState.FAILED):
        return 1.0
    span = (end - item.start).total_seconds()
    if span <= 0:
        return 1.0
    return min(max((item.resume - item.start).total_seconds() / span, 0.0), 1.0)


class JobProgress:
    """The figures of one run of a job, updated per window; ``clock`` is injected for tests."""

    def __init__(self, job: Job, clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job.id
        self.end = job.end
        self.items = {item.key: item for item in job.items}
        self.clock = clock
        self.began = clock()
        self.bars_at_start = sum(item.bars for item in job.items)
        self.share_at_start = self._share()

    def update(self, item: Item) -> None:
        """Take an instrument's latest state."""
        self.items[item.key] = item

    def _share(self) -> float:
        if not self.items:
            return 1.0
        return sum(covered(item, self.end) for item in self.items.values()) / len(self.items)

    def figures(self) -> dict[str, Any]:
        """Return the figures every event carries (see the module docstring)."""
        elapsed = max(self.clock() - self.began, 0.0)
        bars = sum(item.bars for item in self.items.values())
        empty = sum(item.empty for item in self.items.values())
        ended = sum(item.state in (ItemState.DONE, ItemState.FAILED) for item in self.items.values())
        failed = sum(item.state is ItemState.FAILED for item in self.items.values())
        share = self._share()
        gained = share - self.share_at_start
        eta = elapsed * (1.0 - share) / gained if gained > 0 and elapsed > 0 else None
        return {"job": self.job_id, "instruments": ended, "total": len(self.items), "failed": failed,
                "bars": bars, "empty": empty, "rate": round((bars - self.bars_at_start) / elapsed, 1) if elapsed > 0 else 0.0,
                "elapsed": round(elapsed, 3), "eta": round(eta, 1) if eta is not None else None,
                "share": round(share, 4)}

    def topic(self, event: str) -> str:
        """Return the bus topic of ``event`` for this job."""
        return f"job.{self.job_id}.{event}"
