"""Sizing in the backtest is the live target_quantity: cash and equity at the bar, lots, several instruments."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tests.backtest.given import Given, make_bars
from trader.backtest.engine import run, simulate
from trader.backtest.settings import BacktestSettings
from trader.domain.commission import CommissionConfig, commission
from trader.domain.enums import SecType
from trader.strategy.base import StrategyConfig
from trader.strategy.sizing import target_quantity

FREE = BacktestSettings(commission=CommissionConfig(stock_per_share=0, stock_min=0))


def test_cash_sizing_buys_what_the_cash_buys_at_the_deciding_close_rounded_down_to_the_lot() -> None:
    bars = make_bars([10, 10, 20, 20], close_add=0.2)
    result = run(Given([0.5, 0.5, 1, 1], sizing={"kind": "cash", "value": 1000, "lot": 10}), {"AAPL": bars}, FREE)
    # 0.5 * 1000 / 10.2 = 49.02 -> 40; then 1000 / 20.2 = 49.5 -> 40: already held, no order
    assert result.orders["quantity"].tolist() == [Decimal(40)]
    config = StrategyConfig(sizing={"kind": "cash", "value": 1000, "lot": 10})
    assert target_quantity(0.5, config, price=Decimal("10.2")) == Decimal(40)


def test_a_cash_sizing_floats_get_wrong_is_sized_by_the_decimal_function() -> None:
    # 70 / 0.07 is 999.9999999999999 in floats: the live Decimal sizing says 1000
    bars = make_bars([0.07] * 3, spread=0.01, close_add=0.0)
    result = run(Given([1, 1, 1], sizing={"kind": "cash", "value": 70}), {"AAPL": bars}, FREE)
    assert result.orders["quantity"].tolist() == [Decimal(1000)]


def test_equity_sizing_uses_the_equity_at_the_deciding_close() -> None:
    bars = make_bars([10, 10, 20, 20, 25], close_add=0.0)
    result = run(Given([1, 1, -1, -1, -1], sizing={"kind": "equity_percent", "value": 50}), {"AAPL": bars},
                 BacktestSettings())
    # t0: 50 % of 100000 at 10 = 5000; fills at 10, fee 25.00
    cash = 100_000 - 5000 * 10 - 25.0
    equity = cash + 5000 * 20  # at t2's close
    short = target_quantity(-1, StrategyConfig(sizing={"kind": "equity_percent", "value": 50}), price=Decimal(20),
                            equity=Decimal(repr(equity)))
    assert short == Decimal(-3749)  # -0.5 * 149975 / 20 = -3749.375
    fee = commission(CommissionConfig(), SecType.STK, Decimal(8749), Decimal(20))
    assert result.orders["quantity"].tolist() == [Decimal(5000), Decimal(8749)]
    assert result.orders["commission"].tolist() == [Decimal("25.00"), fee]
    assert result.positions["AAPL"].tolist() == [0, 5000, 5000, -3749, -3749]
    assert result.equity.iloc[-1] == pytest.approx(cash + 8749 * 20 - float(fee) - 3749 * 25)


def test_units_shares_trades_the_target_as_a_share_count() -> None:
    bars = make_bars([10, 10, 10, 10, 10])
    result = run(Given([0, 30, 30, 10, 10], units="shares", max_shares=100), {"AAPL": bars}, FREE)
    assert [(o.side, o.quantity) for o in result.orders.itertuples()] == [("BUY", Decimal(30)), ("SELL", Decimal(20))]


def test_several_instruments_share_one_cash_and_trade_each_on_its_own_bars() -> None:
    aapl = make_bars([10, 10, 10, 10, 10], close_add=0.0, instrument="AAPL")
    msft = make_bars([20, 20, 20, 20], close_add=0.0, instrument="MSFT", start="2024-01-02 14:31")
    strategy = Given({"AAPL": [1, 1, 1, 1, 1], "MSFT": [-1, -1, 0, 0]},
                     sizing={"kind": "equity_percent", "value": 40}, instruments=["AAPL", "MSFT"])
    result = run(strategy, {"AAPL": aapl, "MSFT": msft}, FREE)
    # AAPL decides at 14:30 on 100000 equity: 4000 at 10; MSFT at 14:31 (its first bar): equity still 100000,
    # -40000 / 20 = -2000, filled at 14:32; back to flat at 14:33, filled at 14:34
    orders = [(o.instrument, o.fill_time.strftime("%H:%M"), o.side, o.quantity) for o in result.orders.itertuples()]
    assert orders == [("AAPL", "14:31", "BUY", Decimal(4000)), ("MSFT", "14:32", "SELL", Decimal(2000)),
                      ("MSFT", "14:34", "BUY", Decimal(2000))]
    assert list(result.positions.columns) == ["AAPL", "MSFT"]
    assert result.positions.loc[result.positions.index[2]].tolist() == [4000, -2000]
    assert result.equity.to_numpy() == pytest.approx([100_000.0] * 5)  # flat prices, no fees: one shared cash
    assert len(result.targets) == 5 and np.isnan(result.targets["MSFT"].iloc[0])


def test_simulate_shares_cash_within_a_combo_and_not_across_combos() -> None:
    aapl = make_bars([10, 10, 12, 12], close_add=0.0)
    msft = make_bars([10, 10, 8, 8], close_add=0.0, instrument="MSFT")
    targets = {"AAPL": pd.DataFrame({"x": [1, 1, 1, 1], "y": [0, 0, 0, 0]}, index=aapl.index),
               "MSFT": pd.DataFrame({"x": [-1, -1, -1, -1], "y": [1, 1, 1, 1]}, index=aapl.index)}
    sim = simulate({"AAPL": aapl, "MSFT": msft}, targets, StrategyConfig(sizing={"kind": "quantity", "value": 100}),
                   FREE)
    # x: long AAPL +200, short MSFT +200 = +400; y: long MSFT -200
    assert sim.equity.iloc[-1].tolist() == pytest.approx([100_400.0, 99_800.0])
    assert sim.trade_count.tolist() == [2, 1]


def test_an_order_the_cash_cannot_pay_is_refused_not_filled_and_named() -> None:
    bars = make_bars([10, 10, 10, 10], close_add=0.0)
    result = run(Given([1, 1, 1, 1], sizing={"kind": "quantity", "value": 200}), {"AAPL": bars},
                 BacktestSettings(initial_cash=1000))
    assert result.orders.empty and result.positions["AAPL"].tolist() == [0, 0, 0, 0]
    assert result.skipped == ["AAPL: BUY 200 at 2024-01-02T14:31:00+00:00 refused: not enough cash"]
    assert result.equity.tolist() == [1000.0] * 4


def test_after_a_refused_order_the_next_target_is_sized_from_the_position_really_held() -> None:
    bars = make_bars([10] * 6, close_add=0.0)
    quantity = {"kind": "quantity", "value": 200}
    result = run(Given([1, 1, -1, -1, 0, 0], sizing=quantity), {"AAPL": bars}, BacktestSettings(initial_cash=1000))
    # BUY 200 (2000) is refused; live remembers the target and the ledger still holds 0: SELL 200, then BUY 200
    assert result.positions["AAPL"].tolist() == [0, 0, 0, -200, -200, 0]
    assert [(o.side, int(o.quantity)) for o in result.orders.itertuples()] == [("SELL", 200), ("BUY", 200)]
    assert result.skipped == ["AAPL: BUY 200 at 2024-01-02T14:31:00+00:00 refused: not enough cash"]
    reviewer = run(Given([1, 1, -1, -1, 1, 1], sizing=quantity), {"AAPL": bars}, BacktestSettings(initial_cash=1000))
    # a cash account: the short's 2000 and the 1000 cannot pay BUY 400 (4000); the short stays, never -400
    assert reviewer.positions["AAPL"].tolist() == [0, 0, 0, -200, -200, -200]
    assert reviewer.skipped[1] == "AAPL: BUY 400 at 2024-01-02T14:35:00+00:00 refused: not enough cash"


def test_at_one_open_the_sells_pay_for_the_buys_and_a_short_cash_refuses_in_kernel_and_vectorbt_alike() -> None:
    aapl = make_bars([10] * 6, close_add=0.0)
    msft = make_bars([10] * 6, close_add=0.0, instrument="MSFT")
    given = {"AAPL": [0, 0, 1, 1, 1, 1], "MSFT": [1, 1, 0, 0, 1, 1]}
    result = run(Given(given, instruments=["AAPL", "MSFT"], sizing={"kind": "quantity", "value": 100}),
                 {"AAPL": aapl, "MSFT": msft}, FREE.model_copy(update={"initial_cash": Decimal(1500)}))
    # 14:33: AAPL BUY 100 (1000) is paid by MSFT's SELL 100 at the same open (500 cash before it): SELLs first;
    # 14:35: MSFT BUY 100 finds 500: refused, and vectorbt books exactly the kernel's fills
    assert result.positions["AAPL"].tolist() == [0, 0, 0, 100, 100, 100]
    assert result.positions["MSFT"].tolist() == [0, 100, 100, 0, 0, 0]
    assert result.skipped == ["MSFT: BUY 100 at 2024-01-02T14:35:00+00:00 refused: not enough cash"]
    assert result.equity.tolist() == [1500.0] * 6
