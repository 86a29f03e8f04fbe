"""Backtest metrics: every figure of a result, the rule for the returns they read, and the sweep's objectives.

:func:`compute` answers the stats of a :class:`~trader.backtest.result.BacktestResult`
(``result.stats``) as ``{name: float}``, NaN where a figure is undefined
(flat equity, no trade, no benchmark); it never raises on such a run. The
figures come from plain functions usable on their own, column by column on a
DataFrame (a sweep's combos): returns in :mod:`~trader.backtest.metrics_returns`,
drawdowns in :mod:`~trader.backtest.metrics_drawdown`, trades in
:mod:`~trader.backtest.metrics_trades`; they are re-exported here.

Which returns the annualised figures read (:func:`period_returns`):

- **daily returns** when the run has at least ``MIN_DAYS`` (30) of them:
  the equity's last value of each UTC day, the first one measured from the
  equity's first value (the initial cash), annualised by 252 trading days.
  Daily bars always give daily returns. Intraday noise (and the zero
  returns of the nights) is left out, and a minute and an hour run of the
  same strategy compare.
- **per-bar returns** otherwise (a short intraday run), annualised by
  :func:`periods_per_year` of the bar size: 252 sessions of 6.5 hours (US
  stocks' regular hours) cut into bars.

The figures per period (VaR, CVaR, best and worst period, skew, kurtosis,
tail ratio) are of the same returns: per day, or per bar for a short
intraday run (the ``daily_returns`` flag of the stats says which).
Drawdowns (depth, duration, ulcer index) read the equity at every bar, not
only the daily values. Units: returns, volatility, drawdowns, VaR, CVaR and
exposure are fractions (0.05 = 5 %), never percent; VaR, CVaR and drawdowns
are positive losses; durations are days; money (``net_profit``, ``fees``,
``expectancy``) is in the account's currency; ratios are plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import numpy as np
import pandas as pd

from trader.backtest.metrics_drawdown import (
    drawdown,
    max_drawdown,
    max_drawdown_days,
    recovery_factor,
    ulcer_index,
    wealth,
)
from trader.backtest.metrics_returns import (
    alpha,
    annual_return,
    best_return,
    beta,
    cagr,
    conditional_value_at_risk,
    correlation,
    downside_deviation,
    information_ratio,
    kurtosis,
    omega,
    parametric_cvar,
    parametric_var,
    ratio,
    sharpe,
    skew,
    sortino,
    stability,
    tail_ratio,
    total_return,
    tracking_error,
    value_at_risk,
    volatility,
    worst_return,
)
from trader.backtest.metrics_trades import Backtested, trade_stats
from trader.strategy.bars import DAY, parse_bar_size

__all__ = [
    "MIN_DAYS", "OBJECTIVES", "SESSION_SECONDS", "TRADING_DAYS", "UNITS", "Objective", "PeriodReturns", "alpha",
    "annual_return", "best_return", "beta", "cagr", "calmar", "compute", "conditional_value_at_risk",
    "correlation", "downside_deviation", "drawdown", "headline", "information_ratio", "kurtosis", "max_drawdown",
    "max_drawdown_days", "omega", "parametric_cvar", "parametric_var", "period_returns", "periods_per_year",
    "recovery_factor", "sharpe", "skew", "sortino", "stability", "tail_ratio", "total_return", "tracking_error",
    "ulcer_index", "value_at_risk", "volatility", "wealth", "worst_return",
]

TRADING_DAYS = 252  # sessions a year: the annualisation of daily returns
SESSION_SECONDS = 23_400  # 6.5 hours, US stocks' regular session: the bars of a day for intraday annualisation
MIN_DAYS = 30  # daily returns needed before the annualised figures read them instead of per-bar returns

Frame: TypeAlias = pd.Series | pd.DataFrame

_UNIT_NAMES = {
    "currency": "start_equity final_equity net_profit expectancy fees",
    "fraction": "total_return annual_return cagr volatility downside_deviation max_drawdown ulcer_index var_95 "
                "cvar_95 var_99 cvar_99 var_parametric_95 cvar_parametric_95 best_period worst_period win_rate "
                "best_trade worst_trade average_trade average_win average_loss exposure benchmark_return alpha "
                "tracking_error",
    "ratio": "sharpe sortino calmar omega recovery_factor stability tail_ratio skew kurtosis profit_factor "
             "payoff_ratio turnover beta correlation information_ratio",
    "days": "max_drawdown_days average_holding_days days",
    "count": "trades open_trades orders max_consecutive_wins max_consecutive_losses periods_per_year bars",
    "flag": "daily_returns",
}
#: The unit of every metric ``compute`` answers, for whoever formats them: "fraction" (0.05 reads 5 %),
#: "ratio", "currency" (the account's), "days", "count" or "flag" (1.0 yes, 0.0 no).
UNITS: dict[str, str] = {name: unit for unit, names in _UNIT_NAMES.items() for name in names.split()}
Objective = Callable[..., pd.Series]


class PeriodReturns(NamedTuple):
    """The returns the annualised metrics read, their annualisation factor, and whether they are daily."""

    returns: Frame
    periods_per_year: float
    daily: bool


def periods_per_year(bar_size: str, session_seconds: int = SESSION_SECONDS) -> float:
    """Return how many bars of ``bar_size`` make a year: 252 daily bars, or 252 sessions of intraday bars.

    A session is ``session_seconds`` long (6.5 hours by default) and holds
    ``ceil(session / bar)`` bars: 390 one-minute bars, 7 hourly ones (the
    half hour from 9:30 is a bar of its own).
    """
    return _periods(parse_bar_size(bar_size), session_seconds)


def _periods(seconds: float, session_seconds: int = SESSION_SECONDS) -> float:
    if seconds >= DAY:
        return TRADING_DAYS * DAY / seconds
    return float(TRADING_DAYS * math.ceil(session_seconds / seconds))


def _bar_seconds(index: pd.Index) -> float:
    """Return the median spacing of a DatetimeIndex in seconds (a day for anything else or under 2 bars)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return float(DAY)
    return float(np.median(np.diff(index.asi8))) / 1e9


def _day_ends(index: pd.Index) -> np.ndarray | None:
    """Return the mask of the first bar and of each UTC day's last bar (None without a DatetimeIndex)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) == 0:
        return None
    days = index.asi8 // (DAY * 1_000_000_000)  # asi8: UTC nanoseconds (a naive index is read as UTC)
    keep = np.append(days[1:] != days[:-1], True)
    keep[0] = True
    return keep


def _changes(values: Frame) -> Frame:
    return values.pct_change(fill_method=None).iloc[1:]


def period_returns(equity: Frame, bar_size: str | None = None) -> PeriodReturns:
    """Return the returns the annualised metrics read from ``equity`` (Series or bars x columns): see the module.

    ``bar_size`` ("1m", "1 day"...) gives the per-bar annualisation; without
    it the bar size is the index's median spacing.
    """
    seconds = float(parse_bar_size(bar_size)) if bar_size else _bar_seconds(equity.index)
    ends = None if seconds >= DAY else _day_ends(equity.index)
    if ends is not None and int(ends.sum()) - 1 >= MIN_DAYS:
        return PeriodReturns(_changes(equity[ends]), float(TRADING_DAYS), True)
    return PeriodReturns(_changes(equity), _periods(seconds), seconds >= DAY)


def calmar(returns: Frame, periods_per_year: float = 252.0) -> float | pd.Series:
    """Return the Calmar ratio: CAGR over the max drawdown of the same returns (NaN without a drawdown)."""
    growth, deepest = cagr(returns, periods_per_year), max_drawdown(wealth(returns))
    return _divide(growth, deepest)


def _divide(numerator: float | pd.Series, denominator: float | pd.Series) -> float | pd.Series:
    if isinstance(numerator, pd.Series):
        return pd.Series(ratio(numerator.to_numpy(), np.asarray(denominator, dtype=float)), index=numerator.index)
    return float(ratio(np.asarray(numerator), np.asarray(denominator)))


def compute(result: Backtested) -> dict[str, float]:
    """Return every metric of ``result`` by name (floats; NaN where undefined): see the module for the units."""
    equity = result.equity.astype(float)
    rf = float(result.settings.risk_free)
    returns, periods, daily = period_returns(equity, result.bar_size)
    first = float(equity.iloc[0]) if len(equity) else math.nan
    last = float(equity.iloc[-1]) if len(equity) else math.nan
    growth = cagr(returns, periods)
    deepest = max_drawdown(equity)
    total = last / first - 1.0 if first else math.nan
    span = (equity.index[-1] - equity.index[0]) / pd.Timedelta(days=1) \
        if len(equity) and isinstance(equity.index, pd.DatetimeIndex) else math.nan
    stats: dict[str, float] = {
        "start_equity": first,
        "final_equity": last,
        "net_profit": last - first,
        "total_return": total,
        "annual_return": annual_return(returns, periods),
        "cagr": growth,
        "volatility": volatility(returns, periods),
        "downside_deviation": downside_deviation(returns, periods, rf),
        "sharpe": sharpe(returns, periods, rf),
        "sortino": sortino(returns, periods, rf),
        "calmar": _divide(growth, deepest),
        "omega": omega(returns, periods, rf),
        "max_drawdown": deepest,
        "max_drawdown_days": max_drawdown_days(equity),
        "ulcer_index": ulcer_index(equity),
        "recovery_factor": _divide(total, deepest),
        "stability": stability(returns),
        "tail_ratio": tail_ratio(returns),
        "skew": skew(returns),
        "kurtosis": kurtosis(returns),
        "var_95": value_at_risk(returns, 0.95),
        "cvar_95": conditional_value_at_risk(returns, 0.95),
        "var_99": value_at_risk(returns, 0.99),
        "cvar_99": conditional_value_at_risk(returns, 0.99),
        "var_parametric_95": parametric_var(returns, 0.95),
        "cvar_parametric_95": parametric_cvar(returns, 0.95),
        "best_period": best_return(returns),
        "worst_period": worst_return(returns),
        **trade_stats(result),
        **_benchmark_stats(result, returns, periods, rf),
        "periods_per_year": periods,
        "daily_returns": 1.0 if daily else 0.0,
        "bars": float(len(equity)),
        "days": span,
    }
    return {name: float(value) for name, value in stats.items()}


def _benchmark_stats(result: Backtested, strategy: Frame, periods: float, rf: float) -> dict[str, float]:
    """Return the benchmark's total return and the strategy's alpha, beta, correlation against it (or NaN)."""
    names = ("benchmark_return", "alpha", "beta", "correlation", "tracking_error", "information_ratio")
    bench = result.benchmark
    if bench is None or bench.dropna().empty:
        return dict.fromkeys(names, math.nan)
    bench = bench.astype(float).reindex(result.equity.index).ffill()
    market = period_returns(bench, result.bar_size).returns
    closes = bench.dropna()
    return {
        "benchmark_return": float(closes.iloc[-1] / closes.iloc[0] - 1.0),
        "alpha": alpha(strategy, market, periods, rf),
        "beta": beta(strategy, market, periods, rf),
        "correlation": correlation(strategy, market),
        "tracking_error": tracking_error(strategy, market, periods),
        "information_ratio": information_ratio(strategy, market, periods),
    }


def _objective(score: Callable[[PeriodReturns, pd.DataFrame, float], float | pd.Series], doc: str) -> Objective:
    def objective(equity: pd.DataFrame, bar_size: str | None = None, risk_free: float = 0.0) -> pd.Series:
        frame = equity.to_frame() if isinstance(equity, pd.Series) else equity
        value = score(period_returns(frame, bar_size), frame, risk_free)
        return value if isinstance(value, pd.Series) else pd.Series([value], index=frame.columns)

    objective.__doc__ = doc
    return objective


#: Sweep objectives, higher is better: ``OBJECTIVES[name](equity, bar_size=None, risk_free=0.0)`` takes the
#: equity of many combos (bars x columns) and answers a Series per column, the value ``compute`` would give.
OBJECTIVES: dict[str, Objective] = {
    "sharpe": _objective(lambda p, e, rf: sharpe(p.returns, p.periods_per_year, rf), "Sharpe ratio"),
    "sortino": _objective(lambda p, e, rf: sortino(p.returns, p.periods_per_year, rf), "Sortino ratio"),
    "cagr": _objective(lambda p, e, rf: cagr(p.returns, p.periods_per_year), "compound annual growth rate"),
    "calmar": _objective(lambda p, e, rf: _divide(cagr(p.returns, p.periods_per_year), max_drawdown(e)),
                         "CAGR over the max drawdown (of every bar)"),
    "total_return": _objective(lambda p, e, rf: e.iloc[-1] / e.iloc[0] - 1.0, "total return"),
    "annual_return": _objective(lambda p, e, rf: annual_return(p.returns, p.periods_per_year),
                                "arithmetic annualised return"),
    "omega": _objective(lambda p, e, rf: omega(p.returns, p.periods_per_year, rf), "Omega ratio at the risk-free"),
    # the trades' profit factor needs the trades; on returns it is the sum of gains over the sum of losses
    "profit_factor": _objective(lambda p, e, rf: omega(p.returns, p.periods_per_year, 0.0),
                                "gains over losses of the period returns (Omega at zero)"),
    "recovery_factor": _objective(lambda p, e, rf: recovery_factor(e), "total return over max drawdown"),
    "stability": _objective(lambda p, e, rf: stability(p.returns), "R squared of the log equity's trend"),
}


def headline(equity: pd.DataFrame, bar_size: str | None = None, risk_free: float = 0.0) -> pd.DataFrame:
    """Return the headline metrics of many combos' equity (bars x columns) as a frame: a row per column.

    Columns ``total_return cagr volatility sharpe sortino calmar max_drawdown``,
    each the value :func:`compute` gives for the same equity.
    """
    returns, periods, _ = period_returns(equity, bar_size)
    growth, deepest = cagr(returns, periods), max_drawdown(equity)
    return pd.DataFrame({
        "total_return": equity.iloc[-1] / equity.iloc[0] - 1.0,
        "cagr": growth,
        "volatility": volatility(returns, periods),
        "sharpe": sharpe(returns, periods, risk_free),
        "sortino": sortino(returns, periods, risk_free),
        "calmar": _divide(growth, deepest),
        "max_drawdown": deepest,
    })
