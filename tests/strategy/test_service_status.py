"""How strategy_service reports trader_service: waiting for the first heartbeat, up, down; and how the CLI shows it."""

from __future__ import annotations

import io

from rich.console import Console

from services.strategy_service import TRADER_SILENCE, trader_view
from trader.cli.render import strategy_service_table

STARTED = 100.0


def test_trader_service_is_waiting_until_its_first_heartbeat_then_up_until_it_falls_silent() -> None:
    assert trader_view(None, STARTED, STARTED + 0.5) == "waiting"  # just started: no beat yet
    assert trader_view(None, STARTED, STARTED + TRADER_SILENCE + 0.1) == "down"  # never heard from
    assert trader_view(STARTED + 1, STARTED, STARTED + 1 + TRADER_SILENCE - 0.1) == "up"
    assert trader_view(STARTED + 1, STARTED, STARTED + 1 + TRADER_SILENCE + 0.1) == "down"  # fell silent


def cell(view: str) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(strategy_service_table({"state": "RUNNING", "trader_service": view}))
    return console.export_text().split("trader_service", 1)[1].splitlines()[0]


def test_the_status_table_says_waiting_rather_than_down_before_the_first_heartbeat() -> None:
    assert "waiting for its first heartbeat" in cell("waiting")
    assert "up" in cell("up") and "down" not in cell("up")
    assert "down" in cell("down")
