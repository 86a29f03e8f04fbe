"""``trader pycron restart trader_service``, three times, once while it connects: as a user sees it in the CLI.

The whole stack under the real pycron (``trader up --profile test``), a
strategy on AAPL and the user's ES and EUR.USD streams. After each restart
``trader strategy list --json`` shows the strategy RUNNING with ticks,
``trader subscribe list`` the user's streams, and ``trader status --json``
strategy_service RUNNING; while tws-sim is stopped and trader_service is
restarted twice (connecting to IB the whole time) the strategy and
strategy_service say DEGRADED, or WAITING, with why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import StackEnv, eventually
from tests.strategy.plugin_texts import COUNTER
from trader.cli.main import cli

pytestmark = pytest.mark.slow

def trader(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def as_json(*args: str) -> Any:
    result = trader("--json", *args)
    return json.loads(result.stdout) if result.exit_code == 0 else None


@pytest.fixture
def stack(stack_env: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackEnv]:
    directory = tmp_path / "strategies"
    directory.mkdir()
    (directory / "counter.py").write_text(textwrap.dedent(COUNTER))
    monkeypatch.setenv("TRADER_STRATEGIES__DIRECTORY", str(directory))
    monkeypatch.setenv("TRADER_STRATEGIES__NO_TICKS_SECONDS", "2")
    monkeypatch.setenv("TRADER_TRADING__CONNECT_TIMEOUT", "3")  # a start without IB waits this long, then serves
    up = trader("up", "--detach", "--profile", "test", "--timeout", "60")
    assert up.exit_code == 0, up.output
    try:
        yield stack_env
    finally:
        trader("down", "--timeout", "30")


def counter() -> dict[str, Any] | None:
    listing = as_json("strategy", "list")
    return next((s for s in listing["strategies"] if s["name"] == "counter"), None) if listing else None


def strategy_service() -> dict[str, Any] | None:
    jobs = as_json("status")
    return next((j.get("service") for j in jobs or [] if j["name"] == "strategy_service"), None)


def ticking() -> bool:
    first = counter()
    return bool(first and first["state"] == "RUNNING" and first["ticks"] > 0)


def fed_again(streams: list[str]) -> None:
    eventually(lambda: set(streams) <= set(as_json("subscribe", "list") or []), 30, f"{streams} streamed")
    before = eventually(counter, 10, "strategy list")["ticks"]
    eventually(lambda: (c := counter()) and c["ticks"] > before + 5 and c["state"] == "RUNNING"
               and c["starved"] is None, 30, "the strategy RUNNING with ticks again")
    eventually(lambda: (s := strategy_service()) and s["state"] == "RUNNING" and s["starved"] == {}, 15,
               "strategy_service RUNNING again")


def test_pycron_restarts_of_trader_service_starve_nothing_for_good(stack: StackEnv) -> None:
    eventually(ticking, 60, "the strategy RUNNING with ticks")
    streams = [as_json("subscribe", "start", symbol)["key"] for symbol in ("ES", "EUR.USD")]
    for round_ in range(3):
        if round_ == 1:  # restarted while it cannot reach IB: it connects once tws-sim is back
            assert trader("pycron", "stop", "tws").exit_code == 0
            # `pycron restart` waits for the job to be healthy (DEGRADED is not): in a process of its own
            restart = subprocess.Popen([sys.executable, "-c", "from trader.cli.main import cli; cli()", "pycron",
                                        "restart", "trader_service"], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            try:
                starved = eventually(lambda: (c := counter()) and c["starved"] and c, 30, "the strategy starved")
                assert starved["state"] in ("DEGRADED", "WAITING_HISTORY")
                assert "no ticks for AAPL.STK" in starved["reason"]
                service = eventually(lambda: (s := strategy_service()) and s["state"] == "DEGRADED" and s, 15,
                                     "strategy_service DEGRADED")
                assert "counter" in service["starved"] and "without ticks" in service["reason"]
                table = trader("--profile", "test", "status")
                assert "DEGRADED" in table.stdout and "no ticks" in table.stdout
                assert trader("pycron", "start", "tws").exit_code == 0
                output, _ = restart.communicate(timeout=60)
            finally:
                restart.kill()
            assert restart.returncode == 0, output.decode(errors="replace")
        else:
            restarted = trader("pycron", "restart", "trader_service")
            assert restarted.exit_code == 0, restarted.output
        fed_again(streams)
