"""Monte Carlo: seeded bootstraps that reproduce, match known distributions, and refuse bad input clearly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.backtest import bootstrap
from trader.backtest.montecarlo import (
    FAN_QUANTILES,
    bootstrap_paths,
    daily_returns,
    simulate,
    trade_returns,
    walk_paths,
)
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings
from trader.errors import ValidationError

REPO = Path(__file__).resolve().parents[2]
DAYS = pd.date_range("2024-01-02 21:00", periods=500, freq="B", tz="UTC")


def _result(returns: np.ndarray, *, trades: pd.DataFrame | None = None, **overrides: object) -> BacktestResult:
    """Build a one-instrument BacktestResult by hand whose daily equity earns ``returns``."""
    index = DAYS[: len(returns) + 1]
    equity = pd.Series(100_000.0 * np.cumprod(np.r_[1.0, 1.0 + np.asarray(returns)]), index=index)
    close = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=index)
    return BacktestResult(
        strategy="hand", params={}, settings=BacktestSettings(**overrides), bar_size="1 day",
        prices={"AAPL": close}, targets=pd.DataFrame({"AAPL": 0.0}, index=index), equity=equity,
        positions=pd.DataFrame({"AAPL": 0.0}, index=index), orders=pd.DataFrame(columns=list(ORDER_COLUMNS)),
        trades=trades if trades is not None else pd.DataFrame(columns=list(TRADE_COLUMNS)))


def _compound(returns: np.ndarray) -> np.ndarray:
    """Return the equity paths of a paths x days return matrix, day 0 = 1.0, with numpy."""
    return np.concatenate([np.ones((returns.shape[0], 1)), np.cumprod(1.0 + returns, axis=1)], axis=1)


def _lag1(paths: np.ndarray) -> float:
    """Return the lag-1 autocorrelation of each row, averaged."""
    centred = paths - paths.mean(axis=1, keepdims=True)
    return float(np.mean((centred[:, 1:] * centred[:, :-1]).sum(axis=1) / (centred**2).sum(axis=1)))


NORMAL = np.random.default_rng(11).normal(0.0005, 0.01, 400)


# -- reproducibility ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["iid", "block", "stationary"])
def test_the_same_seed_gives_identical_paths_and_another_seed_different_ones(method: str) -> None:
    first = bootstrap_paths(NORMAL, 200, 50, method=method, block=5, seed=3)
    assert np.array_equal(first, bootstrap_paths(NORMAL, 200, 50, method=method, block=5, seed=3))
    assert not np.array_equal(first, bootstrap_paths(NORMAL, 200, 50, method=method, block=5, seed=4))
    # a path does not depend on how many others are drawn with it
    assert np.array_equal(first[:20], bootstrap_paths(NORMAL, 20, 50, method=method, block=5, seed=3))
    final, drawdown, fan = walk_paths(NORMAL, 200, 50, method=method, block=5, seed=3)
    again = walk_paths(NORMAL, 200, 50, method=method, block=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((final, drawdown, fan), again, strict=True))


def test_a_fresh_process_draws_the_same_paths_with_the_cached_kernels() -> None:
    code = ("import hashlib, numpy as np\n"
            "from trader.backtest.montecarlo import bootstrap_paths, walk_paths\n"
            "r = np.random.default_rng(11).normal(0.0005, 0.01, 400)\n"
            "h = hashlib.sha256(bootstrap_paths(r, 300, 60, method='block', block=5, seed=9).tobytes())\n"
            "for a in walk_paths(r, 300, 60, method='stationary', block=5, seed=9): h.update(a.tobytes())\n"
            "from trader.backtest import bootstrap\n"
            "print(h.hexdigest(), sum(sum(f.stats.cache_misses.values()) for f in (bootstrap.walk, bootstrap.resample)))\n")
    here = hashlib.sha256(bootstrap_paths(NORMAL, 300, 60, method="block", block=5, seed=9).tobytes())
    for array in walk_paths(NORMAL, 300, 60, method="stationary", block=5, seed=9):
        here.update(array.tobytes())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=100, check=True)
    digest, compiled = out.stdout.split()
    assert digest == here.hexdigest()
    assert compiled == "0"  # the kernels this process compiled (or found) were loaded from numba's cache


def test_simulate_reproduces_with_its_seed() -> None:
    result = _result(NORMAL, simulations=500, horizon_days=60, seed=5)
    first, again = simulate(result), simulate(result)
    assert np.array_equal(first.final_equity, again.final_equity)
    assert first.risk == again.risk
    other = simulate(_result(NORMAL, simulations=500, horizon_days=60, seed=6))
    assert not np.array_equal(first.final_equity, other.final_equity)


# -- known distributions -----------------------------------------------------------------------------------

def test_iid_final_log_equity_has_the_mean_and_std_of_a_sum_of_independent_draws() -> None:
    paths, horizon = 20_000, 252
    final, _, _ = walk_paths(NORMAL, paths, horizon, method="iid", seed=1)
    log_final = np.log(final)
    logs = np.log1p(NORMAL)  # the bootstrap draws from this empirical distribution
    mean, std = horizon * logs.mean(), np.sqrt(horizon) * logs.std()
    assert abs(log_final.mean() - mean) < 4 * std / np.sqrt(paths)
    assert abs(log_final.std() / std - 1) < 0.03
    # and near the normal distribution the returns came from, mu - sigma^2 / 2 a day, within 4 standard
    # errors of the 400 returns' own mean (the bootstrap cannot know more than its sample)
    assert abs(log_final.mean() - horizon * (0.0005 - 0.01**2 / 2)) < 4 * horizon * 0.01 / np.sqrt(len(NORMAL))
    assert abs(log_final.std() / (0.01 * np.sqrt(horizon)) - 1) < 0.1


def test_block_bootstrap_keeps_the_autocorrelation_of_an_ar1_series_and_iid_loses_it() -> None:
    rng = np.random.default_rng(2)
    phi, series = 0.6, np.zeros(4000)
    for t in range(1, series.size):
        series[t] = phi * series[t - 1] + rng.normal(0, 0.01)
    iid = _lag1(bootstrap_paths(series, 400, 252, method="iid", seed=0))
    block = _lag1(bootstrap_paths(series, 400, 252, method="block", block=20, seed=0))
    stationary = _lag1(bootstrap_paths(series, 400, 252, method="stationary", block=20, seed=0))
    assert abs(iid) < 0.05
    # a block of 20 keeps 19 of every 20 neighbours: phi * 19 / 20, less a small-sample bias
    assert abs(block - phi * 19 / 20) < 0.06
    assert abs(stationary - phi * 19 / 20) < 0.06
    assert abs(block - phi) < abs(iid - phi)


def test_circular_blocks_are_runs_of_consecutive_returns_wrapping_at_the_end() -> None:
    series = np.arange(10) / 100
    paths = bootstrap_paths(series, 50, 12, method="block", block=4, seed=0)
    positions = np.rint(paths * 100).astype(int)
    for row in positions:
        for start in range(0, 12, 4):
            run = row[start:start + 4]
            assert np.array_equal(run, (run[0] + np.arange(4)) % 10)


def test_an_intraday_backtest_is_bootstrapped_by_its_days() -> None:
    minutes = pd.date_range("2024-03-04 14:30", periods=390, freq="min", tz="UTC")
    index = minutes.append([minutes + pd.Timedelta(days=1), minutes + pd.Timedelta(days=2)])
    equity = pd.Series(np.linspace(100.0, 130.0, index.size), index=index)
    result = _result(NORMAL)
    result.equity = equity
    ends = equity.iloc[[0, 389, 779, 1169]].to_numpy()  # the first value, then each day's last bar
    np.testing.assert_allclose(daily_returns(result), ends[1:] / ends[:-1] - 1)


def test_var_cvar_drawdown_and_fan_match_numpy_on_the_same_paths() -> None:
    result = _result(NORMAL, simulations=3000, horizon_days=126, block_days=7, seed=8)
    mc = simulate(result, method="block")
    paths = _compound(bootstrap_paths(daily_returns(result), 3000, 126, method="block", block=7, seed=8))
    final = paths[:, -1]
    np.testing.assert_array_equal(mc.final_equity, final)
    loss = 1 - final
    for level in (95, 99):
        var = np.quantile(loss, level / 100)
        assert mc.risk[f"var_{level}"] == pytest.approx(var, rel=1e-12)
        assert mc.risk[f"cvar_{level}"] == pytest.approx(loss[loss >= var].mean(), rel=1e-12)
        assert mc.risk[f"cvar_{level}"] >= mc.risk[f"var_{level}"]
    drawdown = (1 - paths / np.maximum.accumulate(paths, axis=1)).max(axis=1)
    np.testing.assert_allclose(mc.max_drawdown, drawdown, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mc.fan.to_numpy(), np.quantile(paths, FAN_QUANTILES, axis=0).T, rtol=1e-12)
    assert list(mc.fan.columns) == list(FAN_QUANTILES) and mc.fan.index.name == "day"
    assert (mc.method, mc.paths, mc.horizon_days, mc.seed) == ("block", 3000, 126, 8)


def test_a_constant_return_gives_one_outcome() -> None:
    mc = simulate(_result(np.full(100, 0.001), simulations=1000, horizon_days=252), method="iid")
    expected = 1.001**252
    np.testing.assert_allclose(mc.final_equity, expected, rtol=1e-12)
    assert np.all(mc.max_drawdown == 0)
    assert mc.risk["var_95"] == pytest.approx(1 - expected) and mc.risk["var_95"] < 0  # the tail still gains
    assert mc.risk["cvar_99"] == pytest.approx(1 - expected)
    np.testing.assert_allclose(mc.fan.to_numpy(), np.repeat(1.001 ** np.arange(253)[:, None], 5, axis=1),
                               rtol=1e-12)
    falling = simulate(_result(np.full(100, -0.002), simulations=100, horizon_days=50), method="block")
    np.testing.assert_allclose(falling.max_drawdown, 1 - 0.998**50, rtol=1e-12)


def test_all_positive_returns_never_draw_down() -> None:
    gains = np.random.default_rng(4).uniform(0.0, 0.02, 300)
    for method in ("iid", "block", "stationary"):
        _, drawdown, _ = walk_paths(gains, 2000, 252, method=method, seed=2)
        assert np.all(drawdown == 0)


def test_the_trade_sequence_is_resampled_at_the_backtests_trades_per_year() -> None:
    entries = DAYS[[10, 60, 110, 160, 210, 260, 300]]
    pnl = [1000, -500, 2500, -1200, 800, 300, -100]
    trades = pd.DataFrame({"instrument": "AAPL", "direction": "long", "entry_time": entries,
                           "exit_time": list(DAYS[[20, 70, 120, 170, 220, 270]]) + [pd.NaT],
                           "quantity": Decimal(10), "entry_price": Decimal(100), "exit_price": Decimal(101),
                           "pnl": [Decimal(v) for v in pnl], "return": 0.01, "commission": Decimal(1),
                           "bars": 10})
    gains = np.full(312, 0.0005)
    result = _result(gains, trades=trades, simulations=4000, horizon_days=156, seed=1)
    expected = np.array(pnl[:6]) / result.equity.iloc[[10, 60, 110, 160, 210, 260]].to_numpy()
    np.testing.assert_allclose(trade_returns(result), expected)
    mc = simulate(result, method="trades")
    assert mc.risk["steps"] == 3  # 6 closed trades over 312 days: 3 per 156 days
    assert mc.fan.index.name == "trade" and len(mc.fan) == 4
    possible = {round(float(np.prod(1 + expected[list(c)])), 12) for c in np.ndindex(6, 6, 6)}
    assert {round(float(v), 12) for v in mc.final_equity} <= possible


def test_ten_thousand_one_year_paths_in_one_call() -> None:
    # the time it takes is bench/research_mc.py's to measure (mc_vs_numpy), not a test's
    mc = simulate(_result(NORMAL, simulations=10_000, horizon_days=252))
    assert mc.final_equity.shape == mc.max_drawdown.shape == (10_000,)
    assert len(mc.fan) == 253 and np.isfinite(mc.fan.to_numpy()).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.5, -1.0, 1e6]) | st.floats(-1e9, 1e9), min_size=1,
                max_size=300))
def test_fan_quantiles_equal_numpys_with_ties_and_wide_ranges(values: list[float]) -> None:
    array = np.array(values)
    out = np.empty(len(FAN_QUANTILES))
    counts = np.empty(max(16, array.size // 4), np.int64)
    bootstrap.quantiles_into(array, np.array(FAN_QUANTILES), out, np.empty(array.size, np.int32), counts,
                             np.full(counts.size, -1, np.int64), np.empty(array.size))
    np.testing.assert_allclose(out, np.quantile(array, FAN_QUANTILES), rtol=1e-12, atol=1e-300)


# -- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("returns", "kwargs", "message"), [
    ([], {}, "no returns"),
    ([0.01, float("nan"), 0.02], {}, "NaN or infinite (first at position 1"),
    ([0.01, float("inf")], {}, "NaN or infinite"),
    ([0.01, -1.5], {}, "below -1"),
    ([[0.01, 0.02]], {}, "one series"),
    (["a"], {}, "must be numbers"),
    ([0.01], {"paths": 0}, "paths must be a whole number of at least 1, got 0"),
    ([0.01], {"horizon": 0}, "horizon must be"),
    ([0.01], {"block": 0}, "block must be"),
    ([0.01], {"paths": 2.5}, "paths must be"),
    ([0.01], {"seed": -1}, "seed must be"),
    ([0.01], {"method": "bayes"}, "unknown bootstrap method 'bayes'"),
])
def test_bad_input_is_a_clear_validation_error(returns: list, kwargs: dict, message: str) -> None:
    arguments = {"paths": 10, "horizon": 5, **kwargs}
    paths, horizon = arguments.pop("paths"), arguments.pop("horizon")
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        bootstrap_paths(returns, paths, horizon, **arguments)


def test_simulate_refuses_what_it_cannot_resample() -> None:
    with pytest.raises(ValidationError, match="at least one path, got 0"):
        simulate(_result(NORMAL, simulations=0))
    with pytest.raises(ValidationError, match="at least one path, got 0"):
        simulate(_result(NORMAL), paths=0)
    with pytest.raises(ValidationError, match="unknown Monte Carlo method 'monthly'"):
        simulate(_result(NORMAL), method="monthly")
    with pytest.raises(ValidationError, match="no closed trade"):
        simulate(_result(NORMAL), method="trades")
    with pytest.raises(ValidationError, match="needs at least two"):
        simulate(_result(np.array([])))
