"""``trader backtest|sweep|walkforward``: refusals by exit code before any bar is read, and a light ``trader``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.invoke import refused
from tests.conftest import StackEnv

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("vectorbt", "numba", "plotly", "dask", "distributed", "optuna", "quantstats", "empyrical")


@pytest.fixture
def strategies(stack_env: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example ma_crossover in a strategies directory the settings point at."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    for suffix in (".py", ".yaml"):
        shutil.copy(REPO / "strategies" / f"ma_crossover{suffix}", folder / f"ma_crossover{suffix}")
    monkeypatch.setenv("TRADER_STRATEGIES__DIRECTORY", str(folder))
    return folder


def test_an_unknown_strategy_exits_4_naming_the_ones_there_are(strategies: Path) -> None:
    err = refused(4, "backtest", "nope", "--start", "2026-01-02")
    assert "no strategy nope in" in err and "there are: ma_crossover" in err
    error = json.loads(refused(4, "--json", "sweep", "nope", "--param", "fast=2:5"))["error"]
    assert (error["code"], error["details"]["strategy"]) == ("not_found", "nope")


def test_a_bad_set_exits_3_naming_the_key(strategies: Path) -> None:
    err = refused(3, "backtest", "ma_crossover", "--set", "fastt=5", "--set", "slippage=0.001")
    assert "unknown parameter or setting: fastt" in err and "parameters: fast, slow, allow_short" in err
    assert "fast (20) must be less than slow (8)" in refused(3, "backtest", "ma_crossover", "--set", "fast=20")
    assert "expected KEY=VALUE" in refused(3, "walkforward", "ma_crossover", "--param", "fast=2:5", "--set", "fast")


def test_a_bad_date_is_a_usage_error() -> None:
    assert "is not a date or time" in refused(2, "backtest", "ma_crossover", "--start", "yesterday-ish")


def test_trader_starts_without_the_research_libraries() -> None:
    """``trader --help`` (every command registered) imports none of vectorbt, numba, plotly, dask, optuna."""
    code = ("import sys, trader.cli.main as m\n"
            "m.cli.main(['--help'], standalone_mode=False)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
