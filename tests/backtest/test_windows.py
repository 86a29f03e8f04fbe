"""Every example strategy, with its shipped config, targets on its live window what it targets over the history.

Live calls ``signals`` at each bar on the rolling ``Strategy.window``; the
backtest calls it once over the whole history (trader.backtest.signals). They
agree only if no target looks ahead or remembers more than the window: the
examples' default window and warmup are chosen so (an EWM or Wilder RSI needs
``10 *`` its period). ``run`` samples the same check (``window_check``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.backtest.given import Given, make_bars
from trader.backtest.engine import run
from trader.backtest.settings import BacktestSettings
from trader.backtest.signals import window_check
from trader.strategy.base import Strategy
from trader.strategy.plugins import discover

ROOT = Path(__file__).resolve().parents[2]
N_BARS = 2000


@pytest.fixture(scope="module")
def examples() -> list[Strategy]:
    plugins, errors = discover(ROOT / "strategies")
    assert not errors and len(plugins) == 4
    yield [plugin.strategy for plugin in plugins]
    for plugin in plugins:
        plugin.unload()


def random_walk(seed: int, n: int = N_BARS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(0, 0.004, n)) * close
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                          "low": np.minimum(open_, close) - spread, "close": close,
                          "volume": rng.integers(100, 10_000, n).astype(float)},
                         index=pd.date_range("2024-01-02 14:30", periods=n, freq="1min", tz="UTC"))
    frame.attrs["instrument"] = "AAPL"
    return frame


def test_every_example_targets_the_same_on_its_live_window_at_every_bar(examples: list[Strategy]) -> None:
    prices = random_walk(5)
    for strategy in examples:
        whole = strategy.signals(prices).to_numpy(np.float64)
        window = strategy.window
        live = np.array([strategy.signals(prices.iloc[max(0, t - window + 1):t + 1]).iloc[-1]
                         for t in range(strategy.warmup - 1, len(prices))], dtype=np.float64)
        expected = whole[strategy.warmup - 1:]
        differ = ~((np.isnan(live) & np.isnan(expected)) | np.isclose(live, expected, rtol=1e-9, atol=1e-12))
        assert not differ.any(), (f"{strategy.name} (window {window}, warmup {strategy.warmup}) differs first at "
                                  f"bar {strategy.warmup - 1 + int(np.argmax(differ))}")
        assert np.nanstd(expected) > 0  # it trades: the walk is long enough to matter
        assert window_check(strategy, {"AAPL": prices}, pd.DataFrame({"AAPL": whole}, index=prices.index)) == []


class LongMemory(Given):
    """Targets from an EWM of span 200 (memory of ~1000 bars) on the default window of 50 bars."""

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        trend = prices["close"] - prices["close"].ewm(span=200, adjust=False).mean()
        return np.sign(trend).astype(float)


class Peeking(Given):
    """Targets from the next bar's close: look-ahead."""

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return np.sign(prices["close"].shift(-1) - prices["close"]).fillna(0.0)


@pytest.mark.parametrize("kind", [LongMemory, Peeking])
def test_run_names_a_strategy_whose_history_targets_are_not_its_window_targets(kind: type[Given]) -> None:
    prices = random_walk(9, 3000)
    result = run(kind([], sizing={"kind": "quantity", "value": 1}), {"AAPL": prices}, BacktestSettings())
    (finding,) = [s for s in result.skipped if "live's window" in s]
    assert finding.startswith("AAPL: at bar 2024-01-") and "look-ahead or memory beyond the window" in finding


def test_a_strategy_of_the_window_passes_the_check_silently() -> None:
    bars = make_bars(list(np.linspace(10, 20, 400)))
    result = run(Given([1.0] * 400, sizing={"kind": "quantity", "value": 1}), {"AAPL": bars}, BacktestSettings())
    assert result.skipped == []
