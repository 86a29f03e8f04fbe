"""The backtest engine: a strategy's targets traded live-like, booked by one vectorbt call.

:func:`simulate` is the core the sweep calls: targets for many parameter
combinations at once (per instrument a DataFrame bars x combos) become fills
(trader.backtest.orders: the live sizing, stop loss / take profit, commission
and slippage), and ONE ``vectorbt.Portfolio.from_orders`` call books them all:
an amount order per fill at its own price with its own fixed fee, direction
both (long and short), each combo a group whose instruments share one cash.
vectorbt keeps the accounting (cash, positions, equity, round trips).

:func:`run` is one backtest: the strategy's ``signals`` over every instrument
(trader.backtest.signals), :func:`simulate` of that one column, and the
frames of :class:`~trader.backtest.result.BacktestResult` (trader.backtest.frames).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.frames import Simulation, result_frames
from trader.backtest.kernel_changes import call_sequence
from trader.backtest.orders import SEC_CODES, Plan, plan_orders
from trader.backtest.result import BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.backtest.signals import common_index
from trader.domain.contract_key import is_key, parse_key
from trader.domain.enums import SecType
from trader.strategy.base import Strategy, StrategyConfig

__all__ = ["Simulation", "run", "sec_type_of", "simulate"]

log = logging.getLogger(__name__)

_PRICES = ("open", "high", "low", "close")


def sec_type_of(instrument: str) -> SecType:
    """Return the kind of ``instrument`` (a contract key says it; a bare symbol is a stock)."""
    if is_key(instrument):
        return parse_key(instrument).sec_type
    return SecType.STK


def align(bars: dict[str, pd.DataFrame]) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Return the union of the instruments' bar times and each price field as a bars x instruments array.

    An instrument without a bar at a time has NaN there: it neither decides nor
    fills then.
    """
    frames = list(bars.values())
    if len(frames) == 1:
        index = frames[0].index
        return index, {name: frames[0][name].to_numpy(np.float64).reshape(-1, 1) for name in _PRICES}
    index = common_index(bars)
    arrays = {name: np.column_stack([f[name].reindex(index).to_numpy(np.float64) for f in frames]) for name in _PRICES}
    return index, arrays


def simulate(bars: dict[str, pd.DataFrame], targets: dict[str, pd.DataFrame], config: StrategyConfig,
             settings: BacktestSettings, *, ticks: dict[str, float] | None = None) -> Simulation:
    """Trade ``targets`` (instrument -> bars x combos) on ``bars`` with ``config``'s sizing; book it in vectorbt.

    Every instrument's targets have the same columns (the combos) and its
    bars' index. One vectorbt ``from_orders`` call books every combo, each a
    group sharing ``settings.initial_cash`` across its instruments. ``ticks``:
    instrument -> price increment, to round the stop loss and take profit
    levels as live does (unknown by default: unrounded, see trader.backtest.kernel).
    """
    import vectorbt as vbt

    instruments = list(bars)
    index, prices = align(bars)
    combos = targets[instruments[0]].columns
    n_bars, n_inst, n_combos = len(index), len(instruments), len(combos)
    columns = []
    for name in instruments:
        frame = targets[name]
        if not frame.columns.equals(combos):
            raise ValueError(f"targets of {name} have other columns than {instruments[0]}'s")
        columns.append(frame.to_numpy(np.float64) if frame.index.equals(index)
                       else frame.reindex(index).to_numpy(np.float64))
    if n_inst == 1:
        matrix = np.ascontiguousarray(columns[0])
    else:
        matrix = np.empty((n_bars, n_combos * n_inst), dtype=np.float64)
        for i, values in enumerate(columns):
            matrix[:, i::n_inst] = values
    sec = np.array([SEC_CODES.get(sec_type_of(name), 0) for name in instruments], dtype=np.int64)
    plan = plan_orders(prices["open"], prices["high"], prices["low"], prices["close"], matrix, config,
                       initial_cash=float(settings.initial_cash), slippage=float(settings.slippage),
                       commission_config=settings.commission, sec=sec,
                       tick=np.array([(ticks or {}).get(name, np.nan) for name in instruments], dtype=np.float64))
    n_cols = n_combos * n_inst
    booked_rows, row_of, keep = _book_rows(plan, n_bars, n_cols)
    n_rows = len(row_of)
    size = np.full((n_rows, n_cols), np.nan)
    price = np.full((n_rows, n_cols), np.nan)
    fees = np.zeros((n_rows, n_cols))
    size[booked_rows, plan.col] = plan.size
    price[booked_rows, plan.col] = plan.price
    fees[booked_rows, plan.col] = plan.fee
    close = _valuation_close(prices["close"])
    if keep is not None:
        close = close[row_of]
    close_cols = close if n_inst == 1 else np.tile(close, (1, n_combos))  # one instrument: vectorbt broadcasts
    grouped = n_inst > 1  # one instrument: a combo is a column, no group to share cash in (and faster)
    call_seq: Any = "default"
    if grouped:  # vectorbt pays a row's fills in the kernel's order (SELLs first), so it refuses none of them
        call_seq = np.empty((n_rows, n_cols), dtype=np.int64, order="F")
        call_seq[:] = np.tile(np.arange(n_inst, dtype=np.int64), n_combos)
        call_sequence(call_seq, booked_rows, plan.col, n_inst)
    portfolio = vbt.Portfolio.from_orders(
        close=close_cols, size=size, size_type="amount", direction="both", price=price, fees=0.0,
        fixed_fees=fees, slippage=0.0, init_cash=float(settings.initial_cash), cash_sharing=grouped,
        group_by=np.repeat(np.arange(n_combos), n_inst) if grouped else None,
        call_seq=call_seq, allow_partial=False, raise_reject=False, ffill_val_price=True,
        fillna_close=False,  # the close is filled already (_valuation_close)
        max_orders=max(1, len(plan.col)))  # vectorbt books at most the planned fills: no bars x columns records
    skipped: list[str] = []
    if plan.refused is not None:
        skipped.extend(_refused(plan.refused, np.ones(len(plan.refused.col), dtype=bool), index, instruments, combos))
    booked = portfolio.order_records
    if len(booked) != len(plan.col):  # the kernel paid what vectorbt would not (a float hair): dropped, named
        kept = np.isin(booked_rows * n_cols + plan.col, booked["idx"] * n_cols + booked["col"])
        skipped.extend(_refused(plan, ~kept, index, instruments, combos))
        log.warning("vectorbt booked %d of %d orders (not enough cash for the rest)", len(booked), len(plan.col))
        plan = Plan(*(getattr(plan, name)[kept] for name in _PLAN_ARRAYS), passes=plan.passes, refused=plan.refused)
    value = np.asarray(portfolio.value()).reshape(n_rows, n_combos)
    equity = pd.DataFrame(value if keep is None else value[keep], index=index, columns=combos)
    counts = np.bincount(portfolio.positions.values["col"] // n_inst, minlength=n_combos)
    trade_count = pd.Series(counts, index=combos, name="trades")
    fee_sum = np.bincount(plan.col // n_inst, weights=plan.fee, minlength=n_combos)
    return Simulation(index, instruments, combos, equity, trade_count, pd.Series(fee_sum, index=combos, name="fees"),
                      portfolio, plan, skipped, row_of if keep is not None else None, keep)


_PLAN_ARRAYS = ("col", "decided", "row", "size", "price", "fee", "reason")
_LISTED = 20


def _refused(plan: Plan, refused: np.ndarray, index: pd.DatetimeIndex, instruments: list[str],
             combos: pd.Index) -> list[str]:
    """Return what the orders refused for want of cash were (the first ``_LISTED``, then a count)."""
    n_inst = len(instruments)
    where = np.flatnonzero(refused)
    out = [f"{instruments[plan.col[k] % n_inst]}: {'BUY' if plan.size[k] > 0 else 'SELL'} {abs(plan.size[k]):g} "
           f"at {index[plan.row[k]].isoformat()} refused: not enough cash"
           + (f" (combo {combos[plan.col[k] // n_inst]})" if len(combos) > 1 else "") for k in where[:_LISTED]]
    if len(where) > _LISTED:
        out.append(f"{len(where) - _LISTED} more orders refused for want of cash")
    return out


def _book_rows(plan: Plan, n_bars: int, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return the row each fill is booked at, each booked row's bar and the rows that end a bar (None: 1 to 1).

    vectorbt takes one order per column and row. A stop loss or take profit
    hit on its entry's own bar is a second fill in that column and bar: such a
    bar is booked on two rows, the fills at the open on the first, the exits
    on the second (at the same close); the equity and positions are read at
    each bar's last row.
    """
    if not plan.reason.any():  # no stop loss or take profit exit: one fill a bar and column at most
        return plan.row, np.arange(n_bars), None
    key = plan.row * n_cols + plan.col
    order = np.argsort(key, kind="stable")  # the kernel writes an entry before its exit
    second = np.zeros(len(key), dtype=bool)
    second[order[1:][key[order][1:] == key[order][:-1]]] = True
    if not second.any():
        return plan.row, np.arange(n_bars), None
    doubled = np.zeros(n_bars, dtype=np.int64)
    doubled[plan.row[second]] = 1
    first_row = np.arange(n_bars) + np.cumsum(doubled) - doubled  # where each bar's first row is booked
    exits_later = (plan.reason != 0) & (doubled[plan.row] == 1)  # every exit of a doubled bar on its second row
    booked = first_row[plan.row] + exits_later
    return booked, np.repeat(np.arange(n_bars), 1 + doubled), first_row + doubled



def _valuation_close(close: np.ndarray) -> np.ndarray:
    if not np.isnan(close).any():
        return close
    return pd.DataFrame(close).ffill().bfill().to_numpy()


def run(strategy: Strategy, bars: dict[str, pd.DataFrame], settings: BacktestSettings, *,
        benchmark: pd.Series | None = None, skipped: list[str] | None = None,
        ticks: dict[str, float] | None = None) -> BacktestResult:
    """Backtest ``strategy`` (its ``signals``, unchanged) over ``bars`` (instrument -> its bars) with ``settings``.

    ``benchmark`` (a close series, e.g. trader.backtest.data's) is aligned to
    the bars (its last close carried forward); ``skipped`` (what loading the
    bars left out) heads the result's list; ``ticks`` as :func:`simulate` takes them.
    """
    from trader.backtest.signals import target_frame, window_check

    started = time.perf_counter()
    targets, signal_skips = target_frame(strategy, bars)
    signal_skips += window_check(strategy, bars, targets)
    column = pd.Index([0])
    per_instrument = {name: pd.DataFrame(targets[name].to_numpy().reshape(-1, 1), index=targets.index,
                                         columns=column) for name in bars}
    sim = simulate(bars, per_instrument, strategy.config, settings, ticks=ticks)
    result = result_frames(strategy, bars, targets, sim, settings)
    result.skipped = [*(skipped or []), *signal_skips, *sim.skipped]
    if benchmark is not None:
        result.benchmark = benchmark.reindex(sim.index.union(benchmark.index)).ffill().reindex(sim.index)
    result.elapsed = time.perf_counter() - started
    return result
