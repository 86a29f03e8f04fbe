"""The example strategies in strategies/: contract, causality, live = backtest, known trades."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from trader.config import REPO_ROOT, read_yaml
from trader.domain import SecType
from trader.sim.catalogue import load_sim_config
from trader.strategy import Strategy, StrategyConfig
from trader.strategy.plugins import discover

STRATEGIES = REPO_ROOT / "strategies"
EXAMPLES = ("ma_crossover", "smi_crossover", "rsi_reversion", "momentum")


# -- loading, as the strategy service does: by path, config from the file beside it --------
@cache
def module(stem: str) -> ModuleType:
    name = f"_test_example_{stem}"
    spec = importlib.util.spec_from_file_location(name, STRATEGIES / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def strategy_class(stem: str) -> type[Strategy]:
    mod = module(stem)
    classes = [
        c
        for c in vars(mod).values()
        if isinstance(c, type) and issubclass(c, Strategy) and c.__module__ == mod.__name__
    ]
    assert len(classes) == 1, classes
    return classes[0]


def config_data(stem: str) -> dict[str, Any]:
    return read_yaml(STRATEGIES / f"{stem}.yaml")


def build(stem: str, **params: Any) -> Strategy:
    """The example with its own config, ``params`` overriding the file's."""
    data = config_data(stem)
    data["params"] = {**data.get("params", {}), **params}
    return strategy_class(stem)(StrategyConfig.model_validate(data), name=stem)


# -- price frames --------------------------------------------------------------------------
def frame(close: np.ndarray | list[float], spread: float = 0.5, freq: str = "1min") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    index = pd.date_range("2024-01-02 14:30", periods=len(close), freq=freq, tz="UTC", name="time")
    open_ = np.concatenate([close[:1], close[:-1]])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": np.full(len(close), 100.0),
        },
        index=index,
    )


def random_walk(n: int = 500, seed: int = 7, vol: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 230.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    prices = frame(close, spread=0.0)
    prices["high"] *= 1 + rng.uniform(0, vol / 2, n)
    prices["low"] *= 1 - rng.uniform(0, vol / 2, n)
    return prices


def positions(values: pd.Series) -> list[float]:
    return values.tolist()


# -- the contract, for every example -------------------------------------------------------
@pytest.mark.parametrize("stem", EXAMPLES)
@pytest.mark.parametrize("allow_short", [False, True])
def test_signals_keep_the_contract(stem: str, allow_short: bool) -> None:
    strategy = build(stem, allow_short=allow_short) if stem != "momentum" else build(stem)
    for prices in (random_walk(), random_walk(seed=8, vol=0.004), random_walk(n=5)):
        got = strategy.signals(prices)
        assert isinstance(got, pd.Series) and got.dtype == np.float64
        assert got.index.equals(prices.index)
        assert not got.isna().any()
        assert got.between(-1.0, 1.0).all()
    got = strategy.signals(random_walk())
    assert got.diff().abs().gt(0).sum() >= 2, "the example should trade on a 500-bar random walk"
    assert (got < 0).any() == (allow_short and stem != "momentum")


@pytest.mark.parametrize("stem", EXAMPLES)
def test_signals_are_causal(stem: str) -> None:
    strategy = build(stem)
    prices = random_walk()
    whole = strategy.signals(prices)
    for cut in (1, 2, strategy.warmup - 1, strategy.warmup, strategy.warmup + 1, 100, 250, 499):
        part = strategy.signals(prices.iloc[:cut])
        pd.testing.assert_series_equal(part, whole.iloc[:cut])


@pytest.mark.parametrize("stem", EXAMPLES)
def test_live_window_gives_the_backtest_target_at_every_bar(stem: str) -> None:
    strategy = build(stem)
    window = strategy.window
    assert window >= strategy.warmup
    prices = random_walk(n=window + 250, seed=21)  # long enough for the window to roll
    whole = strategy.signals(prices)
    for t in range(strategy.warmup, len(prices), 2):
        live = strategy.signals(prices.iloc[max(0, t + 1 - window) : t + 1])
        assert live.iloc[-1] == whole.iloc[t], f"bar {t}"


@pytest.mark.parametrize("stem", EXAMPLES)
def test_config_beside_the_module_builds_the_strategy(stem: str) -> None:
    data = config_data(stem)
    strategy = strategy_class(stem)(StrategyConfig.model_validate(data), name=stem)
    assert strategy.name == stem
    assert strategy.config.sizing.kind == "quantity"
    stocks = {i.symbol for i in load_sim_config().instruments if i.sec_type is SecType.STK}
    assert set(strategy.instruments) <= stocks
    assert strategy.config.enabled is (stem == "ma_crossover")
    assert strategy.bar_size == ("5s" if stem == "ma_crossover" else "1m")
    assert (strategy_class(stem).__doc__ or "").strip()
    assert len((module(stem).__doc__ or "").splitlines()) >= 5, (
        "the module docstring is the template's guide"
    )


def test_the_service_loads_every_example() -> None:
    plugins, errors = discover(STRATEGIES)
    assert errors == []
    assert {p.name for p in plugins} >= set(EXAMPLES)


@pytest.mark.parametrize(
    ("stem", "bad"),
    [
        ("ma_crossover", {"fast": 8, "slow": 8}),
        ("ma_crossover", {"fast": 10, "slow": 8}),
        ("ma_crossover", {"fats": 3}),
        ("smi_crossover", {"k": 0}),
        ("rsi_reversion", {"oversold": 55, "exit": 50}),
        ("rsi_reversion", {"exit": 75, "overbought": 70}),
        ("momentum", {"entry": 0.001, "exit": 0.002}),
        ("momentum", {"lookback": 0}),
    ],
)
def test_bad_params_are_refused(stem: str, bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        build(stem, **bad)


@pytest.mark.parametrize(
    ("stem", "params", "warmup"),
    [
        ("ma_crossover", {"fast": 5, "slow": 30}, 30),
        ("smi_crossover", {"k": 14, "d": 5, "signal": 7}, 14 + 70),
        ("rsi_reversion", {"period": 7}, 70),
        ("momentum", {"lookback": 60}, 61),
    ],
)
def test_warmup_follows_the_params_unless_the_config_sets_it(
    stem: str, params: dict[str, Any], warmup: int
) -> None:
    assert build(stem, **params).warmup == warmup
    data = {**config_data(stem), "params": params, "warmup": 500}
    assert strategy_class(stem)(StrategyConfig.model_validate(data)).warmup == 500
    assert (
        strategy_class(stem)().warmup == strategy_class(stem).warmup
    )  # the class default matches its Params


# -- known trades on hand-made series ------------------------------------------------------
def test_ma_crossover_the_demo() -> None:
    data = config_data("ma_crossover")
    assert data["enabled"] is True and data["instruments"] == ["AAPL"] and data["bar_size"] == "5s"
    assert data["params"] == {"fast": 3, "slow": 8, "allow_short": True}  # trades from its first bar
    assert data["sizing"] == {"kind": "quantity", "value": 100}
    assert build("ma_crossover").warmup == 8


def test_ma_crossover_enters_and_exits_at_the_known_bars() -> None:
    # bars 0-9 flat at 100, 10-19 rise to 110, 20-39 fall by 1 a bar
    close = [100.0] * 10 + [101.0 + i for i in range(10)] + [109.0 - i for i in range(20)]
    prices = frame(close, freq="5s")
    # bar 10: fast (100 + 100 + 101) / 3 = 100.33 > slow (700 + 101) / 8 = 100.125: long
    # bar 21: fast 109 > slow 107.75;
    # bar 22: fast (109 + 108 + 107) / 3 = 108 = slow 864 / 8: a tie, flat
    # bar 23: fast 107 < slow 108: short, if allowed
    long_only = [0.0] * 10 + [1.0] * 12 + [0.0] * 18
    assert positions(build("ma_crossover", allow_short=False).signals(prices)) == long_only
    both = [0.0] * 10 + [1.0] * 12 + [0.0] + [-1.0] * 17
    assert positions(build("ma_crossover", allow_short=True).signals(prices)) == both


def test_smi_crossover_enters_after_the_trough_and_exits_after_the_peak() -> None:
    # up 20 bars, down 15 (trough at bar 34), up 15 (peak at bar 49), down 15
    close = [100.0 + i for i in range(20)]
    close += [close[-1] - i - 1 for i in range(15)]
    close += [close[-1] + i + 1 for i in range(15)]
    close += [close[-1] - i - 1 for i in range(15)]
    prices = frame(close)
    # Each first bar off a turn moves the SMI across its lagging signal line: below it at bar 20
    # (off the first peak), above it at 35 (off the trough), below again at 50 (off the next peak).
    # Long-only, the cross below at 20 just confirms flat.
    expected = [0.0] * 35 + [1.0] * 15 + [0.0] * 15
    assert positions(build("smi_crossover").signals(prices)) == expected
    expected = [0.0] * 20 + [-1.0] * 15 + [1.0] * 15 + [-1.0] * 15
    assert positions(build("smi_crossover", allow_short=True).signals(prices)) == expected


def test_rsi_reversion_enters_when_oversold_and_exits_above_the_exit_level() -> None:
    # 14 rises of 1, 17 falls of 1, 10 rises of 1. With RSI(14) the average gain and loss always
    # sum to 1, so RSI = 100 * average gain: 100 at bar 14, then 100 * (13/14)**k after k falls,
    # first below 30 at k = 17 (bar 31: 28.4; bar 30: 30.6). After j rises it is
    # 100 * (1 - (1 - g) * (13/14)**j) with g = (13/14)**17: first above 50 at j = 5 (bar 36).
    g = (13 / 14) ** 17
    assert 100 * (13 / 14) ** 16 > 30 > 100 * g
    assert 100 * (1 - (1 - g) * (13 / 14) ** 4) < 50 < 100 * (1 - (1 - g) * (13 / 14) ** 5)
    steps = [1.0] * 14 + [-1.0] * 17 + [1.0] * 10
    close = list(np.cumsum([100.0] + steps))
    long_only = [0.0] * 31 + [1.0] * 5 + [0.0] * 6
    assert positions(build("rsi_reversion").signals(frame(close))) == long_only
    # With shorts, RSI 100 at bar 14 is overbought: short until it falls below 50, after
    # k = 10 falls (100 * (13/14)**10 = 47.6; k = 9: 51.3), at bar 24.
    assert 100 * (13 / 14) ** 10 < 50 < 100 * (13 / 14) ** 9
    both = [0.0] * 14 + [-1.0] * 10 + [0.0] * 7 + [1.0] * 5 + [0.0] * 6
    assert positions(build("rsi_reversion", allow_short=True).signals(frame(close))) == both
    # The mirror image trades the mirror positions.
    mirror = list(np.cumsum([100.0] + [-s for s in steps]))
    assert positions(build("rsi_reversion", allow_short=True).signals(frame(mirror))) == [
        -v for v in both
    ]
    assert (
        positions(build("rsi_reversion").signals(frame(mirror)))
        == [0.0] * 14 + [1.0] * 10 + [0.0] * 18
    )


def test_momentum_holds_between_entry_and_exit() -> None:
    strategy = build("momentum", lookback=2, entry=0.05, exit=0.0)
    close = [100, 100, 100, 103, 106, 106, 106, 105, 106, 112]
    # 2-bar return:      -,   -,   0, .03, .06, .029, 0, -.009, 0, .067
    # in the band (0 .. 0.05) the position stays; above 0.05 long, below 0 flat
    expected = [0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    assert positions(strategy.signals(frame(close))) == expected


def test_momentum_keeps_a_window_long_enough_to_see_its_entry() -> None:
    # A jump, then a slow drift whose return stays inside the band: held long for 300 bars.
    strategy = build("momentum", lookback=2, entry=0.05, exit=0.0)
    close = [100.0, 100.0, 100.0, 110.0] + [110.0 * 1.0005**i for i in range(1, 300)]
    prices = frame(close)
    whole = strategy.signals(prices)
    assert whole.iloc[3:].eq(1.0).all()
    for t in range(len(prices)):
        live = strategy.signals(prices.iloc[max(0, t + 1 - strategy.window) : t + 1])
        assert live.iloc[-1] == whole.iloc[t]
    # The base class's default window (50 bars here) would lose the entry and go flat.
    default_window = Strategy.window.fget(strategy)  # type: ignore[attr-defined]
    assert default_window == 50 and strategy.window >= 1000
    assert strategy.signals(prices.iloc[-default_window:]).iloc[-1] == 0.0
