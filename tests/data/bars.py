"""Bar frames for the data tests: deterministic, valid, one-minute by default."""

from __future__ import annotations

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2026-03-02 14:30", tz="UTC")
MIN = pd.Timedelta(minutes=1)


def bars(start: pd.Timestamp, count: int, *, step: pd.Timedelta = MIN, base: float = 100.0) -> pd.DataFrame:
    """Return ``count`` valid bars from ``start`` every ``step``; prices rise by 0.01 a bar from ``base``."""
    index = pd.date_range(start, periods=count, freq=step, tz="UTC", name="time")
    price = base + np.arange(count) * 0.01
    return pd.DataFrame({"open": price, "high": price + 0.05, "low": price - 0.05, "close": price + 0.01,
                         "volume": np.full(count, 10.0), "wap": price + 0.005,
                         "bar_count": np.full(count, 3, dtype="int64")}, index=index)
