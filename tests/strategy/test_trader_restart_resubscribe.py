"""A strategy's market data outlives a trader_service crash: real redis, bus, tws-sim and both services.

trader_service is killed (SIGKILL) and started again while tws-sim is down,
so the new process serves ``status`` for seconds before it can subscribe
anything; once it is connected and re-synced the strategy's ticks resume.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import TradingStack, call, eventually, strategy_stack_fixture, wait_for_port
from tests.strategy.plugin_texts import COUNTER
from trader.errors import TraderError

pytestmark = pytest.mark.slow

counter_stack = strategy_stack_fixture({"counter.py": COUNTER})


def counter(stack: TradingStack) -> dict[str, Any]:
    [info] = [s for s in call(stack.strategy_endpoint, "list")["strategies"] if s["name"] == "counter"]
    return info


def answers_status(stack: TradingStack) -> dict[str, Any] | None:
    try:
        return call(stack.trader_endpoint, "status", timeout=1.0)  # type: ignore[no-any-return]
    except TraderError:
        return None


def test_ticks_resume_after_trader_service_is_killed_and_restarted(counter_stack: TradingStack) -> None:
    stack = counter_stack
    eventually(lambda: counter(stack)["state"] == "RUNNING" and counter(stack)["ticks"] > 0, 30, "ticks")
    # strategy_service has confirmed trader_service's pid (a crash before that is no restart it could tell)
    eventually(lambda: call(stack.strategy_endpoint, "status")["trader_service"] == "up", 30, "the pid confirmed")
    stack.kill("trader_service")
    stack.kill("tws")  # the new trader_service comes up unable to reach IB: it answers, and refuses to subscribe
    stack.start("trader_service")
    status = eventually(lambda: answers_status(stack), 30, "the new trader_service answering")
    assert status["connected"] is False
    time.sleep(4.0)  # its heartbeats reach strategy_service meanwhile: a resubscribe now is refused
    info = counter(stack)  # not failed; said to have no ticks, and why, at once (no threshold passed)
    assert info["state"] == "DEGRADED" and "trader_service" in info["starved"], info
    stack.start("tws")
    wait_for_port(stack.env.ib_port, 15, "tws-sim")
    stack.wait_trader_ready(60)
    key = counter(stack)["keys"]["AAPL"]
    eventually(lambda: key in call(stack.trader_endpoint, "subscriptions"), 30,
               f"the strategy's {key} subscribed on the new trader_service")
    before = counter(stack)["ticks"]
    eventually(lambda: counter(stack)["ticks"] > before + 5, 30, "the strategy's ticks resumed")
    eventually(lambda: counter(stack)["state"] == "RUNNING", 30, "the strategy RUNNING again")
