"""Backtest benchmark: ``trader.backtest.engine.run`` of ma_crossover against the same job written in vectorbt.

Run: ``.venv/bin/python -m bench.research_backtest [--bars N]`` (default 1M).

The bars are a seeded random walk of one-minute bars on a cent grid. Both
sides run the plugin's own ``signals`` (strategies/ma_crossover.py with its
YAML's params: fast 3, slow 8, long and short) and size a target of 1 as 100
shares; both fill at the next bar's open with 5 bp of slippage and pay IB's
stock schedule (0.005 a share, $1 minimum, 1 % maximum, half-even cents).

- ours: ``engine.run(strategy, bars, settings)``: the signals checked as live
  checks them, the live sizing and commission made exact, the numba order
  kernel, one vectorbt ``from_orders`` call, and the result's frames (orders
  with Decimal columns, round trips, equity, positions);
- vectorbt direct: the targets' changes as amount orders shifted to the next
  bar, the commission in numpy, one ``from_orders`` call (numpy in: see
  :func:`direct`), the equity, the orders and the round trips with their
  bar times.

The two alternate, each side's best of ``--rounds`` is kept; the benchmark
asserts the two produced the same orders (bar, side, quantity, price, fee)
and the same round trips before it prints
``backtest_vs_vectorbt: X (target <= 1.2)`` (ours over vectorbt's time).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest import engine
from trader.backtest.settings import BacktestSettings
from trader.strategy.base import Strategy, StrategyConfig

ROOT = Path(__file__).resolve().parent.parent
SLIPPAGE = 0.0005
SHARES = 100
CASH = 10_000_000  # some 140k orders pay $1 each: the account must outlive its fees


def strategy() -> Strategy:
    """Return strategies/ma_crossover.py's strategy with its YAML's params, sized 100 shares a unit."""
    spec = importlib.util.spec_from_file_location("bench_ma_crossover", ROOT / "strategies" / "ma_crossover.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    config = StrategyConfig(sizing={"kind": "quantity", "value": SHARES},
                            params={"fast": 3, "slow": 8, "allow_short": True})
    return module.MaCrossover(config)


def make_bars(n: int, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` one-minute bars of a seeded random walk, prices on a cent grid."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0005, n))), 2)
    open_ = np.round(np.concatenate(([100.0], close[:-1])) * (1 + rng.normal(0, 0.0001, n)), 2)
    high = np.round(np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0002, n))), 2)
    low = np.round(np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0002, n))), 2)
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 100.0}, index=index)


def ours(strat: Strategy, bars: pd.DataFrame) -> Any:
    """Return the engine's backtest of ``strat`` on ``bars``."""
    return engine.run(strat, {"AAPL": bars}, BacktestSettings(slippage=str(SLIPPAGE), initial_cash=CASH))


def direct(strat: Strategy, bars: pd.DataFrame) -> dict[str, Any]:
    """Return the same backtest written directly in vectorbt: equity, orders and round trips with their times.

    The prices go in as numpy arrays: vectorbt 1.0 under pandas 2 is some
    fifty times slower given a Series with a UTC index (its wrapper's
    index handling), and the comparison is with vectorbt at its best.
    """
    import vectorbt as vbt

    target = strat.signals(bars).to_numpy() * SHARES
    change = np.diff(target, prepend=0.0)  # the position follows the target: every order fills
    size = np.full(len(bars), np.nan)
    size[1:] = np.where(change[:-1] != 0, change[:-1], np.nan)  # decided at t's close, filled at t+1's open
    open_ = bars["open"].to_numpy()
    price = np.round(np.where(size > 0, open_ * (1 + SLIPPAGE), open_ * (1 - SLIPPAGE)), 9)
    q = np.abs(size)
    fees = np.nan_to_num(np.round(np.minimum(np.maximum(1.0, 0.005 * q), 0.01 * q * price) * 100) / 100)
    pf = vbt.Portfolio.from_orders(bars["close"].to_numpy(), size, size_type="amount", direction="both",
                                   price=price, fixed_fees=fees, init_cash=CASH)
    index = bars.index
    orders = pf.orders.values
    trades = pf.positions.values
    return {"equity": pd.Series(np.asarray(pf.value()), index=index),
            "orders": pd.DataFrame({"time": index[orders["idx"]], "side": orders["side"], "size": orders["size"],
                                    "price": orders["price"], "fees": orders["fees"]}),
            "trades": pd.DataFrame({"entry_time": index[trades["entry_idx"]], "pnl": trades["pnl"]})}


def same_trades(a: Any, b: dict[str, Any]) -> None:
    """Assert the engine's result ``a`` and vectorbt's ``b`` hold the same orders, round trips and equity."""
    oa, ob = a.orders, b["orders"]
    assert len(oa) == len(ob), f"{len(oa)} orders vs {len(ob)}"
    assert (oa["fill_time"].to_numpy() == ob["time"].to_numpy()).all()
    assert (oa["side"].to_numpy() == np.where(ob["side"].to_numpy() == 0, "BUY", "SELL")).all()
    assert np.array_equal(oa["quantity"].astype(float).to_numpy(), ob["size"].to_numpy())
    assert np.array_equal(oa["price"].astype(float).to_numpy(), ob["price"].to_numpy())
    assert np.allclose(oa["commission"].astype(float).to_numpy(), ob["fees"].to_numpy(), atol=1e-9)
    ta, tb = a.trades, b["trades"]
    assert len(ta) == len(tb), f"{len(ta)} round trips vs {len(tb)}"
    assert (ta["entry_time"].to_numpy() == tb["entry_time"].to_numpy()).all()
    assert np.allclose(ta["pnl"].to_numpy(), tb["pnl"].to_numpy(), atol=1e-6)
    assert np.allclose(a.equity.to_numpy(), b["equity"].to_numpy(), atol=1e-6)


def run(bars: int = 1_000_000, rounds: int = 3) -> dict[str, float]:
    """Return ``backtest_vs_vectorbt`` (and both sides' best seconds) over ``bars`` one-minute bars."""
    frame = make_bars(bars)
    strat = strategy()
    result, reference = ours(strat, frame.iloc[:5000]), direct(strat, frame.iloc[:5000])  # compile, warm caches
    same_trades(result, reference)
    mine, theirs = [], []
    for k in range(rounds):
        sides = [("ours", ours, mine), ("direct", direct, theirs)]
        for _name, fn, times in sides if k % 2 == 0 else sides[::-1]:
            started = time.perf_counter()
            out = fn(strat, frame)
            times.append(time.perf_counter() - started)
            if fn is ours:
                result = out
            else:
                reference = out
    same_trades(result, reference)
    return {"backtest_s": min(mine), "vectorbt_s": min(theirs), "orders": float(len(result.orders)),
            "backtest_vs_vectorbt": min(mine) / min(theirs)}


def main() -> None:
    """Print the engine's and vectorbt's times and the ratio line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = run(args.bars, args.rounds)
    print(f"bars: {args.bars}, orders: {figures['orders']:.0f} (identical on both sides)")
    print(f"engine.run: {figures['backtest_s']:.3f} s, vectorbt direct: {figures['vectorbt_s']:.3f} s")
    print(f"backtest_vs_vectorbt: {figures['backtest_vs_vectorbt']:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
