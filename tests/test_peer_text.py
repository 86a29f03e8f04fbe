"""What is logged about peers' input: quoted clipped, repeated lines throttled with a count."""

from __future__ import annotations

import logging

import pytest

from trader.peer_text import CLIP, LogThrottle, clip, cut


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_clip_quotes_a_repr_and_says_how_much_is_cut() -> None:
    assert clip("short") == "'short'"
    assert clip(12) == "12"
    long = clip("x" * 500, 20)
    assert long.startswith("'xxxx") and long.endswith("...+480 chars") and len(long) < 40
    assert len(clip(b"\x00" * 50)) <= CLIP + len("...+9999 chars")


def test_clip_escapes_what_could_forge_a_log_line() -> None:
    assert "\n" not in clip("evil\n2026-01-01 CRITICAL forged") and "\\n" in clip("evil\nx")
    assert "\r" not in clip(b"\r\x1b[2J")


def test_clip_of_a_huge_value_does_not_format_it_whole() -> None:
    text = clip("y" * 50_000_000)
    assert len(text) < 2 * CLIP and text.endswith(f"...+{50_000_000 - CLIP} chars")


def test_cut_keeps_short_text_and_counts_the_rest() -> None:
    assert cut("fine") == "fine"
    assert cut("z" * 1000, 10) == "zzzzzzzzzz...+990 chars"
    assert len(cut("z" * 10_000)) < 4 * CLIP + 20


def test_a_burst_goes_through_then_the_rest_are_counted() -> None:
    clock = Clock()
    throttle = LogThrottle(burst=3, interval=10.0, clock=clock)
    assert [throttle.allow("k") for _ in range(5)] == [0, 0, 0, None, None]
    assert throttle.allow("other") == 0
    clock.now = 9.9
    assert throttle.allow("k") is None
    clock.now = 10.0
    assert throttle.allow("k") == 3  # the next line says three were dropped
    assert throttle.allow("k") == 0
    assert throttle.suppressed == 3


def test_one_line_per_interval_and_the_next_says_how_many_were_suppressed(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("trader.test.peer"), interval=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="trader.test.peer"):
        assert throttle.log(logging.WARNING, "bad", "bad frame from %s", "peer-1")
        assert not throttle.log(logging.WARNING, "bad", "bad frame from %s", "peer-2")
        assert not throttle.log(logging.WARNING, "bad", "bad frame from %s", "peer-3")
        assert throttle.log(logging.INFO, "idle", "idle peer")  # another kind: its own budget
        clock.now = 6.0
        assert throttle.log(logging.WARNING, "bad", "bad frame from %s", "peer-4")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad frame from peer-1", "idle peer",
                     "bad frame from peer-4 (2 more like this suppressed in the last 6s)"]
    assert throttle.suppressed == 2


def test_a_flood_of_one_kind_writes_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("trader.test.peer"), burst=5, interval=60.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="trader.test.peer"):
        for n in range(10_000):
            clock.now = n * 0.006  # 10,000 lines in a minute
            throttle.log(logging.WARNING, "refused", "refused %s", clip("x" * 10_000))
    assert len(caplog.records) == 5 and throttle.suppressed == 9_995
    assert sum(len(r.getMessage()) for r in caplog.records) < 5 * 2 * CLIP


def test_exc_info_goes_with_the_line(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LogThrottle(logging.getLogger("trader.test.peer"))
    with caplog.at_level(logging.ERROR, logger="trader.test.peer"):
        throttle.log(logging.ERROR, "boom", "failed", exc_info=ValueError("inner"))
    assert caplog.records[0].exc_info is not None and "ValueError: inner" in caplog.text


def test_reset_lets_every_kind_through_again() -> None:
    throttle = LogThrottle(burst=1, interval=3600.0)
    assert throttle.allow("k") == 0 and throttle.allow("k") is None
    throttle.reset()
    assert throttle.suppressed == 0 and throttle.allow("k") == 0


def test_the_kinds_remembered_are_bounded() -> None:
    throttle = LogThrottle(interval=3600.0, max_keys=4)
    for n in range(100):
        assert throttle.allow(f"k{n}") == 0
    assert len(throttle._windows) <= 4


def test_log_without_a_logger_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="logger"):
        LogThrottle().log(logging.INFO, "k", "line")
