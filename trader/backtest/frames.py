"""One backtest's frames: a one-combo Simulation read into a BacktestResult.

The orders frame holds what live fills hold: the quantity (a Decimal, a
multiple of the lot), the price and the commission as Decimals (the price
read from the float's shortest text, the commission to the cent), so a
backtest's orders compare with a replay's fills exactly. The round trips come
from vectorbt's positions (entry from flat to back to flat; a reversal in one
order closes one and opens the next): their figures are floats, as metrics
want them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trader.backtest.orders import quantity_decimal
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.strategy.base import Strategy

if TYPE_CHECKING:
    from trader.backtest.engine import Simulation

__all__ = ["order_frame", "result_frames", "trade_frame"]

_CENT = Decimal("0.01")


def order_frame(sim: Simulation, lot: Decimal) -> pd.DataFrame:
    """Return the orders of ``sim``'s first combo as ORDER_COLUMNS, quantities, prices and fees as Decimals."""
    orders = sim.orders
    quantity = [quantity_decimal(q, lot) for q in orders["quantity"].to_numpy()]
    price = [Decimal(repr(p)) for p in orders["price"].to_numpy().tolist()]
    commission = [Decimal(repr(c)).quantize(_CENT) for c in orders["commission"].to_numpy().tolist()]
    frame = pd.DataFrame({
        "time": orders["time"].reset_index(drop=True),
        "fill_time": orders["fill_time"].reset_index(drop=True),
        "instrument": orders["instrument"].astype(str).to_numpy(),
        "side": orders["side"].to_numpy(),
        "quantity": quantity,
        "price": price,
        "commission": commission,
        "reason": orders["reason"].astype(str).to_numpy(),
    }, columns=list(ORDER_COLUMNS))
    return frame


def trade_frame(sim: Simulation) -> pd.DataFrame:
    """Return the round trips of ``sim``'s first combo as TRADE_COLUMNS (floats; exit NaT while open)."""
    records = sim.portfolio.positions.values
    n_inst = len(sim.instruments)
    records = records[records["col"] < n_inst]
    index = sim.index
    closed = records["status"] == 1
    exit_idx = records["exit_idx"]
    exit_time = pd.DatetimeIndex(index[exit_idx]).where(closed, pd.NaT) if len(records) else index[:0]
    frame = pd.DataFrame({
        "instrument": np.asarray(sim.instruments, dtype=object)[records["col"] % n_inst],
        "direction": np.where(records["direction"] == 0, "long", "short"),
        "entry_time": index[records["entry_idx"]],
        "exit_time": exit_time,
        "quantity": records["size"],
        "entry_price": records["entry_price"],
        "exit_price": np.where(closed, records["exit_price"], np.nan),
        "pnl": records["pnl"],
        "return": records["return"],
        "commission": records["entry_fees"] + records["exit_fees"],
        "bars": np.where(closed, exit_idx - records["entry_idx"], len(index) - 1 - records["entry_idx"]),
    }, columns=list(TRADE_COLUMNS))
    return frame.sort_values(["entry_time", "instrument"], kind="stable").reset_index(drop=True)


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
