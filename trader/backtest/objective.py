"""A sweep's scoring: the per-combination metrics, the objective to optimise and the constraints to meet.

A chunk of a sweep ends as a few numbers per combination, computed column-wise
from the simulation's equity (bars x combinations) where it ran, so only these
travel back: ``total_return``, ``cagr``, ``volatility``, ``sharpe``,
``sortino``, ``max_drawdown`` (a positive fraction), ``calmar``, ``trades``
(fills), ``fees`` and ``final_equity``, plus ``objective``.

:func:`objective_function` is the one place that maps an objective's name to
its function (:data:`trader.backtest.metrics.OBJECTIVES`). A constraint such
as ``trades>=10`` or ``max_drawdown<=0.3`` names one of those metrics, an
operator and a number (:func:`parse_constraint`); a combination that breaks
one keeps its metrics but no objective, and the optimiser is told it failed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.errors import ValidationError
from trader.strategy.bars import parse_bar_size

__all__ = ["METRICS", "Constraint", "combo_metrics", "direction", "objective_function", "parse_constraint",
           "periods_per_year"]

METRICS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "trades", "fees",
           "final_equity")
_MINIMISE = {"max_drawdown", "volatility", "fees"}  # lower is better; every other objective is maximised
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$")
_TRADING_SECONDS_PER_DAY = 6.5 * 3600
_TRADING_DAYS = 252

Objective = Callable[[pd.DataFrame, float], pd.Series]  # (metrics table, periods per year) -> a value per row


def periods_per_year(bar_size: str) -> float:
    """Return bars per year: 252 days of 6.5 trading hours for intraday bars, 252 for daily, 52, 12."""
    seconds = parse_bar_size(bar_size)
    if seconds < 86_400:
        return _TRADING_DAYS * _TRADING_SECONDS_PER_DAY / seconds
    return _TRADING_DAYS * 86_400 / seconds if seconds < 7 * 86_400 else 365.25 * 86_400 / seconds


def objective_function(name: str) -> Objective:
    """Return the objective called ``name`` (a column of the metrics table), or raise ValidationError."""
    if name not in METRICS or name in ("final_equity",):
        known = ", ".join(m for m in METRICS if m != "final_equity")
        raise ValidationError(f"unknown objective {name!r} (known: {known})")
    return lambda table, _periods: table[name]


def direction(name: str) -> str:
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
    periods = periods_per_year(bar_size)
    values = equity.to_numpy(dtype=np.float64)
    returns = np.zeros_like(values)
    returns[1:] = values[1:] / values[:-1] - 1.0
    first, last = values[0], values[-1]
    total = last / first - 1.0
    years = max(len(values) / periods, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cagr = np.where(last > 0, (last / first) ** (1.0 / years) - 1.0, -1.0)
        excess = returns[1:] - risk_free / periods if len(values) > 1 else returns
        mean = excess.mean(axis=0)
        std = excess.std(axis=0, ddof=1) if len(excess) > 1 else np.full(values.shape[1], np.nan)
        sharpe = np.where(std > 0, mean / std * np.sqrt(periods), np.nan)
        downside = np.sqrt((np.minimum(excess, 0.0) ** 2).mean(axis=0))
        sortino = np.where(downside > 0, mean / downside * np.sqrt(periods), np.nan)
        peak = np.maximum.accumulate(values, axis=0)
        drawdown = (1.0 - values / peak).max(axis=0)
        calmar = np.where(drawdown > 0, cagr / drawdown, np.nan)
    table = pd.DataFrame({
        "total_return": total, "cagr": cagr, "volatility": std * np.sqrt(periods), "sharpe": sharpe,
        "sortino": sortino, "max_drawdown": drawdown, "calmar": calmar,
        "trades": np.asarray(trades, dtype=np.float64), "fees": np.asarray(fees, dtype=np.float64),
        "final_equity": last}, index=range(values.shape[1]))
    table["objective"] = objective_function(objective)(table, periods).astype(np.float64)
    return table
