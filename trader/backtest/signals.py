"""A strategy's signals over a backtest's history: called once per instrument, checked as live checks them.

Live, the strategy service calls ``signals`` on a rolling window at each
closed bar and checks the last value (trader.strategy.runner ``_decide``,
trader.strategy.sizing ``check_target``). Here it is called once over the
whole history of each instrument and every value gets the same checks,
vectorized:

- ``signals`` raising, or returning something other than a Series as long as
  the prices, is a SignalError naming the strategy, the instrument and the
  reason (live: the strategy goes to ERROR);
- a NaN target is a bar live skips (no trade): the backtest skips it too and
  lists it in ``skipped`` (a run of NaN bars is one entry: first and last bar);
- a value that is not a number, infinite, outside -1..1 (units: fraction) or
  beyond ``max_shares`` (units: shares) is a SignalError naming the bar time
  and the value, with ``check_target``'s reason; a fraction within the
  tolerance beyond 1 is clipped, as live.

One call over the whole history answers what live's rolling window answers
only if each value depends on the last ``Strategy.window`` bars at most and
never on a later bar. :func:`window_check` samples a few bars (``SAMPLES``)
and calls ``signals`` on the window live would hold there; a bar whose
target differs is named in ``skipped`` (look-ahead, or memory longer than the
window: an EWM or Wilder smoothing warmed over more bars than the window
keeps). It costs ``SAMPLES`` calls on a window's bars per instrument.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from numba import njit

from trader.strategy.base import Strategy, StrategyConfig
from trader.strategy.sizing import SignalError, check_target

__all__ = ["SAMPLES", "check_signals", "common_index", "target_frame", "window_check"]

log = logging.getLogger(__name__)

SAMPLES = 5

def target_frame(strategy: Strategy, bars: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Return the checked targets (bars x instruments, NaN where skipped) and what was skipped.

    The index is the union of the instruments' bar times: an instrument has
    NaN at the times it has no bar.
    """
    columns: dict[str, pd.Series] = {}
    skipped: list[str] = []
    for instrument, prices in bars.items():
        try:
            series = strategy.signals(prices)
        except SignalError:
            raise
        except Exception as exc:
            raise SignalError(f"strategy {strategy.name}: signals raised {type(exc).__name__} for {instrument}: "
                              f"{exc}") from exc
        values, nan_runs = check_signals(series, prices.index, strategy.config, f"strategy {strategy.name} "
                                         f"{instrument}")
        skipped.extend(f"{instrument}: signals returned NaN {run}: no trade on it" for run in nan_runs)
        columns[instrument] = pd.Series(values, index=prices.index)
    if len(columns) == 1:
        return pd.DataFrame(columns), skipped
    index = common_index(columns)
    return pd.DataFrame({name: s.reindex(index) for name, s in columns.items()}, index=index), skipped


def common_index(frames: dict[str, pd.DataFrame] | dict[str, pd.Series]) -> pd.DatetimeIndex:
    """Return the union of the instruments' bar times (the one index a backtest's instruments share)."""
    indexes = [frame.index for frame in frames.values()]
    index = indexes[0]
    for other in indexes[1:]:
        index = index.union(other)
    return index


def window_check(strategy: Strategy, bars: dict[str, pd.DataFrame], targets: pd.DataFrame,
                 samples: int = SAMPLES) -> list[str]:
    """Return, per instrument, the first sampled bar whose whole-history target is not live's window target.

    Live decides at bar ``t`` on ``prices.iloc[t - window + 1 : t + 1]`` once
    ``warmup`` bars are in (trader.strategy.runner ``_decide``); ``samples``
    bars from the first such bar to the last are called that way.
    """
    window, out = strategy.window, []
    for instrument, prices in bars.items():
        n = len(prices)
        first = max(strategy.warmup, 1) - 1
        if n == 0 or first >= n:
            continue
        column = targets[instrument].reindex(prices.index).to_numpy()
        for t in np.unique(np.linspace(first, n - 1, samples).round().astype(np.int64)):
            try:
                live = strategy.signals(prices.iloc[max(0, t - window + 1):t + 1])
                value = float(live.iloc[-1])
            except Exception as exc:  # noqa: BLE001 - a window too short for the strategy is a finding too
                value, why = np.nan, f" ({type(exc).__name__}: {exc})"
            else:
                why = ""
            whole = column[t]
            if strategy.config.units == "fraction" and not np.isnan(value):
                value = min(max(value, -1.0), 1.0)
            if (np.isnan(whole) and np.isnan(value)) or abs(whole - value) <= 1e-9 * max(1.0, abs(whole)):
                continue
            out.append(f"{instrument}: at bar {prices.index[t].isoformat()} signals over the whole history say "
                       f"{whole:g}, over live's window of {window} bars {value:g}{why}: look-ahead or memory "
                       f"beyond the window; live may trade otherwise (raise window or warmup)")
            break
    return out


@njit(cache=True)
def _first_beyond(values: np.ndarray, start: int, limit: float) -> tuple[int, int]:
    """Return the first index from ``start`` whose value is not finite or larger than ``limit`` in size (-1: none)
    and how many values are NaN before it."""
    nans = 0
    for k in range(start, values.shape[0]):
        v = values[k]
        if np.isnan(v):
            nans += 1
        elif not np.isfinite(v) or abs(v) > limit:
            return k, nans
    return -1, nans


def check_signals(series: object, index: pd.DatetimeIndex, config: StrategyConfig, who: str) -> tuple[np.ndarray,
                                                                                                      list[str]]:
    """Return ``series``'s values as checked float targets and the NaN runs (text), or raise SignalError.

    One numba pass finds the values to look at: not finite, or larger than 1
    (a fraction) or within a hair of ``max_shares`` (shares); each is judged by
    the live ``check_target`` (a fraction within the tolerance is clipped,
    shares exactly at the maximum pass).
    """
    if not isinstance(series, pd.Series) or len(series) != len(index):
        got = type(series).__name__ if not isinstance(series, pd.Series) else f"length {len(series)}"
        raise SignalError(f"{who}: signals must return a Series as long as prices ({len(index)}), got {got}")
    values = _numbers(series, index, config, who)
    if config.units == "fraction":
        limit = 1.0
    else:
        limit = float(config.max_shares) * (1 - 1e-12) if config.max_shares is not None else np.inf
    nans, at, clip = 0, 0, False
    while True:
        k, counted = _first_beyond(values, at, limit)
        nans += counted
        if k < 0:
            break
        _refuse(values[k], index[k], config, who)  # raises unless check_target lets it pass
        clip = config.units == "fraction"
        at = k + 1
    if clip:
        values = np.clip(values, -1.0, 1.0)  # within the tolerance beyond 1: clipped, as live (NaN stays NaN)
    return values, _runs(np.isnan(values), index) if nans else []


def _numbers(series: pd.Series, index: pd.DatetimeIndex, config: StrategyConfig, who: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        for k, value in enumerate(series.array):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            _refuse(value, index[k], config, who)  # raises if check_target refuses the value
        return pd.to_numeric(series, errors="raise").to_numpy(np.float64)
    if series.dtype == np.float64:
        return series.to_numpy()  # no copy: only read
    return series.to_numpy(np.float64, na_value=np.nan)


def _refuse(value: object, stamp: pd.Timestamp, config: StrategyConfig, who: str) -> None:
    try:
        check_target(value, config)
    except SignalError as exc:
        raise SignalError(f"{who} at bar {stamp.isoformat()}: {exc}") from None


def _runs(nan: np.ndarray, index: pd.DatetimeIndex) -> list[str]:
    if not nan.any():
        return []
    edges = np.diff(np.concatenate(([0], nan.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    out = []
    for first, last in zip(starts, ends, strict=True):
        if first == last:
            out.append(f"at bar {index[first].isoformat()}")
        else:
            out.append(f"at {last - first + 1} bars from {index[first].isoformat()} to {index[last].isoformat()}")
    return out
