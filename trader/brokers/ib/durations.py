"""IB's historical request arithmetic: durations, end times and the longest request per bar size.

One place for what the simulator, the IB download source and trader_service's
history cache all need: reading an IB ``durationStr`` (``"2 D"``, ``"1800 S"``)
and ``endDateTime`` (``"20261120 10:00:00 US/Eastern"``, ``"20261120-15:00:00"``
in UTC, ``"20261120"``), writing them back, and IB's "step sizes" table
(:data:`MAX_DURATION`): the longest duration IB serves for each bar size.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["BAR_SECONDS", "DAY", "DURATION_UNITS", "MAX_DURATION", "duration_seconds", "duration_text", "end_text", "end_time",
           "request_range"]

DAY = 86_400
#: The seconds of each IB duration unit (IB counts a month as 30 days, a year as 365).
DURATION_UNITS = {"S": 1, "D": DAY, "W": 7 * DAY, "M": 30 * DAY, "Y": 365 * DAY}
#: IB's longest request per bar size, in seconds (its "step sizes" table: 1800 S for 1 sec, 1 D for 1 min,
#: 1 W for 3 to 20 mins, 1 M for 30 mins to 8 hours, 1 Y for a day).
MAX_DURATION: dict[int, int] = {
    1: 1800, 5: 3600, 10: 14400, 15: 14400, 30: 28800,
    60: DAY, 120: 2 * DAY,
    **{m * 60: 7 * DAY for m in (3, 5, 10, 15, 20)},
    **{s: 30 * DAY for s in (1800, 3600, 7200, 10800, 14400, 28800)},
    DAY: 365 * DAY,
}
#: IB's bar size texts (``barSizeSetting``) and their seconds (a month counted as 31 days).
BAR_SECONDS: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30,
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900,
    "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800,
    "4 hours": 14400, "8 hours": 28800, "1 day": DAY, "1 week": 7 * DAY, "1 month": 31 * DAY,
}
_DURATION = re.compile(r"\s*(\d+)\s*([SDWMY])\s*")


def duration_seconds(text: str) -> int:
    """Return the seconds of an IB duration such as ``"2 D"`` or ``"1 Y"``; ValueError if unreadable."""
    match = _DURATION.fullmatch(text.upper())
    if not match:
        raise ValueError(f"invalid duration {text!r}")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def duration_text(seconds: float, bar_seconds: int = 0) -> str:
    """Return the IB duration of at least ``seconds``: in seconds up to a day for intraday bars, else whole days.

    IB takes "S" only up to a day (and not for daily bars); days are rounded up
    (what the request brings early is the caller's to drop). Intraday seconds
    are rounded up to whole bars of ``bar_seconds``: a request ending mid-bar
    (a download "up to now") then reaches back to its window's first bar,
    which a server counting whole bars back from the end rounded up to a bar
    (tws-sim does) would otherwise leave out.
    """
    whole = max(1, math.ceil(seconds))
    if 0 < bar_seconds < DAY:
        whole = math.ceil(whole / bar_seconds) * bar_seconds
    if whole <= DAY and bar_seconds < DAY:
        return f"{whole} S"
    return f"{math.ceil(whole / DAY)} D"


def end_time(text: str, now: datetime) -> datetime:
    """Return an IB ``endDateTime`` as an aware UTC datetime (empty: ``now``); ValueError if unreadable.

    Accepts ``YYYYMMDD HH:MM:SS [zone]``, ``YYYYMMDD-HH:MM:SS`` (UTC) and
    ``YYYYMMDD`` (the end of that UTC day).
    """
    text = text.strip()
    if not text:
        return now
    try:
        if len(text) == 8:
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
        if "-" in text[:9]:
            return datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        parts = text.split(" ", 2)
        when = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
        zone = parts[2].strip() if len(parts) > 2 else ""
        return when.replace(tzinfo=ZoneInfo(zone) if zone else UTC).astimezone(UTC)
    except (ValueError, IndexError, ZoneInfoNotFoundError):
        raise ValueError(f"invalid end date/time {text!r}") from None


def end_text(when: datetime) -> str:
    """Return ``when`` as the ``endDateTime`` IB reads as UTC (``yyyymmdd-HH:MM:SS``)."""
    return when.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S")


def request_range(end: str, duration: str, now: datetime) -> tuple[datetime, datetime]:
    """Return the UTC range ``[start, end)`` an ``endDateTime`` and ``durationStr`` cover; ValueError if unreadable."""
    hi = end_time(end, now)
    return hi - timedelta(seconds=duration_seconds(duration)), hi
