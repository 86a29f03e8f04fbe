"""Schedule math: pure functions of ``now``, no clock read anywhere."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from pycron.schedule import (
    RunSchedule,
    WindowSchedule,
    is_valid,
    last_fire,
    next_change,
    next_fire,
    next_run,
    parse_timezone,
    seconds_until,
    window_close,
    window_is_open,
    window_open,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


def at(*args: int, tz=UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_next_fire_is_strictly_after_now() -> None:
    assert next_fire("0 2 * * *", at(2024, 1, 1, 1, 59, 59), UTC) == at(2024, 1, 1, 2, 0)
    assert next_fire("0 2 * * *", at(2024, 1, 1, 2, 0), UTC) == at(2024, 1, 2, 2, 0)


def test_last_fire_includes_now() -> None:
    assert last_fire("0 2 * * *", at(2024, 1, 1, 2, 0), UTC) == at(2024, 1, 1, 2, 0)
    assert last_fire("0 2 * * *", at(2024, 1, 1, 1, 59), UTC) == at(2023, 12, 31, 2, 0)


def test_sixth_field_is_seconds() -> None:
    assert next_fire("* * * * * */5", at(2024, 1, 1, 0, 0, 1), UTC) == at(2024, 1, 1, 0, 0, 5)
    assert is_valid("* * * * * */5") and is_valid("@daily")
    assert not is_valid("61 * * * *") and not is_valid("") and not is_valid("every day")


def test_times_are_read_in_the_schedule_zone_and_returned_in_utc() -> None:
    nightly = RunSchedule("0 2 * * *", NY)
    # 2 am New York in winter is 7 am UTC, in summer 6 am UTC.
    assert next_run(nightly, at(2024, 1, 15, 12, 0)) == at(2024, 1, 16, 7, 0)
    assert next_run(nightly, at(2024, 7, 15, 12, 0)) == at(2024, 7, 16, 6, 0)
    assert next_run(nightly, at(2024, 1, 15, 12, 0)).tzinfo == UTC


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("* * * * *", datetime(2024, 1, 1), UTC)


def test_day_window() -> None:
    session = WindowSchedule("30 9 * * 1-5", "0 16 * * 1-5", NY)
    monday_open = at(2024, 1, 8, 10, 0, tz=NY)
    assert window_is_open(session, monday_open)
    assert window_close(session, monday_open) == at(2024, 1, 8, 16, 0, tz=NY)
    assert next_change(session, monday_open) == at(2024, 1, 8, 16, 0, tz=NY)
    before = at(2024, 1, 8, 9, 29, tz=NY)
    assert not window_is_open(session, before)
    assert window_open(session, before) == at(2024, 1, 8, 9, 30, tz=NY)
    # The instant of opening is inside, the instant of closing outside.
    assert window_is_open(session, at(2024, 1, 8, 9, 30, tz=NY))
    assert not window_is_open(session, at(2024, 1, 8, 16, 0, tz=NY))
    # Friday evening: the next opening is Monday.
    friday_evening = at(2024, 1, 12, 18, 0, tz=NY)
    assert not window_is_open(session, friday_evening)
    assert next_change(session, friday_evening) == at(2024, 1, 15, 9, 30, tz=NY)


def test_overnight_window_spans_midnight() -> None:
    night = WindowSchedule("0 22 * * *", "0 6 * * *", UTC)
    assert window_is_open(night, at(2024, 1, 1, 23, 0))
    assert window_is_open(night, at(2024, 1, 2, 5, 59))
    assert not window_is_open(night, at(2024, 1, 2, 12, 0))
    assert window_close(night, at(2024, 1, 1, 23, 0)) == at(2024, 1, 2, 6, 0)


def test_next_change_of_a_run_schedule_is_its_next_run() -> None:
    every_minute = RunSchedule("* * * * *", UTC)
    assert next_change(every_minute, at(2024, 1, 1, 0, 0, 30)) == at(2024, 1, 1, 0, 1)


def test_seconds_until_never_negative() -> None:
    now = at(2024, 1, 1)
    assert seconds_until(now + timedelta(seconds=2.5), now) == 2.5
    assert seconds_until(now - timedelta(seconds=1), now) == 0.0


def test_parse_timezone() -> None:
    assert parse_timezone("UTC") is UTC
    assert parse_timezone("America/New_York") == NY
    assert parse_timezone(None) is not None
    with pytest.raises(ZoneInfoNotFoundError):
        parse_timezone("Mars/Olympus")
