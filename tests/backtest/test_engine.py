"""The engine on hand-checked series: exact orders, fills at the next open with slippage, cents, equity, combos."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from trader.backtest.engine import run, simulate
from trader.backtest.settings import BacktestSettings
from trader.domain.commission import CommissionConfig, commission
from trader.domain.enums import SecType
from trader.strategy.base import StrategyConfig
from tests.backtest.given import Given, make_bars

QTY100 = {"sizing": {"kind": "quantity", "value": 100}}


def orders_of(result) -> list[tuple]:  # noqa: ANN001 - a BacktestResult
    return [(o.time.strftime("%H:%M"), o.fill_time.strftime("%H:%M"), o.side, o.quantity, o.price, o.commission,
             o.reason) for o in result.orders.itertuples()]


def test_a_change_of_target_fills_at_the_next_open_with_slippage_and_commission() -> None:
    bars = make_bars([10, 11, 12, 13, 14, 15])
    result = run(Given([0, 1, 1, -1, -1, 0], **QTY100), {"AAPL": bars}, BacktestSettings(slippage="0.001"))
    # decided at 14:31 (target 0 -> 1), filled at 14:32's open 12 * 1.001; 14:33 (1 -> -1): SELL 200 at 14 * 0.999;
    # the last change (at 14:35) has no next bar to fill at
    assert orders_of(result) == [
        ("14:31", "14:32", "BUY", Decimal(100), Decimal("12.012"), Decimal("1.00"), "signal"),
        ("14:33", "14:34", "SELL", Decimal(200), Decimal("13.986"), Decimal("1.00"), "signal"),
    ]
    assert result.positions["AAPL"].tolist() == [0, 0, 100, 100, -100, -100]
    cash = 100_000 - 100 * 12.012 - 1  # after the buy
    expected = [100_000, 100_000, cash + 100 * 12.2, cash + 100 * 13.2]
    cash += 200 * 13.986 - 1
    expected += [cash - 100 * 14.2, cash - 100 * 15.2]
    assert result.equity.to_numpy() == pytest.approx(expected, abs=1e-9)
    trades = result.trades
    assert trades["direction"].tolist() == ["long", "short"]
    assert trades["pnl"].iloc[0] == pytest.approx(100 * (13.986 - 12.012) - 1 - 0.5)  # half the reversal's fee
    assert pd.isna(trades["exit_time"].iloc[1])
    assert result.skipped == []


def test_an_unchanged_target_trades_nothing_and_the_first_flat_target_neither() -> None:
    result = run(Given([0, 0, 1, 1, 1, 1], **QTY100), {"AAPL": make_bars([10, 11, 12, 13, 14, 15])},
                 BacktestSettings())
    assert [(o[0], o[2], o[3]) for o in orders_of(result)] == [("14:32", "BUY", Decimal(100))]


@pytest.mark.parametrize(("opens", "size", "fee"), [
    (10.0, 100, Decimal("1.00")),  # 100 * 0.005 = 0.50: the minimum, $1
    (10.0, 1000, Decimal("5.00")),  # 1000 * 0.005
    (0.5, 100, Decimal("0.50")),  # the minimum would be 2 % of the $50 traded: IB's 1 % maximum
    (2.0, 333, Decimal("1.66")),  # 333 * 0.005 = 1.665: half-even to the cent (floats say 1.67)
])
def test_commissions_are_the_live_schedule_to_the_cent(opens: float, size: int, fee: Decimal) -> None:
    bars = make_bars([opens] * 4, spread=0.01, close_add=0.0)
    result = run(Given([1, 1, 1, 1], sizing={"kind": "quantity", "value": size}), {"AAPL": bars}, BacktestSettings())
    (order,) = result.orders.itertuples()
    assert order.commission == fee == commission(CommissionConfig(), SecType.STK, Decimal(size), Decimal(repr(opens)))
    assert result.equity.iloc[-1] == pytest.approx(100_000 - float(fee))


def test_a_half_cent_a_float_cannot_tell_is_charged_by_the_decimal_schedule() -> None:
    # 1 share at 50.5: 1 % is 0.505, half-even 0.50; in floats 0.505 * 100 rounds to 51 cents
    bars = make_bars([50.5] * 3, spread=0.1, close_add=0.0)
    result = run(Given([1, 1, 1], sizing={"kind": "quantity", "value": 1}), {"AAPL": bars}, BacktestSettings())
    assert result.orders["commission"].tolist() == [Decimal("0.50")]
    assert result.equity.iloc[-1] == pytest.approx(100_000 - 0.50)


def test_simulate_books_many_combos_in_one_call_each_like_its_own_run() -> None:
    bars = make_bars([10, 11, 12, 13, 12, 11, 10, 11])
    columns = {"a": [0, 1, 1, 1, 0, 0, 0, 0], "b": [1, 1, -1, -1, -1, 1, 1, 0], "c": [np.nan] * 8}
    targets = pd.DataFrame(columns, index=bars.index)
    config = StrategyConfig(**QTY100)
    settings = BacktestSettings(slippage="0.0005")
    sim = simulate({"AAPL": bars}, {"AAPL": targets}, config, settings)
    assert list(sim.equity.columns) == ["a", "b", "c"]
    for name, values in columns.items():
        alone = run(Given(values, config), {"AAPL": bars}, settings)
        assert sim.equity[name].to_numpy() == pytest.approx(alone.equity.to_numpy(), abs=1e-9)
        mine = sim.orders[sim.orders["combo"] == name]
        assert mine["quantity"].tolist() == [float(q) for q in alone.orders["quantity"]]
        assert sim.fees[name] == pytest.approx(float(sum(alone.orders["commission"], Decimal(0))))
    assert sim.trade_count.to_dict() == {"a": 1, "b": 3, "c": 0}
    assert (sim.equity["c"] == 100_000).all()
