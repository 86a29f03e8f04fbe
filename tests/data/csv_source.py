"""A small real Source for the history_service tests: one CSV of many instruments' bars, served in windows.

The CSV has the columns ``key,time,open,high,low,close,volume`` (``time``
ISO, UTC). ``windows`` reads the file afresh at each call (so a file fixed
between a job and its retry is seen), splits ``[start, end)`` into windows of
``window`` (a pandas offset, aligned to ``start``) and yields each one's bars
after ``delay`` seconds, as a slow remote source would answer. A key not in
the file is a SourceError naming it. The service loads it through
``history.sources`` (``TRADER_HISTORY__SOURCES__CSV=tests.data.csv_source:CsvSource``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.data.sources.base import Window
from trader.errors import SourceError

COLUMNS = ["open", "high", "low", "close", "volume"]


class CsvSource:
    """Bars of several instruments from one CSV file (see the module docstring)."""

    name = "csv"

    def __init__(self, _settings: Any, path: str, delay: float = 0.0, window: str = "1h") -> None:
        self.path = Path(path)
        self.delay = float(delay)
        self.step = pd.Timedelta(window)

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp, end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield the windows of ``[start, end)``, each ``self.step`` long (the last one shorter)."""
        frame = pd.read_csv(self.path, parse_dates=["time"])
        bars = frame[frame["key"] == key]
        if bars.empty:
            raise SourceError.of(key, f"not in {self.path.name}")
        bars = bars.set_index(pd.DatetimeIndex(bars["time"], tz="UTC").rename("time"))[COLUMNS]
        lo = start
        while lo < end:
            hi = min(lo + self.step, end)
            await asyncio.sleep(self.delay)
            yield Window(lo, hi, bars[(bars.index >= lo) & (bars.index < hi)])
            lo = hi

    async def close(self) -> None:
        """Nothing to release."""


def write_csv(path: Path, keys: list[str], start: str, minutes: int, *, seed: int = 7) -> pd.DataFrame:
    """Write a CSV of ``minutes`` one-minute bars per key from ``start`` (a seeded random walk); return it."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=minutes, freq="1min", tz="UTC")
    parts = []
    for n, key in enumerate(keys):
        close = 100.0 + 10 * n + np.cumsum(rng.normal(0, 0.1, minutes))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) + 0.05
        low = np.minimum(open_, close) - 0.05
        parts.append(pd.DataFrame({"key": key, "time": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": open_,
                                   "high": high, "low": low, "close": close,
                                   "volume": rng.integers(1, 1000, minutes).astype(float)}))
    frame = pd.concat(parts, ignore_index=True)
    frame.to_csv(path, index=False)
    return frame
