"""The change kernel: the order kernel's fills for sizing that reads no equity, visiting only target changes.

trader.backtest.kernel's :func:`~trader.backtest.kernel.order_kernel` walks
every bar of every combo. When the sizing reads no equity and there is no
stop loss or take profit, nothing couples the bars between two changes of
target: :func:`change_kernel` walks each column's changes alone (the same
fills, fewer steps). With one instrument a column is its combo's cash and is
checked there; with several (one shared cash) :func:`refuses` checks the
fills afterwards, in the order vectorbt is then told to pay them
(:func:`call_sequence`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trader.backtest.kernel import EPS, fee_nb, lookup, lot_size, paid, slipped

__all__ = ["call_sequence", "change_kernel", "refuses"]


@njit(cache=True)
def change_kernel(open_: np.ndarray, close: np.ndarray, targets: np.ndarray, t_vals: np.ndarray, t_qty: np.ndarray,
                  kind: int, value: float, lot: float, slip: float, cash0: float, comm: np.ndarray, sec: np.ndarray,
                  q_key: np.ndarray, q_val: np.ndarray, f_key: np.ndarray, f_val: np.ndarray,
                  changes: int):
    """Return what :func:`order_kernel` returns, for sizing that reads no equity and no stop or take profit.

    Then nothing couples the bars between two changes of target, so each
    column is walked on its own and only its changes do work: the same
    fills, in column order (the caller puts them in the kernel's). A column's
    cash (``cash0``: NaN for none) is its own only with one instrument; with
    more, the caller checks the shared cash afterwards (:func:`refuses`).
    """
    n_bars, n_inst = open_.shape
    cap = changes + 1
    o_col = np.empty(cap, np.int64)
    o_dec = np.empty(cap, np.int64)
    o_row = np.empty(cap, np.int64)
    o_size = np.empty(cap, np.float64)
    o_price = np.empty(cap, np.float64)
    o_fee = np.empty(cap, np.float64)
    o_reason = np.zeros(cap, np.int8)
    o_ok = np.ones(cap, np.bool_)
    fcap = cap if kind != 0 else 1
    g_col = np.empty(fcap, np.int64)
    g_row = np.empty(fcap, np.int64)
    g_val = np.empty((fcap, 4), np.float64)
    n = 0
    nf = 0
    tol = lot * EPS
    checked = not np.isnan(cash0)
    for c in range(targets.shape[1]):
        g, i = c // n_inst, c % n_inst
        last = np.nan
        pos = 0.0
        cash = cash0
        for t in range(n_bars):
            v = targets[t, c]
            if np.isnan(v) or v == last:
                continue
            px = close[t, i]
            if np.isnan(px):
                continue
            key = (g * n_bars + t) * n_inst + i
            if kind == 0:
                q = t_qty[np.searchsorted(t_vals, v)]
            else:
                q, flagged = lot_size(v * value / px, lot)
                if flagged:
                    g_col[nf] = c
                    g_row[nf] = t
                    g_val[nf, 0] = v
                    g_val[nf, 1] = px
                    g_val[nf, 2] = np.nan
                    g_val[nf, 3] = q
                    nf += 1
                q = lookup(q_key, q_val, key, q)
            last = v
            delta = np.round((q - pos) / lot) * lot
            if abs(delta) <= tol:
                continue
            r = t + 1
            while r < n_bars and np.isnan(open_[r, i]):
                r += 1
            if r == n_bars:
                break  # decided at the last bar: no bar to fill at
            price = slipped(open_[r, i], delta, slip)
            fee = lookup(f_key, f_val, (g * n_bars + r) * n_inst + i, fee_nb(comm, sec[i], delta, price))
            o_col[n] = c
            o_dec[n] = t
            o_row[n] = r
            o_size[n] = delta
            o_price[n] = price
            o_fee[n] = fee
            n += 1
            if checked and not paid(cash, delta, price, fee):
                o_ok[n - 1] = False  # refused: the position stays, the target stays traded (as live)
                continue
            cash -= delta * price + fee
            pos += delta
            if abs(pos) < tol:
                pos = 0.0
    return (o_col[:n], o_dec[:n], o_row[:n], o_size[:n], o_price[:n], o_fee[:n], o_reason[:n], o_ok[:n],
            g_col[:nf], g_row[:nf], g_val[:nf])


@njit(cache=True)
def refuses(col: np.ndarray, size: np.ndarray, price: np.ndarray, fee: np.ndarray, n_inst: int,
            cash0: float) -> bool:
    """Return whether a fill (in the kernel's order: combo, bar, SELLs first) finds its combo's cash short."""
    cash = cash0
    group = -1
    for k in range(col.shape[0]):
        g = col[k] // n_inst
        if g != group:
            group = g
            cash = cash0
        if not paid(cash, size[k], price[k], fee[k]):
            return True
        cash -= size[k] * price[k] + fee[k]
    return False


@njit(cache=True)
def call_sequence(seq: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_inst: int) -> None:
    """Write into ``seq`` (rows x columns, each group's columns in order) the kernel's order of each row's fills.

    vectorbt calls a group's columns in this order at each row (its
    ``call_seq``): the fills (``rows``/``cols`` in the kernel's order) first,
    as the kernel paid them, then the columns without one.
    """
    n = rows.shape[0]
    k = 0
    used = np.zeros(n_inst, np.bool_)
    while k < n:
        r = rows[k]
        g = cols[k] // n_inst
        j = k
        while j < n and rows[j] == r and cols[j] // n_inst == g:
            j += 1
        if j - k > 1:
            used[:] = False
            p = 0
            for m in range(k, j):
                seq[r, g * n_inst + p] = cols[m] % n_inst
                used[cols[m] % n_inst] = True
                p += 1
            for i in range(n_inst):
                if not used[i]:
                    seq[r, g * n_inst + p] = i
                    p += 1
        k = j
