"""Technical indicators and signal helpers, vectorized over pandas Series.

Every function here is causal: its value at bar ``t`` uses bars ``<= t``
only, so a strategy built from them gives the same value at a bar whether
``signals`` runs over a live rolling window or over the whole history (the
parity the strategy contract relies on). Bars before an indicator is defined
are NaN; a strategy turns them into 0 (flat).

Two families differ in how far back they look. ``sma``, ``returns`` and the
rolling extremes inside ``smi`` read a fixed number of bars, so their value is
bit-identical over any window that holds those bars. ``ema``, ``rsi`` and the
smoothing in ``smi`` are recursive: the first value of the window seeds them,
and the seed's weight decays as ``(1 - alpha) ** bars`` (``alpha = 2 / (n + 1)``
for ``ema``, ``1 / n`` for Wilder's smoothing in ``rsi``). Give such a strategy
a warm-up of several times its periods so a live window's value matches the
backtest's to within rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "crossover",
    "ema",
    "hold_between",
    "returns",
    "rsi",
    "sma",
    "smi",
    "spread_sign",
]

#: Relative difference below which two values count as equal in comparisons:
#: far above float rounding (~1e-16), far below any price tick (~1e-6 of price).
REL_TOL = 1e-9


def _check_period(n: int, what: str = "n") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {n!r}")


def sma(series: pd.Series, n: int) -> pd.Series:
    """Return the simple moving average over ``n`` bars.

    ``sma_t = (x_{t-n+1} + ... + x_t) / n``; NaN for the first ``n - 1`` bars
    (and for any window holding a NaN).

    Each value is summed from its own ``n`` inputs, oldest first, rather than
    from a running sum, so it depends on those inputs alone and is
    bit-identical over any window that holds them (a running sum carries
    rounding from older bars, which can flip a comparison at a tie).
    """
    _check_period(n)
    values = series.to_numpy(dtype=float)
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        count = len(values) - n + 1
        total = values[:count].copy()
        for lag in range(1, n):
            total += values[lag : lag + count]
        out[n - 1 :] = total / n
    return pd.Series(out, index=series.index, name=series.name)


def ema(series: pd.Series, n: int) -> pd.Series:
    """Return the exponential moving average with span ``n``.

    ``alpha = 2 / (n + 1)``; ``e_0 = x_0`` (the first non-NaN value) and
    ``e_t = alpha * x_t + (1 - alpha) * e_{t-1}``. NaN until ``n`` values have
    been seen. Recursive: see the module docstring about warm-up.
    """
    _check_period(n)
    return series.astype(float).ewm(span=n, adjust=False, min_periods=n).mean()


def _wilder(values: pd.Series, n: int) -> pd.Series:
    """Wilder's smoothing of ``values`` whose first element is NaN (a diff).

    ``a_n = mean(v_1 .. v_n)``, then ``a_t = (a_{t-1} * (n - 1) + v_t) / n``;
    NaN before bar ``n``.
    """
    seeded = pd.Series(np.nan, index=values.index, dtype=float)
    if len(values) > n:
        seeded.iloc[n] = values.iloc[1 : n + 1].mean()
        seeded.iloc[n + 1 :] = values.iloc[n + 1 :]
    # An EMA with alpha = 1/n that starts at the seed is exactly Wilder's recursion.
    return seeded.ewm(alpha=1.0 / n, adjust=False).mean()


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Return Wilder's relative strength index, 0..100.

    With ``change_t = close_t - close_{t-1}``, ``gain = max(change, 0)`` and
    ``loss = max(-change, 0)``, each is smoothed the Wilder way: the first
    average (at bar ``n``) is the plain mean of the first ``n`` changes, then
    ``avg_t = (avg_{t-1} * (n - 1) + x_t) / n``. ``RSI = 100 - 100 / (1 + RS)``
    with ``RS = avg_gain / avg_loss``: 100 when there are no losses, 50 when
    the price has not moved at all. NaN for the first ``n`` bars.
    """
    _check_period(n)
    change = close.astype(float).diff()
    avg_gain = _wilder(change.clip(lower=0.0), n)
    avg_loss = _wilder((-change).clip(lower=0.0), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    value = value.mask((avg_loss == 0) & (avg_gain > 0), 100.0)
    value = value.mask((avg_loss == 0) & (avg_gain == 0), 50.0)
    return value.rename(close.name)


def smi(
    high: pd.Series, low: pd.Series, close: pd.Series, k: int = 10, d: int = 3, signal: int = 3
) -> pd.DataFrame:
    """Return Blau's stochastic momentum index and its signal line (columns ``smi``, ``signal``).

    Over the last ``k`` bars, ``HH`` is the highest high and ``LL`` the lowest
    low. The distance of the close from the range's midpoint,
    ``D = close - (HH + LL) / 2``, and the range ``R = HH - LL`` are each
    smoothed twice with ``ema(., d)``;
    ``SMI = 100 * ema(ema(D, d), d) / (0.5 * ema(ema(R, d), d))``, in -100..100
    (0 while the smoothed range is 0). ``signal = ema(SMI, signal)``.
    """
    for value, what in ((k, "k"), (d, "d"), (signal, "signal")):
        _check_period(value, what)
    highest = high.astype(float).rolling(k, min_periods=k).max()
    lowest = low.astype(float).rolling(k, min_periods=k).min()
    distance = close.astype(float) - (highest + lowest) / 2.0
    smoothed_distance = ema(ema(distance, d), d)
    smoothed_range = ema(ema(highest - lowest, d), d)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = 100.0 * smoothed_distance / (0.5 * smoothed_range)
    index = index.mask(smoothed_range == 0, 0.0)
    return pd.DataFrame({"smi": index, "signal": ema(index, signal)}, index=close.index)


def returns(close: pd.Series, n: int = 1) -> pd.Series:
    """Return the ``n``-bar change as a fraction: ``close_t / close_{t-n} - 1`` (0.01 = 1 %).

    NaN for the first ``n`` bars.
    """
    _check_period(n)
    close = close.astype(float)
    return close / close.shift(n) - 1.0


def spread_sign(a: pd.Series, b: pd.Series, rel_tol: float = REL_TOL) -> pd.Series:
    """Return +1.0 where ``a > b``, -1.0 where ``a < b``, 0.0 at ties, NaN where either is NaN.

    Values within ``rel_tol * max(|a|, |b|)`` of each other count as equal, so
    float rounding (two averages of the same flat prices) never reads as a
    difference.
    """
    diff = a.astype(float) - b.astype(float)
    tol = rel_tol * np.maximum(a.abs(), b.abs())
    sign = pd.Series(np.where(diff > tol, 1.0, np.where(diff < -tol, -1.0, 0.0)), index=a.index)
    return sign.where(diff.notna())


def crossover(a: pd.Series, b: pd.Series, rel_tol: float = REL_TOL) -> pd.Series:
    """Return +1.0 at bars where ``a`` crosses above ``b``, -1.0 where it crosses below, else 0.0.

    A cross is a change of ``spread_sign(a, b)`` between +1 and -1; bars
    where the two are equal are skipped (touching is not crossing, and
    ``a`` going from below to equal to above crosses once, when it gets
    above). The first side ``a`` is seen on is not a cross.
    """
    side = spread_sign(a, b, rel_tol).replace(0.0, np.nan).ffill()
    previous = side.shift(1)
    up = (side == 1.0) & (previous == -1.0)
    down = (side == -1.0) & (previous == 1.0)
    return pd.Series(np.where(up, 1.0, np.where(down, -1.0, 0.0)), index=a.index)


def hold_between(entries: pd.Series, exits: pd.Series) -> pd.Series:
    """Return 1.0 from each bar where ``entries`` is true until one where ``exits`` is, else 0.0.

    The position is held (forward-filled) between the two; an exit wins over
    an entry on the same bar, and the series starts flat. ``entries`` and
    ``exits`` are boolean Series on the same index (NaN counts as false).
    """
    enter = entries.to_numpy(dtype=bool, na_value=False)
    leave = exits.to_numpy(dtype=bool, na_value=False)
    events = pd.Series(np.where(leave, 0.0, np.where(enter, 1.0, np.nan)), index=entries.index)
    return events.ffill().fillna(0.0)
