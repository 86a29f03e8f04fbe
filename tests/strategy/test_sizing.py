"""Signal -> order translation: target checks, sizing, rounding, client order ids, the order itself."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from trader.strategy import StrategyConfig
from trader.strategy.sizing import (
    SignalError,
    check_target,
    client_order_id,
    order_for,
    strategy_of,
    target_quantity,
)

D = Decimal


def config(**kw: object) -> StrategyConfig:
    return StrategyConfig.model_validate(kw)


@pytest.mark.parametrize("value", [0, 1, -1, 0.5, np.float64(-0.25), D("0.75"), np.int64(1)])
def test_fractions_within_one_are_targets(value: object) -> None:
    assert check_target(value, config()) == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "reason"), [
    (float("nan"), "NaN"), (float("inf"), "inf"), (1.5, "outside -1..1"), (-3, "outside -1..1"),
    ("1", "must be a number"), (None, "must be a number"), (True, "must be a number"), ([1], "must be a number"),
])
def test_absurd_targets_are_refused_with_the_reason(value: object, reason: str) -> None:
    with pytest.raises(SignalError, match=reason.replace(".", r"\.")):
        check_target(value, config())


def test_share_targets_are_bounded_by_max_shares() -> None:
    shares = config(units="shares", max_shares=500)
    assert check_target(300, shares) == 300
    with pytest.raises(SignalError, match="beyond max_shares 500"):
        check_target(-501, shares)


def test_tiny_float_noise_past_one_is_clamped() -> None:
    assert check_target(1 + 1e-12, config()) == 1.0


def test_quantity_sizing_rounds_toward_zero_to_the_lot() -> None:
    fixed = config(sizing={"kind": "quantity", "value": 100, "lot": 10})
    assert target_quantity(1.0, fixed) == D(100)
    assert target_quantity(0.37, fixed) == D(30)
    assert target_quantity(-0.37, fixed) == D(-30)
    assert target_quantity(0.05, fixed) == D(0)


def test_cash_sizing_buys_what_the_amount_affords() -> None:
    cash = config(sizing={"kind": "cash", "value": 10_000})
    assert target_quantity(1.0, cash, price=D("187.31")) == D(53)  # 10000 / 187.31 = 53.39
    assert target_quantity(-0.5, cash, price=D("187.31")) == D(-26)
    with pytest.raises(SignalError, match="needs a positive price"):
        target_quantity(1.0, cash, price=None)


def test_equity_percent_sizing_uses_net_liquidation() -> None:
    equity = config(sizing={"kind": "equity_percent", "value": 5})
    # 5% of 1,000,000 = 50,000 at 250 = 200 shares
    assert target_quantity(1.0, equity, price=D(250), equity=D(1_000_000)) == D(200)
    with pytest.raises(SignalError, match="equity"):
        target_quantity(1.0, equity, price=D(250), equity=None)


def test_share_units_are_taken_as_shares() -> None:
    assert target_quantity(-42.0, config(units="shares")) == D(-42)


def test_client_order_ids_are_deterministic_and_fit_a_bracket() -> None:
    a = client_order_id("ma_crossover_long_name_x", "AAPL.STK", 1_700_000_000_000_000_000)
    assert a == client_order_id("ma_crossover_long_name_x", "AAPL.STK", 1_700_000_000_000_000_000)
    assert a != client_order_id("ma_crossover_long_name_x", "AAPL.STK", 1_700_000_005_000_000_000)
    assert a != client_order_id("ma_crossover_long_name_x", "MSFT.STK", 1_700_000_000_000_000_000)
    assert a != client_order_id("ma_crossover_long_name_x", "AAPL.STK", 1_700_000_000_000_000_000, attempt=1)
    assert len(a + ".sl") <= 40 and strategy_of(a) == "ma_crossover_long_name_x"


def test_order_for_trades_the_difference() -> None:
    cfg = config()
    assert order_for(cfg, "s", "AAPL.STK", current=D(100), target=D(100), coid="s.1") is None
    buy = order_for(cfg, "s", "AAPL.STK", current=D(0), target=D(100), coid="s.1")
    assert buy is not None and buy.request == {
        "symbol": "AAPL.STK", "action": "BUY", "quantity": D(100), "order_type": "MKT", "tif": "DAY",
        "strategy": "s", "client_order_id": "s.1"}
    reverse = order_for(cfg, "s", "AAPL.STK", current=D(100), target=D(-100), coid="s.2")
    assert reverse is not None and reverse.request["action"] == "SELL" and reverse.request["quantity"] == D(200)


def test_brackets_only_on_orders_that_open_from_flat() -> None:
    cfg = config(stop_loss_percent=2, take_profit_percent=5)
    opening = order_for(cfg, "s", "K", current=D(0), target=D(-50), coid="s.1")
    assert opening is not None
    assert opening.request["stop_loss_percent"] == D(2) and opening.request["take_profit_percent"] == D(5)
    adding = order_for(cfg, "s", "K", current=D(-50), target=D(-100), coid="s.2")
    assert adding is not None and "stop_loss_percent" not in adding.request
