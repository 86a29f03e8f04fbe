"""A sweep's scoring: the per-combination metrics, the objective to optimise and the constraints to meet.

A chunk of a sweep ends as a few numbers per combination, computed column-wise
from the simulation's equity (bars x combinations) where it ran, so only these
travel back: :func:`trader.backtest.metrics.headline`'s ``total_return``,
``cagr``, ``volatility``, ``sharpe``, ``sortino``, ``calmar``,
``max_drawdown`` (a positive fraction), then ``trades`` (round trips),
``fees`` and ``final_equity``, plus ``objective``.

An objective is one of :data:`trader.backtest.metrics.OBJECTIVES` (higher is
better), or ``max_drawdown`` / ``volatility`` (lower is better); each is the
value ``metrics.compute`` gives a single backtest of the same equity. A constraint such
as ``trades>=10`` or ``max_drawdown<=0.3`` names one of those metrics, an
operator and a number (:func:`parse_constraint`); a combination that breaks
one keeps its metrics but no objective, and the optimiser is told it failed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from trader.backtest.metrics import OBJECTIVES, headline
from trader.errors import ValidationError

__all__ = ["METRICS", "Constraint", "combo_metrics", "direction", "objective_function", "objectives",
           "parse_constraint"]

METRICS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown", "trades", "fees",
           "final_equity")
_MINIMISE = ("max_drawdown", "volatility")  # lower is better; the OBJECTIVES are maximised
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$")

Objective = Callable[[pd.DataFrame, pd.DataFrame, str, float], pd.Series]  # (table, equity, bar size, rf) -> per row


def objectives() -> list[str]:
    """Return the names an objective may take."""
    return [*OBJECTIVES, *_MINIMISE]


def objective_function(name: str) -> Objective:
    """Return the objective called ``name``, or raise ValidationError naming the known ones.

    The function takes the headline table (a row per combination), the equity
    (bars x combinations), the bar size and the risk-free rate; a headline
    column is read from the table, any other objective computed on the equity.
    """
    if name in _MINIMISE or name in METRICS and name in OBJECTIVES:
        return lambda table, _equity, _bar_size, _risk_free: table[name]
    if name in OBJECTIVES:
        score = OBJECTIVES[name]
        return lambda _table, equity, bar_size, risk_free: pd.Series(
            np.asarray(score(equity, bar_size=bar_size, risk_free=risk_free), dtype=np.float64), index=_table.index)
    raise ValidationError(f"unknown objective {name!r} (known: {', '.join(objectives())})")


def direction(name: str) -> Literal["minimize", "maximize"]:
    """Return optuna's direction for objective ``name``: ``minimize`` or ``maximize``."""
    return "minimize" if name in _MINIMISE else "maximize"


@dataclass(frozen=True)
class Constraint:
    """``metric op value``: a combination meets it when its metric compares true (NaN never does)."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def holds(self, table: pd.DataFrame) -> pd.Series:
        """Return, per row of ``table``, whether the constraint holds."""
        column = table[self.metric].astype(float)
        return column.notna() & _OPERATORS[self.op](column, self.value)


def parse_constraint(text: str) -> Constraint:
    """Return the constraint of ``text`` (``trades>=10``), or raise ValidationError naming what is wrong."""
    match = _CONSTRAINT.match(text)
    if match is None:
        raise ValidationError(f"--constraint {text!r}: expected METRIC OP NUMBER, e.g. trades>=10 "
                              f"(OP: {' '.join(_OPERATORS)})")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise ValidationError(f"--constraint {text!r}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    try:
        value = float(number)
    except ValueError:
        raise ValidationError(f"--constraint {text!r}: {number!r} is not a number") from None
    return Constraint(metric, op, value)


def combo_metrics(equity: pd.DataFrame, trades: Sequence[float], fees: Sequence[float], *, bar_size: str,
                  risk_free: float, objective: str) -> pd.DataFrame:
    """Return one row per column of ``equity`` (bars x combinations): the metrics, ``objective`` last."""
    table = headline(equity, bar_size, risk_free).reset_index(drop=True)
    table["trades"] = np.asarray(trades, dtype=np.float64)
    table["fees"] = np.asarray(fees, dtype=np.float64)
    table["final_equity"] = equity.iloc[-1].to_numpy(dtype=np.float64)
    table = table.astype(np.float64)
    table["objective"] = np.asarray(objective_function(objective)(table, equity, bar_size, risk_free),
                                    dtype=np.float64)
    return table
