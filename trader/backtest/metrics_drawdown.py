"""Drawdown metrics: how far and how long an equity curve falls below its running peak, column by column.

These functions read an equity curve (account values, or any wealth curve),
a Series or a DataFrame of many (bars x columns), because a drawdown is a
property of the path, and a backtest's equity holds every bar: the deepest
fall between two daily closes is seen, not only the daily ones. A curve of
returns becomes one with :func:`wealth`. Drawdowns are positive fractions
(0.2 = 20 % below the peak); durations are in days (calendar time, a float).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from trader.backtest.metrics_returns import Returns, Score, matrix, quiet, ratio

__all__ = ["drawdown", "max_drawdown", "max_drawdown_days", "recovery_factor", "ulcer_index", "wealth"]

DAY = pd.Timedelta(days=1)
BLOCK_ROWS = 1 << 15  # rows of equity whose drawdown is taken at once


def wealth(returns: Returns) -> Returns:
    """Return the growth of 1.0 invested at the start: a first row of 1.0, then ``cumprod(1 + r)``.

    The first row stands for the moment before the first return, one median
    step earlier than it (a day when there is a single return). NaN returns
    count as no change.
    """
    index = returns.index
    start: object = -1
    if isinstance(index, pd.DatetimeIndex) and len(index):
        step = pd.Series(index).diff().median() if len(index) > 1 else DAY
        start = index[0] - (step if step > pd.Timedelta(0) else DAY)
    grown = (1.0 + returns.fillna(0.0)).cumprod()
    if isinstance(returns, pd.DataFrame):
        head = pd.DataFrame(1.0, index=[start], columns=returns.columns)
    else:
        head = pd.Series([1.0], index=[start], name=returns.name)
    return pd.concat([head, grown])


def drawdown(equity: Returns) -> Returns:
    """Return the drawdown at every bar: ``1 - equity / running peak`` (0 at a new high), the same shape."""
    if isinstance(equity, pd.DataFrame):
        out = _drawdown(equity.to_numpy(dtype=float, na_value=np.nan))
        return pd.DataFrame(out, index=equity.index, columns=equity.columns)
    return pd.Series(_drawdown(equity.to_numpy(dtype=float, na_value=np.nan)), index=equity.index, name=equity.name)


def _drawdown(array: np.ndarray) -> np.ndarray:
    with quiet():
        return 1.0 - array / np.fmax.accumulate(array, axis=0)


def _blocks(array: np.ndarray) -> Iterator[np.ndarray]:
    """Yield the drawdown of ``array`` a block of rows at a time, the running peak carried across blocks.

    A sweep's chunk of equity (1M bars x 10 combos: 80 MB) then costs a few
    MB of temporaries instead of three copies of itself.
    """
    peak = np.full(array.shape[1], np.nan)  # fmax(x, NaN) is x: no peak yet
    with quiet():
        for start in range(0, len(array), BLOCK_ROWS):
            block = array[start:start + BLOCK_ROWS]
            running = np.fmax(np.fmax.accumulate(block, axis=0), peak)
            peak = running[-1]
            yield 1.0 - block / running


def _deepest(array: np.ndarray) -> np.ndarray:
    deepest = np.full(array.shape[1], np.nan)
    with quiet():
        for block in _blocks(array):
            deepest = np.fmax(deepest, np.nanmax(block, axis=0))
    return deepest


def max_drawdown(equity: Returns) -> Score:
    """Return the deepest fall from a running peak, a positive fraction (0.0 for a curve that never falls)."""
    array, shape = matrix(equity)
    return shape(_deepest(array))


def max_drawdown_days(equity: Returns) -> Score:
    """Return the longest time under water in days: from a peak to the first bar back at it (or the last bar).

    Calendar days, a float (a drawdown from Friday's close recovered at
    Monday's is 3.0 days). 0.0 for a curve that never falls; the index must be
    a DatetimeIndex (a plain index counts one day per bar). It holds a few
    arrays the size of ``equity``: meant for a backtest, not a sweep's chunk.
    """
    array, shape = matrix(equity)
    if len(array) < 2:
        return shape(np.zeros(array.shape[1]))
    under = _drawdown(array) > 0
    rows = np.arange(len(array))[:, None]
    # the row of the last peak at or before each bar (a NaN bar is neither a peak nor under water)
    peak = np.maximum.accumulate(np.where(~under & ~np.isnan(array), rows, 0), axis=0)
    index = equity.index
    if isinstance(index, pd.DatetimeIndex):
        times = (index.asi8 - index.asi8[0]) / DAY.value
    else:
        times = np.arange(len(index), dtype=float)
    # bar i under water, or the first bar back at the peak: it has been peak(i - 1) -> i under water
    counted = under[1:] | under[:-1]
    span = times[1:, None] - times[peak[:-1]]
    return shape(np.max(np.where(counted, span, 0.0), axis=0))


def ulcer_index(equity: Returns) -> Score:
    """Return the ulcer index: the root mean square of the drawdown over every bar (a fraction)."""
    array, shape = matrix(equity)
    squares, count = np.zeros(array.shape[1]), np.zeros(array.shape[1])
    for block in _blocks(array):
        squares += np.nansum(block**2, axis=0)
        count += np.sum(~np.isnan(block), axis=0)
    return shape(ratio(squares, count) ** 0.5)


def recovery_factor(equity: Returns) -> Score:
    """Return the total return over the max drawdown (NaN for a curve that never falls)."""
    array, shape = matrix(equity)
    with quiet():
        total = array[-1] / array[0] - 1.0
    return shape(ratio(total, _deepest(array)))
