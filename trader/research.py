"""Research from Python: backtest, sweep and walk-forward a strategy plugin by name, in a notebook or a script.

    from trader.research import backtest, sweep, walkforward

    result = backtest("ma_crossover", start="2026-01-02", end="2026-03-01", fast=5, slippage="0.0005")
    result.stats["sharpe"], result.trades, result.equity
    result.plot()                 # a Plotly figure, inline in Jupyter
    result.report("ma.html")      # the self-contained tear sheet

    found = sweep("ma_crossover", {"fast": "2:20", "slow": "10:100:5"}, objective="sharpe", workers=2)
    found.best, found.table.head()

The plugin is found and configured as :mod:`trader.backtest.job` says
(the strategies directory strategy_service loads, the config's
``backtest:`` section, overrides on top); keywords beyond the named ones
follow the ``--set`` rule: a name the strategy's ``Params`` declares is a
parameter, else a backtest setting, else a ValidationError naming it. The
``trader backtest|sweep|walkforward`` commands call these same functions.

Numba's compiled code is cached on disk (``cache=True`` in the engine and
Monte Carlo, and vectorbt's own), in ``NUMBA_CACHE_DIR`` if set, else in
``$XDG_CACHE_HOME/trader/numba`` (``~/.cache/trader/numba``): one directory
per user rather than ``__pycache__`` inside the installed packages (which
may be read-only, or shared by several checkouts), and not under
``TRADER_HOME``, which tests and profiles make afresh. It is set when this
package (:mod:`trader.backtest`) is imported, before numba is, so a second run in a fresh process
loads the machine code instead of compiling it (measured in
docs/ARCHITECTURE.md, "Research").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trader.backtest.job import Job, prepare
from trader.backtest.numba_cache import numba_cache_dir
from trader.backtest.settings import BacktestSettings
from trader.config import Settings
from trader.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from trader.backtest.data import LoadedBars
    from trader.backtest.result import BacktestResult, SweepResult, WalkForwardResult

__all__ = ["backtest", "load_bars", "numba_cache_dir", "sweep", "walkforward"]

log = logging.getLogger(__name__)

_R = TypeVar("_R")


def _job(name: str, start: datetime | str | None, end: datetime | str | None, instruments: Sequence[str] | None,
         data: str | Path | None, params: Mapping[str, Any] | None,
         settings: Mapping[str, Any] | BacktestSettings | None, directory: str | Path | None,
         platform: Settings | None, sets: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> Job:
    clash = sorted(set(sets or {}) & set(overrides))
    if clash:
        raise ValidationError(f"{', '.join(clash)} given twice (in sets and as a keyword)")
    overrides = {**(sets or {}), **overrides}
    return prepare(name, start=_moment(start), end=_moment(end), instruments=instruments, data=data,
                   params=params, settings=settings, overrides=overrides, directory=directory, platform=platform)


def _moment(value: datetime | str | None) -> datetime | None:
    """Return a date or time given as text (``2026-03-02``) as an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value
    from trader.data.frames import utc

    return utc(value).to_pydatetime()


def load_bars(job: Job) -> LoadedBars:
    """Return the bars of ``job``'s instruments over its range (its data file, else the platform's store)."""
    from trader.backtest.data import load_for

    store = None
    if job.settings.data is None:
        from trader.data.factory import open_store

        store = open_store(job.platform)
    return load_for(job.strategy, job.settings, store=store)


def backtest(
    name: str,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    instruments: Sequence[str] | None = None,
    data: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | BacktestSettings | None = None,
    sets: Mapping[str, Any] | None = None,
    directory: str | Path | None = None,
    platform: Settings | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides: Any,
) -> BacktestResult:
    """Backtest strategy ``name`` over stored bars (or ``data``, a CSV/Parquet file); return its result.

    ``start``/``end``/``instruments``/``data`` replace the config's
    ``backtest:`` values; ``params`` are strategy parameters, ``settings``
    backtest settings (a mapping, dotted keys allowed, or a whole
    BacktestSettings); ``sets`` (``--set``'s mapping) and ``overrides``
    follow the ``--set`` rule. ``progress`` is called with each stage's
    name (loading bars, running) as it starts. ``directory`` is the strategies directory (default: the platform's),
    ``platform`` the platform settings (default: the active profile's).
    """
    job = _job(name, start, end, instruments, data, params, settings, directory, platform, sets, overrides)
    try:
        began = time.perf_counter()
        step = progress or (lambda _stage: None)
        step("loading bars")
        loaded = load_bars(job)
        step("running")
        from trader.backtest.engine import run

        result = run(job.strategy, loaded.bars, job.settings, benchmark=loaded.benchmark, skipped=loaded.skipped)
        result.elapsed = time.perf_counter() - began  # loading included: what the caller waited
        log.info("backtest of %s: %d orders in %.2f s", name, len(result.orders), result.elapsed)
        return result
    finally:
        job.close()


def sweep(
    name: str,
    space: Mapping[str, Any] | Sequence[str],
    *,
    method: str = "grid",
    objective: str = "sharpe",
    constraints: Sequence[str] = (),
    trials: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    progress: bool = False,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    instruments: Sequence[str] | None = None,
    data: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | BacktestSettings | None = None,
    sets: Mapping[str, Any] | None = None,
    directory: str | Path | None = None,
    platform: Settings | None = None,
    **overrides: Any,
) -> SweepResult:
    """Search strategy ``name``'s parameters over ``space`` for the best ``objective``; return every combination.

    ``space`` maps a parameter to a range (``"2:20"``, ``"10:100:5"``), a
    list of values, or is a list of ``NAME=RANGE`` words (``--param``).
    ``method`` is grid, random or genetic (``trials`` combinations for the
    last two); ``constraints`` are expressions over the metrics
    (``"max_drawdown < 0.2"``); ``workers`` Dask processes of a LocalCluster,
    or ``scheduler`` a cluster's address. The rest as for :func:`backtest`.
    """
    job = _job(name, start, end, instruments, data, params, settings, directory, platform, sets, overrides)

    def search(bars: dict[str, pd.DataFrame], grid: Any, client: Any) -> SweepResult:
        from trader.backtest.sweep import run as run_sweep

        return run_sweep(job.strategy, bars, grid, settings=job.settings, method=method,
                         objective=objective, constraints=list(constraints), trials=trials, seed=seed,
                         client=client, progress=progress, home=job.platform.home)

    return _search(job, space, workers, scheduler, search)


def walkforward(
    name: str,
    space: Mapping[str, Any] | Sequence[str],
    *,
    in_sample: int,
    out_of_sample: int,
    unit: str = "days",
    method: str = "grid",
    objective: str = "sharpe",
    constraints: Sequence[str] = (),
    trials: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    progress: bool = False,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    instruments: Sequence[str] | None = None,
    data: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | BacktestSettings | None = None,
    sets: Mapping[str, Any] | None = None,
    directory: str | Path | None = None,
    platform: Settings | None = None,
    **overrides: Any,
) -> WalkForwardResult:
    """Walk strategy ``name`` forward: optimise on each in-sample window, test on the next; stitch the tests.

    Each window optimises on ``in_sample`` trading days (``unit="bars"``:
    bars), then trades the winner on the next ``out_of_sample``; the next
    window starts ``out_of_sample`` later. The rest as for :func:`sweep`.
    """
    job = _job(name, start, end, instruments, data, params, settings, directory, platform, sets, overrides)

    def search(bars: dict[str, pd.DataFrame], grid: Any, client: Any) -> WalkForwardResult:
        from trader.backtest.walkforward import run as run_walkforward

        return run_walkforward(job.strategy, bars, grid, settings=job.settings,
                               in_sample=in_sample, out_of_sample=out_of_sample, unit=unit, method=method,
                               objective=objective, constraints=list(constraints), trials=trials, seed=seed,
                               client=client, progress=progress)

    return _search(job, space, workers, scheduler, search)


def _search(job: Job, space: Mapping[str, Any] | Sequence[str], workers: int | None, scheduler: str | None,
            search: Callable[[dict[str, pd.DataFrame], Any, Any], _R]) -> _R:
    """Return ``search(bars, grid, client)`` of ``job``, then unload its plugin.

    A bad ``space`` is refused, and the Dask cluster reached (an unreachable
    ``scheduler`` named within :data:`~trader.backtest.cluster.CONNECT_TIMEOUT`),
    before any bar is read: reading a million bars first would only delay the error.
    """
    try:
        grid = _parsed_space(job, space)
        from trader.backtest.cluster import connect

        with connect(workers=workers, scheduler=scheduler) as client:
            return search(load_bars(job).bars, grid, client)
    finally:
        job.close()


def _parsed_space(job: Job, space: Mapping[str, Any] | Sequence[str]) -> Any:
    """Return the search space over the job's strategy's Params (its other parameters as the base)."""
    from trader.backtest.params import parse_space

    return parse_space(_space(space), type(job.strategy).Params, base=job.params)


def _space(space: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """Return a search space as ``NAME=RANGE`` words, the form ``--param`` takes."""
    if isinstance(space, Mapping):
        words = []
        for key, value in space.items():
            if isinstance(value, (list, tuple, range)):
                value = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in value)
            words.append(f"{key}={value}")
        return words
    return list(space)
