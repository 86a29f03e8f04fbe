"""The order kernel: one numba loop from target changes to fills, the live rules bar by bar.

:func:`order_kernel` walks every combination of parameters (a group of one
column per instrument, sharing one cash) bar by bar, in the order things
happen live:

1. at a bar's open, the order decided at the instrument's previous close
   fills at the open with slippage against the trader (BUY ``open * (1 + s)``,
   SELL ``open * (1 - s)``) and pays its commission, the SELLs first (they
   free cash). A fill the cash cannot pay is refused (:func:`paid`, vectorbt's
   rule: a cash account): the position stays, and the target stays the one
   last traded, as live remembers a target whose order was refused
   (trader.strategy.orders ``_trade`` sets ``targets`` before placing), so
   the next change is sized against the position really held. An order that
   opens a position from flat gets its stop loss and take profit: live
   anchors them on the reference price (the quote a market order is expected
   to fill at, trader.trading.requests), here the slipped open, and rounds
   them to the tick on the cautious side (``rounding_for``: a SELL stop and a
   BUY limit down, a BUY stop and a SELL limit up); with the tick unknown
   (``tick`` NaN, the default: bars carry no contract details) they stay
   unrounded, so a stop within a tick of a bar's low may trigger a bar apart;
2. from the entry's own bar on (live, the bracket works from the fill at the
   open, and that bar's low and high come after it), a low or high crossing
   the stop (or the take profit) exits the whole position at that price, or
   at the open when a later bar gaps through it; the stop is a market order
   (slipped), the take profit a limit (not); if both are crossed in one bar,
   the stop is taken (the conservative guess: a bar does not say which came
   first). An entry and its exit in one bar are two fills of one column at
   one row: trader.backtest.engine books the exit on a copy of the row;
3. at the close, the account's equity is marked (cash plus every position at
   its last close) and a target that differs from the last one traded
   becomes an order for the sized target minus the position. A NaN target is
   no decision (live skips the bar), an equal one neither: after a stop-out
   nothing re-enters until the target changes.

Sizing (``kind``): 0 the quantity of each distinct target is given (sized
exactly by the caller), 1 cash, 2 percent of equity. Cash and equity quantities are rounded
toward zero to the lot in floats here; one that lies within a hair of a lot
boundary is flagged, so the caller can size it again with the live Decimal
function and, if that differs, run again with the answer as an override
(``q_key``/``q_val``; ``f_key``/``f_val`` do the same for commissions).
Override keys are ``(combo * bars + row) * instruments + instrument``,
ascending.

The accounting here is what sizing and the cash check need (the cash after
each fill, the equity at each close); vectorbt books the orders afterwards
(trader.backtest.engine), called in the kernel's order, so it refuses none.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["REASON_NAMES", "fee_nb", "lookup", "lot_size", "order_kernel", "paid", "scan_changes", "slipped"]

REASON_NAMES = ("signal", "stop_loss", "take_profit")
EPS = 1e-9


@njit(cache=True)
def fee_nb(comm: np.ndarray, sec: int, quantity: float, price: float) -> float:
    """Return the commission of one fill (trader.domain.commission's schedule in floats, half-even cents).

    ``comm``: stock per share, stock min, stock max percent, future per
    contract, option per contract, option min, FX rate, FX min. ``sec``: 0
    stock, 1 future, 2 option, 3 FX.
    """
    q = abs(quantity)
    if sec == 1:
        amount = comm[3] * q
    elif sec == 2:
        amount = max(comm[5], comm[4] * q)
    elif sec == 3:
        amount = max(comm[7], comm[6] * q * price)
    else:
        amount = max(comm[1], comm[0] * q)
        amount = min(amount, comm[2] / 100.0 * q * abs(price))
    return np.round(amount * 100.0) / 100.0


@njit(cache=True, inline="always")
def lot_size(raw: float, lot: float) -> tuple[float, bool]:
    """Return ``raw`` rounded toward zero to the lot, and whether it lies within a hair of a lot boundary."""
    units = abs(raw) / lot
    whole = np.floor(units)
    near = np.floor(units + 1e-7 * max(1.0, units))
    q = whole * lot if raw >= 0 else -whole * lot
    return q, near != whole or units - whole < 1e-7 * max(1.0, units)


@njit(cache=True, inline="always")
def slipped(o: float, size: float, slip: float) -> float:
    """Return the fill price of ``size`` at ``o``: slippage against the trader (BUY up, SELL down)."""
    return np.round(o * (1.0 + slip) if size > 0 else o * (1.0 - slip), 9)


@njit(cache=True, inline="always")
def paid(cash: float, size: float, price: float, fee: float) -> bool:
    """Return whether the account can pay a fill: vectorbt's rule (a cash account), so it books every fill.

    A BUY needs ``size * price + fee`` in cash (vectorbt's tolerance: 1e-9
    relative); a SELL is refused only when its fee exceeds its proceeds.
    """
    if size < 0:
        return -size * price - fee >= 0.0
    if abs(cash) <= 1e-12:
        return False
    cost = size * price + fee
    return cost <= cash or abs(cost - cash) <= max(1e-9 * max(abs(cost), abs(cash)), 1e-12)


@njit(cache=True)
def scan_changes(targets: np.ndarray, limit: int) -> tuple[int, np.ndarray, int]:
    """Return how many times the targets change (NaN skipped), and their distinct values (at most ``limit``).

    The count bounds the kernel's fills (each change is one order, each order
    at most one exit). The distinct values come back unsorted with their
    number, or -1 when there are more than ``limit``.
    """
    count = 0
    distinct = np.empty(limit, np.float64)
    n_distinct = 0
    for c in range(targets.shape[1]):
        last = np.nan
        for t in range(targets.shape[0]):
            v = targets[t, c]
            if np.isnan(v) or v == last:
                continue
            count += 1
            last = v
            if 0 <= n_distinct:
                seen = False
                for k in range(n_distinct):
                    if distinct[k] == v:
                        seen = True
                        break
                if not seen:
                    if n_distinct == limit:
                        n_distinct = -1
                    else:
                        distinct[n_distinct] = v
                        n_distinct += 1
    return count, distinct, n_distinct


@njit(cache=True)
def lookup(keys: np.ndarray, values: np.ndarray, key: int, default: float) -> float:
    if keys.shape[0] == 0:
        return default
    k = np.searchsorted(keys, key)
    return values[k] if k < keys.shape[0] and keys[k] == key else default


@njit(cache=True, inline="always")
def _on_tick(level: float, tick: float, up: bool) -> float:
    """Return ``level`` on the ``tick`` grid, rounded up or down (live's cautious side); NaN tick: unrounded."""
    if np.isnan(tick) or np.isnan(level):
        return level
    ticks = np.round(level / tick, 6)
    return np.round((np.ceil(ticks) if up else np.floor(ticks)) * tick, 9)


@njit(cache=True)
def order_kernel(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, targets: np.ndarray,
                 t_vals: np.ndarray, t_qty: np.ndarray, kind: int, value: float, lot: float, slip: float, sl: float, tp: float,
                 cash0: float, comm: np.ndarray, sec: np.ndarray, tick: np.ndarray, q_key: np.ndarray,
                 q_val: np.ndarray, f_key: np.ndarray, f_val: np.ndarray, changes: int):
    """Return the fills and the flagged sizings of every combo; see the module docstring.

    Prices are bars x instruments (NaN: no bar), ``targets`` bars x (combos *
    instruments), column ``combo * n + instrument``; for kind 0, ``t_qty[k]``
    is the quantity of target ``t_vals[k]`` (``t_vals`` sorted).
    ``sl``/``tp`` are percents (NaN: none); ``tick`` each instrument's price
    increment (NaN: unknown, levels unrounded). Returns ``(col, decided, row,
    size, price, fee, reason, filled)`` of each order (``filled`` False: refused
    for want of cash, see :func:`paid`) and ``(col, row, target, price,
    equity, qty)`` of each flagged sizing.
    """
    n_bars, n_inst = open_.shape
    n_cols = targets.shape[1]
    n_combos = n_cols // n_inst
    cap = 2 * changes + 1  # changes: scan_changes's count
    o_col = np.empty(cap, np.int64)
    o_dec = np.empty(cap, np.int64)
    o_row = np.empty(cap, np.int64)
    o_size = np.empty(cap, np.float64)
    o_price = np.empty(cap, np.float64)
    o_fee = np.empty(cap, np.float64)
    o_reason = np.empty(cap, np.int8)
    o_ok = np.empty(cap, np.bool_)
    fcap = cap if kind != 0 else 1
    g_col = np.empty(fcap, np.int64)
    g_row = np.empty(fcap, np.int64)
    g_val = np.empty((fcap, 4), np.float64)
    n = 0
    nf = 0
    tol = lot * EPS
    bracket = not (np.isnan(sl) and np.isnan(tp))
    for g in range(n_combos):
        cash = cash0
        pos = np.zeros(n_inst)
        last_close = np.full(n_inst, np.nan)
        last_target = np.full(n_inst, np.nan)
        pend = np.zeros(n_inst)
        pend_dec = np.full(n_inst, -1, np.int64)
        pend_flat = np.zeros(n_inst, np.bool_)
        stop = np.full(n_inst, np.nan)
        take = np.full(n_inst, np.nan)
        entry_row = np.full(n_inst, -1, np.int64)
        for t in range(n_bars):
            base = (g * n_bars + t) * n_inst
            # 1. the orders decided at the last close fill at this open: the SELLs first (they free cash)
            for phase in range(2):
                for i in range(n_inst):
                    o = open_[t, i]
                    if np.isnan(o) or pend[i] == 0.0 or (pend[i] > 0) != (phase == 1):
                        continue
                    size = pend[i]
                    price = slipped(o, size, slip)
                    fee = lookup(f_key, f_val, base + i, fee_nb(comm, sec[i], size, price))
                    ok = paid(cash, size, price, fee)
                    o_col[n] = g * n_inst + i
                    o_dec[n] = pend_dec[i]
                    o_row[n] = t
                    o_size[n] = size
                    o_price[n] = price
                    o_fee[n] = fee
                    o_reason[n] = 0
                    o_ok[n] = ok
                    n += 1
                    pend[i] = 0.0
                    stop[i] = np.nan  # live cancels the exits before an order that changes the position
                    take[i] = np.nan
                    if not ok:  # refused: the position stays, the target stays traded (live: self.targets)
                        continue
                    cash -= size * price + fee
                    pos[i] += size
                    if abs(pos[i]) < tol:
                        pos[i] = 0.0
                    if pend_flat[i] and pos[i] != 0.0:  # live anchors on the quote a market order fills at
                        side = 1.0 if pos[i] > 0 else -1.0
                        stop[i] = _on_tick(np.round(price * (1.0 - side * sl / 100.0), 9), tick[i], side < 0)
                        take[i] = _on_tick(np.round(price * (1.0 + side * tp / 100.0), 9), tick[i], side > 0)
                        entry_row[i] = t
            # 2. a bracket child crossed from the entry's bar on exits the position
            for i in range(n_inst if bracket else 0):
                if pos[i] == 0.0 or entry_row[i] > t or np.isnan(open_[t, i]):
                    continue
                if np.isnan(stop[i]) and np.isnan(take[i]):
                    continue
                o = open_[t, i]
                reason = 0
                px = 0.0
                if pos[i] > 0:
                    if low[t, i] <= stop[i]:
                        reason = 1
                        px = np.round(min(o, stop[i]) * (1.0 - slip), 9)
                    elif high[t, i] >= take[i]:
                        reason = 2
                        px = max(o, take[i])
                else:
                    if high[t, i] >= stop[i]:
                        reason = 1
                        px = np.round(max(o, stop[i]) * (1.0 + slip), 9)
                    elif low[t, i] <= take[i]:
                        reason = 2
                        px = min(o, take[i])
                if reason == 0:
                    continue
                size = -pos[i]
                fee = lookup(f_key, f_val, base + i, fee_nb(comm, sec[i], size, px))
                ok = paid(cash, size, px, fee)
                o_col[n] = g * n_inst + i
                o_dec[n] = -1
                o_row[n] = t
                o_size[n] = size
                o_price[n] = px
                o_fee[n] = fee
                o_reason[n] = reason
                o_ok[n] = ok
                n += 1
                stop[i] = np.nan
                take[i] = np.nan
                if ok:
                    cash -= size * px + fee
                    pos[i] = 0.0
            # 3. at the close: mark the equity, trade the targets that changed
            equity = cash
            for i in range(n_inst if kind == 2 else 0):  # only equity sizing reads it
                if not np.isnan(close[t, i]):
                    last_close[i] = close[t, i]
                if pos[i] != 0.0:
                    equity += pos[i] * last_close[i]
            for i in range(n_inst):
                c = g * n_inst + i
                px = close[t, i]
                v = targets[t, c]
                if np.isnan(px) or np.isnan(v) or v == last_target[i]:
                    continue
                if kind == 0:
                    q = t_qty[np.searchsorted(t_vals, v)]
                else:
                    if kind == 1:
                        raw = v * value / px
                    else:
                        if equity <= 0.0:
                            continue  # live: a SignalError, the target stays untraded
                        raw = v * value / 100.0 * equity / px
                    q, flagged = lot_size(raw, lot)
                    if flagged:
                        g_col[nf] = c
                        g_row[nf] = t
                        g_val[nf, 0] = v
                        g_val[nf, 1] = px
                        g_val[nf, 2] = equity
                        g_val[nf, 3] = q
                        nf += 1
                    q = lookup(q_key, q_val, base + i, q)
                last_target[i] = v
                delta = np.round((q - pos[i] - pend[i]) / lot) * lot
                if abs(delta) > tol:
                    pend[i] += delta
                    if abs(pend[i]) < tol:
                        pend[i] = 0.0
                    pend_dec[i] = t
                    pend_flat[i] = pos[i] == 0.0
    return (o_col[:n], o_dec[:n], o_row[:n], o_size[:n], o_price[:n], o_fee[:n], o_reason[:n], o_ok[:n],
            g_col[:nf], g_row[:nf], g_val[:nf])
