"""A job's restart record: whether an exit is followed by a restart, and after how long, or a crash loop.

:class:`pycron.job.SupervisedJob` tells the record when a process starts,
when its health changes and when it exits; the record answers from the job's
restart policy, its exits within the restart window and its healthy
stretches: no restart, the delay before the next start, or a crash-loop
verdict. It keeps time with ``time.monotonic`` and changes no job state itself.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from pycron.config import Job, RestartPolicy

__all__ = ["RestartRecord"]

log = logging.getLogger(__name__)


class RestartRecord:
    """The exits of one job within its ``restart_window``, and how long its current process stayed healthy.

    Two counts, two rules. The crash-loop verdict counts every exit within
    ``restart_window``: more than ``max_restarts`` is a crash loop, however
    long the job was healthy in between (a job that is healthy 11 s and then
    crashes, again and again, is a crash loop). The delay counts the exits
    within the window since the job last stayed healthy for
    ``backoff.reset_after`` seconds: a job that proved healthy restarts after
    the initial delay again.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._failures: deque[float] = deque()  # exit times within restart_window: the crash-loop verdict
        self._proven_at = float("-inf")  # monotonic: the last exit after a healthy stretch of reset_after
        self._healthy_since: float | None = None  # monotonic start of the current healthy stretch
        self._healthy_longest = 0.0  # seconds: the current process's longest healthy stretch

    @property
    def exits(self) -> int:
        """Return how many exits the restart window holds."""
        return len(self._failures)

    def wants_restart(self, success: bool) -> bool:
        """Return whether the restart policy restarts a run that ended so (``success``: healthy, then exit 0)."""
        policy = self.job.restart
        return policy is RestartPolicy.ALWAYS or (policy is RestartPolicy.ON_FAILURE and not success)

    def new_process(self) -> None:
        """Start timing a new process: it has not been healthy yet."""
        self._healthy_longest = 0.0

    def health(self, ok: bool) -> None:
        """Time the healthy stretches that the delay's reset rule reads: the job is ``ok`` from now on."""
        now = time.monotonic()
        if ok and self._healthy_since is None:
            self._healthy_since = now
        elif not ok and self._healthy_since is not None:
            self._healthy_longest = max(self._healthy_longest, now - self._healthy_since)
            self._healthy_since = None

    def forget(self) -> None:
        """Start afresh: no exits in the window, the next restart after the initial delay."""
        self._failures.clear()
        self._proven_at = float("-inf")

    def exited(self) -> float | None:
        """Count an unexpected exit now; return the seconds to wait before the restart, or None for a crash loop."""
        now = time.monotonic()
        job = self.job
        proven = self._healthy_longest >= job.backoff.reset_after
        if proven and not job.oneshot:
            self._proven_at = now
            if self._failures:
                log.info("%s: healthy for %.1fs before this exit; the backoff starts again from %gs",
                         job.name, self._healthy_longest, job.backoff.initial)
        self._failures.append(now)
        while self._failures and now - self._failures[0] > job.restart_window:
            self._failures.popleft()
        if len(self._failures) > job.max_restarts:
            return None
        return job.backoff_delay(sum(1 for t in self._failures if t >= self._proven_at))
