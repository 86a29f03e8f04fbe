"""Return metrics: ratios, moments and tail risk of periodic returns, column by column.

Every function takes the periodic (simple, non-cumulative) returns of one
strategy as a Series and answers a float, or of many as a DataFrame (bars x
columns, a sweep's combos) and answers a Series indexed by the columns, in
one numpy pass over the matrix (no Python loop per column). NaN returns are
left out. ``periods_per_year`` is the annualisation factor of the returns
(252 for daily returns; see :func:`trader.backtest.metrics.periods_per_year`);
``risk_free`` is an annual rate, turned into a per-period one as
``(1 + rf) ** (1 / periods_per_year) - 1``.

Units: returns, volatilities, VaR and CVaR are fractions (0.05 = 5 %); VaR
and CVaR are losses, positive when the tail loses money. A ratio whose
denominator is zero (no volatility, no losing period) is NaN, never an
infinity, and nothing here raises on empty or flat input: what cannot be
computed is NaN.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from statistics import NormalDist
from typing import TypeAlias

import numpy as np
import pandas as pd

__all__ = [
    "Returns", "Score", "alpha", "annual_return", "best_return", "beta", "cagr", "conditional_value_at_risk",
    "correlation", "downside_deviation", "information_ratio", "kurtosis", "omega", "parametric_cvar",
    "parametric_var", "per_period", "sharpe", "skew", "sortino", "stability", "tail_ratio", "total_return",
    "tracking_error", "value_at_risk", "volatility", "worst_return",
]

Returns: TypeAlias = pd.Series | pd.DataFrame
Score: TypeAlias = float | pd.Series  # a float for a Series of returns, a Series per column for a DataFrame
_NORMAL = NormalDist()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's warnings on empty or all-NaN columns: their result is NaN, which is the answer."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def matrix(values: Returns) -> tuple[np.ndarray, Callable[[np.ndarray], Score]]:
    """Return ``values`` as a 2-D float array (bars x columns) and the function shaping a row of results back."""
    if isinstance(values, pd.DataFrame):
        columns = values.columns
        array = values.to_numpy(dtype=float, na_value=np.nan)
        shape: Callable[[np.ndarray], Score] = lambda out: pd.Series(out + 0.0, index=columns, dtype=float)
    else:
        array = np.asarray(values, dtype=float).reshape(-1, 1)
        shape = lambda out: float(out[0]) + 0.0  # + 0.0: no -0.0 in a report
    if len(array) == 0:  # no bar: one NaN row, so every reduction answers NaN instead of raising
        array = np.full((1, array.shape[1]), np.nan)
    return array, shape


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Return ``numerator / denominator`` with NaN wherever the denominator is zero or NaN."""
    with quiet():
        return np.where(denominator != 0, numerator / denominator, np.nan)


def per_period(rate: float, periods_per_year: float) -> float:
    """Return the per-period rate compounding to the annual ``rate`` over ``periods_per_year`` periods."""
    return float((1.0 + rate) ** (1.0 / periods_per_year) - 1.0)


def _mean(array: np.ndarray, axis: int = 0) -> np.ndarray:
    """Return the mean per column leaving NaN out (numpy's plain mean when there is none: 3 times faster)."""
    with quiet():
        return np.nanmean(array, axis=axis) if np.isnan(array).any() else np.mean(array, axis=axis)


def _std(array: np.ndarray) -> np.ndarray:
    """Return the sample standard deviation (ddof=1) per column; exactly 0 for a constant column."""
    with quiet():
        if np.isnan(array).any():
            std = np.nanstd(array, axis=0, ddof=1)
            constant = np.nanmax(array, axis=0) == np.nanmin(array, axis=0)
        else:
            std = np.std(array, axis=0, ddof=1) if len(array) > 1 else np.full(array.shape[1], np.nan)
            constant = np.ptp(array, axis=0) == 0
    # a constant column's float mean can differ from its values in the last bit: a 1e-18 residue, not a deviation
    return np.where(constant & np.isfinite(std), 0.0, std)


def total_return(returns: Returns) -> Score:
    """Return the compounded return over all periods, ``prod(1 + r) - 1`` (0.0 when there is none)."""
    array, shape = matrix(returns)
    return shape(np.nanprod(1.0 + array, axis=0) - 1.0)


def annual_return(returns: Returns, periods_per_year: float = 252.0) -> Score:
    """Return the arithmetic annualised return, the mean periodic return times ``periods_per_year``."""
    array, shape = matrix(returns)
    with quiet():
        return shape(_mean(array, axis=0) * periods_per_year)


def cagr(returns: Returns, periods_per_year: float = 252.0) -> Score:
    """Return the compound annual growth rate: growth ``** (periods_per_year / periods) - 1``.

    The years are the count of returns over ``periods_per_year`` (as in
    empyrical), not calendar time. NaN with no return, or an account below zero.
    """
    array, shape = matrix(returns)
    count = np.sum(~np.isnan(array), axis=0)
    growth = np.nanprod(1.0 + array, axis=0)
    with quiet():
        out = np.where((count > 0) & (growth >= 0), growth ** (periods_per_year / count) - 1.0, np.nan)
    return shape(out)


def volatility(returns: Returns, periods_per_year: float = 252.0) -> Score:
    """Return the annualised volatility: the sample standard deviation (ddof=1) times ``sqrt(periods_per_year)``."""
    array, shape = matrix(returns)
    return shape(_std(array) * np.sqrt(periods_per_year))


def sharpe(returns: Returns, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return the annualised Sharpe ratio: mean excess return over its sample deviation, times ``sqrt(P)``."""
    array, shape = matrix(returns)
    excess = array - per_period(risk_free, periods_per_year)
    with quiet():
        mean = _mean(excess, axis=0)
    return shape(ratio(mean, _std(excess)) * np.sqrt(periods_per_year))


def downside_deviation(returns: Returns, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return the annualised downside deviation: ``sqrt(mean(min(r - rf, 0) ** 2) * P)`` over every period."""
    array, shape = matrix(returns)
    return shape(_downside(array, periods_per_year, risk_free))


def _downside(array: np.ndarray, periods_per_year: float, risk_free: float) -> np.ndarray:
    below = np.minimum(array - per_period(risk_free, periods_per_year), 0.0)
    with quiet():
        return np.sqrt(_mean(below**2, axis=0) * periods_per_year)


def sortino(returns: Returns, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return the Sortino ratio: annualised mean excess return over the annualised downside deviation.

    The downside deviation averages the squared shortfalls over all periods
    (a period above the risk-free rate counts as zero), as empyrical and
    quantstats do, not the standard deviation of the losing periods only.
    """
    array, shape = matrix(returns)
    with quiet():
        mean = _mean(array - per_period(risk_free, periods_per_year), axis=0) * periods_per_year
    return shape(ratio(mean, _downside(array, periods_per_year, risk_free)))


def omega(returns: Returns, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return the Omega ratio at the risk-free rate: the sum of gains above it over the sum of shortfalls below."""
    array, shape = matrix(returns)
    excess = array - per_period(risk_free, periods_per_year)
    gains = np.nansum(np.where(excess > 0, excess, 0.0), axis=0)
    losses = -np.nansum(np.where(excess < 0, excess, 0.0), axis=0)
    return shape(ratio(gains, losses))


def tail_ratio(returns: Returns, cutoff: float = 0.95) -> Score:
    """Return ``|percentile(cutoff)| / |percentile(1 - cutoff)|`` (linear interpolation): right tail over left."""
    array, shape = matrix(returns)
    with quiet():
        upper = np.nanpercentile(array, 100 * cutoff, axis=0)
        lower = np.nanpercentile(array, 100 * (1 - cutoff), axis=0)
    return shape(ratio(np.abs(upper), np.abs(lower)))


def _moments(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the count and the second, third and fourth central moments (biased, over n) per column."""
    count = np.sum(~np.isnan(array), axis=0).astype(float)
    with quiet():
        centred = array - _mean(array, axis=0)
        m2, m3, m4 = (_mean(centred**k, axis=0) for k in (2, 3, 4))
    m2 = np.where(_std(array) == 0, 0.0, m2)
    return count, m2, m3, m4


def skew(returns: Returns) -> Score:
    """Return the sample skewness, adjusted Fisher-Pearson (pandas' ``skew``); NaN under 3 returns or if flat."""
    array, shape = matrix(returns)
    n, m2, m3, _ = _moments(array)
    with quiet():
        g1 = ratio(m3, m2**1.5)
        out = np.where(n > 2, g1 * np.sqrt(n * (n - 1)) / (n - 2), np.nan)
    return shape(out)


def kurtosis(returns: Returns) -> Score:
    """Return the sample excess kurtosis, unbiased (pandas' ``kurt``); NaN under 4 returns or if flat."""
    array, shape = matrix(returns)
    n, m2, _, m4 = _moments(array)
    with quiet():
        g2 = ratio(m4, m2**2) - 3.0
        out = np.where(n > 3, ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3)), np.nan)
    return shape(out)


def value_at_risk(returns: Returns, confidence: float = 0.95) -> Score:
    """Return the historical VaR: the loss at the ``1 - confidence`` percentile (linear), as a positive fraction."""
    array, shape = matrix(returns)
    with quiet():
        return shape(-np.nanpercentile(array, 100 * (1 - confidence), axis=0))


def conditional_value_at_risk(returns: Returns, confidence: float = 0.95) -> Score:
    """Return the historical CVaR (expected shortfall): the mean loss of the returns at or below the VaR percentile."""
    array, shape = matrix(returns)
    with quiet():
        cut = np.nanpercentile(array, 100 * (1 - confidence), axis=0)
        return shape(-_mean(np.where(array <= cut, array, np.nan), axis=0))


def parametric_var(returns: Returns, confidence: float = 0.95) -> Score:
    """Return the Gaussian VaR: ``-(mean + z * std)``, z the normal quantile of ``1 - confidence``, std ddof=1."""
    array, shape = matrix(returns)
    with quiet():
        mean = _mean(array, axis=0)
    return shape(-(mean + _NORMAL.inv_cdf(1 - confidence) * _std(array)))


def parametric_cvar(returns: Returns, confidence: float = 0.95) -> Score:
    """Return the Gaussian CVaR: ``-(mean - std * pdf(z) / (1 - confidence))``, the normal tail's mean loss."""
    array, shape = matrix(returns)
    tail = 1 - confidence
    with quiet():
        mean = _mean(array, axis=0)
    return shape(-(mean - _std(array) * _NORMAL.pdf(_NORMAL.inv_cdf(tail)) / tail))


def best_return(returns: Returns) -> Score:
    """Return the best single period's return."""
    array, shape = matrix(returns)
    with quiet():
        return shape(np.nanmax(array, axis=0))


def worst_return(returns: Returns) -> Score:
    """Return the worst single period's return."""
    array, shape = matrix(returns)
    with quiet():
        return shape(np.nanmin(array, axis=0))


def stability(returns: Returns) -> Score:
    """Return the R squared of a straight line fitted to the cumulative log return (1.0: a steady climb)."""
    array, shape = matrix(returns)
    with quiet():
        cumulative = np.cumsum(np.nan_to_num(np.log1p(array)), axis=0)
    time = np.arange(len(array), dtype=float)[:, None]
    return shape(_correlation(time, cumulative) ** 2)


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return Pearson's correlation of each column of ``y`` with ``x`` (one column, broadcast), pairwise complete."""
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = np.where(both, x, np.nan), np.where(both, y, np.nan)
    with quiet():
        dx, dy = x - _mean(x, axis=0), y - _mean(y, axis=0)
        covariance = _mean(dx * dy, axis=0)
        spread = np.sqrt(_mean(dx**2, axis=0) * _mean(dy**2, axis=0))
    flat = (_std(x) == 0) | (_std(y) == 0)
    return np.where(flat, np.nan, ratio(covariance, spread))


def _paired(returns: Returns, benchmark: pd.Series, periods_per_year: float,
            risk_free: float) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], Score]]:
    """Return the excess returns and benchmark returns on the bars both have, and the shaper."""
    array, shape = matrix(returns)
    bench = np.asarray(benchmark.reindex(returns.index), dtype=float)[:, None]
    both = ~np.isnan(array) & ~np.isnan(bench)
    rate = per_period(risk_free, periods_per_year)
    return np.where(both, array - rate, np.nan), np.where(both, bench - rate, np.nan), shape


def beta(returns: Returns, benchmark: pd.Series, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return the beta against ``benchmark`` (its returns on the same index): ``cov(r, b) / var(b)`` of excess returns."""
    strategy, bench, shape = _paired(returns, benchmark, periods_per_year, risk_free)
    return shape(_beta(strategy, bench))


def _beta(strategy: np.ndarray, bench: np.ndarray) -> np.ndarray:
    with quiet():
        db = bench - _mean(bench, axis=0)
        covariance = _mean(db * strategy, axis=0)
        variance = _mean(db**2, axis=0)
    return np.where(_std(bench) == 0, np.nan, ratio(covariance, variance))


def alpha(returns: Returns, benchmark: pd.Series, periods_per_year: float = 252.0, risk_free: float = 0.0) -> Score:
    """Return Jensen's alpha, annualised arithmetically: ``(mean(r - rf) - beta * mean(b - rf)) * P``."""
    strategy, bench, shape = _paired(returns, benchmark, periods_per_year, risk_free)
    with quiet():
        out = (_mean(strategy, axis=0) - _beta(strategy, bench) * _mean(bench, axis=0)) * periods_per_year
    return shape(out)


def correlation(returns: Returns, benchmark: pd.Series) -> Score:
    """Return Pearson's correlation with ``benchmark``'s returns on the bars both have."""
    strategy, bench, shape = _paired(returns, benchmark, 252.0, 0.0)
    return shape(_correlation(bench, strategy))


def tracking_error(returns: Returns, benchmark: pd.Series, periods_per_year: float = 252.0) -> Score:
    """Return the annualised standard deviation (ddof=1) of the return over the benchmark's."""
    strategy, bench, shape = _paired(returns, benchmark, periods_per_year, 0.0)
    return shape(_std(strategy - bench) * np.sqrt(periods_per_year))


def information_ratio(returns: Returns, benchmark: pd.Series, periods_per_year: float = 252.0) -> Score:
    """Return the annualised information ratio: mean active return over its deviation, times ``sqrt(P)``."""
    strategy, bench, shape = _paired(returns, benchmark, periods_per_year, 0.0)
    active = strategy - bench
    with quiet():
        mean = _mean(active, axis=0)
    return shape(ratio(mean, _std(active)) * np.sqrt(periods_per_year))
