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

Times are the process's CPU time (both sides run on one thread, so that is
their work even on a busy machine); the wall-time ratio is printed beside.
``mc_vs_numpy`` is numpy's CPU time over numba's for the full job of the
default method (``block``); the other ratios are printed beside it. Random
streams differ (numpy's PCG64 against a splitmix64 stream per path), so the
numbers differ path by path; the distributions are the same.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

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


def _best_pair(first: Callable[[], object], second: Callable[[], object],
               rounds: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the best (CPU, wall) seconds of each job over ``rounds``, alternating, after one untimed run of each.

    Both jobs run on one thread (numpy's cumprod, quantile and gather do not
    spread), so the process's CPU time is their work, whatever else the
    machine runs; the wall time is printed beside it.
    """
    first(), second()
    cpu: tuple[list[float], list[float]] = ([], [])
    wall: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for side, job in enumerate((first, second)):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            job()
            cpu[side].append(time.process_time() - cpu_start)
            wall[side].append(time.perf_counter() - wall_start)
    return (min(cpu[0]), min(wall[0])), (min(cpu[1]), min(wall[1]))


def run(rounds: int = 7, paths: int = PATHS, horizon: int = HORIZON) -> dict[str, float]:
    """Time numba against numpy for ``paths`` one-year paths; return seconds and ratios, printed too."""
    returns = np.random.default_rng(1).standard_t(4, 2520) * 0.008 + 0.0003
    results: dict[str, float] = {}
    for method, block in (("iid", 1), ("block", BLOCK)):
        code = bootstrap.IID if block == 1 else bootstrap.BLOCK
        jobs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "bootstrap": (partial(_numpy_returns, returns, paths, horizon, block, SEED),
                          partial(bootstrap.resample, returns, paths, horizon, code, block, SEED)),
            "full": (partial(_numpy_full, returns, paths, horizon, block, SEED),
                     partial(_numba_full, returns, paths, horizon, block, SEED)),
        }
        for job, (numpy_job, numba_job) in jobs.items():
            (numpy_cpu, numpy_wall), (numba_cpu, numba_wall) = _best_pair(numpy_job, numba_job, rounds)
            key = f"{job}_{method}"
            results.update({f"{key}_numpy_s": numpy_cpu, f"{key}_numba_s": numba_cpu,
                            f"{key}_ratio": numpy_cpu / numba_cpu, f"{key}_wall_ratio": numpy_wall / numba_wall})
            print(f"{job:>9} {method:<5} CPU: numpy {numpy_cpu * 1e3:6.1f} ms, numba {numba_cpu * 1e3:5.1f} ms, "
                  f"x{numpy_cpu / numba_cpu:.1f}; wall x{numpy_wall / numba_wall:.1f}")
        # the same distribution both ways (different streams): the medians of the final equity agree
        mine, theirs = (_numba_full(returns, paths, horizon, block, SEED),
                        _numpy_full(returns, paths, horizon, block, SEED))
        results[f"full_{method}_median_gap"] = abs(mine["median_return"] - theirs["median_return"])
    results["mc_vs_numpy"] = results["full_block_ratio"]
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
