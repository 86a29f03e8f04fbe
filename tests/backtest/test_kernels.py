"""The two order kernels agree, and the float commission is the live Decimal schedule wherever it is trusted."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from trader.backtest.kernel import fee_nb, order_kernel, scan_changes
from trader.backtest.kernel_changes import change_kernel
from trader.backtest.orders import _comm_array, exact_fees
from trader.domain.commission import CommissionConfig, commission
from trader.domain.enums import SecType

EMPTY_I, EMPTY_F = np.empty(0, np.int64), np.empty(0)
NO_TICK = np.full(3, np.nan)


@pytest.mark.parametrize("kind", [0, 1])
def test_the_change_kernel_makes_the_fills_of_the_bar_by_bar_kernel(kind: int) -> None:
    rng = np.random.default_rng(7)
    n_bars, n_inst, n_combos = 3000, 3, 4
    open_ = np.round(np.abs(50 + np.cumsum(rng.normal(0, 0.3, (n_bars, n_inst)), axis=0)) + 1, 2)
    open_[rng.random((n_bars, n_inst)) < 0.1] = np.nan  # instruments without a bar now and then
    close = open_ + 0.05
    targets = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], size=(n_bars, n_inst * n_combos),
                         p=[0.1, 0.05, 0.6, 0.05, 0.1, 0.1])
    targets = np.where(rng.random(targets.shape) < 0.8, np.nan, targets)  # long stretches of "no decision"
    t_vals = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    t_qty = t_vals * 100
    comm = _comm_array(CommissionConfig())
    sec = np.zeros(n_inst, np.int64)
    changes = scan_changes(targets, 8)[0]
    args = (t_vals, t_qty, kind, 1000.0, 1.0, 0.001)
    slow = order_kernel(open_, open_ + 1, open_ - 1, close, targets, *args, np.nan, np.nan, 1e6, comm, sec, NO_TICK,
                        EMPTY_I, EMPTY_F, EMPTY_I, EMPTY_F, changes)
    fast = change_kernel(open_, close, targets, *args, np.nan, comm, sec, EMPTY_I, EMPTY_F, EMPTY_I, EMPTY_F, changes)
    order = np.lexsort((fast[0] % n_inst, fast[3] > 0, fast[2], fast[0] // n_inst))  # combo, bar, SELLs first
    assert len(slow[0]) > 500 and slow[7].all()
    for a, b in zip(slow[:8], fast[:8], strict=True):
        assert np.array_equal(a, b[order])


def test_with_short_cash_both_kernels_refuse_the_same_orders_and_size_later_ones_from_the_real_position() -> None:
    rng = np.random.default_rng(11)
    n_bars, n_combos = 4000, 5
    open_ = np.round(20 + np.cumsum(rng.normal(0, 0.1, (n_bars, 1)), axis=0), 2).clip(1)
    targets = np.where(rng.random((n_bars, n_combos)) < 0.9, np.nan,
                       rng.choice([-1.0, 0.0, 1.0], size=(n_bars, n_combos)))
    t_vals = np.array([-1.0, 0.0, 1.0])
    comm = _comm_array(CommissionConfig())
    sec = np.zeros(1, np.int64)
    changes = scan_changes(targets, 8)[0]
    args = (t_vals, t_vals * 150, 0, 0.0, 1.0, 0.0)
    slow = order_kernel(open_, open_, open_, open_, targets, *args, np.nan, np.nan, 2500.0, comm, sec,
                        np.full(1, np.nan), EMPTY_I, EMPTY_F, EMPTY_I, EMPTY_F, changes)
    fast = change_kernel(open_, open_, targets, *args, 2500.0, comm, sec, EMPTY_I, EMPTY_F, EMPTY_I, EMPTY_F,
                         changes)
    refused = ~slow[7]
    assert 50 < refused.sum() < len(refused) - 50  # 150 shares of ~20 against 2500: a reversal BUY is short
    for a, b in zip(slow[:8], fast[:8], strict=True):
        assert np.array_equal(a, b)
    col, size = slow[0], slow[3]
    for c in range(n_combos):  # the filled orders always keep the position within one lot of the targets
        held = np.cumsum(np.where(slow[7] & (col == c), size, 0.0))
        assert set(np.unique(held[col == c])) <= {-150.0, 0.0, 150.0}


def test_float_commissions_corrected_where_doubtful_equal_the_decimal_schedule() -> None:
    rng = np.random.default_rng(3)
    config = CommissionConfig()
    size = rng.integers(1, 3000, 4000).astype(float) * rng.choice([-1, 1], 4000)
    price = np.round(rng.uniform(0.05, 300, 4000), 2)
    size[:4] = [1, 333, 10, 7]  # half cents: 0.505, 1.665, 0.125 (1 %), ...
    price[:4] = [50.5, 2.0, 1.25, 0.125]
    sec = np.zeros(4000, np.int64)
    comm = _comm_array(config)
    fee = np.array([fee_nb(comm, 0, q, p) for q, p in zip(size.tolist(), price.tolist(), strict=True)])
    fixes = exact_fees(config, sec, size, price, fee, Decimal(1))
    assert len(fixes) >= 2  # 1 at 50.5 and 333 at 2.0 are half cents floats round up
    for k, right in fixes:
        fee[int(k)] = right
    live = [float(commission(config, SecType.STK, Decimal(int(abs(q))), Decimal(repr(p)))) for q, p in
            zip(size.tolist(), price.tolist(), strict=True)]
    assert fee.tolist() == live
