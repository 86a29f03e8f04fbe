"""The indicators: hand-computed values, the textbook RSI, causality, window independence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.strategy.indicators import (
    crossover,
    ema,
    hold_between,
    returns,
    rsi,
    sma,
    smi,
    spread_sign,
)


def series(values: list[float]) -> pd.Series:
    index = pd.date_range(
        "2024-01-02 14:30", periods=len(values), freq="1min", tz="UTC", name="time"
    )
    return pd.Series(values, index=index, dtype=float)


def walk(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    index = pd.date_range("2024-01-02 14:30", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)


def assert_same(got: pd.Series, expected: list[float], abs_tol: float = 1e-12) -> None:
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got.tolist(), expected, strict=True)):
        if math.isnan(e):
            assert math.isnan(g), f"bar {i}: expected NaN, got {g}"
        else:
            assert g == pytest.approx(e, abs=abs_tol), f"bar {i}: expected {e}, got {g}"


NAN = float("nan")

# StockCharts' worked RSI(14) example (Wilder's method); the values are TA-Lib's, to 4 decimals.
WILDER_CLOSES = [
    44.3389,
    44.0902,
    44.1497,
    43.6124,
    44.3278,
    44.8264,
    45.0955,
    45.4245,
    45.8433,
    46.0826,
    45.8931,
    46.0328,
    45.6140,
    46.2820,
    46.2820,
    46.0028,
    46.0328,
    46.4116,
    46.2222,
    45.6439,
    46.2122,
    46.2521,
    45.7137,
    46.4515,
    45.7835,
    45.3548,
    44.0288,
    44.1783,
    44.2181,
    44.5672,
    43.4205,
    42.6628,
    43.1314,
]
WILDER_RSI = [
    70.5328,
    66.3186,
    66.5498,
    69.4063,
    66.3552,
    57.9749,
    62.9296,
    63.2571,
    56.0593,
    62.3771,
    54.7076,
    50.4228,
    39.9898,
    41.4605,
    41.8689,
    45.4632,
    37.3040,
    33.0795,
    37.7730,
]


# -- moving averages -----------------------------------------------------------------------
def test_sma_is_the_plain_mean_of_the_last_n_values() -> None:
    assert_same(sma(series([1, 2, 3, 4, 5]), 3), [NAN, NAN, 2, 3, 4])
    assert_same(sma(series([1, 2, 3, 4, 5]), 1), [1, 2, 3, 4, 5])
    assert_same(sma(series([1, 2]), 3), [NAN, NAN])
    assert_same(sma(series([1, NAN, 3, 4, 5]), 2), [NAN, NAN, NAN, 3.5, 4.5])


def test_sma_depends_on_its_window_alone_to_the_bit() -> None:
    close = walk(400, seed=3)["close"]
    whole = sma(close, 20)
    for start in (1, 7, 150, 300):
        part = sma(close.iloc[start:], 20)
        assert (part.iloc[19:] == whole.iloc[start + 19 :]).all()  # exact, not approximately


def test_ema_follows_its_recursion_from_the_first_value() -> None:
    # span 3: alpha = 0.5; e = 1, 1.5, 2.25, 3.125, shown once 3 values are in
    assert_same(ema(series([1, 2, 3, 4]), 3), [NAN, NAN, 2.25, 3.125])
    # span 1: alpha = 1, the series itself
    assert_same(ema(series([5, 7, 6]), 1), [5, 7, 6])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_periods_must_be_positive_integers(bad: object) -> None:
    with pytest.raises(ValueError, match="integer >= 1"):
        sma(series([1, 2, 3]), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer >= 1"):
        rsi(series([1, 2, 3]), bad)  # type: ignore[arg-type]


# -- RSI -----------------------------------------------------------------------------------
def test_rsi_matches_wilders_worked_example() -> None:
    got = rsi(series(WILDER_CLOSES), 14)
    assert got.iloc[:14].isna().all()
    assert_same(got.iloc[14:], WILDER_RSI, abs_tol=1e-4)


def test_rsi_by_hand_with_period_2() -> None:
    # changes +1, -0.5, +1, -0.5. Bar 2: gains (1, 0) -> 0.5, losses (0, 0.5) -> 0.25, RS 2.
    # Bar 3: gain (0.5 + 1) / 2 = 0.75, loss (0.25 + 0) / 2 = 0.125, RS 6.
    # Bar 4: gain (0.75 + 0) / 2 = 0.375, loss (0.125 + 0.5) / 2 = 0.3125, RS 1.2.
    got = rsi(series([1, 2, 1.5, 2.5, 2]), 2)
    assert_same(got, [NAN, NAN, 100 - 100 / 3, 100 - 100 / 7, 100 - 100 / 2.2])


def test_rsi_at_the_extremes() -> None:
    assert_same(rsi(series([1, 2, 3, 4, 5]), 3), [NAN, NAN, NAN, 100, 100])  # no losses
    assert_same(rsi(series([5, 4, 3, 2, 1]), 3), [NAN, NAN, NAN, 0, 0])  # no gains
    assert_same(rsi(series([3, 3, 3, 3, 3]), 3), [NAN, NAN, NAN, 50, 50])  # no movement
    assert rsi(series([1, 2]), 3).isna().all()


# -- SMI -----------------------------------------------------------------------------------
def test_smi_without_smoothing_is_the_distance_from_the_midpoint_over_half_the_range() -> None:
    high = series([10, 12, 11, 13, 12])
    low = series([8, 9, 9, 10, 7])
    close = series([9, 11, 10, 12, 8])
    got = smi(high, low, close, k=3, d=1, signal=1)
    # bar 2: HH 12, LL 8, mid 10, close 10 -> 0; bar 3: HH 13, LL 9, mid 11, close 12 -> 100 * 1 / 2
    # bar 4: HH 13, LL 7, mid 10, close 8 -> 100 * -2 / 3
    assert_same(got["smi"], [NAN, NAN, 0, 50, -200 / 3])
    assert_same(got["signal"], [NAN, NAN, 0, 50, -200 / 3])
    assert list(got.columns) == ["smi", "signal"]


def test_smi_smooths_distance_and_range_twice_then_takes_the_signal_ema() -> None:
    frame = walk(60, seed=5)
    k, d, signal = 5, 3, 4
    got = smi(frame["high"], frame["low"], frame["close"], k=k, d=d, signal=signal)

    def reference_ema(values: list[float], span: int) -> list[float]:
        alpha, out, acc, seen = 2 / (span + 1), [], NAN, 0
        for v in values:
            if not math.isnan(v):
                acc = v if seen == 0 else alpha * v + (1 - alpha) * acc
                seen += 1
            out.append(acc if seen >= span else NAN)
        return out

    highs, lows, closes = frame["high"].tolist(), frame["low"].tolist(), frame["close"].tolist()
    hh = [max(highs[i - k + 1 : i + 1]) if i >= k - 1 else NAN for i in range(len(highs))]
    ll = [min(lows[i - k + 1 : i + 1]) if i >= k - 1 else NAN for i in range(len(lows))]
    dist = reference_ema(
        reference_ema([c - (h + lo) / 2 for c, h, lo in zip(closes, hh, ll)], d), d
    )
    rng = reference_ema(reference_ema([h - lo for h, lo in zip(hh, ll)], d), d)
    expected = [100 * a / (0.5 * b) for a, b in zip(dist, rng)]
    assert_same(got["smi"], expected, abs_tol=1e-9)
    assert_same(got["signal"], reference_ema(expected, signal), abs_tol=1e-9)
    assert got["smi"].dropna().between(-100, 100).all()


def test_smi_of_a_flat_market_is_zero() -> None:
    flat = series([5.0] * 20)
    got = smi(flat, flat, flat, k=5, d=3, signal=3)
    assert (got.dropna() == 0).all().all()
    assert got["signal"].notna().sum() > 0


# -- returns -------------------------------------------------------------------------------
def test_returns_are_fractional_changes_over_n_bars() -> None:
    assert_same(returns(series([100, 110, 99]), 1), [NAN, 0.1, -0.1])
    assert_same(returns(series([100, 110, 99]), 2), [NAN, NAN, -0.01])


# -- comparisons and state -----------------------------------------------------------------
def test_spread_sign_treats_rounding_as_a_tie() -> None:
    a = series([0.1 + 0.2, 2.0, 1.0, NAN])
    b = series([0.3, 1.0, 2.0, 1.0])
    assert 0.1 + 0.2 != 0.3
    assert_same(spread_sign(a, b), [0, 1, -1, NAN])


def test_crossover_marks_changes_of_side_and_skips_touches() -> None:
    a = series([1, 3, 3, 2, 3, 1, 2, 3, NAN])
    b = series([2, 2, 3, 3, 3, 3, 2, 2, 2])
    # sides: -1, +1, =, -1, =, -1, =, +1, NaN  -> up at 1, down at 3 (via the tie), up at 7
    assert_same(crossover(a, b), [0, 1, 0, -1, 0, 0, 0, 1, 0])


def test_hold_between_holds_from_entry_to_exit() -> None:
    entries = series([0, 1, 0, 0, 1, 1, 0, 0]).astype(bool)
    exits = series([1, 0, 0, 1, 1, 0, 0, 1]).astype(bool)
    # bar 4 has both: the exit wins; bar 5 enters again
    assert_same(hold_between(entries, exits), [0, 1, 1, 0, 0, 1, 1, 0])


# -- causality -----------------------------------------------------------------------------
def test_every_indicator_is_causal() -> None:
    frame = walk(300, seed=11)
    high, low, close = frame["high"], frame["low"], frame["close"]

    def compute(h: pd.Series, lo: pd.Series, c: pd.Series) -> pd.DataFrame:
        lines = smi(h, lo, c, k=10, d=3, signal=5)
        return pd.DataFrame(
            {
                "sma": sma(c, 10),
                "ema": ema(c, 10),
                "rsi": rsi(c, 14),
                "returns": returns(c, 5),
                "smi": lines["smi"],
                "signal": lines["signal"],
                "cross": crossover(sma(c, 5), sma(c, 20)),
            }
        )

    whole = compute(high, low, close)
    for cut in (1, 2, 10, 15, 31, 150, 299):
        part = compute(high.iloc[:cut], low.iloc[:cut], close.iloc[:cut])
        pd.testing.assert_frame_equal(part, whole.iloc[:cut])
