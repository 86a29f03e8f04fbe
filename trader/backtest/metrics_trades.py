"""Trade metrics: what the round trips, the positions and the orders of one backtest say.

They read the frames of :class:`~trader.backtest.result.BacktestResult`
(columns in ``TRADE_COLUMNS`` and ``ORDER_COLUMNS``; Decimal or float values
alike). Only closed round trips (an ``exit_time``) count in the trade
statistics: an open one has no final PnL yet. Units: ``pnl`` figures are in
the account's currency, trade returns are fractions of the entry's value,
holding times are days, counts are floats (so every metric is one), and a
ratio with nothing to divide by (no losing trade, no trade at all) is NaN.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from trader.backtest.metrics_returns import quiet
from trader.backtest.settings import BacktestSettings

__all__ = [
    "Backtested", "average_holding_days", "average_loss", "average_trade", "average_win", "best_trade", "closed_trades",
    "expectancy", "exposure", "fees", "max_consecutive", "payoff_ratio", "profit_factor", "trade_stats",
    "turnover", "win_rate", "worst_trade",
]

NAN = float("nan")


class Backtested(Protocol):
    """What the metrics read of a :class:`~trader.backtest.result.BacktestResult`.

    Named by its shape, not imported: ``result.py`` imports the metrics (on
    first use of ``.stats``), and a module importing it back would be a cycle.
    """

    settings: BacktestSettings
    bar_size: str
    equity: pd.Series
    positions: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame
    benchmark: pd.Series | None


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return ``frame[column]`` as floats (Decimal and None welcome; NaN for what is not a number)."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def closed_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """Return the round trips that are closed (an ``exit_time``), ordered by exit."""
    if "exit_time" not in trades.columns or trades.empty:
        return trades.iloc[0:0]
    done = trades[trades["exit_time"].notna()]
    return done.sort_values("exit_time", kind="stable")


def _mean(values: np.ndarray) -> float:
    with quiet():
        return float(np.nanmean(values)) if len(values) else NAN


def win_rate(trades: pd.DataFrame) -> float:
    """Return the fraction of closed trades with a positive PnL (a trade at exactly 0 is not a win)."""
    pnl = _floats(closed_trades(trades), "pnl")
    return float(np.mean(pnl > 0)) if len(pnl) else NAN


def profit_factor(trades: pd.DataFrame) -> float:
    """Return the gross profit of the winning trades over the gross loss of the losing ones (NaN with no loss)."""
    pnl = _floats(closed_trades(trades), "pnl")
    loss = -pnl[pnl < 0].sum()
    return float(pnl[pnl > 0].sum() / loss) if loss > 0 else NAN


def expectancy(trades: pd.DataFrame) -> float:
    """Return the mean PnL of a closed trade, in the account's currency."""
    return _mean(_floats(closed_trades(trades), "pnl"))


def payoff_ratio(trades: pd.DataFrame) -> float:
    """Return the mean winning PnL over the mean losing PnL's size (NaN without both a win and a loss)."""
    pnl = _floats(closed_trades(trades), "pnl")
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return float(wins.mean() / -losses.mean()) if len(wins) and len(losses) else NAN


def best_trade(trades: pd.DataFrame) -> float:
    """Return the best closed trade's return (a fraction of its entry value)."""
    returns = _floats(closed_trades(trades), "return")
    return float(np.nanmax(returns)) if len(returns) else NAN


def worst_trade(trades: pd.DataFrame) -> float:
    """Return the worst closed trade's return (a fraction of its entry value)."""
    returns = _floats(closed_trades(trades), "return")
    return float(np.nanmin(returns)) if len(returns) else NAN


def average_trade(trades: pd.DataFrame) -> float:
    """Return the mean return of a closed trade (a fraction)."""
    return _mean(_floats(closed_trades(trades), "return"))


def average_win(trades: pd.DataFrame) -> float:
    """Return the mean return of the winning closed trades (a fraction)."""
    returns = _floats(closed_trades(trades), "return")
    return _mean(returns[returns > 0])


def average_loss(trades: pd.DataFrame) -> float:
    """Return the mean return of the losing closed trades (a negative fraction)."""
    returns = _floats(closed_trades(trades), "return")
    return _mean(returns[returns < 0])


def average_holding_days(trades: pd.DataFrame) -> float:
    """Return the mean time from entry to exit of the closed trades, in days."""
    done = closed_trades(trades)
    if done.empty:
        return NAN
    held = pd.to_datetime(done["exit_time"], utc=True) - pd.to_datetime(done["entry_time"], utc=True)
    return float((held / pd.Timedelta(days=1)).mean())


def max_consecutive(trades: pd.DataFrame, *, wins: bool) -> float:
    """Return the longest run of winning (``wins=True``) or losing closed trades, in exit order."""
    pnl = _floats(closed_trades(trades), "pnl")
    hit = (pnl > 0) if wins else (pnl < 0)
    if not hit.any():
        return 0.0
    # each run's length: the count of hits since the last miss
    misses = np.cumsum(~hit)
    return float(pd.Series(hit).groupby(misses).sum().max())


def exposure(positions: pd.DataFrame) -> float:
    """Return the fraction of bars ending with a position in any instrument (NaN without bars)."""
    if positions.empty:
        return NAN
    held = np.column_stack([_floats(positions, column) for column in positions.columns])
    return float((np.nan_to_num(held) != 0).any(axis=1).mean())


def turnover(orders: pd.DataFrame, equity: pd.Series) -> float:
    """Return the traded value (quantity x fill price, summed over orders) over the mean equity: times over.

    The quantity is in the contract's units: a futures' multiplier is not
    applied, so for futures this reads as contracts' price value.
    """
    traded = float(np.nansum(_floats(orders, "quantity") * _floats(orders, "price")))
    mean = float(equity.astype(float).mean()) if len(equity) else NAN
    return traded / mean if mean and not np.isnan(mean) else NAN


def fees(orders: pd.DataFrame) -> float:
    """Return the commissions paid over the run, in the account's currency."""
    return float(np.nansum(_floats(orders, "commission")))


def trade_stats(result: Backtested) -> dict[str, float]:
    """Return every trade, position and order metric of ``result``, by name."""
    trades, orders = result.trades, result.orders
    done = closed_trades(trades)
    return {
        "trades": float(len(done)),
        "open_trades": float(len(trades) - len(done)),
        "orders": float(len(orders)),
        "win_rate": win_rate(trades),
        "profit_factor": profit_factor(trades),
        "expectancy": expectancy(trades),
        "payoff_ratio": payoff_ratio(trades),
        "best_trade": best_trade(trades),
        "worst_trade": worst_trade(trades),
        "average_trade": average_trade(trades),
        "average_win": average_win(trades),
        "average_loss": average_loss(trades),
        "average_holding_days": average_holding_days(trades),
        "max_consecutive_wins": max_consecutive(trades, wins=True),
        "max_consecutive_losses": max_consecutive(trades, wins=False),
        "exposure": exposure(result.positions),
        "turnover": turnover(orders, result.equity),
        "fees": fees(orders),
    }
