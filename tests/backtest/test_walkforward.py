"""Walk-forward on a known series: the best side flips between the halves; the out-of-sample equity is stitched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.backtest.sweep_given import SIDE_PLUGIN, path_bars, plugin
from trader.backtest import walkforward
from trader.backtest.params import parse_space
from trader.errors import ValidationError

CONFIG = """
sizing: {kind: quantity, value: 10}
backtest:
  commission: {stock_per_share: 0, stock_min: 0}
"""


def test_windows_by_bars_and_by_days() -> None:
    index = pd.date_range("2026-01-05 14:30", periods=10, freq="1min", tz="UTC")
    steps = walkforward.windows(index, 4, 3)
    assert [(w.is_start, w.oos_start, w.oos_end) for w in steps] == [(0, 4, 7), (3, 7, 10)]
    assert [(w.is_start, w.oos_start, w.oos_end) for w in walkforward.windows(index, 4, 4)] == [(0, 4, 8), (4, 8, 10)]
    # a last out-of-sample of 1 bar (under half of 5) is dropped, one of half (2 of 4, above) kept
    assert [(w.is_start, w.oos_start, w.oos_end) for w in walkforward.windows(index, 4, 5)] == [(0, 4, 9)]
    assert [(w.is_start, w.oos_start, w.oos_end) for w in walkforward.windows(index, 9, 5)] == [(0, 9, 10)]  # alone
    days = pd.DatetimeIndex([pd.Timestamp(f"2026-01-0{d} 15:00", tz="UTC") + pd.Timedelta(minutes=m)
                             for d in range(5, 10) for m in range(3)])
    by_day = walkforward.windows(days, 2, 1, unit="days")
    assert [(w.is_start, w.oos_start, w.oos_end) for w in by_day] == [(0, 6, 9), (3, 9, 12), (6, 12, 15)]
    stub = walkforward.windows(days, 1, 3, unit="days")  # out-of-sample days 2-4, then day 5 alone: dropped
    assert [(w.is_start, w.oos_start, w.oos_end) for w in stub] == [(0, 3, 12)]
    with pytest.raises(ValidationError, match="5 days are too few for an in-sample of 5 days"):
        walkforward.windows(days, 5, 1, unit="days")
    with pytest.raises(ValidationError, match="unknown window unit 'weeks'"):
        walkforward.windows(days, 1, 1, unit="weeks")


def test_the_best_side_changes_between_halves_and_the_oos_equity_is_stitched(tmp_path: Path) -> None:
    rise = 100.0 + np.arange(200)  # 100 .. 299
    fall = 298.0 - np.arange(200)  # 298 .. 99
    close = np.concatenate([rise, fall])
    bars = {"AAPL": path_bars(close)}  # each bar opens at the previous close
    side = plugin(tmp_path, SIDE_PLUGIN, "side", config=CONFIG).strategy
    space = parse_space(["side=-1,0,1"], side.Params, side.config.params)
    result = walkforward.run(side, bars, space, in_sample=100, out_of_sample=100, objective="total_return",
                             workers=1, progress=False)
    windows = result.windows
    assert [p["side"] for p in windows["params"]] == [1, 1, -1]  # rising, rising, then falling in-sample
    index = bars["AAPL"].index
    assert list(windows["oos_start"]) == [index[100], index[200], index[300]]
    assert list(windows["is_end"]) == [index[99], index[199], index[299]]
    # each window: flat at its first close, filled at the next bar's open (= that close), held to its end
    pnl = [10 * (close[199] - close[100]), 10 * (close[299] - close[200]), -10 * (close[399] - close[300])]
    assert pnl == [990.0, -990.0, 990.0]
    equity = result.equity
    assert equity.index.equals(index[100:])
    ends = [equity.iloc[99], equity.iloc[199], equity.iloc[299]]
    assert ends == pytest.approx(list(100_000 + np.cumsum(pnl)))
    for start in (100, 200):  # each window starts from the equity the last one ended with
        assert equity.iloc[start] == pytest.approx(equity.iloc[start - 1])
    assert windows["oos_objective"].tolist() == pytest.approx([990 / 100_000, -990 / 100_990, 990 / 100_000])
    assert windows["is_objective"].iloc[2] > 0 and result.objective == "total_return"
