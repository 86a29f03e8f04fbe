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
"""

from __future__ import annotations

import logging
from decimal import Decimal

import numpy as np
import pandas as pd

from trader.strategy.base import Strategy, StrategyConfig
from trader.strategy.sizing import SignalError, check_target

__all__ = ["check_signals", "target_frame"]

log = logging.getLogger(__name__)

_TOLERANCE = 1e-9


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
    frames = list(columns.values())
    if len(frames) == 1:
        return pd.DataFrame(columns), skipped
    index = frames[0].index
    for frame in frames[1:]:
        index = index.union(frame.index)
    return pd.DataFrame({name: s.reindex(index) for name, s in columns.items()}, index=index), skipped


def check_signals(series: object, index: pd.DatetimeIndex, config: StrategyConfig, who: str) -> tuple[np.ndarray,
                                                                                                      list[str]]:
    """Return ``series``'s values as checked float targets and the NaN runs (text), or raise SignalError."""
    if not isinstance(series, pd.Series) or len(series) != len(index):
        got = type(series).__name__ if not isinstance(series, pd.Series) else f"length {len(series)}"
        raise SignalError(f"{who}: signals must return a Series as long as prices ({len(index)}), got {got}")
    values = _numbers(series, index, config, who)
    nan = np.isnan(values)
    bad = ~nan & ~np.isfinite(values)
    if config.units == "fraction":
        bad |= np.abs(values) > 1 + _TOLERANCE
    elif config.max_shares is not None:
        limit = float(config.max_shares)
        near = ~nan & (np.abs(values) >= limit * (1 - 1e-12))
        for k in np.flatnonzero(near):
            bad[k] |= abs(Decimal(repr(float(values[k])))) > config.max_shares
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        _refuse(values[k], index[k], config, who)
    if config.units == "fraction":
        values = np.clip(values, -1.0, 1.0)  # NaN stays NaN
    return values, _runs(nan, index)


def _numbers(series: pd.Series, index: pd.DatetimeIndex, config: StrategyConfig, who: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        for k, value in enumerate(series.array):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            _refuse(value, index[k], config, who)  # raises if check_target refuses the value
        return pd.to_numeric(series, errors="raise").to_numpy(np.float64)
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
