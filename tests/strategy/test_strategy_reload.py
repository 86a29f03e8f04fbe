"""``strategy reload`` and a strategy_service restart keep what a user reads: PnL marks, log lines, order count.

Real redis, bus, tws-sim, trader_service and strategy_service processes. The
``holder`` plugin buys 100 AAPL at its first bar and holds them; it is then
disabled (the position stays, and no bar marks it again), so the unrealized
PnL after a reload or a restart comes from what the service carried over or
asked for, not from a new bar.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TradingStack, call, eventually, strategy_stack_fixture
from tests.strategy.plugin_texts import HOLDER

pytestmark = pytest.mark.slow

PLUGINS = {
    "holder.py": HOLDER,
    "holder.yaml": "sizing: {kind: quantity, value: 100}\n",
}


strategy_stack = strategy_stack_fixture(PLUGINS)


def holder(stack: TradingStack) -> dict[str, Any]:
    return next(s for s in call(stack.strategy_endpoint, "list")["strategies"] if s["name"] == "holder")


def amount(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def adds_up(info: dict[str, Any]) -> bool:
    """Whether the strategy's net PnL is its realized plus unrealized, each holding's too, exactly."""
    if amount(info["net_pnl"]) != amount(info["realized_pnl"]) + amount(info["unrealized_pnl"]):
        return False
    return all(amount(h["net_pnl"]) == amount(h["realized_pnl"]) + amount(h["unrealized_pnl"])
               for h in info["holdings"].values())


def hold_100(stack: TradingStack) -> dict[str, Any]:
    """Wait for holder to hold its 100 AAPL, marked; disable it (the position stays) and return its info."""
    eventually(lambda: holder(stack)["positions"] == {"AAPL.STK": Decimal(100)}
               and holder(stack)["unrealized_pnl"] is not None, 60, "holder long 100 AAPL, marked")
    call(stack.strategy_endpoint, "disable", "holder")
    return holder(stack)


def reload_and_restart(stack: TradingStack, before: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reload the plugins, then restart strategy_service; return holder's info after each, once resynced."""
    assert call(stack.strategy_endpoint, "reload", timeout=30)["loaded"] == ["holder"]
    after = eventually(lambda: (info := holder(stack))["fills"] == before["fills"] and info, 15, "holder resynced")
    stack.kill("strategy_service")
    stack.start("strategy_service")
    stack.wait_strategies_ready()
    # The mark comes back from a snapshot: the strategy is disabled (no history, no bar).
    restarted = eventually(lambda: (info := holder(stack))["fills"] == before["fills"]
                           and info["unrealized_pnl"] is not None and info, 20, "holder resynced and marked")
    return after, restarted


def test_reload_and_restart_keep_the_positions_figures(strategy_stack: TradingStack) -> None:
    """Issue 16 item 3: unrealized PnL stays (it was 0.00 after a reload), and net = realized + unrealized."""
    before = hold_100(strategy_stack)
    unrealized = amount(before["unrealized_pnl"])
    holding = before["holdings"]["AAPL.STK"]
    cost = amount(holding["market_value"]) - unrealized  # 100 x the price paid, with its commission
    assert amount(holding["avg_cost"]) == cost / 100 and amount(holding["commission"]) > 0
    # marked (0.00 is a price that moved by the commission, not a missing mark): the bug showed 0.00 with no mark
    assert before["unrealized_pnl"] is not None and holding["market_price"] is not None and adds_up(before)
    after, restarted = reload_and_restart(strategy_stack, before)
    assert after["state"] == "DISABLED" and after["positions"] == {"AAPL.STK": Decimal(100)}
    assert amount(after["unrealized_pnl"]) == unrealized and adds_up(after)
    assert restarted["positions"] == {"AAPL.STK": Decimal(100)} and adds_up(restarted)
    assert amount(restarted["holdings"]["AAPL.STK"]["avg_cost"]) == amount(holding["avg_cost"])


def test_reload_keeps_the_log_lines_and_the_order_count(strategy_stack: TradingStack) -> None:
    """Issue 16 item 5: the log history and the order counter were reset by a reload."""
    stack = strategy_stack
    before = hold_100(stack)
    assert before["orders"] == 1
    logs = call(stack.strategy_endpoint, "logs", "holder", limit=0)
    assert any(line["message"].startswith("fill BUY 100 AAPL.STK") for line in logs)
    assert call(stack.strategy_endpoint, "reload", timeout=30)["loaded"] == ["holder"]
    after = eventually(lambda: (info := holder(stack))["fills"] == before["fills"] and info, 15, "holder resynced")
    assert after["orders"] == 1
    kept = call(stack.strategy_endpoint, "logs", "holder", limit=0)
    assert kept[: len(logs)] == logs and len(kept) > len(logs)
    # A restart: the order count comes back from trader_service's book.
    stack.kill("strategy_service")
    stack.start("strategy_service")
    stack.wait_strategies_ready()
    eventually(lambda: holder(stack)["fills"] == before["fills"], 15, "holder resynced after the restart")
    assert holder(stack)["orders"] == 1
    # The log lines come back from the service's log file (their times to the millisecond).
    past = [(line["level"], line["message"]) for line in kept]
    again = [(line["level"], line["message"]) for line in call(stack.strategy_endpoint, "logs", "holder", limit=0)]
    assert again[: len(past)] == past, again
