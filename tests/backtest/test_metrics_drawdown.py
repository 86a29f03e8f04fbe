"""Drawdown metrics: a hand-worked equity curve, column-wise use, and empyrical/quantstats on random returns."""

from __future__ import annotations

import math
import warnings

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from trader.backtest import metrics_drawdown as md
from trader.backtest.metrics import calmar
from trader.backtest.metrics_returns import cagr

DAYS = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")
# peak 100 -> 110 (Jan 2), down to 88 (Jan 4), back above 110 on Jan 6 (121), 110 on Jan 7 (the end)
EQUITY = pd.Series([100.0, 110.0, 99.0, 88.0, 105.0, 121.0, 110.0], index=DAYS)
SEEDS = (0, 1, 2, 3, 4)


def daily(seed: int, n: int = 500) -> pd.Series:
    """Return seeded returns on consecutive calendar days (so quantstats' day counts are bar counts)."""
    rng = np.random.default_rng(seed)
    return pd.Series(0.0003 + 0.012 * rng.standard_t(4, n), index=pd.date_range("2021-01-01", periods=n, freq="D"))


@pytest.fixture(autouse=True)
def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore", module="quantstats")


def test_drawdown_by_hand() -> None:
    # running peak 100 110 110 110 110 121 121
    expected = [0, 0, 1 - 99 / 110, 1 - 88 / 110, 1 - 105 / 110, 0, 1 - 110 / 121]
    assert md.drawdown(EQUITY).to_numpy() == pytest.approx(expected)
    assert md.max_drawdown(EQUITY) == pytest.approx(0.2)  # 88 / 110
    # Jan 2 (the peak) -> Jan 6 (back above it): 4 days; Jan 6 -> Jan 7 still under: 1 day
    assert md.max_drawdown_days(EQUITY) == pytest.approx(4.0)
    # sqrt(mean of the squares over 7 bars): (0.1^2 + 0.2^2 + (5/110)^2 + (11/121)^2) / 7
    squares = 0.1**2 + 0.2**2 + (5 / 110) ** 2 + (11 / 121) ** 2
    assert md.ulcer_index(EQUITY) == pytest.approx(math.sqrt(squares / 7))
    # total return 110 / 100 - 1 = 0.10 over 0.2
    assert md.recovery_factor(EQUITY) == pytest.approx(0.5)


def test_duration_counts_calendar_days_and_an_unrecovered_end() -> None:
    hours = pd.date_range("2024-01-05 20:00", periods=4, freq="12h", tz="UTC")
    # peak at Fri 20:00, under water until the last bar (Sun 08:00): 1.5 days, never recovered
    assert md.max_drawdown_days(pd.Series([10.0, 9.0, 9.5, 9.9], index=hours)) == pytest.approx(1.5)
    # a curve that never falls: no time under water
    assert md.max_drawdown_days(pd.Series([1.0, 2.0, 3.0], index=hours[:3])) == 0.0


def test_flat_and_short_curves_do_not_raise() -> None:
    flat = pd.Series([5.0] * 4, index=DAYS[:4])
    assert md.max_drawdown(flat) == 0.0
    assert md.max_drawdown_days(flat) == 0.0
    assert md.ulcer_index(flat) == 0.0
    assert math.isnan(md.recovery_factor(flat))
    empty = flat.iloc[:0]
    assert math.isnan(md.max_drawdown(empty))
    assert md.max_drawdown_days(empty) == 0.0
    assert md.drawdown(empty).empty


def test_wealth_prepends_the_start() -> None:
    grown = md.wealth(pd.Series([0.1, -0.1], index=DAYS[1:3]))
    assert grown.to_numpy() == pytest.approx([1.0, 1.1, 0.99])
    assert grown.index[0] == DAYS[0]  # one median step before the first return


def test_a_dataframe_scores_each_column_as_its_series() -> None:
    frame = pd.DataFrame({seed: md.wealth(daily(seed, 200)) for seed in SEEDS})
    frame["flat"] = 1.0
    for figure in (md.max_drawdown, md.max_drawdown_days, md.ulcer_index, md.recovery_factor):
        scores = figure(frame)
        assert list(scores.index) == list(frame.columns)
        for column in frame.columns:
            single = figure(frame[column])
            assert (math.isnan(single) and math.isnan(scores[column])) or scores[column] == pytest.approx(single)
    assert md.drawdown(frame)[0].to_numpy() == pytest.approx(md.drawdown(frame[0]).to_numpy())


@pytest.mark.parametrize("seed", SEEDS)
def test_match_empyrical_and_quantstats(seed: int) -> None:
    r = daily(seed)
    curve = md.wealth(r)
    # drawdowns are positive fractions here, negative there
    assert md.max_drawdown(curve) == pytest.approx(-empyrical.max_drawdown(r))
    assert md.max_drawdown(curve) == pytest.approx(-qs.stats.max_drawdown(r))
    assert md.drawdown(curve).iloc[1:].to_numpy() == pytest.approx(-qs.stats.to_drawdown_series(r).to_numpy())
    # quantstats divides the squares of the n returns' drawdowns by n - 1; ours is the mean over the n + 1
    # points of the curve (its start is at 0)
    n = len(r)
    assert md.ulcer_index(curve) ** 2 * (n + 1) == pytest.approx(qs.stats.ulcer_index(r) ** 2 * (n - 1))
    # both CAGR and max drawdown of the same returns, as empyrical's Calmar
    assert calmar(r) == pytest.approx(empyrical.calmar_ratio(r))
    assert calmar(r) == pytest.approx(cagr(r) / -empyrical.max_drawdown(r))
    # recovery factor: the compounded total return over the max drawdown (quantstats' sums the returns instead)
    assert md.recovery_factor(curve) == pytest.approx(empyrical.cum_returns_final(r) / -empyrical.max_drawdown(r))


@pytest.mark.parametrize("seed", SEEDS)
def test_duration_matches_quantstats_drawdown_details(seed: int) -> None:
    r = daily(seed)
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(r))
    # quantstats counts a drawdown from its first day under water to its last, both included; ours runs from
    # the peak (the day before) to the day back at it: one more day, unless it is still under water at the
    # end, where both stop at the last day
    last = r.index[-1].strftime("%Y-%m-%d")
    ours = [days + (0 if end == last else 1) for days, end in zip(details["days"], details["end"], strict=True)]
    assert md.max_drawdown_days(md.wealth(r)) == pytest.approx(max(ours))


def test_blocks_carry_the_peak_across_them() -> None:
    rows = 2 * md.BLOCK_ROWS + 17
    rng = np.random.default_rng(5)
    curve = np.cumprod(1 + 0.001 * rng.standard_normal((rows, 3)), axis=0)
    curve[10] = 5.0  # a peak in the first block that nothing after it reaches
    curve[md.BLOCK_ROWS + 100, 1] = 0.5  # the trough in the second block
    curve[:50, 2] = np.nan  # a column that starts late
    frame = pd.DataFrame(curve)
    whole = 1 - curve / np.fmax.accumulate(curve, axis=0)  # all at once
    assert md.max_drawdown(frame).to_numpy() == pytest.approx(np.nanmax(whole, axis=0))
    assert md.max_drawdown(frame)[1] == pytest.approx(0.9)
    assert md.ulcer_index(frame).to_numpy() == pytest.approx(np.sqrt(np.nanmean(whole**2, axis=0)))
    assert md.drawdown(frame).to_numpy() == pytest.approx(whole, nan_ok=True)
