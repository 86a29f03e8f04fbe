"""A backtest's JSON: Decimals as strings, times as ISO, NaN as null; json.dumps takes it as is."""

from __future__ import annotations

import json

import pandas as pd

from trader.backtest.engine import run
from trader.backtest.serialize import result_dict
from trader.backtest.settings import BacktestSettings
from tests.backtest.given import Given, make_bars


def test_result_dict_is_json_with_every_order_and_trade() -> None:
    bars = make_bars([10, 11, 12, 13, 14, 15])
    benchmark = pd.Series([1.0, 2.0], index=bars.index[[0, 3]])
    result = run(Given([0, 1, 1, -1, -1, -1], sizing={"kind": "quantity", "value": 100}), {"AAPL": bars},
                 BacktestSettings(slippage="0.001"), benchmark=benchmark, skipped=["AAPL: a gap"])
    result._stats = {"sharpe": 1.5, "sortino": float("nan")}
    data = json.loads(json.dumps(result_dict(result), allow_nan=False))
    assert data["orders"] == [
        {"time": "2024-01-02T14:31:00+00:00", "fill_time": "2024-01-02T14:32:00+00:00", "instrument": "AAPL",
         "side": "BUY", "quantity": "100", "price": "12.012", "commission": "1.00", "reason": "signal"},
        {"time": "2024-01-02T14:33:00+00:00", "fill_time": "2024-01-02T14:34:00+00:00", "instrument": "AAPL",
         "side": "SELL", "quantity": "200", "price": "13.986", "commission": "1.00", "reason": "signal"}]
    long, short = data["trades"]
    assert (long["direction"], long["entry_time"], long["exit_time"]) == ("long", "2024-01-02T14:32:00+00:00",
                                                                           "2024-01-02T14:34:00+00:00")
    assert short["exit_time"] is None and short["exit_price"] is None  # still open at the end
    assert data["metrics"] == {"sharpe": 1.5, "sortino": None}
    assert data["skipped"] == ["AAPL: a gap"]
    assert (data["start"], data["bars"], data["initial_cash"]) == ("2024-01-02T14:30:00+00:00", 6, "100000")
    assert data["settings"]["slippage"] == "0.001"
    assert result.benchmark.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
