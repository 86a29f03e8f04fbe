"""A research job's inputs: the plugin found by strategy name, its backtest section, the --set rule."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.backtest.plugins_loaded import plugin_modules
from trader.backtest.job import parse_assignments, prepare, split_overrides
from trader.config import load_settings
from trader.errors import NotFound, ValidationError
from trader.strategy.base import NoParams

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def strategies(tmp_path: Path) -> Path:
    """A strategies directory: the example ma_crossover with a backtest section, a broken plugin, a renamed one."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO / "strategies" / "ma_crossover.py", folder / "ma_crossover.py")
    (folder / "ma_crossover.yaml").write_text(
        "instruments: [AAPL]\nbar_size: 1m\nparams: {fast: 3, slow: 8}\n"
        "backtest:\n  start: 2026-01-02\n  initial_cash: 50000\n  slippage: 0.0001\n  data: bars/aapl.csv\n")
    (folder / "broken.py").write_text("import pandas\nraise RuntimeError('boom at import')\n")
    (folder / "renamed.py").write_text(
        "from trader.strategy import Strategy\n\n\nclass Other(Strategy):\n    name = 'other_name'\n"
        "    instruments = ('MSFT',)\n\n    def signals(self, prices):\n        return prices['close'] * 0\n")
    return folder


def test_the_plugin_is_found_by_strategy_name_with_its_backtest_section(strategies: Path) -> None:
    loaded_before = plugin_modules()
    job = prepare("ma_crossover", directory=strategies, platform=load_settings())
    try:
        assert job.name == "ma_crossover"
        assert job.params == {"fast": 3, "slow": 8, "allow_short": False}
        assert job.settings.initial_cash == Decimal(50000)
        assert job.settings.start == datetime(2026, 1, 2, tzinfo=UTC)
        assert job.settings.data == strategies / "bars" / "aapl.csv"  # against the config file's directory
        assert (job.instruments, job.bar_size) == (["AAPL"], "1m")
    finally:
        job.close()
    other = prepare("other_name", directory=strategies, platform=load_settings())  # not its file's name
    assert other.plugin.module_file == strategies / "renamed.py"
    other.close()
    assert not plugin_modules() - loaded_before  # every plugin module unloaded


def test_an_unknown_name_is_not_found_and_a_broken_plugin_names_its_line(strategies: Path) -> None:
    with pytest.raises(NotFound, match=r"no strategy nope in .*there are: ma_crossover, other_name"):
        prepare("nope", directory=strategies, platform=load_settings())
    with pytest.raises(ValidationError, match=r"broken\.py:2: RuntimeError: boom at import"):
        prepare("broken", directory=strategies, platform=load_settings())
    with pytest.raises(NotFound, match=r"no strategy nope: .*missing: strategies directory not found"):
        prepare("nope", directory=strategies / "missing", platform=load_settings())


def test_overrides_are_params_when_params_declares_them_else_settings(strategies: Path) -> None:
    job = prepare("ma_crossover", directory=strategies, platform=load_settings(),
                  start=datetime(2026, 2, 1, tzinfo=UTC), instruments=["MSFT", "AAPL"], data="x.parquet",
                  overrides=parse_assignments(["fast=5", "slippage=0.0005", "commission.stock_min=0.5",
                                               "backtest.seed=7", "params.allow_short=true"]))
    job.close()
    assert job.params == {"fast": 5, "slow": 8, "allow_short": True}
    assert job.strategy.params.fast == 5 and job.strategy.warmup == 8
    s = job.settings
    assert (s.slippage, s.commission.stock_min, s.seed) == (Decimal("0.0005"), Decimal("0.5"), 7)
    assert (s.start, s.instruments, s.initial_cash) == (datetime(2026, 2, 1, tzinfo=UTC), ["MSFT", "AAPL"], 50000)
    assert s.data == Path("x.parquet").resolve()  # a run's file: against the current directory


def test_an_unknown_key_and_a_bad_value_are_refused_by_name(strategies: Path) -> None:
    loaded_before = plugin_modules()
    platform = load_settings()
    with pytest.raises(ValidationError, match=r"unknown parameter or setting: fastt, params\.slippage"):
        prepare("ma_crossover", directory=strategies, platform=platform,
                overrides={"fastt": 5, "params.slippage": 1})
    with pytest.raises(ValidationError, match=r"fast \(9\) must be less than slow \(8\)"):
        prepare("ma_crossover", directory=strategies, platform=platform, overrides={"fast": 9})
    with pytest.raises(ValidationError, match=r"backtest\.slippage: Input should be less than 1"):
        prepare("ma_crossover", directory=strategies, platform=platform, overrides={"slippage": "2"})
    assert not plugin_modules() - loaded_before


def test_set_words_read_as_yaml_scalars_with_decimals_kept_as_text() -> None:
    assert parse_assignments(["fast=5", "allow_short=false", "slippage=0.001", "instruments=[A, B]", "x=a:b"]) == {
        "fast": 5, "allow_short": False, "slippage": "0.001", "instruments": ["A", "B"], "x": "a:b"}
    with pytest.raises(ValidationError, match="expected KEY=VALUE"):
        parse_assignments(["fast"])
    assert split_overrides(NoParams, {"initial_cash": 5}) == ({}, {"initial_cash": 5})
