"""Restarts of trader_service and of its broker connection, repeated: nothing stays starved, nothing is lost.

Real redis-server, bus, tws-sim, trader_service and strategy_service. A user
subscribed ES and EUR.USD; a strategy trades AAPL. trader_service is killed
(SIGKILL) three times in a row, once while it is still connecting to IB
(tws-sim down), and tws-sim itself is killed and started again under a
trader_service that stays up. Each time, while no tick comes, the strategy
and strategy_service say DEGRADED (or WAITING) with why, within a few seconds
(the outage is known: far sooner than the no-ticks threshold); afterwards the
strategy is RUNNING with ticks again and the user's subscriptions stream again.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import TradingStack, call, eventually, strategy_stack_fixture, wait_for_port
from tests.strategy.plugin_texts import COUNTER
from trader.errors import TraderError

pytestmark = pytest.mark.slow

NO_TICKS = 30.0  # the strategies' no-ticks threshold here, seconds: a known outage is named long before
KNOWN_WITHIN = 10.0  # seconds from a kill to DEGRADED with the cause (LATE_BEAT 2.5 s + a look a second; loaded CI)

stack = strategy_stack_fixture({"counter.py": COUNTER}, TRADER_STRATEGIES__NO_TICKS_SECONDS=str(NO_TICKS))


def counter(stack: TradingStack) -> dict[str, Any]:
    [info] = [s for s in call(stack.strategy_endpoint, "list")["strategies"] if s["name"] == "counter"]
    return info


def strategies_status(stack: TradingStack) -> dict[str, Any]:
    return call(stack.strategy_endpoint, "status")  # type: ignore[no-any-return]


def trader_answers(stack: TradingStack) -> dict[str, Any] | None:
    try:
        return call(stack.trader_endpoint, "status", timeout=1.0)  # type: ignore[no-any-return]
    except TraderError:
        return None


def user_streams(stack: TradingStack) -> list[str]:
    status = trader_answers(stack)
    return list(status["subscriptions"]) if status else []


def starved(stack: TradingStack, because: str) -> dict[str, Any] | None:
    """Return the counter's info once it and strategy_service say it has no ticks ``because``."""
    info = counter(stack)
    status = strategies_status(stack)
    ok = (info["state"] in ("DEGRADED", "WAITING_HISTORY") and info["starved"] and because in info["starved"]
          and because in info["reason"] and status["state"] == "DEGRADED" and "counter" in status["starved"])
    return info if ok else None


def rejoins_after_reconnects(stack: TradingStack) -> int:
    """Return how often the counter rejoined after a broker reconnect (its log says so)."""
    lines = call(stack.strategy_endpoint, "logs", "counter", limit=0)
    return sum("WAITING_HISTORY: trader_service reconnected to the broker" in line["message"] for line in lines)


def fed_again(stack: TradingStack, streams: list[str]) -> None:
    """Wait until the counter has ticks again, is RUNNING, and ``streams`` are streamed again."""
    eventually(lambda: all(k in user_streams(stack) for k in streams), 30, f"{streams} streamed again")
    before = counter(stack)["ticks"]
    eventually(lambda: counter(stack)["ticks"] > before + 5, 30, "the strategy's ticks resumed")
    eventually(lambda: counter(stack)["state"] == "RUNNING" and counter(stack)["starved"] is None, 30,
               "the strategy RUNNING again")
    eventually(lambda: strategies_status(stack)["state"] == "RUNNING", 10, "strategy_service RUNNING again")


def test_three_kills_in_a_row_one_while_connecting_then_a_broker_restart(stack: TradingStack) -> None:
    eventually(lambda: counter(stack)["state"] == "RUNNING" and counter(stack)["ticks"] > 0, 30, "ticks")
    eventually(lambda: strategies_status(stack)["trader_service"] == "up", 30, "trader_service's pid confirmed")
    streams = [call(stack.trader_endpoint, "subscribe", symbol)["key"] for symbol in ("ES", "EUR.USD")]
    assert all(k in user_streams(stack) for k in streams)

    for round_ in range(3):
        killed = time.monotonic()
        stack.kill("trader_service")
        info = eventually(lambda: starved(stack, "no ticks for AAPL.STK: trader_service "), KNOWN_WITHIN,
                          f"round {round_}: starved, said, well before the {NO_TICKS:g} s threshold")
        print(f"round {round_}: DEGRADED {time.monotonic() - killed:.1f} s after the kill")
        assert any(why in info["reason"] for why in ("silent", "down", "restarting")), info["reason"]
        if round_ == 1:  # killed again while connecting: tws-sim down, the new one cannot reach IB
            stack.kill("tws")
            stack.start("trader_service")
            status = eventually(lambda: trader_answers(stack), 30, "the new trader_service answering")
            assert status["connected"] is False
            stack.kill("trader_service")
            stack.start("tws")
            wait_for_port(stack.env.ib_port, 15, "tws-sim")
        stack.start("trader_service")
        stack.wait_trader_ready(60)
        fed_again(stack, streams)

    # The broker connection, not trader_service: tws-sim killed and started again.
    pid = trader_answers(stack)["pid"]  # type: ignore[index]
    killed = time.monotonic()
    stack.kill("tws")
    eventually(lambda: starved(stack, "no ticks for AAPL.STK: broker disconnected"), KNOWN_WITHIN,
               "starved by the broker, well before the threshold")
    print(f"broker: DEGRADED {time.monotonic() - killed:.1f} s after the kill")
    stack.start("tws")
    wait_for_port(stack.env.ib_port, 15, "tws-sim")
    stack.wait_trader_ready(60)
    fed_again(stack, streams)
    assert trader_answers(stack)["pid"] == pid  # type: ignore[index]
    eventually(lambda: rejoins_after_reconnects(stack) == 1, 10, "the strategy resynced after the broker came back")
    # `trader reconnect`: the same, asked for
    call(stack.trader_endpoint, "reconnect", timeout=30)
    eventually(lambda: rejoins_after_reconnects(stack) == 2, 20, "the strategy resynced after the reconnect")
    fed_again(stack, streams)
    # the user's unsubscribe is for good: a restart does not bring it back
    call(stack.trader_endpoint, "unsubscribe", streams[1])
    stack.kill("trader_service")
    stack.start("trader_service")
    stack.wait_trader_ready(60)
    eventually(lambda: streams[0] in user_streams(stack), 30, "ES streamed again")
    assert streams[1] not in user_streams(stack)


def test_a_users_stop_of_a_key_a_strategy_streams_leaves_the_strategy_fed(stack: TradingStack) -> None:
    eventually(lambda: counter(stack)["state"] == "RUNNING" and counter(stack)["ticks"] > 0, 30, "ticks")
    key = counter(stack)["keys"]["AAPL"]
    assert call(stack.trader_endpoint, "subscribe", "AAPL")["key"] == key  # the user's too, now
    stopped = call(stack.trader_endpoint, "unsubscribe", key)  # the user's stream of it ends ...
    assert (stopped["streaming"], stopped["streamed_for"], stopped["forgotten"]) == (True, ["strategy"], True)
    with pytest.raises(TraderError, match="streamed for strategy"):
        call(stack.trader_endpoint, "unsubscribe", key)  # ... the strategy's does not
    assert key in user_streams(stack)
    before = counter(stack)["ticks"]
    eventually(lambda: counter(stack)["ticks"] > before + 5, 15, "the strategy's ticks go on")
    assert counter(stack)["state"] == "RUNNING"
