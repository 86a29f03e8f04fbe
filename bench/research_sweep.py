"""Sweep benchmark: a 100-combination ma_crossover grid over 1M one-minute bars, chunked on Dask vs raw vectorbt.

Run: ``.venv/bin/python -m bench.research_sweep [--bars N] [--combos C]`` (default 1M bars, 100 combos).

Three child processes, each watched by this one (psutil, every 50 ms: the
resident memory of the child and all its descendants, summed; the peak of
that sum is the run's peak):

- our sweep on a LocalCluster of 2 workers (``trader.backtest.sweep.run``,
  grid of ``fast`` x ``slow``, objective Sharpe, the default memory budget):
  its peak memory is ``sweep_peak_gb`` (the client, the scheduler and both
  workers, cluster start included);
- the same sweep on 1 worker;
- the same grid in raw vectorbt at once: the plugin's own signals for every
  combination into one bars x combinations target matrix, its changes as
  amount orders at the next bar's open (vectorbt's slippage, IB's stock
  commission in numpy), one ``Portfolio.from_orders`` call, the equity and
  the headline metrics of every column (written lean: the orders overwrite
  the targets in place).

Times are of the work itself, each side warmed up first (imports, numba
compiled; the cluster started and its workers warm): ``sweep_vs_vectorbt`` is
the 2-worker sweep's time over raw vectorbt's, ``dask_speedup`` the 1-worker
time over the 2-worker one. The cold times (cluster start included) and the
workers' CPU time are printed too: on a machine busy with other work, two
workers get less than two cores, and the CPU share says how much. Prints the target lines ``sweep_peak_gb``, ``sweep_vs_vectorbt``
and ``dask_speedup``, and raw vectorbt's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARES = 100
CASH = 10_000_000
SLIPPAGE = 0.0005
GB = 1024**3


def make_bars(n: int, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` one-minute bars of a seeded random walk on a cent grid."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0005, n))), 2)
    open_ = np.round(np.concatenate(([100.0], close[:-1])) * (1 + rng.normal(0, 0.0001, n)), 2)
    high = np.round(np.maximum(open_, close) * 1.0002, 2)
    low = np.round(np.minimum(open_, close) * 0.9998, 2)
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 100.0}, index=index)


def grid_specs(combos: int) -> list[str]:
    """Return ``--param`` specs of a fast x slow grid of ``combos`` combinations, every one valid."""
    n_fast = min(10, combos)
    n_slow = max(1, combos // n_fast)
    return [f"fast=2:{1 + n_fast}", f"slow=20:{20 + 5 * (n_slow - 1)}:5"]


def _strategy() -> Any:
    from trader.strategy.base import StrategyConfig
    from trader.strategy.plugins import load_plugin

    cls = type(load_plugin(ROOT / "strategies" / "ma_crossover.py").strategy)
    return cls(StrategyConfig(sizing={"kind": "quantity", "value": SHARES}, bar_size="1m",
                              params={"fast": 3, "slow": 8, "allow_short": True},
                              backtest={"initial_cash": CASH, "slippage": str(SLIPPAGE)}))


def _sweep_child(bars: int, combos: int, workers: int) -> dict[str, float]:
    from trader.backtest import sweep
    from trader.backtest.cluster import connect
    from trader.backtest.params import parse_space

    began = time.perf_counter()
    strategy = _strategy()
    data = {"AAPL": make_bars(bars)}
    space = parse_space(grid_specs(combos), strategy.Params, strategy.config.params)
    with connect(workers=workers) as client:
        warm = parse_space(["fast=2:5"], strategy.Params, strategy.config.params)
        sweep.run(strategy, {"AAPL": make_bars(2_000)}, warm, client=client, memory_mb=0.01, progress=False,
                  store=False)  # every worker imports and runs once
        cpu = sum(client.run(_cpu_seconds).values())
        started = time.perf_counter()
        result = sweep.run(strategy, data, space, client=client, progress=False, store=False)
        elapsed = time.perf_counter() - started
        cpu = sum(client.run(_cpu_seconds).values()) - cpu
    assert len(result.table) == combos and result.table["objective"].notna().all(), "the sweep is incomplete"
    return {"seconds": elapsed, "cold_seconds": time.perf_counter() - began, "chunks": float(result.chunks),
            "worker_cpu_seconds": cpu}


def _cpu_seconds() -> float:
    """Return this process's CPU time (user + system), run on each worker."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _vectorbt_child(bars: int, combos: int) -> dict[str, float]:
    import vectorbt as vbt

    from trader.backtest.metrics import headline
    from trader.backtest.params import parse_space
    from trader.domain.commission import CommissionConfig

    strategy = _strategy()
    data = make_bars(bars)
    space = parse_space(grid_specs(combos), strategy.Params, strategy.config.params)
    grid = list(space.grid())
    schedule = CommissionConfig()

    def job(frame: pd.DataFrame, combinations: list[dict[str, Any]]) -> pd.DataFrame:
        cls = type(strategy)
        size = np.empty((len(frame), len(combinations)))  # the targets, then in place the orders
        for column, combo in enumerate(combinations):
            config = strategy.config.model_copy(update={"params": {**strategy.config.params, **combo}})
            size[:, column] = cls(config).signals(frame).to_numpy(np.float64) * SHARES
        size[1:] = np.diff(size, axis=0)  # the change of target at t ...
        size[1:] = size[:-1].copy()  # ... filled at t+1's open
        size[0] = np.nan
        size[size == 0] = np.nan
        opens = frame["open"].to_numpy()[:, None]
        shares = np.abs(np.nan_to_num(size))
        fee = np.maximum(shares * float(schedule.stock_per_share), float(schedule.stock_min))
        fee = np.minimum(fee, shares * opens * (1 + np.sign(np.nan_to_num(size)) * SLIPPAGE)
                         * float(schedule.stock_max_percent) / 100)
        del shares
        fee[np.isnan(size)] = 0.0
        np.round(fee, 2, out=fee)
        portfolio = vbt.Portfolio.from_orders(close=frame["close"].to_numpy()[:, None], size=size,
                                              size_type="amount", direction="both", price=opens,
                                              slippage=SLIPPAGE, fixed_fees=fee, init_cash=CASH)
        del size, fee
        equity = pd.DataFrame(np.asarray(portfolio.value()).reshape(len(frame), -1), index=frame.index)
        return headline(equity, "1m")

    job(make_bars(2_000), grid[:2])  # imports and numba compiled
    started = time.perf_counter()
    table = job(data, grid)
    elapsed = time.perf_counter() - started
    assert len(table) == combos
    return {"seconds": elapsed}


def _watch(args: list[str]) -> tuple[dict[str, float], float]:
    """Run ``python -m bench.research_sweep ARGS``; return its figures and the peak RSS of its process tree (bytes)."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-m", "bench.research_sweep", *args], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        total = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.05)
    output = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise RuntimeError(f"bench child {args} exited {child.returncode}")
    return json.loads(output.strip().splitlines()[-1]), float(peak)


def run(bars: int = 1_000_000, combos: int = 100, quick: bool = False) -> dict[str, float]:
    """Measure the sweep against raw vectorbt; print and return the figures (``quick``: 100k bars, 20 combos)."""
    if quick:
        bars, combos = min(bars, 100_000), min(combos, 20)
    size = ["--bars", str(bars), "--combos", str(combos)]
    two, two_peak = _watch(["--child", "sweep", "--workers", "2", *size])
    one, _ = _watch(["--child", "sweep", "--workers", "1", *size])
    raw, raw_peak = _watch(["--child", "vectorbt", *size])
    figures = {
        "sweep_peak_gb": two_peak / GB, "vectorbt_peak_gb": raw_peak / GB,
        "sweep_2w_s": two["seconds"], "sweep_1w_s": one["seconds"], "vectorbt_s": raw["seconds"],
        "sweep_2w_cold_s": two["cold_seconds"], "sweep_chunks": two["chunks"],
        "sweep_2w_worker_cpu_s": two["worker_cpu_seconds"], "sweep_1w_worker_cpu_s": one["worker_cpu_seconds"],
        # the share of two cores the two workers got: well under 1 on a machine busy with other work
        "sweep_2w_cpu_share": two["worker_cpu_seconds"] / (2 * two["seconds"]),
        "sweep_vs_vectorbt": two["seconds"] / raw["seconds"], "dask_speedup": one["seconds"] / two["seconds"],
    }
    print(f"{combos} combinations over {bars:,} bars: sweep {two['seconds']:.1f} s on 2 workers "
          f"({one['seconds']:.1f} s on 1; {two['cold_seconds']:.1f} s cold), raw vectorbt {raw['seconds']:.1f} s")
    print(f"workers' CPU: {two['worker_cpu_seconds']:.1f} s on 2 ({figures['sweep_2w_cpu_share']:.0%} of two "
          f"cores), {one['worker_cpu_seconds']:.1f} s on 1")
    print(f"vectorbt_peak_gb: {figures['vectorbt_peak_gb']:.2f} (the whole grid at once)")
    print(f"sweep_peak_gb: {figures['sweep_peak_gb']:.2f} (target <= 3)")
    print(f"sweep_vs_vectorbt: {figures['sweep_vs_vectorbt']:.2f} (target <= 1.0)")
    print(f"dask_speedup: {figures['dask_speedup']:.2f} (target >= 1.5)")
    return figures


def main() -> None:
    """Parse the command line: the benchmark, or one of its child processes (``--child``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--combos", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="100k bars, 20 combinations")
    parser.add_argument("--child", choices=("sweep", "vectorbt"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "sweep":
        print(json.dumps(_sweep_child(args.bars, args.combos, args.workers)))
    elif args.child == "vectorbt":
        print(json.dumps(_vectorbt_child(args.bars, args.combos)))
    else:
        run(args.bars, args.combos, args.quick)


if __name__ == "__main__":
    main()
