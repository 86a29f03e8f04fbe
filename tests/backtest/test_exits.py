"""Stop loss and take profit in the backtest: only from flat, on a later bar, at the level or the gapped open."""

from __future__ import annotations

from decimal import Decimal

from trader.backtest.engine import run
from trader.backtest.settings import BacktestSettings
from tests.backtest.given import Given, make_bars

BRACKET = {"sizing": {"kind": "quantity", "value": 100}, "stop_loss_percent": 5, "take_profit_percent": 10}


def fills(result) -> list[tuple]:  # noqa: ANN001 - a BacktestResult
    return [(o.fill_time.strftime("%H:%M"), o.side, o.quantity, o.price, o.reason) for o in result.orders.itertuples()]


def test_a_long_stopped_out_exits_at_the_stop_and_does_not_reenter_while_the_target_stays() -> None:
    # entry at 14:31's open 10: stop 9.5, take profit 11; the entry bar's own low (9.4) does not count
    bars = make_bars([10, 10, 10, 10, 10, 10], lows=[9.9, 9.4, 9.8, 9.45, 9.0, 9.0])
    result = run(Given([1, 1, 1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.0"), "signal"),
                             ("14:33", "SELL", Decimal(100), Decimal("9.5"), "stop_loss")]
    assert result.positions["AAPL"].tolist() == [0, 100, 100, 0, 0, 0]
    assert result.orders["time"].iloc[1] == result.orders["fill_time"].iloc[1]  # an exit is decided where it fills


def test_a_bar_that_gaps_through_the_stop_exits_at_its_open_with_slippage() -> None:
    bars = make_bars([10, 10, 9.0, 9.0], lows=[9.9, 9.9, 8.8, 8.8])
    result = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings(slippage="0.001"))
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.01"), "signal"),
                             ("14:32", "SELL", Decimal(100), Decimal("8.991"), "stop_loss")]


def test_a_take_profit_is_a_limit_at_its_level_without_slippage() -> None:
    bars = make_bars([10, 10, 10.5, 10.5], highs=[10.1, 11.5, 11.2, 11.9])
    result = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings(slippage="0.001"))
    # entry 10.01: take profit 11.011, crossed by 14:32's high (11.2); the entry bar's high (11.5) does not count
    assert fills(result)[1] == ("14:32", "SELL", Decimal(100), Decimal("11.011"), "take_profit")


def test_a_short_is_stopped_above_and_takes_profit_below() -> None:
    stopped = run(Given([-1, -1, -1, -1], **BRACKET), {"AAPL": make_bars([10, 10, 10, 10], highs=[10, 10, 10.6, 10])},
                  BacktestSettings())
    assert fills(stopped)[1] == ("14:32", "BUY", Decimal(100), Decimal("10.5"), "stop_loss")
    profit = run(Given([-1, -1, -1, -1], **BRACKET), {"AAPL": make_bars([10, 10, 8.5, 10])}, BacktestSettings())
    assert fills(profit)[1] == ("14:32", "BUY", Decimal(100), Decimal("8.5"), "take_profit")  # gapped: the open


def test_a_reversal_does_not_open_from_flat_so_it_gets_no_bracket() -> None:
    bars = make_bars([10, 10, 10, 10, 10, 10], highs=[10, 10, 10, 12, 12, 12], lows=[10, 10, 10, 8, 8, 8])
    result = run(Given([1, -1, -1, -1, -1, -1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    # long 100 at 14:31 (bracketed), reversed to short at 14:32 (not from flat: no bracket, the long's is gone)
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.0"), "signal"),
                             ("14:32", "SELL", Decimal(200), Decimal("10.0"), "signal")]


def test_after_a_stop_out_a_new_target_enters_again_with_a_new_bracket() -> None:
    bars = make_bars([10, 10, 10, 10, 10, 10, 10], lows=[10, 10, 9.0, 10, 10, 9.0, 10])
    result = run(Given([1, 1, 1, 0, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    assert [(f[0], f[1], f[4]) for f in fills(result)] == [
        ("14:31", "BUY", "signal"), ("14:32", "SELL", "stop_loss"),  # target 0 at 14:33: already flat, no order
        ("14:35", "BUY", "signal")]  # target 1 again at 14:34; its stop is not crossed by its own entry bar's low
