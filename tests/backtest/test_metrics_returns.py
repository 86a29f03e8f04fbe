"""Return metrics: hand-computed values on a tiny series, column-wise use, and empyrical/quantstats on random returns.

The tiny series is r = [0.10, -0.05, 0.02, -0.01, 0.04]; the arithmetic is
written next to each check. The cross-checks run the independent
implementations on the same seeded daily returns (several seeds); where a
definition differs, the comment says how and the test converts.
"""

from __future__ import annotations

import math
import warnings

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from scipy import stats as scipy_stats

from trader.backtest import metrics_returns as mr

R = pd.Series([0.10, -0.05, 0.02, -0.01, 0.04], index=pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"))
SEEDS = (0, 1, 2, 3, 4)


def daily(seed: int, n: int = 501) -> pd.Series:
    """Return seeded daily returns with fat tails (n=501: 500 * 0.05 and 500 * 0.01 are whole indices)."""
    rng = np.random.default_rng(seed)
    values = 0.0004 + 0.01 * rng.standard_t(4, n)
    return pd.Series(values, index=pd.date_range("2020-01-01", periods=n, freq="B"), name="strategy")


def benchmark_of(returns: pd.Series, seed: int) -> pd.Series:
    """Return a benchmark correlated with ``returns``."""
    rng = np.random.default_rng(seed + 100)
    return pd.Series(0.5 * returns.to_numpy() + 0.008 * rng.standard_normal(len(returns)), index=returns.index)


@pytest.fixture(autouse=True)
def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore", module="quantstats")
    warnings.filterwarnings("ignore", module="empyrical")


# ---- hand-computed values -------------------------------------------------------------------------------------


def test_total_and_annual_returns_by_hand() -> None:
    # 1.10 * 0.95 * 1.02 * 0.99 * 1.04 = 1.09745064
    assert mr.total_return(R) == pytest.approx(0.09745064)
    # mean = (0.10 - 0.05 + 0.02 - 0.01 + 0.04) / 5 = 0.02; * 4 periods a year
    assert mr.annual_return(R, 4) == pytest.approx(0.08)
    # 5 returns at 5 a year: one year, CAGR = growth - 1; at 10 a year: half a year, growth ** 2 - 1
    assert mr.cagr(R, 5) == pytest.approx(0.09745064)
    assert mr.cagr(R, 10) == pytest.approx(1.09745064**2 - 1)


def test_volatility_sharpe_sortino_omega_by_hand() -> None:
    # deviations from 0.02: 0.08 -0.07 0 -0.03 0.02; squares sum 0.0064 + 0.0049 + 0.0009 + 0.0004 = 0.0126
    std = math.sqrt(0.0126 / 4)  # ddof=1
    assert mr.volatility(R, 4) == pytest.approx(std * 2)
    assert mr.sharpe(R, 4) == pytest.approx(0.02 / std * 2)
    # shortfalls below 0: -0.05, -0.01 over all 5 periods: sqrt((0.0025 + 0.0001) / 5 * 4)
    downside = math.sqrt(0.0026 / 5 * 4)
    assert mr.downside_deviation(R, 4) == pytest.approx(downside)
    assert mr.sortino(R, 4) == pytest.approx(0.02 * 4 / downside)
    # gains 0.10 + 0.02 + 0.04 = 0.16 over losses 0.05 + 0.01 = 0.06
    assert mr.omega(R, 4) == pytest.approx(0.16 / 0.06)


def test_risk_free_rate_is_deannualised() -> None:
    # 4 periods a year at 21.550625 %: (1.21550625) ** (1/4) = 1.05, so 5 % a period is taken off every return
    rf = 1.05**4 - 1
    excess = R - 0.05  # -> mean -0.03, same deviation
    assert mr.per_period(rf, 4) == pytest.approx(0.05)
    assert mr.sharpe(R, 4, rf) == pytest.approx(-0.03 / math.sqrt(0.0126 / 4) * 2)
    assert mr.sortino(R, 4, rf) == pytest.approx(mr.sortino(excess, 4))
    # excess: 0.05 -0.10 -0.03 -0.06 -0.01: gains 0.05, losses 0.20
    assert mr.omega(R, 4, rf) == pytest.approx(0.25)


def test_tail_figures_by_hand() -> None:
    # sorted -0.05 -0.01 0.02 0.04 0.10; linear percentile at position p * (n - 1):
    # 95 %: 3.8 -> 0.04 + 0.8 * 0.06 = 0.088; 5 %: 0.2 -> -0.05 + 0.2 * 0.04 = -0.042
    assert mr.tail_ratio(R) == pytest.approx(0.088 / 0.042)
    assert mr.value_at_risk(R, 0.95) == pytest.approx(0.042)
    # the returns at or below -0.042: only -0.05
    assert mr.conditional_value_at_risk(R, 0.95) == pytest.approx(0.05)
    # Gaussian: z(0.05) = -1.6448536; pdf(z) = 0.1031356
    std = math.sqrt(0.0126 / 4)
    assert mr.parametric_var(R, 0.95) == pytest.approx(-(0.02 - 1.6448536 * std), rel=1e-6)
    assert mr.parametric_cvar(R, 0.95) == pytest.approx(-(0.02 - std * 0.1031356 / 0.05), rel=1e-6)
    assert mr.best_return(R) == pytest.approx(0.10)
    assert mr.worst_return(R) == pytest.approx(-0.05)


def test_moments_by_hand() -> None:
    # central moments over n=5: m2 = 0.0126/5 = 0.00252;
    # m3 = (0.08^3 - 0.07^3 - 0.03^3 + 0.02^3) / 5 = (0.000512 - 0.000343 - 0.000027 + 0.000008) / 5 = 0.00003
    # m4 = (0.08^4 + 0.07^4 + 0.03^4 + 0.02^4) / 5 = 0.00006594 / 5 = 0.000013188
    m2, m3, m4, n = 0.00252, 0.00003, 0.000013188, 5
    g1 = m3 / m2**1.5
    assert mr.skew(R) == pytest.approx(g1 * math.sqrt(n * (n - 1)) / (n - 2))
    g2 = m4 / m2**2 - 3
    assert mr.kurtosis(R) == pytest.approx(((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3)))


def test_stability_by_hand() -> None:
    steady = pd.Series([math.exp(0.01) - 1] * 6)  # log equity 0.01, 0.02, ...: a straight line, R^2 = 1
    assert mr.stability(steady) == pytest.approx(1.0)
    # log equity 1, 0, 1 at t = 0, 1, 2: no linear trend, R^2 = 0
    there_and_back = pd.Series([math.e - 1, math.exp(-1) - 1, math.e - 1])
    assert mr.stability(there_and_back) == pytest.approx(0.0, abs=1e-12)


def test_benchmark_figures_by_hand() -> None:
    b = pd.Series([0.01, -0.02, 0.03, 0.0])
    r = 2 * b + 0.001  # beta 2, correlation 1, alpha 0.001 a period
    assert mr.beta(r, b) == pytest.approx(2.0)
    assert mr.correlation(r, b) == pytest.approx(1.0)
    assert mr.correlation(-r, b) == pytest.approx(-1.0)
    assert mr.alpha(r, b, 252) == pytest.approx(0.252)
    # active return r - b = b + 0.001: mean 0.006; std(b) = sqrt((0.005^2 + 0.025^2 + 0.025^2 + 0.005^2) / 3)
    std = math.sqrt(0.0013 / 3)
    assert mr.tracking_error(r, b, 4) == pytest.approx(std * 2)
    assert mr.information_ratio(r, b, 4) == pytest.approx(0.006 / std * 2)


# ---- undefined figures are NaN, nothing raises ---------------------------------------------------------------------


@pytest.mark.parametrize("returns", [pd.Series([], dtype=float), pd.Series([0.0] * 10), pd.Series([0.01] * 10)],
                         ids=["empty", "flat", "constant"])
def test_undefined_ratios_are_nan(returns: pd.Series) -> None:
    for figure in (mr.sharpe, mr.sortino, mr.skew, mr.kurtosis, mr.omega):
        value = figure(returns)
        assert isinstance(value, float)
        assert math.isnan(value), figure.__name__
    # a steady climb is perfectly stable; no move at all has no trend to fit
    assert mr.stability(returns) == pytest.approx(1.0) if returns.sum() else math.isnan(mr.stability(returns))
    assert mr.total_return(returns) == pytest.approx((1.01**10 - 1) if returns.sum() else 0.0)


def test_no_losing_period_gives_nan_not_infinity() -> None:
    gains = pd.Series([0.01, 0.02, 0.0])
    assert math.isnan(mr.omega(gains))
    assert math.isnan(mr.sortino(gains))
    assert math.isnan(mr.tail_ratio(pd.Series([0.0] * 20 + [0.01])))


# ---- column-wise ---------------------------------------------------------------------------------------------------

COLUMNWISE = [
    lambda r: mr.total_return(r), lambda r: mr.annual_return(r), lambda r: mr.cagr(r), lambda r: mr.volatility(r),
    lambda r: mr.sharpe(r, 252, 0.02), lambda r: mr.sortino(r, 252, 0.02), lambda r: mr.omega(r),
    lambda r: mr.downside_deviation(r), lambda r: mr.tail_ratio(r), lambda r: mr.skew(r), lambda r: mr.kurtosis(r),
    lambda r: mr.value_at_risk(r), lambda r: mr.conditional_value_at_risk(r), lambda r: mr.parametric_var(r),
    lambda r: mr.parametric_cvar(r), lambda r: mr.best_return(r), lambda r: mr.worst_return(r),
    lambda r: mr.stability(r),
]


@pytest.mark.parametrize("figure", COLUMNWISE)
def test_a_dataframe_scores_each_column_as_its_series(figure) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({seed: daily(seed, 300) for seed in SEEDS})
    frame[99] = 0.0  # a flat column among them
    frame.iloc[:10, 0] = np.nan  # a column that starts late
    scores = figure(frame)
    assert isinstance(scores, pd.Series)
    assert list(scores.index) == list(frame.columns)
    for column in frame.columns:
        single = figure(frame[column])
        assert (math.isnan(single) and math.isnan(scores[column])) or scores[column] == pytest.approx(single)


def test_benchmark_figures_column_wise() -> None:
    frame = pd.DataFrame({seed: daily(seed) for seed in SEEDS})
    bench = benchmark_of(frame[0], 0)
    for figure in (mr.alpha, mr.beta, mr.correlation, mr.tracking_error, mr.information_ratio):
        scores = figure(frame, bench)
        for column in frame.columns:
            assert scores[column] == pytest.approx(figure(frame[column], bench)), figure.__name__


# ---- cross-checks against empyrical-reloaded and quantstats ---------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_returns_and_ratios_match_empyrical_and_quantstats(seed: int) -> None:
    r = daily(seed)
    assert mr.total_return(r) == pytest.approx(empyrical.cum_returns_final(r))
    assert mr.total_return(r) == pytest.approx(qs.stats.comp(r))
    # both count years as returns / 252, as we do
    assert mr.cagr(r) == pytest.approx(empyrical.cagr(r))
    assert mr.cagr(r) == pytest.approx(qs.stats.cagr(r, periods=252))
    # annual_return is the arithmetic mean * 252; neither library has it (empyrical's annual_return is the CAGR)
    assert mr.annual_return(r) == pytest.approx(np.mean(r) * 252)
    assert mr.volatility(r) == pytest.approx(empyrical.annual_volatility(r))
    assert mr.volatility(r) == pytest.approx(qs.stats.volatility(r, periods=252))
    assert mr.sharpe(r) == pytest.approx(empyrical.sharpe_ratio(r))
    assert mr.sharpe(r) == pytest.approx(qs.stats.sharpe(r, periods=252))
    # empyrical takes a per-period risk-free rate; quantstats deannualises an annual one as we do
    assert mr.sharpe(r, 252, 0.03) == pytest.approx(empyrical.sharpe_ratio(r, risk_free=mr.per_period(0.03, 252)))
    assert mr.sharpe(r, 252, 0.03) == pytest.approx(qs.stats.sharpe(r, rf=0.03, periods=252))
    # Sortino: all three average the squared shortfall over every period (not the deviation of the losses alone)
    assert mr.sortino(r) == pytest.approx(empyrical.sortino_ratio(r))
    assert mr.sortino(r) == pytest.approx(qs.stats.sortino(r, periods=252))
    assert mr.sortino(r, 252, 0.03) == pytest.approx(qs.stats.sortino(r, rf=0.03, periods=252))
    assert mr.downside_deviation(r) == pytest.approx(empyrical.downside_risk(r))
    assert mr.omega(r) == pytest.approx(empyrical.omega_ratio(r))
    assert mr.omega(r) == pytest.approx(qs.stats.omega(r, periods=252))
    assert mr.omega(r, 252, 0.03) == pytest.approx(empyrical.omega_ratio(r, risk_free=mr.per_period(0.03, 252)))
    assert mr.stability(r) == pytest.approx(empyrical.stability_of_timeseries(r))


@pytest.mark.parametrize("seed", SEEDS)
def test_shape_and_tails_match_empyrical_and_quantstats(seed: int) -> None:
    r = daily(seed)
    assert mr.tail_ratio(r) == pytest.approx(empyrical.tail_ratio(r))
    assert mr.tail_ratio(r) == pytest.approx(qs.stats.tail_ratio(r))
    # skew and kurtosis are the unbiased sample ones (pandas', quantstats'); empyrical lists scipy's biased
    # default, so scipy is asked for the unbiased one
    assert mr.skew(r) == pytest.approx(qs.stats.skew(r))
    assert mr.skew(r) == pytest.approx(scipy_stats.skew(r, bias=False))
    assert mr.kurtosis(r) == pytest.approx(qs.stats.kurtosis(r))
    assert mr.kurtosis(r) == pytest.approx(scipy_stats.kurtosis(r, bias=False))
    # VaR and CVaR are positive losses here, negative returns there
    for confidence in (0.95, 0.99):
        cutoff = 1 - confidence
        assert mr.value_at_risk(r, confidence) == pytest.approx(-empyrical.value_at_risk(r, cutoff))
        # empyrical averages the lowest int((n - 1) * cutoff) + 1 returns; with n = 501 that index is the
        # percentile itself, so its tail is exactly the returns at or below it, as ours and quantstats'
        assert mr.conditional_value_at_risk(r, confidence) == pytest.approx(
            -empyrical.conditional_value_at_risk(r, cutoff))
        assert mr.conditional_value_at_risk(r, confidence) == pytest.approx(
            -qs.stats.conditional_value_at_risk(r, confidence=confidence, method="historical"))
        assert mr.parametric_var(r, confidence) == pytest.approx(-qs.stats.value_at_risk(r, confidence=confidence))
        assert mr.parametric_cvar(r, confidence) == pytest.approx(
            -qs.stats.conditional_value_at_risk(r, confidence=confidence, method="parametric"))
    assert mr.best_return(r) == pytest.approx(qs.stats.best(r))
    assert mr.worst_return(r) == pytest.approx(qs.stats.worst(r))


@pytest.mark.parametrize("seed", SEEDS)
def test_benchmark_figures_match_empyrical_and_quantstats(seed: int) -> None:
    r = daily(seed)
    b = benchmark_of(r, seed)
    assert mr.beta(r, b) == pytest.approx(empyrical.beta(r, b))
    greeks = qs.stats.greeks(r, b, periods=252)
    assert mr.beta(r, b) == pytest.approx(greeks["beta"])
    # quantstats' alpha is arithmetic (mean excess * 252), as ours; empyrical compounds the mean daily alpha:
    # (1 + alpha / 252) ** 252 - 1
    assert mr.alpha(r, b) == pytest.approx(greeks["alpha"])
    assert (1 + mr.alpha(r, b) / 252) ** 252 - 1 == pytest.approx(empyrical.alpha(r, b))
    rf = mr.per_period(0.03, 252)
    assert mr.beta(r, b, 252, 0.03) == pytest.approx(empyrical.beta(r, b, risk_free=rf))
    assert (1 + mr.alpha(r, b, 252, 0.03) / 252) ** 252 - 1 == pytest.approx(empyrical.alpha(r, b, risk_free=rf))
    assert mr.correlation(r, b) ** 2 == pytest.approx(qs.stats.r_squared(r, b))
    assert mr.correlation(r, b) == pytest.approx(np.corrcoef(r, b)[0, 1])
    # quantstats' information ratio is per period; ours is annualised by sqrt(252)
    assert mr.information_ratio(r, b) == pytest.approx(qs.stats.information_ratio(r, b) * math.sqrt(252))
    assert mr.tracking_error(r, b) == pytest.approx(np.std(r - b, ddof=1) * math.sqrt(252))


def test_benchmark_pairs_only_the_bars_both_have() -> None:
    r = daily(7)
    b = benchmark_of(r, 7)
    gappy = b.copy()
    gappy.iloc[::10] = np.nan
    both = gappy.notna()
    assert mr.beta(r, gappy) == pytest.approx(empyrical.beta(r[both], b[both]))
    assert mr.correlation(r, gappy) == pytest.approx(np.corrcoef(r[both], b[both])[0, 1])
