"""What a window write checks before it touches the store: a bad frame is refused, an empty window writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore
from trader.data.frames import check_bars
from trader.errors import ValidationError

KEY = "AAPL.STK"
HOUR = pd.Timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> ArcticStore:
    return ArcticStore(f"lmdb://{tmp_path / 'arctic'}")


def test_an_empty_window_writes_nothing_and_keeps_the_stored_bars_with_a_warning(
        store: ArcticStore, caplog: pytest.LogCaptureFixture) -> None:
    """An empty answer may be transient ("HMDS query returned no data"): it never erases good bars."""
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    before = store.read_bars(KEY, "1m")
    with caplog.at_level("WARNING", logger="trader.data.arctic"):
        assert store.write_bars(KEY, "1m", bars(T0, 0), start=T0, end=T0 + 20 * MIN) == 0
    pd.testing.assert_frame_equal(store.read_bars(KEY, "1m"), before)
    assert [r.getMessage() for r in caplog.records] == [
        (f"{KEY}: the 1m window 2026-03-02T14:30:00+00:00 .. 2026-03-02T14:50:00+00:00 came empty; "
        "its 20 stored bars are kept")]
    caplog.clear()
    with caplog.at_level("WARNING", logger="trader.data.arctic"):  # nothing stored there: nothing to say
        store.write_bars(KEY, "1m", bars(T0, 0), start=T0 + 2 * HOUR, end=T0 + 3 * HOUR)
        store.write_bars("MSFT.STK", "1m", bars(T0, 0), start=T0, end=T0 + HOUR)
    assert not caplog.records
    assert "MSFT.STK" not in store.bar_symbols()["1m"]  # an empty first window creates no symbol


@pytest.mark.parametrize("frame, start, end, words", [
    (bars(T0 - MIN, 5), T0, T0 + HOUR, "before the window's start"),
    (bars(T0 + 58 * MIN, 5), T0, T0 + HOUR, "not before the window's end"),
])
def test_bars_outside_the_window_are_refused_and_nothing_is_written(
        store: ArcticStore, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, words: str) -> None:
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + HOUR)
    before = store.read_bars(KEY, "1m")
    with pytest.raises(ValidationError, match=words) as caught:
        store.write_bars(KEY, "1m", frame, start=start, end=end)
    assert KEY in str(caught.value)
    pd.testing.assert_frame_equal(store.read_bars(KEY, "1m"), before)


def test_high_below_low_is_refused_naming_the_instrument(store: ArcticStore) -> None:
    frame = bars(T0, 10)
    frame.iloc[4, frame.columns.get_loc("high")] = frame["low"].iloc[4] - 1
    with pytest.raises(ValidationError, match=r"ES\.FUT\.202612: the bar at 2026-03-02T14:34:00\+00:00 has high < low"):
        store.write_bars("ES.FUT.202612", "1m", frame, start=T0, end=T0 + HOUR)
    assert not store.bar_symbols().get("1m")  # nothing written


@pytest.mark.parametrize("change, words", [
    (lambda f: f.drop(columns="volume"), "lack the column volume"),
    (lambda f: f.iloc[[1, 0, 2]], "not in time order"),
    (lambda f: f.iloc[[0, 1, 1]], "duplicated bar"),
    (lambda f: f.assign(open=-1.0), "non-positive price"),
    (lambda f: f.assign(volume=-1.0), "negative or missing volume"),
])
def test_bad_frames_are_refused(store: ArcticStore, change: Callable[[pd.DataFrame], pd.DataFrame],
                                words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        store.write_bars(KEY, "1m", change(bars(T0, 3)), start=T0, end=T0 + HOUR)
    assert not store.bar_symbols().get("1m")


def test_check_bars_costs_little_beside_a_write(store: ArcticStore) -> None:
    import time

    frame = bars(T0, 100_000)
    end = T0 + 100_000 * MIN
    check_bars(frame, KEY, T0, end)
    t0 = time.perf_counter()
    for _ in range(5):
        check_bars(frame, KEY, T0, end)
    check = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    store.write_bars(KEY, "1m", frame, start=T0, end=end)
    write = time.perf_counter() - t0
    assert check < 0.35 * write, (check, write)  # ~20% on a quiet machine; slack for a shared one
