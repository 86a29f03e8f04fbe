"""Stop loss and take profit in the backtest: only from flat, from the entry's own bar on, at the level or the gap."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.backtest.given import Given, make_bars
from trader.backtest.engine import run
from trader.backtest.settings import BacktestSettings

BRACKET = {"sizing": {"kind": "quantity", "value": 100}, "stop_loss_percent": 5, "take_profit_percent": 10}


def fills(result) -> list[tuple]:
    return [(o.fill_time.strftime("%H:%M"), o.side, o.quantity, o.price, o.reason) for o in result.orders.itertuples()]


def test_a_long_stopped_out_exits_at_the_stop_and_does_not_reenter_while_the_target_stays() -> None:
    # entry at 14:31's open 10: stop 9.5, take profit 11; crossed by 14:33's low
    bars = make_bars([10, 10, 10, 10, 10, 10], lows=[9.9, 9.9, 9.8, 9.45, 9.0, 9.0])
    result = run(Given([1, 1, 1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.0"), "signal"),
                             ("14:33", "SELL", Decimal(100), Decimal("9.5"), "stop_loss")]
    assert result.positions["AAPL"].tolist() == [0, 100, 100, 0, 0, 0]
    assert result.orders["time"].iloc[1] == result.orders["fill_time"].iloc[1]  # an exit is decided where it fills


def test_the_entry_bar_itself_stops_out_as_live_does_and_is_booked_as_two_fills() -> None:
    # live, the bracket works from the fill at the open; the bar's low (9.4) comes after it
    bars = make_bars([10, 10, 10, 10], lows=[9.9, 9.4, 9.9, 9.9], close_add=0.0)
    result = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.0"), "signal"),
                             ("14:31", "SELL", Decimal(100), Decimal("9.5"), "stop_loss")]
    assert result.positions["AAPL"].tolist() == [0, 0, 0, 0]
    assert result.equity.tolist() == pytest.approx([100_000, 100_000 - 50 - 2, 99_948, 99_948])
    (trade,) = result.trades.itertuples()
    assert (trade.entry_time, trade.exit_time, trade.bars) == (bars.index[1], bars.index[1], 0)
    assert trade.pnl == pytest.approx(-52.0)


def test_a_bar_that_gaps_through_the_stop_exits_at_its_open_with_slippage() -> None:
    bars = make_bars([10, 10, 9.0, 9.0], lows=[9.9, 9.9, 8.8, 8.8])
    result = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings(slippage="0.001"))
    assert fills(result) == [("14:31", "BUY", Decimal(100), Decimal("10.01"), "signal"),
                             ("14:32", "SELL", Decimal(100), Decimal("8.991"), "stop_loss")]


def test_a_take_profit_is_a_limit_at_its_level_without_slippage() -> None:
    bars = make_bars([10, 10, 10.5, 10.5], highs=[10.1, 10.9, 11.2, 11.9], lows=[9.9, 9.9, 10.2, 10.2])
    result = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings(slippage="0.001"))
    # entry 10.01: take profit 11.011, crossed by 14:32's high (11.2)
    assert fills(result)[1] == ("14:32", "SELL", Decimal(100), Decimal("11.011"), "take_profit")


def test_a_short_is_stopped_above_and_takes_profit_below() -> None:
    stopped = run(Given([-1, -1, -1, -1], **BRACKET), {"AAPL": make_bars([10, 10, 10, 10], highs=[10, 10, 10.6, 10])},
                  BacktestSettings())
    assert fills(stopped)[1] == ("14:32", "BUY", Decimal(100), Decimal("10.5"), "stop_loss")
    profit = run(Given([-1, -1, -1, -1], **BRACKET), {"AAPL": make_bars([10, 10, 8.5, 10], highs=[10, 10.2, 9, 10])},
                 BacktestSettings())
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
        ("14:35", "BUY", "signal"), ("14:35", "SELL", "stop_loss")]  # target 1 again at 14:34: a new bracket


def test_a_bar_booked_on_two_rows_leaves_every_combo_and_instrument_on_its_bars() -> None:
    import pandas as pd

    from trader.backtest.engine import simulate
    from trader.strategy.base import StrategyConfig

    aapl = make_bars([10, 10, 10, 10, 10], lows=[9.9, 9.4, 9.9, 9.9, 9.9], close_add=0.0)
    msft = make_bars([20, 20, 21, 22, 23], close_add=0.0, instrument="MSFT")
    columns = {"a": ([1, 1, 1, 1, 1], [0, 1, 1, 1, 1]), "b": ([0, 0, 0, 1, 1], [1, 1, 1, 1, 1])}
    targets = {name: pd.DataFrame({k: v[i] for k, v in columns.items()}, index=aapl.index)
               for i, name in enumerate(("AAPL", "MSFT"))}
    config = StrategyConfig(**BRACKET)
    sim = simulate({"AAPL": aapl, "MSFT": msft}, targets, config, BacktestSettings())
    assert sim.row_of is not None and len(sim.equity) == 5 and len(sim.positions) == 5
    for combo, (a, m) in columns.items():
        alone = run(Given({"AAPL": a, "MSFT": m}, config, instruments=["AAPL", "MSFT"]),
                    {"AAPL": aapl, "MSFT": msft}, BacktestSettings())
        assert sim.equity[combo].tolist() == pytest.approx(alone.equity.tolist())
        assert sim.positions[combo].to_numpy().tolist() == alone.positions.to_numpy().tolist()
    # combo a: AAPL bought and stopped in 14:31; MSFT bought at 14:32 (21), its take profit (23.1) hit at 14:34
    mine = sim.orders[sim.orders["combo"] == "a"]
    assert [(str(i), t.strftime("%H:%M"), str(r)) for i, t, r in zip(mine["instrument"], mine["fill_time"],
                                                                       mine["reason"], strict=True)] == [
        ("AAPL", "14:31", "signal"), ("AAPL", "14:31", "stop_loss"), ("MSFT", "14:32", "signal"),
        ("MSFT", "14:34", "take_profit")]


def test_with_a_known_tick_the_levels_are_rounded_to_it_on_the_cautious_side_as_live() -> None:
    # entry 10.03: stop 5 % below = 9.5285, take profit 10 % above = 11.033; live rounds a SELL stop down (9.52)
    # and a SELL limit up (11.04): a low of 9.525 stops out unrounded, not on the 0.01 grid
    bars = make_bars([10.03, 10.03, 10.03, 10.03], lows=[10.0, 10.0, 9.525, 10.0], highs=[10.1, 10.1, 10.1, 11.035])
    unrounded = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings())
    assert fills(unrounded)[1] == ("14:32", "SELL", Decimal(100), Decimal("9.5285"), "stop_loss")
    on_tick = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": bars}, BacktestSettings(), ticks={"AAPL": 0.01})
    assert fills(on_tick)[1:] == []  # 9.525 > 9.52 and 11.035 < 11.04: neither child is touched
    short = run(Given([-1, -1, -1, -1], **BRACKET), {"AAPL": bars}, BacktestSettings(), ticks={"AAPL": 0.01})
    # short at 10.03: a BUY stop 10.5315 rounds up to 10.54 (14:33's high 11.035 crosses it), 9.027 down to 9.02
    assert fills(short)[1:] == [("14:33", "BUY", Decimal(100), Decimal("10.54"), "stop_loss")]
    rounded = make_bars([10.03] * 4, lows=[10.0, 10.0, 9.52, 10.0])
    hit = run(Given([1, 1, 1, 1], **BRACKET), {"AAPL": rounded}, BacktestSettings(), ticks={"AAPL": 0.01})
    assert fills(hit)[1] == ("14:32", "SELL", Decimal(100), Decimal("9.52"), "stop_loss")
