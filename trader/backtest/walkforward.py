"""Walk-forward analysis: optimise in-sample with a sweep, trade the winner out-of-sample, roll, stitch.

The bars are cut into rolling windows: ``in_sample`` bars (or trading days,
with ``unit="days"``) to optimise on, then the next ``out_of_sample`` to test
on; the next window starts ``out_of_sample`` later, so the out-of-sample
periods follow one another without overlap and cover everything after the
first in-sample period, but for a last out-of-sample stub: a last window
whose out-of-sample is shorter than half of ``out_of_sample`` is dropped
(logged), since an objective scored on a day and a half (a Sharpe of -27)
says nothing and would sit among the others as if it did. A shorter last
window of at least half is kept.

Per window the sweep (:func:`trader.backtest.sweep.run`, same method,
objective and constraints) picks the best parameters on the in-sample bars;
they are then traded over the out-of-sample bars only, their signals warmed
up on the in-sample bars before it. Each out-of-sample run starts flat with
the cash the previous one ended with (its positions valued at its last
close), so the stitched equity is one account rolled forward. A window whose
sweep finds no valid combination stays flat (its equity does not move).
All windows run on one Dask client.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trader.backtest import sweep
from trader.backtest.chunks import SweepPayload, evaluate_equity
from trader.backtest.cluster import connect
from trader.backtest.objective import Constraint, combo_metrics
from trader.backtest.params import ParamSpace
from trader.backtest.result import WalkForwardResult
from trader.backtest.settings import BacktestSettings, with_overrides
from trader.backtest.signals import common_index
from trader.errors import ValidationError
from trader.strategy.base import Strategy

__all__ = ["UNITS", "Window", "run", "windows"]

log = logging.getLogger(__name__)

UNITS = ("bars", "days")


@dataclass(frozen=True)
class Window:
    """One step of the walk: positions ``[is_start, oos_start)`` in-sample, ``[oos_start, oos_end)`` out."""

    is_start: int
    oos_start: int
    oos_end: int


def windows(index: pd.DatetimeIndex, in_sample: int, out_of_sample: int, unit: str = "bars") -> list[Window]:
    """Return the rolling windows over ``index`` (positions), or raise ValidationError if none fits."""
    if unit not in UNITS:
        raise ValidationError(f"unknown window unit {unit!r} (known: {', '.join(UNITS)})")
    if in_sample < 1 or out_of_sample < 1:
        raise ValidationError(f"in-sample ({in_sample}) and out-of-sample ({out_of_sample}) must be at least 1 {unit}")
    if unit == "bars":
        starts = list(range(len(index) + 1))  # a bar boundary per bar
    else:
        days = index.normalize()
        starts = [0, *(int(i) for i in (days[1:] != days[:-1]).nonzero()[0] + 1), len(index)]  # day boundaries
    out: list[Window] = []
    step = 0
    while step + in_sample < len(starts) - 1:
        end = min(step + in_sample + out_of_sample, len(starts) - 1)
        out.append(Window(starts[step], starts[step + in_sample], starts[end]))
        step += out_of_sample
    if len(out) > 1 and 2 * (_units(starts, out[-1].oos_end) - _units(starts, out[-1].oos_start)) < out_of_sample:
        stub = out.pop()
        log.info("walk-forward: the last out-of-sample window (%d of %d %s) is dropped as too short",
                 _units(starts, stub.oos_end) - _units(starts, stub.oos_start), out_of_sample, unit)
    if not out:
        raise ValidationError(f"{len(starts) - 1} {unit} are too few for an in-sample of {in_sample} {unit} "
                              "and any out-of-sample")
    return out


def _units(starts: list[int], position: int) -> int:
    """Return how many units (bars or days) lie before bar ``position`` (a unit boundary)."""
    return starts.index(position)


def run(strategy: Strategy, bars: dict[str, pd.DataFrame], space: ParamSpace, *, in_sample: int,
        out_of_sample: int, unit: str = "bars", settings: BacktestSettings | None = None, method: str = "grid",
        objective: str = "sharpe", constraints: Sequence[str | Constraint] = (), trials: int | None = None,
        seed: int = 0, workers: int | None = None, scheduler: str | None = None, client: Any = None,
        memory_mb: float = sweep.DEFAULT_MEMORY_MB, progress: bool = True) -> WalkForwardResult:
    """Walk ``strategy`` forward over ``bars``; return the windows and the stitched out-of-sample equity."""
    started = time.perf_counter()
    settings = settings or strategy.config.backtest
    index = _common_index(bars)
    steps = windows(index, in_sample, out_of_sample, unit)
    bar_size = settings.bar_size or strategy.bar_size
    rows: list[dict[str, Any]] = []
    pieces: list[pd.Series] = []
    cash = float(settings.initial_cash)
    with connect(workers=workers, scheduler=scheduler, client=client) as dask_client:
        for number, step in enumerate(steps, 1):
            in_bars = _slice(bars, index, step.is_start, step.oos_start)
            found = sweep.run(strategy, in_bars, space, settings=settings, method=method, objective=objective,
                              constraints=constraints, trials=trials, seed=seed, client=dask_client,
                              memory_mb=memory_mb, progress=progress, store=False)
            has_best = len(found.table) > 0 and not math.isnan(float(found.table["objective"].iloc[0]))
            best = found.best if has_best else None
            oos_index = index[step.oos_start:step.oos_end]
            window_settings = with_overrides(settings, {"initial_cash": cash})
            if best is None:
                equity = pd.Series(cash, index=oos_index, dtype=float)
                oos_objective = math.nan
            else:
                job = SweepPayload.of(strategy, _slice(bars, index, step.is_start, step.oos_end), window_settings, objective)
                scattered = dask_client.scatter(job, hash=False)
                equity = dask_client.submit(evaluate_equity, scattered, best, oos_index[0], pure=False).result()
                dask_client.cancel([scattered])
                oos_objective = float(combo_metrics(equity.to_frame(0), [0.0], [0.0], bar_size=bar_size,
                                                    risk_free=settings.risk_free, objective=objective)
                                      ["objective"].iloc[0])
            log.info("walk-forward window %d/%d: best %s, out-of-sample %s %.4g", number, len(steps), best,
                     objective, oos_objective)
            rows.append({"is_start": index[step.is_start], "is_end": index[step.oos_start - 1],
                         "oos_start": oos_index[0], "oos_end": oos_index[-1], "params": best,
                         "is_objective": float(found.table["objective"].iloc[0]) if has_best else math.nan,
                         "oos_objective": oos_objective})
            pieces.append(equity)
            cash = float(equity.iloc[-1])
    stitched = pd.concat(pieces)
    stitched.name = "equity"
    return WalkForwardResult(strategy=strategy.name, objective=objective, windows=pd.DataFrame(rows),
                             equity=stitched, elapsed=time.perf_counter() - started)


def _common_index(bars: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    if not bars:
        raise ValidationError("a walk-forward needs bars")
    return pd.DatetimeIndex(common_index(bars))


def _slice(bars: dict[str, pd.DataFrame], index: pd.DatetimeIndex, start: int, end: int) -> dict[str, pd.DataFrame]:
    """Return each instrument's bars from position ``start`` to ``end`` (exclusive) of the common index."""
    first, last = index[start], index[end - 1]
    return {name: frame.loc[first:last] for name, frame in bars.items()}
