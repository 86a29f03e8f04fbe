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
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.kernel import REASON_NAMES
from trader.backtest.orders import SEC_CODES, Plan, plan_orders
from trader.backtest.result import BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.domain.contract_key import is_key, parse_key
from trader.domain.enums import SecType
from trader.strategy.base import Strategy, StrategyConfig

__all__ = ["Simulation", "run", "sec_type_of", "simulate"]

log = logging.getLogger(__name__)

_PRICES = ("open", "high", "low", "close")


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

    @cached_property
    def orders(self) -> pd.DataFrame:
        """Return every fill of every combo, oldest first per combo (see the class docstring)."""
        return _orders_frame(self.plan, self.index, self.instruments, self.combos)

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Return bars x (combo, instrument): the signed quantity held after each bar."""
        columns = pd.MultiIndex.from_product([self.combos, self.instruments], names=["combo", "instrument"])
        from trader.backtest.frames import BOTH

        values = np.asarray(self.portfolio.assets(direction=BOTH)).reshape(len(self.index), len(columns))
        return pd.DataFrame(values, index=self.index, columns=columns)


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
    index = frames[0].index
    for frame in frames[1:]:
        index = index.union(frame.index)
    arrays = {name: np.column_stack([f[name].reindex(index).to_numpy(np.float64) for f in frames]) for name in _PRICES}
    return index, arrays


def simulate(bars: dict[str, pd.DataFrame], targets: dict[str, pd.DataFrame], config: StrategyConfig,
             settings: BacktestSettings) -> Simulation:
    """Trade ``targets`` (instrument -> bars x combos) on ``bars`` with ``config``'s sizing; book it in vectorbt.

    Every instrument's targets have the same columns (the combos) and its
    bars' index. One vectorbt ``from_orders`` call books every combo, each a
    group sharing ``settings.initial_cash`` across its instruments.
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
                       commission_config=settings.commission, sec=sec)
    n_cols = n_combos * n_inst
    size = np.full((n_bars, n_cols), np.nan)
    price = np.full((n_bars, n_cols), np.nan)
    fees = np.zeros((n_bars, n_cols))
    size[plan.row, plan.col] = plan.size
    price[plan.row, plan.col] = plan.price
    fees[plan.row, plan.col] = plan.fee
    close = _valuation_close(prices["close"])
    close_cols = close if n_inst == 1 else np.tile(close, (1, n_combos))  # one instrument: vectorbt broadcasts
    grouped = n_inst > 1  # one instrument: a combo is a column, no group to share cash in (and faster)
    portfolio = vbt.Portfolio.from_orders(
        close=close_cols, size=size, size_type="amount", direction="both", price=price, fees=0.0,
        fixed_fees=fees, slippage=0.0, init_cash=float(settings.initial_cash), cash_sharing=grouped,
        group_by=np.repeat(np.arange(n_combos), n_inst) if grouped else None,
        call_seq="auto" if grouped else "default", allow_partial=False, raise_reject=False, ffill_val_price=True,
        fillna_close=False,  # the close is filled already (_valuation_close)
        max_orders=max(1, len(plan.col)))  # vectorbt books at most the planned fills: no bars x columns records
    booked = portfolio.order_records
    skipped: list[str] = []
    if len(booked) != len(plan.col):
        skipped.append(f"{len(plan.col) - len(booked)} orders rejected for want of cash")
        log.warning("vectorbt booked %d of %d orders (not enough cash for the rest)", len(booked), len(plan.col))
    equity = pd.DataFrame(np.asarray(portfolio.value()).reshape(n_bars, n_combos), index=index, columns=combos)
    counts = np.bincount(portfolio.positions.values["col"] // n_inst, minlength=n_combos)
    trade_count = pd.Series(counts, index=combos, name="trades")
    fee_sum = np.bincount(plan.col // n_inst, weights=plan.fee, minlength=n_combos)
    return Simulation(index, instruments, combos, equity, trade_count, pd.Series(fee_sum, index=combos, name="fees"),
                      portfolio, plan, skipped)


def _valuation_close(close: np.ndarray) -> np.ndarray:
    if not np.isnan(close).any():
        return close
    return pd.DataFrame(close).ffill().bfill().to_numpy()


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


def run(strategy: Strategy, bars: dict[str, pd.DataFrame], settings: BacktestSettings, *,
        benchmark: pd.Series | None = None, skipped: list[str] | None = None) -> BacktestResult:
    """Backtest ``strategy`` (its ``signals``, unchanged) over ``bars`` (instrument -> its bars) with ``settings``.

    ``benchmark`` (a close series, e.g. trader.backtest.data's) is aligned to
    the bars (its last close carried forward); ``skipped`` (what loading the
    bars left out) heads the result's list.
    """
    from trader.backtest.frames import result_frames
    from trader.backtest.signals import target_frame

    started = time.perf_counter()
    targets, signal_skips = target_frame(strategy, bars)
    column = pd.Index([0])
    per_instrument = {name: pd.DataFrame(targets[name].to_numpy().reshape(-1, 1), index=targets.index,
                                         columns=column) for name in bars}
    sim = simulate(bars, per_instrument, strategy.config, settings)
    result = result_frames(strategy, bars, targets, sim, settings)
    result.skipped = [*(skipped or []), *signal_skips, *sim.skipped]
    if benchmark is not None:
        result.benchmark = benchmark.reindex(sim.index.union(benchmark.index)).ffill().reindex(sim.index)
    result.elapsed = time.perf_counter() - started
    return result
