"""Result objects built by hand for the report tests: seeded random walks, trades and Monte Carlo paths.

The report reads only what a result holds, so these stand where the engine's,
the sweep's and the Monte Carlo's output will: the same dataclasses, the
same columns (``ORDER_COLUMNS``, ``TRADE_COLUMNS``), Decimal quantities and
prices, UTC bar times.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from trader.backtest.result import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
    MonteCarloResult,
    SweepResult,
    WalkForwardResult,
)
from trader.backtest.settings import BacktestSettings

STATS = {"total_return": 0.1234, "cagr": 0.0611, "sharpe": 1.12, "max_drawdown": 0.087, "trades": 12.0,
         "win_rate": float("nan"), "fees": 123.45}


def bars(index: pd.DatetimeIndex, seed: int, start: float = 100.0) -> pd.DataFrame:
    """Return a seeded random walk of OHLCV bars on ``index``."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0003, 0.01, len(index))))
    open_ = np.concatenate([[start], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, len(index))) * close
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": rng.integers(1_000, 10_000, len(index)).astype(float)}, index=index)


def _trades(instrument: str, prices: pd.DataFrame, every: int, quantity: int) -> tuple[list[dict], list[dict]]:
    orders, trades = [], []
    index = prices.index
    for number, entry in enumerate(range(1, len(index) - every - 1, 2 * every)):
        exit_ = entry + every
        direction = "long" if number % 2 == 0 else "short"
        entry_price = Decimal(str(round(prices["open"].iloc[entry], 2)))
        exit_price = Decimal(str(round(prices["open"].iloc[exit_], 2)))
        sign = 1 if direction == "long" else -1
        fee = Decimal("1.00")
        pnl = sign * (exit_price - entry_price) * quantity - 2 * fee
        trades.append({"instrument": instrument, "direction": direction, "entry_time": index[entry],
                       "exit_time": index[exit_], "quantity": Decimal(quantity), "entry_price": entry_price,
                       "exit_price": exit_price, "pnl": pnl, "return": float(pnl / (entry_price * quantity)),
                       "commission": 2 * fee, "bars": every})
        sides = ("BUY", "SELL") if direction == "long" else ("SELL", "BUY")
        for bar, side, price in ((entry, sides[0], entry_price), (exit_, sides[1], exit_price)):
            orders.append({"time": index[bar - 1], "fill_time": index[bar], "instrument": instrument, "side": side,
                           "quantity": Decimal(quantity), "price": price, "commission": fee, "reason": "signal"})
    return orders, trades


def backtest_result(*, periods: int = 400, freq: str = "B", bar_size: str = "1 day",
                    instruments: tuple[str, ...] = ("AAA", "BBB"), simulations: int = 0,
                    benchmark: bool = True, every: int = 10,
                    stats: dict[str, float] | None = STATS) -> BacktestResult:
    """Return a two-instrument backtest over ``periods`` bars with a trade every ``2 * every`` bars each.

    ``stats`` are what ``result.stats`` answers; None: the metrics module computes them.
    """
    index = pd.date_range("2023-01-02 14:30", periods=periods, freq=freq, tz="UTC")
    prices = {name: bars(index, seed) for seed, name in enumerate(instruments)}
    orders, trades = [], []
    for name in instruments:
        more_orders, more_trades = _trades(name, prices[name], every, 10)
        orders += more_orders
        trades += more_trades
    rng = np.random.default_rng(99)
    equity = pd.Series(100_000 * np.exp(np.cumsum(rng.normal(0.0004, 0.008, periods))), index=index,
                       name="equity")
    positions = pd.DataFrame(0.0, index=index, columns=list(instruments))
    settings = BacktestSettings(simulations=simulations, benchmark="SPY" if benchmark else None,
                                slippage=Decimal("0.0005"))
    return BacktestResult(
        strategy="ma_crossover", params={"fast": 10, "slow": 30, "allow_short": True}, settings=settings,
        bar_size=bar_size, prices=prices, targets=positions.copy(), equity=equity, positions=positions,
        orders=pd.DataFrame(orders, columns=list(ORDER_COLUMNS)),
        trades=pd.DataFrame(trades, columns=list(TRADE_COLUMNS)),
        benchmark=bars(index, 7)["close"].rename("SPY") if benchmark else None,
        skipped=[f"{index[5].isoformat()} AAA: signal is NaN"], elapsed=0.42,
        _stats=dict(stats) if stats is not None else None)


def monte_carlo(paths: int = 2000, horizon: int = 252, seed: int = 1) -> MonteCarloResult:
    """Return a Monte Carlo result of ``paths`` lognormal paths (the distributions the report draws)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0003, 0.01, (paths, horizon))
    equity = np.exp(np.cumsum(steps, axis=1))
    equity = np.hstack([np.ones((paths, 1)), equity])
    peaks = np.maximum.accumulate(equity, axis=1)
    max_drawdown = (1 - equity / peaks).max(axis=1)
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    fan = pd.DataFrame(np.quantile(equity, quantiles, axis=0).T, columns=quantiles)
    final = equity[:, -1]
    losses = 1 - final
    risk = {"var_95": float(np.quantile(losses, 0.95)), "cvar_95": float(losses[losses >= np.quantile(losses, 0.95)]
            .mean()), "var_99": float(np.quantile(losses, 0.99)), "cvar_99": float(losses[losses >= np.quantile(
                losses, 0.99)].mean())}
    return MonteCarloResult(method="block", paths=paths, horizon_days=horizon, seed=seed, final_equity=final,
                            max_drawdown=max_drawdown, fan=fan, risk=risk)


def sweep_result(space: dict[str, list] | None = None) -> SweepResult:
    """Return a grid sweep over ``space`` (default fast x slow x allow_short), best first, one row rejected."""
    space = space or {"fast": [2, 5, 10, 20], "slow": [30, 50, 100], "allow_short": [True, False]}
    grid = pd.MultiIndex.from_product(list(space.values()), names=list(space)).to_frame(index=False)
    rng = np.random.default_rng(3)
    grid["objective"] = rng.normal(0.5, 0.4, len(grid))
    grid["sharpe"] = grid["objective"]
    grid["max_drawdown"] = rng.uniform(0.05, 0.3, len(grid))
    grid["trades"] = rng.integers(5, 80, len(grid))
    grid["note"] = ""
    grid.loc[0, ["objective", "sharpe"]] = np.nan
    grid.loc[0, "note"] = "max_drawdown > 0.25"
    table = grid.sort_values("objective", ascending=False, na_position="last").reset_index(drop=True)
    return SweepResult(strategy="ma_crossover", method="grid", objective="sharpe", space=space, table=table,
                       elapsed=3.5, chunks=4, chunks_retried=1)


def walkforward_result(windows: int = 5) -> WalkForwardResult:
    """Return a walk-forward of ``windows`` rolling windows of 60 business days out of sample each."""
    index = pd.date_range("2023-01-02", periods=120 + 60 * windows, freq="B", tz="UTC")
    rows = []
    for number in range(windows):
        is_start, oos_start = index[60 * number], index[120 + 60 * number]
        oos_end = index[min(len(index) - 1, 180 + 60 * number - 1)]
        rows.append({"is_start": is_start, "is_end": oos_start, "oos_start": oos_start, "oos_end": oos_end,
                     "params": {"fast": 5 + number, "slow": 30}, "is_objective": 1.0 + 0.1 * number,
                     "oos_objective": 0.4 - 0.2 * number})
    oos = index[120:]
    rng = np.random.default_rng(5)
    equity = pd.Series(100_000 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, len(oos)))), index=oos)
    return WalkForwardResult(strategy="ma_crossover", objective="sharpe", windows=pd.DataFrame(rows), equity=equity,
                             elapsed=12.0)


def engine_result(days: int = 300, simulations: int = 500) -> BacktestResult:
    """Return a real backtest: the example ma_crossover plugin run by the engine over two random walks."""
    from trader.backtest.engine import run
    from trader.config import REPO_ROOT
    from trader.strategy.plugins import load_plugin

    plugin = load_plugin(REPO_ROOT / "strategies" / "ma_crossover.py")
    try:
        strategy = plugin.strategy
        config = strategy.config.model_copy(update={"bar_size": "1 day", "instruments": ["AAPL", "MSFT"]})
        daily = type(strategy)(config)
        index = pd.date_range("2023-01-03 21:00", periods=days, freq="B", tz="UTC")
        data = {name: bars(index, seed) for seed, name in enumerate(("AAPL", "MSFT"))}
        return run(daily, data, BacktestSettings(simulations=simulations, slippage=Decimal("0.0005")))
    finally:
        plugin.unload()
