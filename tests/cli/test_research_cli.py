"""``trader backtest|sweep|walkforward``: refusals by exit code before any bar is read, and a light ``trader``."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tests.backtest.bars_file import write_bars
from tests.cli.invoke import refused, trader
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
    assert "expected KEY=VALUE" in refused(3, "walkforward", "ma_crossover", "--param", "fast=2:5", "--is", "5",
                                           "--oos", "2", "--set", "fast")


def test_a_bad_date_is_a_usage_error() -> None:
    assert "is not a date or time" in refused(2, "backtest", "ma_crossover", "--start", "yesterday-ish")


def test_an_end_before_the_start_exits_3_before_reading_bars(strategies: Path) -> None:
    err = refused(3, "backtest", "ma_crossover", "--start", "2026-02-01", "--end", "2026-01-01")
    assert "end (2026-01-01 00:00) must be after start (2026-02-01 00:00)" in err
    assert "must be after start" in refused(3, "sweep", "ma_crossover", "--param", "fast=2:3", "--start",
                                            "2026-02-01", "--end", "2026-02-01")


def test_trader_starts_without_the_research_libraries() -> None:
    """``trader --help`` (every command registered) imports none of vectorbt, numba, plotly, dask, optuna."""
    code = ("import sys, trader.cli.main as m\n"
            "m.cli.main(['--help'], standalone_mode=False)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


@pytest.fixture
def bars_csv(tmp_path: Path) -> Path:
    return write_bars(tmp_path / "aapl.csv", 3_000)


def test_a_backtest_of_a_file_prints_its_run_metrics_and_trades_in_80_columns(strategies: Path,
                                                                              bars_csv: Path) -> None:
    out = trader("backtest", "ma_crossover", "--data", str(bars_csv), "--set", "bar_size=1m", "--set", "fast=5",
                 "--set", "slow=20", "--end", "2026-01-06T12:00")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ma_crossover  AAPL.STK  1m  2026-01-05 00:00 -> 2026-01-06 11:59 UTC"), lines[0]
    assert lines[1] == "params: fast=5 slow=20 allow_short=true"
    assert lines[2].startswith("2,160 bars, ")
    assert "sharpe" in out.stdout and "max_drawdown" in out.stdout and "last 10 of " in out.stdout
    assert "Monte Carlo, block bootstrap, 1,000 paths of 252 days (losses):\n  VaR 95 " in out.stdout
    assert max(len(line) for line in lines) <= 80


def test_trades_read_without_float_noise_and_open_ones_are_counted_apart(strategies: Path, bars_csv: Path) -> None:
    from trader.research import backtest

    sets = ["--data", str(bars_csv), "--set", "bar_size=1m", "--set", "slippage=0.001", "--set", "simulations=0"]
    result = backtest("ma_crossover", data=bars_csv, sets={"bar_size": "1m", "slippage": "0.001"})
    open_trades = int(result.trades["exit_time"].isna().sum())
    assert open_trades == 1  # the example holds a position at the last bar
    out = trader("backtest", "ma_crossover", *sets)
    assert out.exit_code == 0, out.output
    closed = len(result.trades) - 1
    assert f", {closed:,} closed trades + 1 open in " in out.stdout.splitlines()[2]
    cells = re.findall(r"\d+\.\d+", out.stdout.split("(open ones too)")[1])
    assert cells and max(len(c.split(".")[1]) for c in cells) <= 6, cells  # no 93.72139999999999
    doc = json.loads(trader("--json", "backtest", "ma_crossover", *sets).stdout, parse_float=Decimal)
    assert doc["metrics"]["trades"] == closed
    for trade in doc["trades"]:
        for key in ("entry_price", "exit_price", "pnl", "return", "commission"):
            value = trade[key]
            assert not isinstance(value, Decimal) or len(value.as_tuple().digits) <= 10, (key, value)
    assert len(Decimal(doc["final_equity"]).as_tuple().digits) <= 10
    exact = [Decimal(str(p)) for p in result.orders["price"]]  # the orders' Decimals, to the last digit
    assert [order["price"] for order in doc["orders"]] == exact
    assert any(len(p.as_tuple().digits) > 6 for p in exact)  # slipped prices carry more digits than a tick


def test_durations_under_a_day_and_long_floats_of_a_note_read_as_people_write_them() -> None:
    from trader.cli.research_tables import _readable, metric_text

    assert metric_text("average_holding_days", 0.0052) == "7.5 min"
    assert metric_text("average_holding_days", 0.5) == "12.0 h"
    assert metric_text("average_holding_days", 3.25) == "3.2 d"
    assert metric_text("max_drawdown_days", 0.0) == "0.0 d"
    assert _readable("return -1.4415196126223224 at position 31 loses more than everything") == \
        "return -1.442 at position 31 loses more than everything"
    assert _readable("5 days, 0.5 %") == "5 days, 0.5 %"


def test_with_json_the_engine_s_warnings_stay_off_stderr(strategies: Path, bars_csv: Path) -> None:
    folder = strategies
    (folder / "noisy.py").write_text((folder / "ma_crossover.py").read_text().replace(
        'name = "ma_crossover"', 'name = "noisy"'))
    (folder / "noisy.yaml").write_text((folder / "ma_crossover.yaml").read_text())
    source = (folder / "noisy.py").read_text()
    marker = "    def signals(self, prices: pd.DataFrame) -> pd.Series:\n"
    assert marker in source
    source = source.replace("from __future__ import annotations\n", "from __future__ import annotations\nimport logging\n")
    (folder / "noisy.py").write_text(source.replace(marker, marker + (
        '        logging.getLogger("trader.backtest.engine").warning("vectorbt booked 1 of 2 orders (noise)")\n')))
    common = ["backtest", "noisy", "--data", str(bars_csv), "--set", "bar_size=1m", "--set", "simulations=0"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:  # a real process: no pytest handler on the root logger
        return subprocess.run([sys.executable, "-c", "from trader.cli.main import cli; cli()", *args],
                              check=False, capture_output=True, text=True, cwd=REPO, timeout=300)

    plain = run(*common)
    assert plain.returncode == 0 and "vectorbt booked 1 of 2 orders (noise)" in plain.stderr, plain.stderr
    quiet = run("--json", *common)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and json.loads(quiet.stdout)["strategy"] == "noisy"


def test_a_strategy_param_and_a_setting_change_the_run(strategies: Path, bars_csv: Path) -> None:
    """--set fast=... changes the signals, --set slippage=... the fill prices: both reach the engine."""
    from trader.research import backtest

    common = {"data": bars_csv, "sets": {"bar_size": "1m"}}
    base = backtest("ma_crossover", **common)
    faster = backtest("ma_crossover", fast=2, **common)
    slipped = backtest("ma_crossover", slippage="0.001", **common)
    assert base.params["fast"] == 3 and faster.params["fast"] == 2
    assert len(faster.orders) != len(base.orders)
    assert slipped.settings.slippage == Decimal("0.001")
    first, moved = base.orders.iloc[0], slipped.orders.iloc[0]
    assert (moved["time"], moved["side"]) == (first["time"], first["side"])
    sign = 1 if first["side"] == "BUY" else -1
    assert float(moved["price"]) == pytest.approx(float(first["price"]) * (1 + sign * 0.001), rel=1e-9)
    assert {"sharpe", "total_return", "trades"} <= set(base.stats) and len(base.equity) == 3_000


def test_json_lists_each_order_with_bar_time_side_quantity_price_and_the_metrics(strategies: Path, bars_csv: Path,
                                                                                 tmp_path: Path) -> None:
    report = tmp_path / "ma.html"
    out = trader("--json", "backtest", "ma_crossover", "--data", str(bars_csv), "--set", "bar_size=1m",
                 "--report", str(report))
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout, parse_float=Decimal)
    first = doc["orders"][0]
    assert set(first) >= {"time", "fill_time", "side", "quantity", "price", "commission", "reason"}
    assert first["side"] in ("BUY", "SELL") and isinstance(first["quantity"], int)  # a JSON number, not text
    assert isinstance(first["price"], Decimal) and first["fill_time"] > first["time"]
    assert doc["trades"] and doc["metrics"]["trades"] == len([t for t in doc["trades"] if t["exit_time"]])
    assert doc["settings"]["bar_size"] == "1m" and doc["report"] == str(report)
    mc = doc["monte_carlo"]
    assert (mc["method"], mc["paths"], mc["seed"]) == ("block", 1000, 0)
    assert mc["risk"]["cvar_99"] >= mc["risk"]["var_99"] >= mc["risk"]["var_95"]  # losses: deeper at 99 %
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:500]
    assert not re.search(r"<script[^>]*\ssrc=", html) and "ma_crossover" in html  # plotly.js inlined: offline


def test_a_sweep_and_a_walkforward_of_a_file_on_one_local_worker(strategies: Path, bars_csv: Path,
                                                                 stack_env: StackEnv) -> None:
    common = ["--data", str(bars_csv), "--set", "bar_size=1m", "-w", "1"]
    out = trader("--json", "sweep", "ma_crossover", "--param", "fast=2:4", "--param", "slow=8,20", *common)
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert (found["strategy"], found["method"], found["objective"], found["combinations"]) == (
        "ma_crossover", "grid", "sharpe", 6)
    assert found["space"] == {"fast": [2, 3, 4], "slow": [8, 20]}
    assert (found["dropped"], found["constraints"], found["chunks_retried"]) == (0, [], 0)
    assert (found["scored"], found["refused"], found["trials"]) == (6, 0, 6)
    assert all(row["note"] is None and row["refused"] is False for row in found["rows"])
    assert found["best"] == {k: found["rows"][0][k] for k in ("fast", "slow")}
    assert Path(found["path"]).is_file() and str(stack_env.home) in found["path"]  # stored under TRADER_HOME
    report = stack_env.home / "sweep.html"
    table = trader("sweep", "ma_crossover", "--param", "fast=2:4", "--param", "slow=8,20", "--report", str(report),
                   *common)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0] == "ma_crossover by sharpe (grid): best 6 of 6 scored"  # one line
    assert f"report: {report}" in table.stdout and "js-plotly-plot" in report.read_text()
    paths = ("stored: ", "report: ")  # a file's path is printed whole, for copying
    assert max(len(line) for line in table.stdout.splitlines() if not line.startswith(paths)) <= 80

    # both sweeps are stored and come back without recomputing: listed, shown, reported again
    # refused combinations are rows with their note, not "scored"; a space refused entirely stores nothing
    partly = json.loads(trader("--json", "sweep", "ma_crossover", "--param", "fast=7:9", *common).stdout)
    assert (partly["combinations"], partly["scored"], partly["refused"]) == (3, 1, 2)
    assert [row["refused"] for row in partly["rows"]] == [False, True, True]
    assert partly["rows"][1]["note"].startswith("invalid: fast (") and partly["rows"][1]["objective"] is None
    shown_partly = trader("sweep", "ma_crossover", "--param", "fast=7:9", *common).stdout
    assert "best 1 of 1 scored, 2 refused by the parameters" in shown_partly.splitlines()[0]
    message = refused(3, "sweep", "ma_crossover", "--param", "fast=20:22", *common)
    assert "every combination refused (3 of 3): fast (20) must be less than slow (8)" in message
    listed = json.loads(trader("--json", "sweeps").stdout)
    assert len(listed) == 4 and {e["rows"] for e in listed} == {6, 3} and listed[3]["path"] == found["path"]
    assert listed[3]["best"] == pytest.approx(found["rows"][0]["objective"])
    again = stack_env.home / "again.html"
    shown = trader("--json", "sweeps", listed[3]["id"], "--report", str(again))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["rows"] == found["rows"] and "js-plotly-plot" in again.read_text()
    assert "4 stored sweeps" in trader("sweeps").stdout
    assert "no stored sweep 'nope'" in refused(4, "sweeps", "nope")
    assert "--report needs the ID" in refused(3, "sweeps", "--report", str(again))

    out = trader("--json", "walkforward", "ma_crossover", "--param", "fast=2:3", "--unit", "bars", "--is", "1000",
                 "--oos", "500", *common)
    assert out.exit_code == 0, out.output
    walked = json.loads(out.stdout)
    assert len(walked["windows"]) == 4 and set(walked["windows"][0]["params"]) == {"fast"}
    assert walked["equity"][0]["time"] == walked["windows"][0]["oos_start"]


def test_in_python_a_result_plots_and_a_space_may_be_a_mapping(strategies: Path, bars_csv: Path) -> None:
    from trader import research

    result = research.backtest("ma_crossover", data=bars_csv, sets={"bar_size": "1m"}, end="2026-01-05T12:00")
    figure = result.plot()
    assert type(figure).__name__ == "Figure" and len(figure.data) >= 1
    assert len(result.equity) == 720 and list(result.trades.columns)[:2] == ["instrument", "direction"]
    assert research._space({"fast": "2:20", "allow_short": [True, False], "slow": range(10, 12)}) == [
        "fast=2:20", "allow_short=true,false", "slow=10,11"]


def test_a_bad_param_range_exits_3_before_reading_bars(strategies: Path) -> None:
    err = refused(3, "sweep", "ma_crossover", "--param", "fastt=2:5", "--data", "/nonexistent.csv")
    assert "has no parameter 'fastt'" in err


def test_an_unreachable_scheduler_exits_7_before_reading_bars(strategies: Path, tmp_path: Path) -> None:
    from trader import research
    from trader.errors import Unavailable

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    unreadable = tmp_path / "bars.csv"
    unreadable.write_text("not,a,bar\n")  # read first, this is a refusal (exit 3) naming the file
    err = refused(7, "sweep", "ma_crossover", "--param", "fast=2:5", "--scheduler", address, "--data", str(unreadable))
    assert f"no Dask scheduler answers at {address}" in err
    with pytest.raises(Unavailable, match="no Dask scheduler answers"):
        research.walkforward("ma_crossover", {"fast": "2:5"}, in_sample=5, out_of_sample=2, scheduler=address,
                             data=unreadable)


def test_a_backtest_of_stored_bars_names_the_missing_session_and_an_empty_range_exits_4(strategies: Path) -> None:
    from tests.backtest.test_data import session_bars
    from trader.config import load_settings
    from trader.data.factory import open_store

    bars = session_bars()  # 2024-03-04..08 with Wednesday the 6th missing
    store = open_store(load_settings())
    store.write_bars("AAPL.STK", "1m", bars, start=bars.index[0], end=bars.index[-1] + pd.Timedelta(minutes=1))
    del store
    out = trader("backtest", "ma_crossover", "--start", "2024-03-04", "--end", "2024-03-09", "--set", "bar_size=1m")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0].startswith("ma_crossover  AAPL.STK  1m  2024-03-04 14:30 -> 2024-03-08 14:59")
    assert "skipped" in out.stdout and "2024-03-06" in out.stdout
    err = refused(4, "backtest", "ma_crossover", "--start", "2023-01-02", "--end", "2023-02-01", "--set", "bar_size=1m")
    assert "AAPL" in err and "2023-01-02" in err


def test_signals_that_raise_exit_3_naming_the_strategy_and_the_reason(strategies: Path, bars_csv: Path) -> None:
    (strategies / "raiser.py").write_text(
        "from trader.strategy import Strategy\n\n\nclass Raiser(Strategy):\n    name = 'raiser'\n"
        "    instruments = ('AAPL',)\n    bar_size = '1m'\n\n    def signals(self, prices):\n        return 1 / 0\n")
    err = refused(3, "backtest", "raiser", "--data", str(bars_csv))
    assert "strategy raiser: signals raised ZeroDivisionError" in err and "Traceback" not in err
