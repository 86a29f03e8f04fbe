"""A sweep's unit of work: one chunk of parameter combinations simulated together, reduced to metrics.

A :class:`SweepPayload` is what every chunk shares (a run's inputs are
:class:`trader.backtest.job.Job`): the strategy (its class, pickled by
value so a plugin module that only the client imported reaches the
workers), its config, the backtest settings, the bars and the objective. The
sweep scatters it to the workers once; each task then receives only its
combinations. :func:`evaluate` instantiates the strategy once per
combination, runs ``signals`` over each instrument's bars into one targets
frame per instrument (bars x combinations), simulates them all in one call
of the engine's :func:`~trader.backtest.engine.simulate` and returns one row of metrics per combination:
the chunk's equity never leaves the worker.

:func:`chunk_columns` sizes chunks from a memory budget: a column costs about
``bars x instruments x BYTES_PER_CELL`` while it is simulated.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

from trader.backtest.engine import simulate
from trader.backtest.objective import combo_metrics
from trader.backtest.settings import BacktestSettings
from trader.backtest.signals import target_frame
from trader.strategy.base import Strategy, StrategyConfig

__all__ = ["BYTES_PER_CELL", "SweepPayload", "chunk_columns", "evaluate", "evaluate_equity"]

log = logging.getLogger(__name__)

#: Bytes one bar of one combination of one instrument occupies while a chunk is simulated: the signals and
#: targets, the engine's order plan and vectorbt's size, price, fees, assets, cash and value. Measured: a
#: worker's peak over its resting size, chunks of 3 ma_crossover combinations over 1M bars: 0.56 GB (187).
BYTES_PER_CELL = 192
_BY_VALUE_PREFIXES = ("_trader_plugin_", "__main__")


@dataclass
class SweepPayload:
    """What every chunk of one sweep shares; scattered to the workers once."""

    strategy_blob: bytes  # the Strategy subclass, cloudpickled (by value for a plugin's module)
    config: StrategyConfig
    settings: BacktestSettings
    bars: dict[str, pd.DataFrame]
    objective: str
    _cls: type[Strategy] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, strategy: Strategy, bars: dict[str, pd.DataFrame], settings: BacktestSettings,
           objective: str) -> SweepPayload:
        """Return the payload of sweeping ``strategy`` (its class and config) over ``bars``."""
        strategy_cls = type(strategy)
        module = sys.modules.get(strategy_cls.__module__)
        if module is not None and strategy_cls.__module__.startswith(_BY_VALUE_PREFIXES):
            cloudpickle.register_pickle_by_value(module)  # a plugin module exists only in this process
        blob = cloudpickle.dumps(strategy_cls)
        return cls(blob, strategy.config, settings, bars, objective)

    @property
    def strategy_cls(self) -> type[Strategy]:
        """Return the strategy class (unpickled once per process)."""
        if self._cls is None:
            self._cls = cloudpickle.loads(self.strategy_blob)
        return self._cls

    @property
    def n_bars(self) -> int:
        """Return the bars of the longest instrument."""
        return max((len(frame) for frame in self.bars.values()), default=0)

    @property
    def bar_size(self) -> str:
        """Return the bars' size (the settings', else the strategy's)."""
        return self.settings.bar_size or self.config.bar_size or self.strategy_cls.bar_size

    @property
    def fingerprint(self) -> str:
        """Return a short hash of the strategy class (for logs and task keys)."""
        return hashlib.sha1(self.strategy_blob).hexdigest()[:8]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cls"] = None  # the blob travels, never the class object
        return state

    def strategy(self, combo: dict[str, Any]) -> Strategy:
        """Return the strategy built with ``combo`` over the config's own params."""
        config = self.config.model_copy(update={"params": {**self.config.params, **combo}})
        return self.strategy_cls(config, name=self.config.name or getattr(self.strategy_cls, "name", None))


def chunk_columns(n_bars: int, n_instruments: int, budget_bytes: int) -> int:
    """Return how many combinations a chunk may hold within ``budget_bytes`` (at least one)."""
    per_column = max(1, n_bars) * max(1, n_instruments) * BYTES_PER_CELL
    return max(1, budget_bytes // per_column)


def targets_of(job: SweepPayload, combos: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Return instrument -> targets (bars x combinations, columns 0..n-1) of ``combos``, checked as live checks.

    A strategy whose signals raise or return what live refuses is a
    SignalError naming it; NaN targets are bars without a trade, as in a backtest.
    """
    per_combo = [target_frame(job.strategy(combo), job.bars)[0] for combo in combos]
    index = per_combo[0].index
    return {name: pd.DataFrame(np.column_stack([frame[name].to_numpy(np.float64) for frame in per_combo]),
                               index=index, columns=range(len(combos)))
            for name in job.bars}


def evaluate(job: SweepPayload, combos: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the metrics of each of ``combos`` (one row each, in order) over the job's bars."""
    simulation = simulate(job.bars, targets_of(job, combos), job.config, job.settings)
    metrics = combo_metrics(simulation.equity, simulation.trade_count, simulation.fees, bar_size=job.bar_size,
                            risk_free=job.settings.risk_free, objective=job.objective)
    metrics["refused"] = simulation.refused.to_numpy()  # orders the cash could not pay: the combo's note
    del simulation
    gc.collect()  # vectorbt's portfolio holds the chunk's arrays in reference cycles: free them before the next
    return metrics


def evaluate_equity(job: SweepPayload, combo: dict[str, Any], start: pd.Timestamp) -> pd.Series:
    """Return the equity of ``combo`` traded from bar ``start`` on (the bars before it only warm signals up)."""
    targets = targets_of(job, [combo])
    bars = {name: frame.loc[start:] for name, frame in job.bars.items()}
    trimmed = {name: frame.loc[start:] for name, frame in targets.items()}
    return simulate(bars, trimmed, job.config, job.settings).equity[0].rename("equity")
