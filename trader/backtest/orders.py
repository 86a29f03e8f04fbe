"""Targets to orders: the live sizing and commission, exact, around the numba kernel.

:func:`plan_orders` runs trader.backtest.kernel's loop and makes its floats
answer what the live Decimal code answers:

- quantity sizing (and ``units: shares``) depends on the target alone, so each
  distinct target is sized once by the live
  :func:`~trader.strategy.sizing.target_quantity` and the kernel is handed the
  quantities;
- cash and equity sizing depend on the close (and the equity) at the bar, so
  the kernel sizes in floats and flags the few sizings that land within a
  hair of a lot boundary; those are sized again with ``target_quantity``
  (price and equity read from their shortest text, as live reads floats);
- commissions are charged in floats with half-even cents, which is the
  Decimal schedule's answer except on a value a float cannot tell from a
  half cent; those are charged again with the live
  :func:`~trader.domain.commission.commission`.

A sizing or a commission the kernel got wrong is handed back as an override
and the kernel runs again (rarely: a run's flagged points are a handful), until
nothing changes. So every fill's quantity and commission equals the live
functions' to the lot and the cent.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.kernel import order_kernel, scan_changes
from trader.backtest.kernel_changes import change_kernel, refuses
from trader.domain.commission import CommissionConfig, commission
from trader.domain.enums import SecType
from trader.strategy.base import StrategyConfig
from trader.strategy.sizing import SignalError, target_quantity

__all__ = ["SEC_CODES", "Plan", "exact_fees", "plan_orders"]

log = logging.getLogger(__name__)

SEC_CODES = {SecType.FUT: 1, SecType.OPT: 2, SecType.CASH: 3}  # anything else pays the stock schedule
_CODE_SEC = {0: SecType.STK, 1: SecType.FUT, 2: SecType.OPT, 3: SecType.CASH}
_KINDS = {"quantity": 0, "cash": 1, "equity_percent": 2}
_MAX_PASSES = 50
_DISTINCT = 64  # distinct targets gathered while counting the changes; more: found by pandas


@dataclass(frozen=True)
class Plan:
    """Every fill of a simulation, one array entry each, in the kernel's order (combo, bar, instrument).

    ``col`` is ``combo * instruments + instrument``; ``decided`` the row of the
    bar whose close decided it (-1 for a stop loss or take profit exit),
    ``row`` the row it filled at; ``size`` signed (BUY > 0); ``price`` with the
    slippage in; ``fee`` the commission; ``reason`` an index into
    trader.backtest.kernel.REASON_NAMES; ``passes`` how often the kernel ran;
    ``refused`` the orders the cash could not pay (same arrays), not filled.
    """

    col: np.ndarray
    decided: np.ndarray
    row: np.ndarray
    size: np.ndarray
    price: np.ndarray
    fee: np.ndarray
    reason: np.ndarray
    _: KW_ONLY
    passes: int = 1
    refused: Plan | None = None


def _comm_array(config: CommissionConfig) -> np.ndarray:
    return np.array([float(config.stock_per_share), float(config.stock_min), float(config.stock_max_percent),
                     float(config.future_per_contract), float(config.option_per_contract), float(config.option_min),
                     float(config.fx_rate), float(config.fx_min)], dtype=np.float64)


def _decimal(value: float, lot: Decimal | None = None) -> Decimal:
    number = Decimal(repr(float(value)))
    return number.quantize(lot) if lot is not None and lot.as_tuple().exponent < 0 else number  # type: ignore[operator]


def quantity_decimal(value: float, lot: Decimal) -> Decimal:
    """Return a float quantity (a multiple of ``lot``) as the Decimal the live code would hold."""
    units = round(abs(float(value)) / float(lot))
    quantity = lot * units
    return quantity if value >= 0 else -quantity


def exact_fees(config: CommissionConfig, sec: np.ndarray, size: np.ndarray, price: np.ndarray, fee: np.ndarray,
               lot: Decimal) -> np.ndarray:
    """Return the indices where ``fee`` (floats, half-even cents) is not the live schedule's, and the right fees.

    Returns an array of shape (k, 2): index, correct fee. Only values a float
    cannot tell from a half cent (or too large for a float's cents) are charged
    again with :func:`~trader.domain.commission.commission`.
    """
    comm = _comm_array(config)
    q = np.abs(size)
    stock = np.minimum(np.maximum(comm[1], comm[0] * q), comm[2] / 100.0 * q * np.abs(price))
    amount = np.select([sec == 1, sec == 2, sec == 3],
                       [comm[3] * q, np.maximum(comm[5], comm[4] * q), np.maximum(comm[7], comm[6] * q * price)],
                       stock)
    cents = amount * 100.0
    frac = cents - np.floor(cents)
    doubtful = np.flatnonzero((np.abs(frac - 0.5) < 1e-6) | (cents > 1e9))
    fixes = []
    for k in doubtful:
        right = commission(config, _CODE_SEC[int(sec[k])], abs(quantity_decimal(size[k], lot)), _decimal(price[k]))
        if float(right) != fee[k]:
            fixes.append((k, float(right)))
    return np.array(fixes, dtype=np.float64).reshape(-1, 2)


def sized_quantities(targets: np.ndarray, config: StrategyConfig, distinct: np.ndarray | None = None) -> tuple[
        np.ndarray, np.ndarray]:
    """Return the distinct targets (sorted, NaN left out) of a quantity-sized strategy and the quantity of each.

    Each distinct target is sized once by the live ``target_quantity`` (a
    quantity, or ``units: shares``, depends on the target alone). A target the
    lot cannot express raises SignalError, as live. ``distinct``: the values
    if already known (trader.backtest.kernel.scan_changes).
    """
    if distinct is None:
        changed = np.ones(targets.shape, dtype=bool)  # a target that equals the bar's before is no new value
        np.not_equal(targets[1:], targets[:-1], out=changed[1:])
        distinct = pd.unique(targets[changed])
    values = np.sort(distinct[~np.isnan(distinct)]).astype(np.float64)
    sized = np.array([float(target_quantity(float(v), config)) for v in values], dtype=np.float64)
    return values, sized


def plan_orders(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, targets: np.ndarray,
                config: StrategyConfig, *, initial_cash: float, slippage: float, commission_config: CommissionConfig,
                sec: np.ndarray, tick: np.ndarray | None = None) -> Plan:
    """Return every fill of ``targets`` (bars x combos*instruments) traded live-like on the bars.

    Prices are bars x instruments, NaN where an instrument has no bar; ``sec``
    the commission code of each instrument (:data:`SEC_CODES`, 0 for stocks);
    ``tick`` each one's price increment for the bracket levels (None or NaN:
    unknown, the levels stay unrounded). An order the cash cannot pay is
    refused (``Plan.refused``): the position stays and the target counts as
    traded, as live remembers it (trader.strategy.orders ``_trade``).
    """
    sizing = config.sizing
    kind = 0 if config.units == "shares" else _KINDS[sizing.kind]
    changes, distinct, n_distinct = scan_changes(targets, _DISTINCT)
    if kind == 0:
        t_vals, t_qty = sized_quantities(targets, config, distinct[:n_distinct] if n_distinct >= 0 else None)
    else:
        t_vals, t_qty = np.empty(0), np.empty(0)
    sl = float(config.stop_loss_percent) if config.stop_loss_percent is not None else np.nan
    tp = float(config.take_profit_percent) if config.take_profit_percent is not None else np.nan
    comm = _comm_array(commission_config)
    n_bars, n_inst = open_.shape
    ticks = np.full(n_inst, np.nan) if tick is None else np.asarray(tick, dtype=np.float64)
    q_over: dict[int, float] = {}
    f_over: dict[int, float] = {}
    passes = 0
    while True:
        passes += 1
        q_key, q_val = _table(q_over)
        f_key, f_val = _table(f_over)
        out = _kernel(open_, high, low, close, targets, t_vals, t_qty, kind, sizing, slippage, sl, tp, initial_cash,
                      comm, sec, ticks, q_key, q_val, f_key, f_val, changes)
        (col, dec, row, size, price, fee, reason, ok, g_col, g_row, g_val) = out
        changed = False
        for k in range(len(g_col)):
            key = _key(int(g_col[k]), int(g_row[k]), n_bars, n_inst)
            if key in q_over:
                continue
            target, px, equity, got = g_val[k]
            try:
                right = float(target_quantity(float(target), config, price=_decimal(px), equity=_decimal(equity)))
            except SignalError:
                right = got
            if right != got:
                q_over[key] = right
                changed = True
        fixes = exact_fees(commission_config, sec[col[ok] % n_inst], size[ok], price[ok], fee[ok], sizing.lot)
        fixes[:, 0] = np.flatnonzero(ok)[fixes[:, 0].astype(np.int64)]
        for k, right in fixes:
            key = _key(int(col[int(k)]), int(row[int(k)]), n_bars, n_inst)
            if f_over.get(key) != right:
                f_over[key] = right
                changed = True
        if not changed or passes >= _MAX_PASSES:
            break
    if passes > 1:
        log.debug("order kernel ran %d times: %d sizings, %d commissions fixed", passes, len(q_over), len(f_over))
    arrays = (col, dec, row, size, price, fee, reason)
    refused = None if ok.all() else Plan(*(a[~ok] for a in arrays))
    return Plan(*(a[ok] for a in arrays), passes=passes, refused=refused)


def _kernel(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, targets: np.ndarray,
            t_vals: np.ndarray, t_qty: np.ndarray, kind: int, sizing: Any, slippage: float, sl: float, tp: float,
            cash: float, comm: np.ndarray, sec: np.ndarray, ticks: np.ndarray, q_key: np.ndarray, q_val: np.ndarray,
            f_key: np.ndarray, f_val: np.ndarray, changes: int) -> tuple[np.ndarray, ...]:
    """Run the kernel that fits: the bar-by-bar one, or the one that visits only the changes of target.

    The second serves sizing that reads no equity and no stop or take profit;
    with several instruments (one cash shared) it cannot see the cash, so its
    fills are checked against it afterwards and, if one is short, the
    bar-by-bar kernel runs instead.
    """
    value, lot = float(sizing.value), float(sizing.lot)
    n_inst = open_.shape[1]
    if kind != 2 and np.isnan(sl) and np.isnan(tp):
        out = change_kernel(open_, close, targets, t_vals, t_qty, kind, value, lot, slippage,
                            cash if n_inst == 1 else np.nan, comm, sec, q_key, q_val, f_key, f_val, changes)
        if n_inst == 1:
            return out
        col, row, size = out[0], out[2], out[3]
        order = np.lexsort((col % n_inst, size > 0, row, col // n_inst))  # the kernel's: combo, bar, SELLs first
        out = tuple(a[order] for a in out[:8]) + out[8:]
        if not refuses(out[0], out[3], out[4], out[5], n_inst, cash):
            return out
    return order_kernel(open_, high, low, close, targets, t_vals, t_qty, kind, value, lot, slippage, sl, tp, cash,
                        comm, sec, ticks, q_key, q_val, f_key, f_val, changes)


def _key(col: int, row: int, n_bars: int, n_inst: int) -> int:
    combo, inst = divmod(col, n_inst)
    return (combo * n_bars + row) * n_inst + inst


def _table(overrides: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(sorted(overrides), dtype=np.int64)
    return keys, np.array([overrides[k] for k in keys], dtype=np.float64)
