"""A parameter sweep: grid, random or genetic search over a strategy's Params, in chunks on Dask.

:func:`run` asks an optuna study for combinations in batches (its ask/tell
interface: the sampler proposes, the chunks are simulated, the values are
told back before the next batch), so one loop serves the three methods:

- ``grid``: optuna's GridSampler over every combination of the space;
- ``random``: its RandomSampler, ``trials`` distinct combinations;
- ``genetic``: its NSGAIISampler, ``trials`` distinct combinations in
  generations of ``population`` (one generation per batch).

Random and genetic ask again until ``trials`` distinct combinations have a
row (refused ones included) or the space has none left; a sampler that keeps
repeating itself is given ``_ASK_FACTOR`` times ``trials`` asks, then the
sweep ends with the rows it has (``SweepResult.trials`` keeps what was asked).

All three are seeded. A combination the strategy's ``Params`` refuses
(``fast >= slow``) is dropped and counted, not simulated; one asked twice is
simulated once. A sweep the ``Params`` refuse entirely is a ValidationError
naming the reason (nothing is stored). A batch is cut into chunks of
parameter columns sized from a memory budget per worker
(:func:`trader.backtest.chunks.chunk_columns`) and at most a
``1 / CHUNKS_PER_WORKER`` share of the batch per worker, so every worker gets
chunks when there are enough combinations; the
bars are scattered to the workers once, and each chunk returns only its
metrics, so memory stays bounded whatever the grid's size. A worker that
dies costs its chunks only (:mod:`trader.backtest.cluster`). The result is
stored as Parquet (:mod:`trader.backtest.sweep_store`) unless ``store`` is
false.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.chunks import SweepPayload, chunk_columns, evaluate
from trader.backtest.cluster import connect, suspicious
from trader.backtest.objective import Constraint, direction, objective_function, parse_constraint
from trader.backtest.params import ParamSpace
from trader.backtest.progress import SweepProgress
from trader.backtest.result import SweepResult
from trader.backtest.settings import BacktestSettings
from trader.backtest.sweep_store import load
from trader.backtest.sweep_store import store as store_result
from trader.errors import InternalError, ValidationError
from trader.strategy.base import Strategy

__all__ = ["DEFAULT_MEMORY_MB", "METHODS", "load", "run"]

log = logging.getLogger(__name__)

METHODS = ("grid", "random", "genetic")
DEFAULT_MEMORY_MB = 600  # per worker, for the chunk being simulated (the bars and the interpreter come on top)
DEFAULT_TRIALS = 100
_MAX_BATCH = 4096  # combinations asked at once by grid and random (optuna's ask is per trial)
_RESUBMITS = 3  # times a chunk whose scattered input was lost is sent again
CHUNKS_PER_WORKER = 2  # a batch is cut into at least this many chunks per worker (when it has the combinations)
_ASK_FACTOR = 10  # random / genetic stop asking after this many times --trials asks (a sampler repeating itself)


def run(strategy: Strategy, bars: dict[str, pd.DataFrame], space: ParamSpace, *,
        settings: BacktestSettings | None = None, method: str = "grid", objective: str = "sharpe",
        constraints: Sequence[str | Constraint] = (), trials: int | None = None, population: int | None = None,
        seed: int = 0, workers: int | None = None, scheduler: str | None = None, client: Any = None,
        memory_mb: float = DEFAULT_MEMORY_MB, progress: bool = True, store: bool = True,
        home: Path | None = None) -> SweepResult:
    """Sweep ``strategy`` over ``space`` on ``bars``; return the table, best first (stored unless ``store=False``)."""
    started = time.perf_counter()
    if method not in METHODS:
        raise ValidationError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    objective_function(objective)
    parsed = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    if not bars or any(len(frame) < 2 for frame in bars.values()):
        raise ValidationError("a sweep needs at least two bars of every instrument")
    settings = settings or strategy.config.backtest
    n_trials = space.size if method == "grid" else int(trials or min(DEFAULT_TRIALS, space.size))
    if n_trials < 1:
        raise ValidationError(f"--trials must be at least 1, got {n_trials}")
    generation = population or max(8, min(50, n_trials // 4))
    study = _study(method, space, objective, seed, generation)
    job = SweepPayload.of(strategy, bars, settings, objective)
    memory_chunk = chunk_columns(job.n_bars, len(bars), int(memory_mb * 2**20))
    batch = generation if method == "genetic" else min(n_trials, _MAX_BATCH)
    with connect(workers=workers, scheduler=scheduler, client=client) as dask_client, \
            SweepProgress(min(n_trials, space.size), enabled=progress) as bar:
        n_workers = max(1, len(dask_client.scheduler_info().get("workers", {})))
        per_chunk = min(memory_chunk, max(1, batch // (CHUNKS_PER_WORKER * n_workers)))
        log.info("sweep %s: %s over %d trials, at most %d combinations per chunk on %d workers", strategy.name,
                 method, n_trials, per_chunk, n_workers)
        sweeper = _Sweeper(dask_client, job, per_chunk, bar, n_workers)
        try:
            rows = sweeper.drive(study, space, n_trials, batch, parsed, exhaustive=method == "grid")
        finally:
            sweeper.close()
    if rows and all(str(row.get("note", "")).startswith("invalid") for row in rows.values()):
        reasons = sorted({str(row["note"]).removeprefix("invalid: ") for row in rows.values()})
        shown = "; ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")
        raise ValidationError(f"every combination refused ({len(rows)} of {len(rows)}): {shown}")
    table = _table(rows, space, objective, parsed)
    result = SweepResult(strategy=strategy.name, method=method, objective=objective, space=space.as_dict(),
                         table=table, elapsed=time.perf_counter() - started, chunks=sweeper.chunks,
                         chunks_retried=sweeper.retried, dropped=sweeper.dropped,
                         constraints=[str(c) for c in parsed], trials=n_trials)
    if store:
        result.path = store_result(result, home=home, extra={
            "dropped": result.dropped, "constraints": result.constraints, "seed": seed, "trials": n_trials,
            "bars": job.n_bars, "instruments": list(bars)})
    return result


def _study(method: str, space: ParamSpace, objective: str, seed: int, population: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if method == "grid":
        sampler: Any = _grid_sampler(space.as_dict(), seed=seed)
    elif method == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.NSGAIISampler(population_size=max(2, population), seed=seed)
    return optuna.create_study(direction=direction(objective), sampler=sampler)


def _grid_sampler_class() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """optuna's GridSampler without its ``study.stop()`` (allowed only inside ``optimize``; we ask exactly
        the grid's size, so there is nothing to stop)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler


def _grid_sampler(search_space: dict[str, list[Any]], *, seed: int) -> Any:
    return _grid_sampler_class()(search_space, seed=seed)


def _distributions(space: ParamSpace) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for dim in space.dimensions:
        if dim.kind == "int" and len(dim.values) > 1:
            out[dim.name] = IntDistribution(dim.low, dim.high, step=int(dim.step or 1))
        elif dim.kind == "float" and len(dim.values) > 1:
            out[dim.name] = FloatDistribution(dim.low, dim.high, step=float(dim.step or 0) or None)
        else:
            out[dim.name] = CategoricalDistribution(list(dim.values))
    return out


def _nearest(values: tuple[Any, ...], x: Any) -> Any:
    """Return the value of ``values`` nearest ``x`` (the first of a tie)."""
    return min(values, key=lambda v: abs(v - x))


def _snap(space: ParamSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` with each value replaced by the nearest of its dimension's (a float step's rounding)."""
    combo = {}
    for dim in space.dimensions:
        value = params[dim.name]
        if dim.kind in ("int", "float"):
            value = _nearest(dim.values, value)
        combo[dim.name] = value
    return combo


class _Sweeper:
    """The ask / simulate / tell loop of one sweep on one Dask client."""

    def __init__(self, client: Any, job: SweepPayload, per_chunk: int, bar: SweepProgress, workers: int = 1) -> None:
        self.client = client
        self.job = job
        self.per_chunk = per_chunk
        self.workers = workers
        self.bar = bar
        self.job_future = client.scatter(job, broadcast=True, hash=False)
        self.chunks = 0
        self.retried = 0
        self.dropped = 0
        self.token = f"{job.fingerprint}-{time.time_ns():x}"

    def close(self) -> None:
        """Release the scattered job on the cluster."""
        self.client.cancel([self.job_future])

    def drive(self, study: Any, space: ParamSpace, n_trials: int, batch: int, constraints: list[Constraint], *,
              exhaustive: bool = False) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Ask until ``n_trials`` distinct combinations have a row (or the space or the asks run out).

        Return combination key -> its row (params, metrics, note). ``exhaustive``
        (the grid) asks exactly ``n_trials`` times: its sampler never repeats.
        """
        import optuna

        distributions = _distributions(space)
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        wanted = min(n_trials, space.size)
        limit = n_trials if exhaustive else n_trials * _ASK_FACTOR
        asked = 0
        while len(rows) < wanted and asked < limit:
            count = min(batch, wanted - len(rows), limit - asked)
            trials = [study.ask(distributions) for _ in range(count)]
            asked += len(trials)
            keyed = []
            fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
            for trial in trials:
                combo = _snap(space, trial.params)
                key = tuple(combo.values())
                keyed.append((trial, key))
                if key in rows or key in fresh:
                    continue  # asked again: told the same value, not a new row
                reason = space.check(combo)
                if reason is not None:
                    rows[key] = {**combo, "objective": math.nan, "note": f"invalid: {reason}"}
                    self.dropped += 1
                    self.bar.advance(combos=1)
                else:
                    fresh[key] = combo
            for key, row in zip(fresh, self._evaluate(list(fresh.values())), strict=True):
                rows[key] = row
            for trial, key in keyed:
                value = _told(rows[key], constraints)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
        return rows

    def _evaluate(self, combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from distributed import as_completed

        if not combos:
            return []
        size = min(self.per_chunk, max(1, len(combos) // (CHUNKS_PER_WORKER * self.workers)))
        pieces = [combos[i:i + size] for i in range(0, len(combos), size)]
        futures = {}
        for number, piece in enumerate(pieces):
            futures[self._submit(piece, self.chunks + number)] = number
        self.chunks += len(pieces)
        frames: dict[int, pd.DataFrame] = {}
        attempts = dict.fromkeys(range(len(pieces)), 0)
        pending = as_completed(list(futures), loop=self.client.loop)
        for future in pending:
            number = futures[future]
            try:
                frames[number] = future.result()
            except Exception as exc:
                if not _lost(exc) or attempts[number] >= _RESUBMITS:
                    self._cancel(futures)
                    raise _chunk_error(exc, pieces[number]) from exc
                attempts[number] += 1
                log.warning("chunk %d lost its input (%s); scattering the bars again", number, exc)
                self.job_future = self.client.scatter(self.job, broadcast=True, hash=False)
                again = self._submit(pieces[number], number, attempts[number])
                futures[again] = number
                pending.add(again)
                continue
            self.bar.advance(chunks=1, combos=len(pieces[number]))
        self.retried += suspicious(self.client, [f.key for f in futures]) + sum(attempts.values())
        self._cancel(futures)
        rows: list[dict[str, Any]] = []
        for number, piece in enumerate(pieces):
            metrics = frames[number].to_dict("records")
            rows.extend({**combo, **row, "note": ""} for combo, row in zip(piece, metrics, strict=True))
        return rows

    def _submit(self, piece: list[dict[str, Any]], number: int, attempt: int = 0) -> Any:
        key = f"sweep-chunk-{self.token}-{number}-{attempt}"
        return self.client.submit(evaluate, self.job_future, piece, key=key, pure=False)

    def _cancel(self, futures: dict[Any, int]) -> None:
        self.client.cancel(list(futures))


def _lost(exc: BaseException) -> bool:
    """Return whether ``exc`` says the chunk's input was lost (not that the chunk itself failed)."""
    from distributed.client import FutureCancelledError

    return isinstance(exc, FutureCancelledError) or "lost" in str(exc).lower() and "depend" in str(exc).lower()


def _chunk_error(exc: BaseException, piece: list[dict[str, Any]]) -> BaseException:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        first = ", ".join(f"{k}={v}" for k, v in piece[0].items())
        return InternalError(f"a sweep chunk of {len(piece)} combinations (first: {first}) was lost with "
                             f"{exc.allowed_failures + 1} workers; it may need more memory than a worker has "
                             "(lower --memory-mb)")
    return exc


def _told(row: dict[str, Any], constraints: list[Constraint]) -> float | None:
    value = row.get("objective", math.nan)
    if not isinstance(value, float) or not np.isfinite(value) or row.get("note"):
        return None
    frame = pd.DataFrame([row])
    if not all(bool(c.holds(frame).iloc[0]) for c in constraints):
        return None
    return value


def _table(rows: dict[tuple[Any, ...], dict[str, Any]], space: ParamSpace, objective: str,
           constraints: list[Constraint]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows.values()))
    if "note" not in table:
        table["note"] = ""
    valid = ~table["note"].str.startswith("invalid")
    broken: list[list[str]] = [[] for _ in range(len(table))]
    for constraint in constraints:
        if constraint.metric in table:
            for position in np.flatnonzero(valid & ~constraint.holds(table)):
                broken[position].append(str(constraint))
    hit = np.array([bool(names) for names in broken], dtype=bool)
    table.loc[hit, "objective"] = math.nan
    table.loc[hit, "note"] = ["breaks " + ", ".join(names) for names in broken if names]
    ascending = direction(objective) == "minimize"
    table = table.sort_values("objective", ascending=ascending, na_position="last", kind="stable")
    columns = [*space.names, "objective", *[c for c in table.columns if c not in (*space.names, "objective", "note")],
               "note"]
    return table[columns].reset_index(drop=True)
