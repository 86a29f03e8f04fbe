"""What a simulation returns, and one backtest's frames: a one-combo Simulation read into a BacktestResult.

:class:`Simulation` is what trader.backtest.engine's ``simulate`` returns for
many combos at once (the sweep reads its equity and counts; its orders and
positions are built on first use).

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

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.kernel import REASON_NAMES
from trader.backtest.orders import Plan
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.strategy.base import Strategy

__all__ = ["Simulation", "decimal_column", "order_frame", "record_fields", "result_frames", "trade_frame"]

BOTH = 2  # vectorbt's Direction.Both: assets() keyed as value() asks for it, so vectorbt's cache answers
_PRECISION = 28
_PRICE_SCALE = 9


@dataclass
class Simulation:
    """What :func:`simulate` returns for a set of combos (columns) over the same bars.

    ``equity``: bars x combos, the account value at each close. ``orders``:
    one row per fill, columns ``combo instrument time fill_time side quantity
    price commission reason`` (floats: quantity unsigned, BUY/SELL in
    ``side``). ``trade_count``/``fees``: per combo, round trips and total
    commission. ``positions``: bars x (combo, instrument), the signed quantity
    held after each bar. ``skipped``: what the simulation could not do, named.
    ``orders`` and ``positions`` are built on first use (a sweep reads only
    the equity and the counts).
    """

    index: pd.DatetimeIndex
    instruments: list[str]
    combos: pd.Index
    equity: pd.DataFrame
    trade_count: pd.Series
    fees: pd.Series
    portfolio: Any = field(repr=False)  # the vectorbt Portfolio, for what else one may want
    plan: Plan = field(repr=False)
    skipped: list[str] = field(default_factory=list)
    #: With an exit on its entry's bar, vectorbt's rows are more than the bars: each row's bar, and each bar's
    #: last row (None: one row a bar). See trader.backtest.engine's ``_book_rows``.
    row_of: np.ndarray | None = field(repr=False, default=None)
    keep: np.ndarray | None = field(repr=False, default=None)

    def assets(self) -> np.ndarray:
        """Return vectorbt's positions, bars x columns (value()'s cached computation, one row a bar)."""
        values = np.asarray(self.portfolio.assets(direction=BOTH)).reshape(-1, len(self.combos) * len(self.instruments))
        return values if self.keep is None else values[self.keep]

    @cached_property
    def refused(self) -> pd.Series:
        """Return per combo how many orders the cash could not pay (refused, not filled: see ``skipped``)."""
        counts = np.zeros(len(self.combos), dtype=np.int64)
        if self.plan.refused is not None:
            counts = np.bincount(self.plan.refused.col // len(self.instruments), minlength=len(self.combos))
        return pd.Series(counts, index=self.combos, name="refused")

    @cached_property
    def orders(self) -> pd.DataFrame:
        """Return every fill of every combo, oldest first per combo (see the class docstring)."""
        return _orders_frame(self.plan, self.index, self.instruments, self.combos)

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Return bars x (combo, instrument): the signed quantity held after each bar."""
        columns = pd.MultiIndex.from_product([self.combos, self.instruments], names=["combo", "instrument"])
        return pd.DataFrame(self.assets(), index=self.index, columns=columns)


def _orders_frame(plan: Plan, index: pd.DatetimeIndex, instruments: list[str], combos: pd.Index) -> pd.DataFrame:
    n_inst = len(instruments)
    return pd.DataFrame({
        "combo": combos[plan.col // n_inst],
        "instrument": pd.Categorical.from_codes(plan.col % n_inst, categories=instruments),
        "time": index[np.where(plan.decided >= 0, plan.decided, plan.row)],  # an exit is decided where it fills
        "fill_time": index[plan.row],
        "side": pd.Categorical.from_codes((plan.size < 0).astype(np.int8), categories=["BUY", "SELL"]),
        "quantity": np.abs(plan.size),
        "price": plan.price,
        "commission": plan.fee,
        "reason": pd.Categorical.from_codes(plan.reason.astype(np.int64), categories=list(REASON_NAMES)),
    })


def decimal_column(values: np.ndarray, scale: int) -> pd.Series:
    """Return floats as a column of Decimals with ``scale`` decimals (an Arrow decimal column: no Python loop).

    Each value reads back as a Decimal (``Decimal('12.012000000')``, equal to
    ``Decimal('12.012')``), the float rounded to the nearest at ``scale``: the
    scaled integers are written straight into Arrow's 128-bit decimal buffer
    (low word, then the sign's), or cast by Arrow when they would not fit 63 bits.
    """
    import pyarrow as pa

    floats = np.asarray(values, dtype=np.float64)
    scaled = np.rint(floats * 10.0**scale)
    kind = pa.decimal128(_PRECISION, scale)
    if len(scaled) and not np.abs(scaled).max() < 2.0**62:
        import pyarrow.compute as pc

        return pd.Series(pd.arrays.ArrowExtensionArray(pc.cast(pa.array(floats), kind, safe=False)))
    words = np.empty((len(scaled), 2), dtype=np.int64)
    words[:, 0] = scaled.astype(np.int64)
    words[:, 1] = words[:, 0] >> 63
    array = pa.Array.from_buffers(kind, len(scaled), [None, pa.py_buffer(words)])
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


def order_frame(sim: Simulation, lot: Decimal) -> pd.DataFrame:
    """Return the orders of ``sim``'s first combo as ORDER_COLUMNS, quantity, price and commission Decimals.

    The quantity has the lot's decimals, the price 9 (the fill prices are
    rounded to 9 decimals), the commission 2 (cents).
    """
    plan = sim.plan
    n_inst = len(sim.instruments)
    col, decided, row, size = plan.col, plan.decided, plan.row, plan.size
    price, fee, reason = plan.price, plan.fee, plan.reason
    if len(sim.combos) > 1:
        first = col < n_inst
        col, decided, row, size = col[first], decided[first], row[first], size[first]
        price, fee, reason = price[first], fee[first], reason[first]
    lot_scale = max(0, -int(lot.as_tuple().exponent))
    index = sim.index
    return pd.DataFrame({
        "time": index[np.where(decided >= 0, decided, row)],  # an exit is decided where it fills
        "fill_time": index[row],
        "instrument": pd.Categorical.from_codes(col % n_inst, categories=sim.instruments),
        "side": pd.Categorical.from_codes((size < 0).astype(np.int8), categories=["BUY", "SELL"]),
        "quantity": decimal_column(np.abs(size), lot_scale),
        "price": decimal_column(price, _PRICE_SCALE),
        "commission": decimal_column(fee, 2),
        "reason": pd.Categorical.from_codes(reason.astype(np.int8), categories=list(REASON_NAMES)),
    }, columns=list(ORDER_COLUMNS))


def record_fields(records: np.ndarray) -> dict[str, np.ndarray]:
    """Return a structured array's fields as contiguous arrays, read in one pass when every field is 8 bytes.

    vectorbt's records are 112-byte rows: reading ten fields one by one walks
    the whole array ten times; transposing it once is as fast as one walk.
    """
    names = records.dtype.names or ()
    if records.dtype.itemsize != 8 * len(names) or any(records.dtype[n].itemsize != 8 for n in names):
        return {name: np.ascontiguousarray(records[name]) for name in names}
    block = np.ascontiguousarray(np.ascontiguousarray(records).view(np.int64).reshape(len(records), len(names)).T)
    return {name: block[k] if records.dtype[name].kind in "iu" else block[k].view(records.dtype[name])
            for k, name in enumerate(names)}


def trade_frame(sim: Simulation) -> pd.DataFrame:
    """Return the round trips of ``sim``'s first combo as TRADE_COLUMNS (floats; exit NaT while open)."""
    records = sim.portfolio.positions.values
    n_inst = len(sim.instruments)
    if len(sim.combos) > 1:
        records = records[records["col"] < n_inst]
    if n_inst > 1:  # vectorbt lists them by column: by entry, then instrument, as they happened
        records = records[np.lexsort((records["col"], records["entry_idx"]))]
    f = record_fields(records)
    index = sim.index
    closed = f["status"] == 1
    entry_idx, exit_idx = f["entry_idx"], f["exit_idx"]
    if sim.row_of is not None:  # vectorbt's rows back to bars
        entry_idx, exit_idx = sim.row_of[entry_idx], sim.row_of[exit_idx]
    stamps = index.asi8[exit_idx]
    stamps[~closed] = np.iinfo(np.int64).min  # NaT
    return pd.DataFrame({
        "instrument": pd.Categorical.from_codes(f["col"] % n_inst, categories=sim.instruments),
        "direction": pd.Categorical.from_codes(f["direction"], categories=["long", "short"]),
        "entry_time": index[entry_idx],
        "exit_time": pd.DatetimeIndex(stamps, dtype=index.dtype),  # the index's unit and zone, no conversion
        "quantity": f["size"],
        "entry_price": f["entry_price"],
        "exit_price": np.where(closed, f["exit_price"], np.nan),
        "pnl": f["pnl"],
        "return": f["return"],
        "commission": f["entry_fees"] + f["exit_fees"],
        "bars": np.where(closed, exit_idx, len(index) - 1) - entry_idx,
    }, columns=list(TRADE_COLUMNS))


def result_frames(strategy: Strategy, bars: dict[str, pd.DataFrame], targets: pd.DataFrame, sim: Simulation,
                  settings: BacktestSettings) -> BacktestResult:
    """Return the BacktestResult of a one-combo ``sim`` of ``strategy`` on ``bars``."""
    equity = sim.equity.iloc[:, 0].rename("equity")
    positions = pd.DataFrame(sim.assets()[:, : len(sim.instruments)], index=sim.index, columns=sim.instruments)
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
