"""Backtest metrics as a whole: the returns rule, compute(result) on hand-built results, and the sweep objectives."""

from __future__ import annotations

import math
import re
import warnings
from decimal import Decimal

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from trader.backtest import metrics
from trader.backtest.result import ORDER_COLUMNS, TRADE_COLUMNS, BacktestResult
from trader.backtest.settings import BacktestSettings

KEY = "STK:AAPL:SMART:USD"


def minute_sessions(days: int, start: str = "2024-01-02") -> pd.DatetimeIndex:
    """Return the 390 one-minute bar starts of US regular sessions (14:30-21:00 UTC) on ``days`` weekdays."""
    sessions = pd.bdate_range(start, periods=days, tz="UTC")
    return pd.DatetimeIndex(np.concatenate([
        pd.date_range(day + pd.Timedelta(hours=14, minutes=30), periods=390, freq="1min").asi8 for day in sessions
    ])).tz_localize("UTC")


def result_of(equity: pd.Series, bar_size: str = "1d", *, trades: pd.DataFrame | None = None,
              orders: pd.DataFrame | None = None, positions: pd.DataFrame | None = None,
              benchmark: pd.Series | None = None, risk_free: float = 0.0) -> BacktestResult:
    """Return a BacktestResult built by hand around ``equity`` (no engine involved)."""
    frame = pd.DataFrame({"open": equity, "high": equity, "low": equity, "close": equity, "volume": 1.0})
    return BacktestResult(
        strategy="hand", params={}, settings=BacktestSettings(risk_free=risk_free), bar_size=bar_size,
        prices={KEY: frame}, targets=pd.DataFrame({KEY: 0.0}, index=equity.index), equity=equity,
        positions=positions if positions is not None else pd.DataFrame({KEY: Decimal(0)}, index=equity.index),
        orders=orders if orders is not None else pd.DataFrame(columns=list(ORDER_COLUMNS)),
        trades=trades if trades is not None else pd.DataFrame(columns=list(TRADE_COLUMNS)),
        benchmark=benchmark)


def random_equity(seed: int, n: int = 400) -> pd.Series:
    rng = np.random.default_rng(seed)
    returns = 0.0004 + 0.011 * rng.standard_t(5, n)
    index = pd.bdate_range("2022-01-03", periods=n + 1, tz="UTC")
    return pd.Series(100_000 * np.cumprod(np.r_[1.0, 1 + returns]), index=index)


# ---- the annualisation rule -------------------------------------------------------------------------------------


def test_periods_per_year() -> None:
    assert metrics.periods_per_year("1d") == 252
    assert metrics.periods_per_year("1 day") == 252
    assert metrics.periods_per_year("1m") == 252 * 390  # 6.5 h = 390 minutes
    assert metrics.periods_per_year("1 hour") == 252 * 7  # 6.5 bars rounded up: 9:30 starts a half-hour bar
    assert metrics.periods_per_year("30m") == 252 * 13
    assert metrics.periods_per_year("5s") == 252 * 4680
    assert metrics.periods_per_year("1h", session_seconds=86_400) == 252 * 24
    with pytest.raises(ValueError, match="bar size"):
        metrics.periods_per_year("7m")


def test_daily_bars_give_their_own_returns() -> None:
    equity = pd.Series([100.0, 110.0, 99.0], index=pd.bdate_range("2024-01-01", periods=3, tz="UTC"))
    returns, periods, daily = metrics.period_returns(equity, "1d")
    assert (periods, daily) == (252, True)
    assert returns.to_numpy() == pytest.approx([0.1, -0.1])


def test_a_long_intraday_run_reads_daily_returns_from_each_days_last_bar() -> None:
    index = minute_sessions(metrics.MIN_DAYS)
    equity = pd.Series(np.linspace(100.0, 130.0, len(index)), index=index)
    returns, periods, daily = metrics.period_returns(equity, "1m")
    assert (periods, daily, len(returns)) == (252, True, metrics.MIN_DAYS)
    # day 1 from the first bar (the start) to the day's last bar; day 2 from that to its own last bar
    day_end = equity.iloc[389], equity.iloc[779]
    assert returns.iloc[0] == pytest.approx(day_end[0] / 100.0 - 1)
    assert returns.iloc[1] == pytest.approx(day_end[1] / day_end[0] - 1)
    assert returns.index[0] == index[389]
    # with the same data, inferring the bar size from the index gives the same
    assert metrics.period_returns(equity).returns.equals(returns)


def test_a_short_intraday_run_reads_per_bar_returns() -> None:
    index = minute_sessions(metrics.MIN_DAYS - 1)
    equity = pd.Series(np.linspace(100.0, 130.0, len(index)), index=index)
    returns, periods, daily = metrics.period_returns(equity, "1m")
    assert (periods, daily, len(returns)) == (252 * 390, False, len(index) - 1)
    assert returns.iloc[0] == pytest.approx(equity.iloc[1] / equity.iloc[0] - 1)
    assert metrics.period_returns(equity).periods_per_year == 252 * 390  # the median spacing is a minute


# ---- compute(result) ---------------------------------------------------------------------------------------------


def test_compute_answers_more_than_30_floats_with_snake_case_names_and_units() -> None:
    stats = metrics.compute(result_of(random_equity(0)))
    assert len(stats) >= 30
    assert all(isinstance(value, float) for value in stats.values())
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in stats)
    assert list(metrics.UNITS) != [] and set(metrics.UNITS) == set(stats)
    assert set(metrics.UNITS.values()) <= {"fraction", "ratio", "currency", "days", "count", "flag"}


def test_compute_by_hand() -> None:
    # daily bars: 100 000 -> 110 000 -> 99 000 -> 104 500; returns 0.10, -0.10, 0.0555...
    equity = pd.Series([100_000.0, 110_000.0, 99_000.0, 104_500.0], index=pd.bdate_range("2024-01-01", periods=4,
                                                                                            tz="UTC"))
    orders = pd.DataFrame([{"time": equity.index[0], "fill_time": equity.index[1], "instrument": KEY,
                            "side": "BUY", "quantity": Decimal(100), "price": Decimal("500.00"),
                            "commission": Decimal("1.00"), "reason": "signal"}], columns=list(ORDER_COLUMNS))
    positions = pd.DataFrame({KEY: [Decimal(0), Decimal(100), Decimal(100), Decimal(100)]}, index=equity.index)
    trades = pd.DataFrame([
        {"instrument": KEY, "direction": "long", "entry_time": equity.index[1], "exit_time": equity.index[2],
         "quantity": Decimal(100), "entry_price": Decimal(500), "exit_price": Decimal(490), "pnl": Decimal(-1_002),
         "return": Decimal("-0.02004"), "commission": Decimal(2), "bars": 1},
        {"instrument": KEY, "direction": "long", "entry_time": equity.index[3], "exit_time": pd.NaT,
         "quantity": Decimal(100), "entry_price": Decimal(490), "exit_price": None, "pnl": Decimal(0),
         "return": Decimal(0), "commission": Decimal(1), "bars": 0},
    ], columns=list(TRADE_COLUMNS))
    stats = metrics.compute(result_of(equity, orders=orders, positions=positions, trades=trades))
    assert stats["total_return"] == pytest.approx(0.045)
    assert stats["net_profit"] == pytest.approx(4_500.0)
    assert stats["final_equity"] == pytest.approx(104_500.0)
    assert stats["max_drawdown"] == pytest.approx(0.1)  # 99 000 / 110 000
    assert stats["max_drawdown_days"] == pytest.approx(2.0)  # peak Tuesday, still under water at Thursday's end
    assert stats["calmar"] == pytest.approx(stats["cagr"] / 0.1)
    assert stats["recovery_factor"] == pytest.approx(0.45)
    # 3 returns at 252 a year: growth 1.045 ** (252 / 3) - 1
    assert stats["cagr"] == pytest.approx(1.045**84 - 1)
    mean = (0.1 - 0.1 + 5_500 / 99_000) / 3
    assert stats["annual_return"] == pytest.approx(mean * 252)
    assert stats["exposure"] == pytest.approx(0.75)
    assert stats["fees"] == pytest.approx(1.0)
    assert stats["turnover"] == pytest.approx(50_000 / equity.mean())
    assert stats["orders"] == 1.0
    # one closed trade, a loss, and one open trade that the trade statistics leave out
    assert (stats["trades"], stats["open_trades"]) == (1.0, 1.0)
    assert stats["win_rate"] == 0.0
    assert stats["profit_factor"] == 0.0  # no gross profit over a gross loss of 1 002
    assert stats["expectancy"] == pytest.approx(-1_002.0)
    assert stats["average_holding_days"] == pytest.approx(1.0)
    assert math.isnan(stats["payoff_ratio"])  # no win to set against the loss
    assert (stats["periods_per_year"], stats["daily_returns"], stats["bars"], stats["days"]) == (252, 1.0, 4, 3.0)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_compute_matches_empyrical_and_quantstats_on_daily_bars(seed: int) -> None:
    warnings.filterwarnings("ignore", module="quantstats")
    equity = random_equity(seed)
    bench = random_equity(seed + 10)
    stats = metrics.compute(result_of(equity, benchmark=bench, risk_free=0.02))
    r, b = equity.pct_change().iloc[1:], bench.pct_change().iloc[1:]
    rf = (1.02) ** (1 / 252) - 1
    assert stats["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r, risk_free=rf))
    assert stats["sortino"] == pytest.approx(qs.stats.sortino(r, rf=0.02, periods=252))
    assert stats["volatility"] == pytest.approx(empyrical.annual_volatility(r))
    assert stats["cagr"] == pytest.approx(empyrical.cagr(r))
    assert stats["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(r))
    assert stats["calmar"] == pytest.approx(empyrical.calmar_ratio(r))
    assert stats["omega"] == pytest.approx(empyrical.omega_ratio(r, risk_free=rf))
    assert stats["tail_ratio"] == pytest.approx(empyrical.tail_ratio(r))
    assert stats["var_95"] == pytest.approx(-empyrical.value_at_risk(r))
    assert stats["skew"] == pytest.approx(qs.stats.skew(r))
    assert stats["kurtosis"] == pytest.approx(qs.stats.kurtosis(r))
    assert stats["beta"] == pytest.approx(empyrical.beta(r, b, risk_free=rf))
    assert (1 + stats["alpha"] / 252) ** 252 - 1 == pytest.approx(empyrical.alpha(r, b, risk_free=rf))
    assert stats["correlation"] == pytest.approx(np.corrcoef(r, b)[0, 1])
    assert stats["benchmark_return"] == pytest.approx(bench.iloc[-1] / bench.iloc[0] - 1)


def test_compute_on_intraday_bars_matches_empyrical_under_the_rule() -> None:
    rng = np.random.default_rng(11)
    index = minute_sessions(metrics.MIN_DAYS + 10)
    equity = pd.Series(1e5 * np.cumprod(1 + 0.0004 * rng.standard_t(4, len(index))), index=index)
    # a long run: daily returns, here from pandas' own resampling, the start prepended
    closes = pd.concat([equity.iloc[:1], equity.resample("1D").last().dropna()])
    daily = closes.pct_change().iloc[1:]
    stats = metrics.compute(result_of(equity, "1m"))
    assert stats["daily_returns"] == 1.0
    assert stats["sharpe"] == pytest.approx(empyrical.sharpe_ratio(daily))
    assert stats["sortino"] == pytest.approx(empyrical.sortino_ratio(daily))
    assert stats["volatility"] == pytest.approx(empyrical.annual_volatility(daily))
    assert stats["cagr"] == pytest.approx(empyrical.cagr(daily))
    # the drawdown reads every bar
    assert stats["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(equity.pct_change().iloc[1:]))
    # a short run: per-bar returns at 252 * 390 a year
    short = equity.iloc[: 390 * 5]
    stats = metrics.compute(result_of(short, "1m"))
    bars = short.pct_change().iloc[1:]
    assert stats["daily_returns"] == 0.0
    assert stats["sharpe"] == pytest.approx(empyrical.sharpe_ratio(bars, annualization=252 * 390))
    assert stats["cagr"] == pytest.approx(empyrical.cagr(bars, annualization=252 * 390))


def test_flat_equity_and_no_trade_do_not_raise() -> None:
    flat = pd.Series(50_000.0, index=minute_sessions(2))
    stats = metrics.compute(result_of(flat, "1m"))
    assert stats["total_return"] == 0.0
    assert stats["max_drawdown"] == 0.0
    assert stats["trades"] == 0.0
    for name in ("sharpe", "sortino", "calmar", "omega", "skew", "win_rate", "profit_factor", "beta", "alpha"):
        assert math.isnan(stats[name]), name
    no_benchmark = metrics.compute(result_of(flat, "1m", benchmark=flat * np.nan))
    assert math.isnan(no_benchmark["benchmark_return"]) and math.isnan(no_benchmark["correlation"])
    one_bar = metrics.compute(result_of(flat.iloc[:1], "1m"))
    assert one_bar["total_return"] == 0.0
    assert math.isnan(one_bar["sharpe"])


def test_the_benchmark_uses_the_same_returns_rule() -> None:
    index = minute_sessions(metrics.MIN_DAYS + 5)
    rng = np.random.default_rng(3)
    bench = pd.Series(100 * np.cumprod(1 + 0.0005 * rng.standard_normal(len(index))), index=index)
    equity = 1_000 * bench * np.linspace(1.0, 1.1, len(index))  # the benchmark, levered by a drift
    stats = metrics.compute(result_of(equity, "1m", benchmark=bench))
    daily_strategy = metrics.period_returns(equity, "1m").returns
    daily_bench = metrics.period_returns(bench, "1m").returns
    assert stats["daily_returns"] == 1.0
    assert stats["beta"] == pytest.approx(metrics.beta(daily_strategy, daily_bench))
    assert stats["correlation"] > 0.9


# ---- sweep objectives -------------------------------------------------------------------------------------------


def test_objectives_equal_what_compute_gives_for_each_column() -> None:
    columns = {seed: random_equity(seed) for seed in range(6)}
    equity = pd.DataFrame(columns)
    equity["flat"] = 100_000.0
    for name, objective in metrics.OBJECTIVES.items():
        scores = objective(equity, "1d", 0.01)
        assert list(scores.index) == list(equity.columns), name
        for column in equity.columns:
            value = metrics.compute(result_of(equity[column], risk_free=0.01)).get(name)
            if name == "profit_factor":  # the returns' gains over losses (Omega at zero), not the trades'
                value = metrics.omega(metrics.period_returns(equity[column]).returns)
            assert (math.isnan(value) and math.isnan(scores[column])) or scores[column] == pytest.approx(value), name
    headline = metrics.headline(equity, "1d", 0.01)
    assert headline.loc[3, "sharpe"] == pytest.approx(metrics.compute(result_of(equity[3], risk_free=0.01))["sharpe"])


def test_calmar_objective_by_hand() -> None:
    # one column, 3 daily returns: +10 %, -10 %, +10 %: growth 1.089, CAGR 1.089 ** 84 - 1, drawdown 10 %
    index = pd.bdate_range("2024-01-01", periods=4, tz="UTC")
    equity = pd.DataFrame({"a": [1.0, 1.1, 0.99, 1.089]}, index=index)
    assert metrics.OBJECTIVES["calmar"](equity)["a"] == pytest.approx((1.089**84 - 1) / 0.1)
    assert metrics.OBJECTIVES["total_return"](equity)["a"] == pytest.approx(0.089)


def test_objectives_score_many_columns_in_one_numpy_pass() -> None:
    index = minute_sessions(40)[:2_000]
    rng = np.random.default_rng(0)
    equity = pd.DataFrame(1e5 * np.cumprod(1 + 0.0002 * rng.standard_normal((len(index), 300)), axis=0),
                          index=index)
    for name in ("sharpe", "calmar"):
        objective = metrics.OBJECTIVES[name]
        scores = objective(equity, "1m")
        one_by_one = [objective(equity[[column]], "1m").iloc[0] for column in equity.columns]
        # one pass scores every column as a column alone would be (the speed-up: bench/research_metrics.py)
        assert scores.to_numpy() == pytest.approx(one_by_one)
