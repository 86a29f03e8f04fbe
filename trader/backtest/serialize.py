"""A backtest's result as JSON-ready data: what ``trader backtest --json`` prints.

:func:`result_dict` returns plain dicts, lists, strings and numbers only, so
``json.dumps`` takes it as is and a reader in any language gets the same
figures: Decimals (an order's quantity, price and commission) as strings, so
no digit is lost or invented; times as ISO 8601 UTC; a NaN or infinite
number as null. The shape::

    {"strategy": "ma_crossover", "params": {...}, "bar_size": "1m",
     "instruments": ["AAPL.STK"], "start": "...", "end": "...", "bars": 1000,
     "settings": {...}, "initial_cash": "100000", "final_equity": 101234.5,
     "orders": [{"time": "...", "fill_time": "...", "instrument": "AAPL.STK",
                 "side": "BUY", "quantity": "100", "price": "187.23",
                 "commission": "1.00", "reason": "signal"}, ...],
     "trades": [{"instrument": ..., "direction": "long", "entry_time": ...,
                 "exit_time": ... or null, "quantity": 100.0, "entry_price": ...,
                 "exit_price": ..., "pnl": ..., "return": ..., "commission": ...,
                 "bars": 12}, ...],
     "metrics": {"sharpe": 1.2, ...}, "skipped": ["..."], "elapsed": 0.8}
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from trader.backtest.protocols import Backtest

__all__ = ["jsonable", "result_dict"]


def jsonable(value: Any) -> Any:
    """Return ``value`` as JSON data: Decimals as text, times as ISO, NaN/inf/NaT as None, numpy as Python."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Decimal):
        return None if not value.is_finite() else format(value, "f")
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [jsonable(v) for v in value]
    if value is pd.NaT:
        return None
    return str(value)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = tuple(frame.columns)  # result.py's ORDER_COLUMNS / TRADE_COLUMNS
    values = {name: frame[name].tolist() if name in frame.columns else [None] * len(frame) for name in columns}
    if "price" in values:  # the price column has 9 decimals: 12.012, not 12.012000000
        values["price"] = [v.normalize() if isinstance(v, Decimal) and v.is_finite() else v for v in values["price"]]
    return [{name: jsonable(values[name][k]) for name in columns} for k in range(len(frame))]


def result_dict(result: Backtest, *, metrics: bool = True) -> dict[str, Any]:
    """Return ``result`` as JSON-ready data (see the module docstring); ``metrics=False`` leaves them out."""
    index = result.equity.index
    return {
        "strategy": result.strategy,
        "params": jsonable(result.params),
        "bar_size": result.bar_size,
        "instruments": list(result.prices),
        "start": jsonable(index[0]) if len(index) else None,
        "end": jsonable(index[-1]) if len(index) else None,
        "bars": len(index),
        "settings": result.settings.model_dump(mode="json"),
        "initial_cash": jsonable(result.settings.initial_cash),
        "final_equity": jsonable(result.equity.iloc[-1]) if len(index) else None,
        "orders": _rows(result.orders),
        "trades": _rows(result.trades),
        "metrics": jsonable(result.stats) if metrics else {},
        "skipped": list(result.skipped),
        "elapsed": round(result.elapsed, 6),
    }
