"""Metrics benchmark: compute() on a long minute-bar backtest, and the sweep objectives column-wise vs a loop.

Run: ``.venv/bin/python -m bench.research_metrics`` (``--quick`` for a smoke
run); ``bench.research`` calls :func:`run`. No target of the issue is the
metrics', so it prints its figures for the record:

- ``metrics_compute_s``: :func:`trader.backtest.metrics.compute` of a result
  of ``bars`` one-minute bars (US sessions) with one trade per 200 bars;
- ``sharpe_objective_s_per_mbar`` and ``calmar_objective_s_per_mbar``: the
  seconds ``OBJECTIVES["sharpe"]`` and ``["calmar"]`` take per million
  bar-columns, scoring ``combos`` columns of ``bars / 10`` bars at once (a
  sweep's chunk);
- ``sharpe_objective_vs_loop`` and ``calmar_objective_vs_loop``: the same
  objectives called once per column in a Python loop, over the time of one
  call on those columns (what scoring the matrix at once saves).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from trader.backtest import metrics
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings

SESSION = 390  # one-minute bars of a US regular session


def minute_index(bars: int) -> pd.DatetimeIndex:
    """Return ``bars`` one-minute bar starts over consecutive US sessions (14:30-21:00 UTC on weekdays)."""
    days = pd.bdate_range("2015-01-02", periods=bars // SESSION + 1, tz="UTC")
    minutes = (np.arange(SESSION) * 60 + 14 * 3600 + 1800) * 1_000_000_000
    stamps = (days.asi8[:, None] + minutes[None, :]).ravel()[:bars]
    return pd.DatetimeIndex(stamps).tz_localize("UTC")


def backtest_of(bars: int, seed: int = 0) -> BacktestResult:
    """Return a hand-made result: a random equity over ``bars`` minutes, a trade every 200 bars, a benchmark."""
    rng = np.random.default_rng(seed)
    index = minute_index(bars)
    equity = pd.Series(1e5 * np.cumprod(1 + 0.0002 * rng.standard_normal(bars)), index=index)
    count = bars // 200
    entries, exits = index[: count * 200 : 200], index[100 : count * 200 : 200]
    trades = pd.DataFrame({
        "instrument": "AAPL", "direction": "long", "entry_time": entries, "exit_time": exits,
        "quantity": 100.0, "entry_price": 100.0, "exit_price": 101.0, "pnl": rng.normal(5, 50, count),
        "return": rng.normal(0, 0.01, count), "commission": 1.0, "bars": 100,
    }, columns=list(TRADE_COLUMNS))
    orders = pd.DataFrame({
        "time": index[: 2 * count * 100 : 100], "fill_time": index[1 : 2 * count * 100 : 100], "instrument": "AAPL",
        "side": "BUY", "quantity": 100.0, "price": 100.5, "commission": 1.0, "reason": "signal",
    }, columns=list(ORDER_COLUMNS))
    positions = pd.DataFrame({"AAPL": np.where(np.arange(bars) % 200 < 100, 100.0, 0.0)}, index=index)
    prices = pd.DataFrame({"open": equity, "high": equity, "low": equity, "close": equity, "volume": 1.0})
    return BacktestResult("bench", {}, BacktestSettings(), "1m", {"AAPL": prices}, positions * 0.0, equity,
                          positions, orders, trades, benchmark=equity * 1.01)


def _timed(job: Callable[[], object]) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def run(bars: int = 1_000_000, combos: int = 100, loop_columns: int = 100) -> dict[str, float]:
    """Return the metrics' timings (see the module): best of three for the one-call figures."""
    result = backtest_of(bars)
    compute_s = min(_timed(lambda: metrics.compute(result)) for _ in range(3))
    rows = max(bars // 10, SESSION * 2)
    rng = np.random.default_rng(1)
    equity = pd.DataFrame(1e5 * np.cumprod(1 + 0.0002 * rng.standard_normal((rows, combos)), axis=0),
                          index=minute_index(rows))
    out = {"metrics_compute_s": compute_s}
    subset = equity.iloc[:, :loop_columns]
    for name in ("sharpe", "calmar"):
        objective = metrics.OBJECTIVES[name]
        together = min(_timed(partial(objective, equity, "1m")) for _ in range(3))
        at_once = min(_timed(partial(objective, subset, "1m")) for _ in range(3))
        looped = _timed(partial(_per_column, objective, subset))
        out[f"{name}_objective_s_per_mbar"] = together / (rows * combos / 1e6)
        out[f"{name}_objective_vs_loop"] = looped / at_once
    return out


def _per_column(objective: metrics.Objective, frame: pd.DataFrame) -> list[pd.Series]:
    """Return ``objective`` of each column of ``frame`` alone (the loop a matrix pass saves)."""
    return [objective(frame[[c]], "1m") for c in frame.columns]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="bench.research_metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50k bars, 20 combos")
    args = parser.parse_args(argv)
    figures = run(50_000, 20, 20) if args.quick else run()
    for name, value in figures.items():
        print(f"{name}: {value:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
