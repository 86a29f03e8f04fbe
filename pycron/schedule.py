"""Cron schedules: one-shot run times and start/stop windows, as pure functions of ``now``.

Nothing here reads the clock: every function takes ``now`` (an aware datetime)
so the supervisor can inject its clock and tests can use any instant. Cron
expressions are read by croniter; a sixth field is seconds (``"*/5 * * * * *"``
fires every five seconds), which keeps tests short. Times are evaluated in
the schedule's time zone (default: the machine's local zone) and returned in UTC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# croniter's get_prev is strictly before its base; nudging the base makes it "at or before".
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class RunSchedule:
    """A one-shot job run at each time the cron expression ``run`` matches."""

    run: str
    tz: tzinfo


@dataclass(frozen=True, slots=True)
class WindowSchedule:
    """A job that runs while the window is open: from a ``start`` match until the next ``stop`` match."""

    start: str
    stop: str
    tz: tzinfo


Schedule = RunSchedule | WindowSchedule


def is_valid(expr: str) -> bool:
    """Return whether ``expr`` is a cron expression croniter accepts (5 or 6 fields)."""
    return isinstance(expr, str) and bool(expr.strip()) and croniter.is_valid(expr)


def local_timezone() -> tzinfo:
    """Return the machine's time zone, with its daylight-saving rules when they can be found."""
    name = os.environ.get("TZ")
    if name:
        try:
            return ZoneInfo(name.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    if localtime.exists():
        try:
            with localtime.open("rb") as fh:
                return ZoneInfo.from_file(fh, key="localtime")
        except (OSError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or timezone.utc


def parse_timezone(name: str | None) -> tzinfo:
    """Return the zone called ``name`` (IANA, e.g. ``America/New_York``), or the local zone for None."""
    if name is None:
        return local_timezone()
    if name.upper() == "UTC":
        return timezone.utc
    return ZoneInfo(name)


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"schedule times must be timezone-aware, got {now!r}")


def next_fire(expr: str, now: datetime, tz: tzinfo) -> datetime:
    """Return the first time strictly after ``now`` that ``expr`` matches, in UTC."""
    _check_aware(now)
    found = croniter(expr, now.astimezone(tz)).get_next(datetime)
    return found.astimezone(timezone.utc)


def last_fire(expr: str, now: datetime, tz: tzinfo) -> datetime:
    """Return the latest time at or before ``now`` that ``expr`` matches, in UTC."""
    _check_aware(now)
    found = croniter(expr, now.astimezone(tz) + _EPSILON).get_prev(datetime)
    return found.astimezone(timezone.utc)


def next_run(schedule: RunSchedule, now: datetime) -> datetime:
    """Return when a one-shot job runs next after ``now``."""
    return next_fire(schedule.run, now, schedule.tz)


def window_is_open(window: WindowSchedule, now: datetime) -> bool:
    """Return whether ``now`` falls inside the window: the last start came after the last stop.

    A start and a stop at the same instant leave the window closed.
    """
    return last_fire(window.start, now, window.tz) > last_fire(window.stop, now, window.tz)


def window_close(window: WindowSchedule, now: datetime) -> datetime:
    """Return when a window open at ``now`` closes (the next stop match)."""
    return next_fire(window.stop, now, window.tz)


def window_open(window: WindowSchedule, now: datetime) -> datetime:
    """Return when the window next opens after ``now`` (the next start match)."""
    return next_fire(window.start, now, window.tz)


def next_change(schedule: Schedule, now: datetime) -> datetime:
    """Return the next instant at which the schedule asks the supervisor to act."""
    if isinstance(schedule, RunSchedule):
        return next_run(schedule, now)
    if window_is_open(schedule, now):
        return window_close(schedule, now)
    return window_open(schedule, now)


def seconds_until(target: datetime, now: datetime) -> float:
    """Return how long from ``now`` to ``target`` in seconds, never negative."""
    return max(0.0, (target - now).total_seconds())
