"""One backtest's frames: a one-combo Simulation read into a BacktestResult.

The orders frame holds what live fills hold: the quantity (a multiple of the
lot), the price and the commission as Decimals (the commission to the cent),
so a backtest's orders compare with a replay's fills exactly. They are Arrow
decimal columns, made from the floats in one vectorized cast: a million bars'
hundred thousand orders cost milliseconds, where a Python Decimal per value
costs a large part of the whole backtest. The round trips come
from vectorbt's positions (entry from flat to back to flat; a reversal in one
order closes one and opens the next): their figures are floats, as metrics
want them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.strategy.base import Strategy

if TYPE_CHECKING:
    from trader.backtest.engine import Simulation

__all__ = ["order_frame", "result_frames", "trade_frame"]

_PRECISION = 28
_PRICE_SCALE = 9


def decimal_column(values: np.ndarray, scale: int) -> pd.Series:
    """Return floats as a column of Decimals with ``scale`` decimals (an Arrow decimal column: no Python loop).

    Each value reads back as a Decimal (``Decimal('12.012000000')``, equal to
    ``Decimal('12.012')``); the floats are rounded to the nearest at ``scale``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(pa.array(np.asarray(values, dtype=np.float64)), pa.decimal128(_PRECISION, scale), safe=False)
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


def _labels(column: pd.Series) -> np.ndarray:
    """Return a categorical column's values as an object array of strings (by its codes: no per-row work)."""
    categories = np.asarray(column.cat.categories.astype(str), dtype=object)
    return categories[column.cat.codes.to_numpy()]


def order_frame(sim: Simulation, lot: Decimal) -> pd.DataFrame:
    """Return the orders of ``sim``'s first combo as ORDER_COLUMNS, quantity, price and commission Decimals.

    The quantity has the lot's decimals, the price 9 (the fill prices are
    rounded to 9 decimals), the commission 2 (cents).
    """
    orders = sim.orders
    if len(sim.combos) > 1:
        orders = orders[orders["combo"] == sim.combos[0]]
    lot_scale = max(0, -int(lot.as_tuple().exponent))
    return pd.DataFrame({
        "time": orders["time"].to_numpy(),
        "fill_time": orders["fill_time"].to_numpy(),
        "instrument": _labels(orders["instrument"]),
        "side": orders["side"].to_numpy(),
        "quantity": decimal_column(orders["quantity"].to_numpy(), lot_scale),
        "price": decimal_column(orders["price"].to_numpy(), _PRICE_SCALE),
        "commission": decimal_column(orders["commission"].to_numpy(), 2),
        "reason": _labels(orders["reason"]),
    }, columns=list(ORDER_COLUMNS)).astype({"time": sim.index.dtype, "fill_time": sim.index.dtype})


def trade_frame(sim: Simulation) -> pd.DataFrame:
    """Return the round trips of ``sim``'s first combo as TRADE_COLUMNS (floats; exit NaT while open)."""
    records = sim.portfolio.positions.values
    n_inst = len(sim.instruments)
    if len(sim.combos) > 1:
        records = records[records["col"] < n_inst]
    if n_inst > 1:  # vectorbt lists them by column: by entry, then instrument, as they happened
        records = records[np.lexsort((records["col"], records["entry_idx"]))]
    index = sim.index
    closed = records["status"] == 1
    entry_idx, exit_idx = records["entry_idx"], records["exit_idx"]
    stamps = index.asi8[exit_idx]
    stamps[~closed] = np.iinfo(np.int64).min  # NaT
    exit_time = pd.DatetimeIndex(stamps.view(f"M8[{index.unit}]"))
    if index.tz is not None:
        exit_time = exit_time.tz_localize(index.tz)
    names = np.asarray(sim.instruments, dtype=object)
    return pd.DataFrame({
        "instrument": names[records["col"] % n_inst] if n_inst > 1 else np.full(len(records), names[0], object),
        "direction": np.where(records["direction"] == 0, "long", "short").astype(object),
        "entry_time": index[entry_idx],
        "exit_time": exit_time,
        "quantity": records["size"],
        "entry_price": records["entry_price"],
        "exit_price": np.where(closed, records["exit_price"], np.nan),
        "pnl": records["pnl"],
        "return": records["return"],
        "commission": records["entry_fees"] + records["exit_fees"],
        "bars": np.where(closed, exit_idx, len(index) - 1) - entry_idx,
    }, columns=list(TRADE_COLUMNS))


def result_frames(strategy: Strategy, bars: dict[str, pd.DataFrame], targets: pd.DataFrame, sim: Simulation,
                  settings: BacktestSettings) -> BacktestResult:
    """Return the BacktestResult of a one-combo ``sim`` of ``strategy`` on ``bars``."""
    equity = sim.equity.iloc[:, 0].rename("equity")
    positions = pd.DataFrame(sim.positions.to_numpy()[:, : len(sim.instruments)], index=sim.index,
                             columns=sim.instruments)
    return BacktestResult(
        strategy=strategy.name,
        params=strategy.params.model_dump(),
        settings=settings,
        bar_size=settings.bar_size or strategy.bar_size,
        prices=bars,
        targets=targets,
        equity=equity,
        positions=positions,
        orders=order_frame(sim, strategy.config.sizing.lot),
        trades=trade_frame(sim),
    )
