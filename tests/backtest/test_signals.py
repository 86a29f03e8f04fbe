"""Bad signals in a backtest get the live checks: named errors with the bar and the value, NaN skipped and listed."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from trader.backtest.engine import run
from trader.backtest.settings import BacktestSettings
from trader.strategy.base import Strategy
from trader.strategy.sizing import SignalError
from tests.backtest.given import Given, make_bars

QTY = {"sizing": {"kind": "quantity", "value": 100}}


def backtest(strategy: Strategy) -> object:
    return run(strategy, {"AAPL": make_bars([10, 11, 12, 13, 14, 15])}, BacktestSettings())


class Raises(Strategy):
    name = "raises"

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        raise ZeroDivisionError("division by zero")


def test_signals_raising_is_a_signal_error_naming_the_strategy_instrument_and_exception() -> None:
    with pytest.raises(SignalError, match=r"strategy raises: signals raised ZeroDivisionError for AAPL: division by"):
        backtest(Raises())


@pytest.mark.parametrize(("answer", "got"), [
    (pd.Series([1.0, 1.0]), "length 2"),
    (pd.DataFrame({"x": [1.0] * 6}), "DataFrame"),
    ([1.0] * 6 + [0.0], "length 7"),
])
def test_not_a_series_as_long_as_the_prices_is_refused_with_the_reason(answer: object, got: str) -> None:
    if isinstance(answer, list):
        answer = pd.Series(answer)
    with pytest.raises(SignalError, match=rf"strategy given AAPL: signals must return a Series as long as prices "
                                          rf"\(6\), got {got}"):
        backtest(Given(answer, **QTY))


def test_a_target_outside_minus_one_to_one_names_its_bar_and_value() -> None:
    with pytest.raises(SignalError, match=r"AAPL at bar 2024-01-02T14:33:00\+00:00: target 1.5 is outside -1..1"):
        backtest(Given([0, 1, 1, 1.5, 1, 0], **QTY))


def test_a_fraction_within_the_tolerance_is_clipped_as_live_does() -> None:
    result = backtest(Given([0, 1 + 1e-12, 1, 1, 1, 1], **QTY))
    assert result.orders["quantity"].tolist() == [Decimal(100)]


def test_more_shares_than_max_shares_names_its_bar_and_value() -> None:
    with pytest.raises(SignalError, match=r"at bar 2024-01-02T14:34:00\+00:00: target 101 shares is beyond max_shares"):
        backtest(Given([0, 10, 10, 10, 101, 0], units="shares", max_shares=100))


@pytest.mark.parametrize(("value", "reason"), [("1", "target must be a number, got str"),
                                               (True, "target must be a number, got bool"),
                                               (np.inf, "target is inf")])
def test_a_target_that_is_no_finite_number_names_its_bar(value: object, reason: str) -> None:
    with pytest.raises(SignalError, match=rf"at bar 2024-01-02T14:32:00\+00:00: {reason}"):
        backtest(Given([0, 1, value, 1, 1, 1], **QTY))


def test_nan_targets_are_skipped_like_live_and_listed_by_bar() -> None:
    result = backtest(Given([np.nan, np.nan, 1, np.nan, 0, 0], **QTY))
    assert result.skipped == [
        "AAPL: signals returned NaN at 2 bars from 2024-01-02T14:30:00+00:00 to 2024-01-02T14:31:00+00:00: no trade on it",
        "AAPL: signals returned NaN at bar 2024-01-02T14:33:00+00:00: no trade on it",
    ]
    # 1 at 14:32 (filled 14:33), NaN at 14:33 decides nothing, 0 at 14:34 sells (filled 14:35)
    assert [(o.fill_time.strftime("%H:%M"), o.side) for o in result.orders.itertuples()] == [("14:33", "BUY"),
                                                                                             ("14:35", "SELL")]
    assert np.isnan(result.targets["AAPL"].iloc[3])
