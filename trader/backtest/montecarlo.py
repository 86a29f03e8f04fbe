"""Monte Carlo risk: a backtest's daily returns (or its trades) bootstrapped into many futures, and their tails.

``simulate(result, method)`` resamples what the backtest earned into
``settings.simulations`` paths of ``settings.horizon_days`` trading days and
reads off them the distribution of the final equity and of the max drawdown,
a fan (equity quantiles per day) and the risk figures: VaR and CVaR at 95 and
99 % of the return over the horizon.

Methods (the kernels are in :mod:`trader.backtest.bootstrap`, numba):

- ``iid``: each day's return drawn independently from the backtest's days;
- ``block`` (the default): the circular block bootstrap, runs of
  ``settings.block_days`` consecutive days from a uniform start, wrapping at
  the end, so a few days of serial correlation (momentum, volatility
  clusters) survive the resampling;
- ``stationary``: the stationary bootstrap, runs of a geometric length of
  mean ``block_days``;
- ``trades``: the sequence of closed trades resampled (iid), as many trades
  per path as the backtest had per ``horizon_days``; a trade counts with its
  return on the account (its pnl over the equity when it opened), so a small
  position weighs little. The fan's rows are then trades, not days.

Daily returns are those of the equity at each UTC day's last bar, the first
measured from the equity's first value (the initial cash): the rule of
:func:`trader.backtest.metrics.period_returns`, so an intraday backtest is
bootstrapped by day as well. The same seed gives the same paths in any
process (a counter-based stream per path).

The backtest is read through :class:`Backtested` (the attributes of
:class:`~trader.backtest.result.BacktestResult` it needs), not by importing
``result``, which imports this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from trader.backtest import bootstrap
from trader.backtest.risk import FAN_QUANTILES, MonteCarloResult, fan_frame, risk_figures
from trader.backtest.settings import BacktestSettings
from trader.errors import ValidationError

__all__ = ["FAN_QUANTILES", "METHODS", "Backtested", "bootstrap_paths", "daily_returns", "risk_figures",
           "simulate", "trade_returns", "walk_paths"]

logger = logging.getLogger(__name__)

METHODS = ("iid", "block", "stationary", "trades")
_DAY_NS = 86_400 * 10**9
_MAX_SERIES = 2**31  # the kernels draw an index from 32 random bits


class Backtested(Protocol):
    """What Monte Carlo reads of a backtest (a :class:`~trader.backtest.result.BacktestResult`)."""

    strategy: str
    settings: BacktestSettings
    equity: pd.Series
    trades: pd.DataFrame


def bootstrap_paths(returns: Sequence[float] | np.ndarray, paths: int, horizon: int, *, method: str = "block",
                    block: int = 5, seed: int = 0) -> np.ndarray:
    """Return ``paths`` x ``horizon`` returns resampled from ``returns`` (``iid``, ``block`` or ``stationary``).

    Row ``p`` is the same for a given seed whatever ``paths`` is, and the
    same draws :func:`simulate` compounds; ``block`` is the run length of the
    block bootstraps (ignored by ``iid``). Raise ValidationError for empty or
    non-finite returns, a return below -100 %, or a count below 1.
    """
    series = _checked(returns, paths, horizon, block, seed)
    return bootstrap.resample(series, paths, horizon, _method_code(method), block, seed)


def walk_paths(returns: Sequence[float] | np.ndarray, paths: int, horizon: int, *, method: str = "block",
               block: int = 5, seed: int = 0,
               quantiles: Sequence[float] = FAN_QUANTILES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the final equity and max drawdown of each path and the fan, without keeping the paths.

    The paths are those of :func:`bootstrap_paths` with the same arguments,
    compounded from 1.0; the fan is (horizon + 1) x ``quantiles``, row 0 the
    start, each row the quantiles of the paths' equity that day (numpy's
    linear interpolation).
    """
    series = _checked(returns, paths, horizon, block, seed)
    wanted = np.asarray(quantiles, dtype=np.float64)
    if wanted.ndim != 1 or not wanted.size or not np.all((wanted >= 0) & (wanted <= 1)):
        raise ValidationError(f"quantiles must be numbers in 0..1, got {list(quantiles)}")
    return bootstrap.walk(series, paths, horizon, _method_code(method), block, seed, wanted)


def daily_returns(result: Backtested) -> np.ndarray:
    """Return the backtest's daily returns: its equity at each UTC day's last bar, the first from its first value."""
    equity = result.equity.dropna()
    if isinstance(equity.index, pd.DatetimeIndex) and len(equity):
        days = equity.index.asi8 // _DAY_NS  # UTC nanoseconds (a naive index is read as UTC)
        keep = np.append(days[1:] != days[:-1], True)
        keep[0] = True
        equity = equity[keep]
    returns = equity.astype(float).pct_change().to_numpy()[1:]
    if not returns.size:
        raise ValidationError(f"backtest of {result.strategy!r} has {len(equity)} equity value(s) by day: "
                              "Monte Carlo needs at least two")
    return returns


def trade_returns(result: Backtested) -> np.ndarray:
    """Return each closed trade's return on the account: its pnl over the equity at the bar it opened."""
    trades = result.trades
    closed = trades[trades["exit_time"].notna()] if len(trades) else trades
    if not len(closed):
        raise ValidationError(f"backtest of {result.strategy!r} has no closed trade: nothing to resample "
                              "(method 'trades')")
    equity = result.equity.astype(float)
    at = equity.index.searchsorted(pd.DatetimeIndex(closed["entry_time"]), side="right") - 1
    opening = equity.to_numpy()[np.clip(at, 0, len(equity) - 1)]
    return closed["pnl"].astype(float).to_numpy() / opening


def simulate(result: Backtested, method: str = "block", paths: int | None = None) -> MonteCarloResult:
    """Return the Monte Carlo risk of ``result``: ``paths`` (default ``settings.simulations``) bootstrapped futures.

    Raise ValidationError for an unknown method, Monte Carlo turned off
    (``simulations: 0``) or a backtest with too little to resample.
    """
    settings = result.settings
    count = settings.simulations if paths is None else paths
    if method not in METHODS:
        raise ValidationError(f"unknown Monte Carlo method {method!r}: choose one of {', '.join(METHODS)}")
    if count < 1:
        raise ValidationError(f"Monte Carlo needs at least one path, got {count} "
                              "(backtest.simulations: 0 turns it off)")
    started = time.perf_counter()
    daily = daily_returns(result)
    if method == "trades":
        returns = trade_returns(result)
        steps = max(1, round(len(returns) * settings.horizon_days / len(daily)))
        final, drawdown, fan = walk_paths(returns, count, steps, method="iid", seed=settings.seed)
        axis = "trade"
    else:
        returns = daily
        steps = settings.horizon_days
        final, drawdown, fan = walk_paths(returns, count, steps, method=method, block=settings.block_days,
                                          seed=settings.seed)
        axis = "day"
    risk = risk_figures(final, drawdown)
    risk["steps"] = float(steps)
    risk["sample"] = float(len(returns))
    logger.info("monte carlo of %s: %d %s paths of %d %ss from %d returns in %.3f s", result.strategy, count,
                method, steps, axis, len(returns), time.perf_counter() - started)
    return MonteCarloResult(method=method, paths=count, horizon_days=settings.horizon_days, seed=settings.seed,
                            final_equity=final, max_drawdown=drawdown, fan=fan_frame(fan, axis), risk=risk)


def _checked(returns: Sequence[float] | np.ndarray, paths: int, horizon: int, block: int, seed: int) -> np.ndarray:
    """Return ``returns`` as a contiguous float64 array after checking it and the counts."""
    try:
        series = np.ascontiguousarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"returns must be numbers: {exc}") from exc
    if series.ndim != 1:
        raise ValidationError(f"returns must be one series, got an array of shape {series.shape}")
    if not series.size:
        raise ValidationError("no returns to resample (an empty series)")
    if series.size >= _MAX_SERIES:
        raise ValidationError(f"{series.size} returns: at most {_MAX_SERIES - 1} can be resampled")
    bad = ~np.isfinite(series)
    if bad.any():
        where = np.flatnonzero(bad)
        raise ValidationError(f"{where.size} returns are NaN or infinite (first at position {where[0]}: "
                              f"{series[where[0]]})")
    if series.min() < -1.0:
        at = int(series.argmin())
        raise ValidationError(f"return {series[at]} at position {at} loses more than everything (below -1)")
    for name, value in (("paths", paths), ("horizon", horizon), ("block", block)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValidationError(f"{name} must be a whole number of at least 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValidationError(f"seed must be a whole number in 0..2**63-1, got {seed!r}")
    return series


def _method_code(method: str) -> int:
    codes = {"iid": bootstrap.IID, "block": bootstrap.BLOCK, "stationary": bootstrap.STATIONARY}
    if method not in codes:
        raise ValidationError(f"unknown bootstrap method {method!r}: choose one of {', '.join(codes)}")
    return codes[method]

