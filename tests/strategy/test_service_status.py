"""How strategy_service reports trader_service: waiting for the first heartbeat, up, down; and how the CLI shows it."""

from __future__ import annotations

import io

from rich.console import Console

from trader.cli.service_tables import strategy_service_table
from trader.strategy.watch import TRADER_SILENCE, trader_view

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


def test_the_status_tables_name_the_starved_strategies_and_the_streams_not_restored() -> None:
    from trader.cli.service_tables import STRATEGY_STYLE, service_table, strategy_state

    console = Console(width=80, record=True, file=io.StringIO())
    why = "no ticks for ES.FUT.202612 for over 30 s: trader_service restarting"
    console.print(strategy_service_table({"state": "DEGRADED", "reason": "1 strategy without ticks: demo",
                                          "trader_service": "down", "strategies": {"DEGRADED": 1},
                                          "starved": {"demo": why}}))
    console.print(service_table({"state": "RUNNING", "connected": True, "subscriptions": ["ES.FUT.202612"],
                                 "subscriptions_failed": {"CL.FUT.202001": "NotFound: unknown symbol"}}))
    text = " ".join(console.export_text().split())  # the table wraps long cells at 80 columns
    assert "DEGRADED (1 strategy without ticks: demo)" in text and "1 DEGRADED" in text
    assert "no ticks" in text and "demo: no ticks for ES.FUT.202612 for over 30 s:" in text
    assert "not restored" in text and "CL.FUT.202001: NotFound: unknown symbol" in text
    assert strategy_state("DEGRADED").style == STRATEGY_STYLE["DEGRADED"] == "yellow"
