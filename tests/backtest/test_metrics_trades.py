"""Trade metrics: a hand-built trades frame (Decimal values, as the engine writes them) and quantstats on random ones."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from trader.backtest import metrics_trades as mt
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS

T0 = pd.Timestamp("2024-03-04 14:30", tz="UTC")
DAY = pd.Timedelta(days=1)


def trade(pnl: str, ret: str, entry: pd.Timestamp, held: pd.Timedelta | None) -> dict[str, object]:
    """Return one trades row; ``held=None`` leaves it open."""
    return {"instrument": "STK:AAPL:SMART:USD", "direction": "long", "entry_time": entry,
            "exit_time": pd.NaT if held is None else entry + held, "quantity": Decimal(10),
            "entry_price": Decimal(100), "exit_price": None if held is None else Decimal(101),
            "pnl": Decimal(pnl), "return": Decimal(ret), "commission": Decimal("2.00"), "bars": 3}


# in exit order: win, win, loss, loss, win; plus one open trade that no statistic counts
TRADES = pd.DataFrame([
    trade("100", "0.01", T0, DAY),
    trade("200", "0.02", T0 + 2 * DAY, 2 * DAY),
    trade("-50", "-0.005", T0 + 5 * DAY, DAY / 2),
    trade("-25", "-0.0025", T0 + 6 * DAY, 4.5 * DAY),
    trade("10", "0.001", T0 + 12 * DAY, 2 * DAY),
    trade("999", "0.5", T0 + 20 * DAY, None),
], columns=list(TRADE_COLUMNS))
NONE = pd.DataFrame(columns=list(TRADE_COLUMNS))


def test_trade_statistics_by_hand() -> None:
    assert len(mt.closed_trades(TRADES)) == 5
    assert mt.win_rate(TRADES) == pytest.approx(3 / 5)
    # gross profit 100 + 200 + 10 = 310 over gross loss 50 + 25 = 75
    assert mt.profit_factor(TRADES) == pytest.approx(310 / 75)
    # (100 + 200 - 50 - 25 + 10) / 5 = 47
    assert mt.expectancy(TRADES) == pytest.approx(47.0)
    # mean win 310 / 3 over mean loss 75 / 2
    assert mt.payoff_ratio(TRADES) == pytest.approx((310 / 3) / (75 / 2))
    assert mt.best_trade(TRADES) == pytest.approx(0.02)
    assert mt.worst_trade(TRADES) == pytest.approx(-0.005)
    # (0.01 + 0.02 - 0.005 - 0.0025 + 0.001) / 5
    assert mt.average_trade(TRADES) == pytest.approx(0.0235 / 5)
    assert mt.average_win(TRADES) == pytest.approx(0.031 / 3)
    assert mt.average_loss(TRADES) == pytest.approx(-0.0075 / 2)
    # (1 + 2 + 0.5 + 4.5 + 2) / 5 days
    assert mt.average_holding_days(TRADES) == pytest.approx(2.0)
    assert mt.max_consecutive(TRADES, wins=True) == 2.0
    assert mt.max_consecutive(TRADES, wins=False) == 2.0


def test_consecutive_runs_follow_exit_order_not_row_order() -> None:
    shuffled = TRADES.iloc[[4, 2, 0, 3, 1, 5]]
    assert mt.max_consecutive(shuffled, wins=True) == 2.0
    assert mt.max_consecutive(shuffled, wins=False) == 2.0


def test_positions_and_orders_by_hand() -> None:
    bars = pd.date_range(T0, periods=4, freq="1min")
    positions = pd.DataFrame({"A": [Decimal(0), Decimal(10), Decimal(0), Decimal(0)],
                              "B": [Decimal(0), Decimal(0), Decimal(-5), Decimal(0)]}, index=bars)
    assert mt.exposure(positions) == pytest.approx(2 / 4)  # bars 2 and 3 hold something
    orders = pd.DataFrame([
        {"time": bars[0], "fill_time": bars[1], "instrument": "A", "side": "BUY", "quantity": Decimal(10),
         "price": Decimal(100), "commission": Decimal("1.00"), "reason": "signal"},
        {"time": bars[1], "fill_time": bars[2], "instrument": "A", "side": "SELL", "quantity": Decimal(10),
         "price": Decimal(110), "commission": Decimal("1.00"), "reason": "signal"},
        {"time": bars[1], "fill_time": bars[2], "instrument": "B", "side": "SELL", "quantity": Decimal(5),
         "price": Decimal(200), "commission": Decimal("1.05"), "reason": "take_profit"},
    ], columns=list(ORDER_COLUMNS))
    equity = pd.Series([1000.0, 1100.0, 1200.0, 1300.0], index=bars)
    # traded 10 * 100 + 10 * 110 + 5 * 200 = 3100 over the mean equity 1150
    assert mt.turnover(orders, equity) == pytest.approx(3100 / 1150)
    assert mt.fees(orders) == pytest.approx(3.05)


def test_no_trade_gives_nan_ratios_and_zero_counts() -> None:
    for figure in (mt.win_rate, mt.profit_factor, mt.expectancy, mt.payoff_ratio, mt.best_trade, mt.worst_trade,
                   mt.average_trade, mt.average_win, mt.average_loss, mt.average_holding_days):
        assert math.isnan(figure(NONE)), figure.__name__
        assert math.isnan(figure(TRADES.iloc[5:])), figure.__name__  # only an open trade
    assert mt.max_consecutive(NONE, wins=True) == 0.0
    assert mt.fees(pd.DataFrame(columns=list(ORDER_COLUMNS))) == 0.0
    assert mt.turnover(pd.DataFrame(columns=list(ORDER_COLUMNS)), pd.Series([1.0, 1.0])) == 0.0
    assert math.isnan(mt.exposure(pd.DataFrame()))


def test_only_winners_gives_nan_profit_factor_not_infinity() -> None:
    winners = TRADES.iloc[[0, 1]]
    assert math.isnan(mt.profit_factor(winners))
    assert math.isnan(mt.payoff_ratio(winners))
    assert mt.win_rate(winners) == 1.0


def random_trades(seed: int, n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pnl = np.round(rng.normal(15, 120, n), 2)
    pnl[pnl == 0] = 0.01
    entries = T0 + pd.to_timedelta(np.arange(n) * 3, unit="D")
    rows = [trade(str(p), str(p / 10_000), entry, pd.Timedelta(hours=float(h)))
            for p, entry, h in zip(pnl, entries, rng.uniform(1, 60, n), strict=True)]
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


@pytest.mark.parametrize("seed", (0, 1, 2, 3, 4))
def test_match_quantstats_on_the_trade_sequence(seed: int) -> None:
    warnings.filterwarnings("ignore", module="quantstats")
    trades = random_trades(seed)
    done = mt.closed_trades(trades)
    # quantstats reads a return series; the trades' returns in exit order stand for it (no zero among them,
    # which its win rate would leave out). Its profit factor and payoff ratio are ratios of sums and means,
    # so the returns (pnl / 10,000 here) give the same ratio as the PnL.
    returns = pd.Series(done["return"].astype(float).to_numpy(), index=pd.DatetimeIndex(done["exit_time"]))
    assert mt.win_rate(trades) == pytest.approx(qs.stats.win_rate(returns))
    assert mt.profit_factor(trades) == pytest.approx(qs.stats.profit_factor(returns))
    assert mt.payoff_ratio(trades) == pytest.approx(qs.stats.payoff_ratio(returns))
    assert mt.best_trade(trades) == pytest.approx(qs.stats.best(returns))
    assert mt.worst_trade(trades) == pytest.approx(qs.stats.worst(returns))
    assert mt.average_win(trades) == pytest.approx(qs.stats.avg_win(returns))
    assert mt.average_loss(trades) == pytest.approx(qs.stats.avg_loss(returns))
    assert mt.average_trade(trades) == pytest.approx(qs.stats.avg_return(returns))
    assert mt.max_consecutive(trades, wins=True) == qs.stats.consecutive_wins(returns)
    assert mt.max_consecutive(trades, wins=False) == qs.stats.consecutive_losses(returns)
    # expectancy is the mean PnL: quantstats' expected_return is a geometric mean of returns, another figure
    assert mt.expectancy(trades) == pytest.approx(done["pnl"].astype(float).mean())
