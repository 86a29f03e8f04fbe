"""IB's request arithmetic, shared by tws-sim, the IB download source and the history cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trader.brokers.ib.durations import (
    BAR_SECONDS,
    MAX_DURATION,
    duration_seconds,
    duration_text,
    end_text,
    request_range,
)


def test_durations_read_and_write_back() -> None:
    assert duration_seconds(" 2 d ") == 172_800 and duration_seconds("1 Y") == 365 * 86_400
    assert duration_text(3600, 60) == "3600 S" and duration_text(86_400, 60) == "86400 S"
    assert duration_text(86_401, 60) == "2 D" and duration_text(3600, 86_400) == "1 D"
    assert duration_text(0.2, 1) == "1 S"
    with pytest.raises(ValueError, match="invalid duration"):
        duration_seconds("3 Q")


def test_a_request_s_range_and_end_text_round_trip() -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    lo, hi = request_range("20261120 10:00:00 US/Eastern", "1 D", now)
    assert (lo, hi) == (datetime(2026, 11, 19, 15, tzinfo=UTC), datetime(2026, 11, 20, 15, tzinfo=UTC))
    assert request_range(end_text(hi), "3600 S", now) == (datetime(2026, 11, 20, 14, tzinfo=UTC), hi)
    assert request_range("", "1 W", now) == (datetime(2026, 11, 14, tzinfo=UTC), now)
    with pytest.raises(ValueError, match="invalid end"):
        request_range("20261120 10:00:00 Mars/Olympus", "1 D", now)


def test_every_bar_size_ib_names_has_its_longest_request() -> None:
    assert {s for s in BAR_SECONDS.values() if s <= 86_400} <= set(MAX_DURATION)
