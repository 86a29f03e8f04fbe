"""Monte Carlo benchmark: the numba bootstrap against the same bootstrap written in plain vectorized numpy.

Run: ``.venv/bin/python -m bench.research_mc`` (``bench.research`` runs it with the other research parts).

Both sides resample 10 years of daily returns (Student-t, seeded) into
10,000 paths of one year (252 days) and are timed in the same run,
alternating round by round so the machine's noise falls on both; the
compiled code is loaded and run once before timing (warm-up excluded) and
the best of ``rounds`` is kept. Two jobs are measured:

- ``bootstrap``: the resampled returns only, paths x days (numba
  :func:`~trader.backtest.bootstrap.resample` against numpy's
  ``Generator.integers`` and a fancy-index gather, blocks built as start +
  offsets modulo the series' length);
- ``full``: what :func:`trader.backtest.montecarlo.simulate` computes, the
  final equity and max drawdown of every path, the fan (5 quantiles of the
  equity on each of the 252 days) and the risk figures. numba runs the fused
  :func:`~trader.backtest.bootstrap.walk` (one day of all paths at a time,
  the day's quantiles read off while in cache, the paths never stored);
  numpy builds the paths matrix, ``cumprod``, ``maximum.accumulate`` and
  ``np.quantile(axis=0)``. Both then call the same ``risk_figures``.

``mc_vs_numpy`` is numpy's time over numba's for the full job of the
default method (``block``); the other ratios are printed beside it. Random
streams differ (numpy's PCG64 against a splitmix64 stream per path), so the
numbers differ path by path; the distributions are the same.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from trader.backtest import bootstrap
from trader.backtest.montecarlo import FAN_QUANTILES, risk_figures, walk_paths

PATHS, HORIZON, BLOCK, SEED = 10_000, 252, 5, 7


def _numpy_returns(returns: np.ndarray, paths: int, horizon: int, block: int, seed: int) -> np.ndarray:
    """Return paths x horizon resampled returns, plain numpy (block = 1: iid)."""
    rng = np.random.default_rng(seed)
    n = returns.size
    if block == 1:
        return returns[rng.integers(0, n, (paths, horizon))]
    starts = rng.integers(0, n, (paths, -(-horizon // block)))
    index = (starts[:, :, None] + np.arange(block)) % n
    return returns[index.reshape(paths, -1)[:, :horizon]]


def _numpy_full(returns: np.ndarray, paths: int, horizon: int, block: int, seed: int) -> dict[str, float]:
    """Return the risk figures of the full job in plain numpy: paths, drawdowns, final equity, the fan."""
    growth = 1.0 + _numpy_returns(returns, paths, horizon, block, seed)
    equity = np.empty((paths, horizon + 1))
    equity[:, 0] = 1.0
    np.cumprod(growth, axis=1, out=equity[:, 1:])
    drawdown = (1.0 - equity / np.maximum.accumulate(equity, axis=1)).max(axis=1)
    fan = np.quantile(equity, FAN_QUANTILES, axis=0)
    figures = risk_figures(equity[:, -1], drawdown)
    figures["fan_median_end"] = float(fan[2, -1])
    return figures


def _numba_full(returns: np.ndarray, paths: int, horizon: int, block: int, seed: int) -> dict[str, float]:
    """Return the same risk figures from the fused numba walk."""
    method = "iid" if block == 1 else "block"
    final, drawdown, fan = walk_paths(returns, paths, horizon, method=method, block=block, seed=seed)
    figures = risk_figures(final, drawdown)
    figures["fan_median_end"] = float(fan[-1, 2])
    return figures


def _best_pair(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Return the best time of each job over ``rounds``, run alternately after one untimed run of each."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for job, kept in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            job()
            kept.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def run(rounds: int = 7, paths: int = PATHS, horizon: int = HORIZON) -> dict[str, float]:
    """Time numba against numpy for ``paths`` one-year paths; return seconds and ratios, printed too."""
    returns = np.random.default_rng(1).standard_t(4, 2520) * 0.008 + 0.0003
    results: dict[str, float] = {}
    for method, block in (("iid", 1), ("block", BLOCK)):
        code = bootstrap.IID if block == 1 else bootstrap.BLOCK
        numpy_s, numba_s = _best_pair(lambda b=block: _numpy_returns(returns, paths, horizon, b, SEED),
                                      lambda c=code, b=block: bootstrap.resample(returns, paths, horizon, c, b, SEED),
                                      rounds)
        results[f"bootstrap_{method}_numpy_s"], results[f"bootstrap_{method}_numba_s"] = numpy_s, numba_s
        results[f"bootstrap_{method}_ratio"] = numpy_s / numba_s
        numpy_s, numba_s = _best_pair(lambda b=block: _numpy_full(returns, paths, horizon, b, SEED),
                                      lambda b=block: _numba_full(returns, paths, horizon, b, SEED), rounds)
        results[f"full_{method}_numpy_s"], results[f"full_{method}_numba_s"] = numpy_s, numba_s
        results[f"full_{method}_ratio"] = numpy_s / numba_s
        # the same distribution both ways (different streams): medians of the final equity within 1 %
        mine, theirs = (_numba_full(returns, paths, horizon, block, SEED),
                        _numpy_full(returns, paths, horizon, block, SEED))
        results[f"full_{method}_median_gap"] = abs(mine["median_return"] - theirs["median_return"])
    results["mc_vs_numpy"] = results["full_block_ratio"]
    for method in ("iid", "block"):
        for job in ("bootstrap", "full"):
            print(f"{job:>9} {method:<5} numpy {results[f'{job}_{method}_numpy_s'] * 1e3:7.1f} ms  "
                  f"numba {results[f'{job}_{method}_numba_s'] * 1e3:6.1f} ms  "
                  f"x{results[f'{job}_{method}_ratio']:.1f}")
    print(f"mc_vs_numpy: {results['mc_vs_numpy']:.1f} (target >= 10)")
    return results


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per side (best kept)")
    parser.add_argument("--quick", action="store_true", help="1,000 paths, 3 rounds: a smoke run")
    args = parser.parse_args()
    if args.quick:
        run(rounds=3, paths=1000)
    else:
        run(rounds=args.rounds)


if __name__ == "__main__":
    main()
