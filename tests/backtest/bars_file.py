"""A CSV of one instrument's bars for the research tests: a seeded random walk, times UTC, one bar a minute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def random_walk(rows: int, *, start: str = "2026-01-05", seed: int = 7, freq: str = "1min") -> pd.DataFrame:
    """Return ``rows`` bars (open high low close volume) of a seeded random walk around 100."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, rows)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.001, rows)) * close
    index = pd.date_range(start, periods=rows, freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": open_.round(4), "high": (np.maximum(open_, close) + spread).round(4),
                         "low": (np.minimum(open_, close) - spread).round(4), "close": close.round(4),
                         "volume": rng.integers(100, 10_000, rows).astype(float)}, index=index)


def write_bars(path: Path, rows: int, **kwargs: object) -> Path:
    """Write :func:`random_walk` bars to ``path`` (CSV, ISO times); return it."""
    random_walk(rows, **kwargs).to_csv(path)  # type: ignore[arg-type]
    return path
