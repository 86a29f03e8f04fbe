"""``trader strategy`` end to end: the CLI in-process against real services, and ``status``.

Plugins are written into a temp strategies directory: one that trades every
change of direction on 1-second AAPL bars, one that raises, one disabled in
its config, and one that does not import. The first test starts the
processes itself (tests.conftest); the second runs them under pycron
(``trader up``), whose ``status --json`` carries each service's status.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack, started_strategy_stack, write_plugins
from tests.waiting import wait_until_blocking
from trader.cli import formats, service_tables
from trader.cli.main import cli
from trader.cli.repl import Repl, completions

pytestmark = pytest.mark.slow

HEADER = """
import pandas as pd
from trader.strategy import Strategy
"""

FLIPPER = (
    HEADER
    + """
class Flipper(Strategy):
    instruments = ("AAPL",)
    bar_size = "1s"
    warmup = 3

    def signals(self, prices):
        step = prices["close"].diff().fillna(0.0)
        return (step > 0).astype(float) - (step < 0).astype(float)
"""
)

PLUGINS = {
    # Long after an up bar, short after a down bar: trades within seconds.
    "flipper.py": FLIPPER,
    "flipper.yaml": "sizing: {kind: quantity, value: 10}\n",
    "raiser.py": HEADER
    + """
class Raiser(Strategy):
    instruments = ("MSFT",)
    bar_size = "1s"

    def signals(self, prices):
        raise ZeroDivisionError("the strategy's own bug")
""",
    "idle.py": HEADER
    + """
class Idle(Strategy):
    instruments = ("MSFT",)

    def signals(self, prices):
        return pd.Series(0.0, index=prices.index)
""",
    "idle.yaml": "enabled: false\n",
    "broken.py": HEADER + "\nclass Broken(Strategy)\n    pass\n",  # line 5: no colon
}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC (INFO|ERROR|WARNING) +\S")  # the zone named


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let rich lay tables out on 250 columns, so cells are not folded in the assertions."""
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    return write_plugins(tmp_path / "strategies", PLUGINS)


@pytest.fixture
def strategy_stack(stack_env: StackEnv, plugin_dir: Path) -> Iterator[TradingStack]:
    with started_strategy_stack(stack_env, plugin_dir) as stack:
        yield stack


def infos() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in data("strategy", "list")["strategies"]}


def service_status(job: str) -> dict[str, Any]:
    """Return the status of the service pycron's job ``job`` runs (``trader status --json``)."""
    return next(j.get("service") or {} for j in data("status") if j["name"] == job)


def row(table: str, name: str) -> str:
    """Return the line of ``table`` that starts with strategy ``name``."""
    return next(line for line in table.splitlines() if line.lstrip("│ ").startswith(f"{name} "))


def test_list_enable_disable_flatten_and_logs(
    strategy_stack: TradingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = data("strategy", "list")
    assert sorted(s["name"] for s in listing["strategies"]) == ["flipper", "idle", "raiser"]
    [error] = listing["errors"]
    assert error["file"].endswith("broken.py") and error["line"] == 5
    assert "syntax error" in error["reason"]
    wait_until_blocking(
        lambda: (s := infos())["flipper"]["fills"] >= 2 and s["raiser"]["state"] == "ERROR",
        60,
        "flipper trading and raiser in ERROR",
    )

    table = ok("strategy", "list").stdout
    assert all(s in row(table, "flipper") for s in ("RUNNING", "AAPL", "1s"))
    assert all(s in row(table, "raiser") for s in ("ERROR", "MSFT", "ZeroDivisionError"))
    assert all(s in row(table, "idle") for s in ("DISABLED", "flat", "disabled in its config"))
    assert f"{error['file']}:5: syntax error" in table

    # Disabled, it stops trading; the table shows its position and PnL as the service reports them.
    assert ok("strategy", "disable", "flipper").stdout.startswith("flipper: DISABLED (disabled)")
    wait_until_blocking(lambda: not data("book", "orders", "--open"), 10, "flipper orders done")
    flipper = infos()["flipper"]
    assert flipper["state"] == "DISABLED" and flipper["orders"] >= 1
    positions = {k: Decimal(v) for k, v in flipper["positions"].items()}
    assert set(positions) <= {"AAPL.STK"} and all(abs(q) == 10 for q in positions.values())
    line = row(ok("strategy", "list").stdout, "flipper")
    assert service_tables.holdings(positions) in line
    assert formats.money(Decimal(flipper["net_pnl"])).plain in line

    for command in ("enable", "disable", "logs"):
        assert "error (not_found): no strategy 'nope'" in refused(4, "strategy", command, "nope")
    assert "not_found" in refused(4, "strategy", "logs", "nope", "--follow", "--count", "1")
    assert "--count goes with --follow" in refused(2, "strategy", "logs", "idle", "--count", "1")

    enabled = data("strategy", "enable", "flipper")
    assert enabled["name"] == "flipper" and enabled["state"] in ("WAITING_HISTORY", "RUNNING")
    wait_until_blocking(
        lambda: infos()["flipper"]["orders"] > flipper["orders"], 30, "flipper trading again"
    )

    # Flattening a live account's strategy asks first; declined, nothing changes.
    monkeypatch.setenv("TRADER_TRADING__LIVE", "true")  # the CLI's settings only
    declined = trader("strategy", "disable", "flipper", "--flatten", stdin="n\n")
    assert declined.exit_code == 1 and "LIVE account: disable flipper" in declined.stderr
    assert infos()["flipper"]["state"] == "RUNNING"
    flat = data("strategy", "disable", "flipper", "--flatten", "--yes")
    assert flat["state"] == "DISABLED"
    wait_until_blocking(lambda: infos()["flipper"]["positions"] == {}, 15, "flipper flat")
    assert "flat" in row(ok("strategy", "list").stdout, "flipper")
    monkeypatch.delenv("TRADER_TRADING__LIVE")

    text = ok("strategy", "logs", "flipper").stdout.splitlines()
    assert all(LOG_LINE.match(line) for line in text), text
    messages = [line.split(maxsplit=4)[4] for line in text]
    for expected in ("RUNNING", "DISABLED: disabled", "enabled"):
        assert expected in messages, expected
    assert any(m.startswith("WAITING_HISTORY: warming up (3 bars of 1s)") for m in messages)
    last = data("strategy", "logs", "flipper", "--limit", "2")
    assert [set(line) for line in last] == [{"time", "level", "message"}] * 2
    assert last[-1]["message"] == messages[-1]
    assert "ZeroDivisionError: the strategy's own bug" in ok("strategy", "logs", "raiser").stdout

    # --follow: the last line, then new ones from the bus as the strategy trades.
    ok("strategy", "enable", "flipper")
    started = datetime.now(UTC)
    followed = ok("--json", "strategy", "logs", "flipper", "-n", "1", "--follow", "--count", "3")
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert len(lines) == 4
    live = lines[1:]
    assert all(datetime.fromisoformat(line["time"]) >= started for line in live)
    assert lines[0] not in live
    text = ok("strategy", "logs", "flipper", "-n", "1", "-f", "--count", "1").stdout.splitlines()
    assert len(text) == 2 and all(LOG_LINE.match(line) for line in text), text

    # The REPL completes the strategy names it has seen.
    shell = Repl(cli, Console(file=io.StringIO()))
    assert shell.run(["strategy disable idle", "strategy logs ghost"]) == 4
    assert shell.strategies == {"idle"}
    assert completions(cli, "strategy enable i", set(), shell.strategies) == ["idle"]


def test_reload_and_status_under_pycron(
    stack_env: StackEnv, plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("flipper.py", "flipper.yaml", "raiser.py"):
        (plugin_dir / name).unlink()  # idle and broken: nothing trades here
    monkeypatch.setenv("TRADER_STRATEGIES__DIRECTORY", str(plugin_dir))
    ok("up", "--detach", "--profile", "test", "--timeout", "30")
    try:
        wait_until_blocking(
            lambda: service_status("strategy_service").get("trader_service") == "up",
            10,
            "strategy_service sees trader_service",
        )
        service = service_status("strategy_service")
        assert service["state"] == "RUNNING" and service["strategies"] == {"DISABLED": 1}
        assert service["plugin_errors"] == 1 and service_status("trader_service")["connected"]
        table = ok("status").stdout
        section = table[table.rindex("strategy_service") :]
        assert "1 DISABLED" in section and "1 (see `trader strategy list`)" in section
        assert re.search(r"trader_service\W+up\b", section)

        # The broken plugin fixed, a new one broken: what loads is shown, then exit 3.
        (plugin_dir / "broken.py").write_text(
            textwrap.dedent(PLUGINS["idle.py"]).replace("Idle", "Broken")
        )
        (plugin_dir / "broken.yaml").write_text("enabled: false\n")
        (plugin_dir / "bad.py").write_text(textwrap.dedent(HEADER) + "\nundefined_name\n")
        reloaded = trader("strategy", "reload")
        assert reloaded.exit_code == 3, reloaded.output
        bad = plugin_dir / "bad.py"
        assert "loaded 2 strategies: broken, idle" in reloaded.stdout
        assert f"{bad}:5: NameError: name 'undefined_name' is not defined" in reloaded.stdout
        assert reloaded.stderr.startswith(f"error (invalid): 1 plugin did not load: {bad}:5:")
        assert service_status("strategy_service")["strategies"] == {"DISABLED": 2}

        bad.unlink()
        assert data("strategy", "reload") == {"loaded": ["broken", "idle"], "errors": []}
        assert "none" in ok("status").stdout.split("plugin errors")[1].splitlines()[0]
    finally:
        ok("down", "--timeout", "30")
