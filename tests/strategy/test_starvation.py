"""Tick starvation: the watchdog in virtual time, the cause it names, and a strategy's DEGRADED and back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.strategy.runner_fakes import KEY, Harness, run
from tests.waiting import wait_until
from trader.strategy.starvation import LATE_BEAT, NOT_STREAMED, TickWatchdog, cause, reason
from trader.strategy.states import TRANSITIONS, StrategyState

ES = "ES.FUT.202612"
READY: dict[str, Any] = {"pid": 1, "state": "RUNNING", "connected": True, "synced": True,
                         "subscriptions": [ES, KEY]}


def test_a_key_is_silent_only_after_threshold_seconds_from_its_arming_or_last_tick() -> None:
    now = [0.0]
    dog = TickWatchdog(30.0, clock=lambda: now[0])
    assert not dog.enabled and dog.silent() == {}
    dog.arm([ES, KEY])
    assert dog.enabled
    now[0] = 29.9
    assert dog.silent() == {}  # armed at 0: not yet 30 s
    dog.tick(KEY)
    dog.tick("OTHER.STK")  # not armed: ignored
    now[0] = 30.0
    assert dog.silent() == {ES: 30.0}
    now[0] = 59.8
    assert dog.silent() == {ES: pytest.approx(59.8)}
    now[0] = 60.0
    assert list(dog.silent()) == [KEY, ES]  # both, in key order
    dog.tick(ES)
    dog.tick(KEY)
    assert dog.silent() == {}
    dog.arm([ES])  # a rejoin: counts from now again
    now[0] = 80.0
    assert dog.silent() == {}
    dog.disarm()
    now[0] = 1000.0
    assert not dog.enabled and dog.silent() == {}


def test_a_zero_threshold_never_starves() -> None:
    now = [0.0]
    dog = TickWatchdog(0.0, clock=lambda: now[0])
    dog.arm([ES])
    now[0] = 1e6
    assert not dog.enabled and dog.silent() == {}


@pytest.mark.parametrize(("view", "beat", "restarting", "expected"), [
    ("up", READY, True, "trader_service restarting"),
    ("down", None, True, "trader_service restarting"),
    ("down", READY, False, "trader_service down"),
    ("waiting", None, False, "waiting for trader_service"),
    ("up", None, False, "waiting for trader_service"),
    ("up", {**READY, "state": "STARTING"}, False, "trader_service starting"),
    ("up", {**READY, "state": "DEGRADED", "connected": False}, False, "broker disconnected"),
    ("up", {**READY, "synced": False}, False, "trader_service re-syncing with the broker"),
    ("up", {**READY, "subscriptions": [KEY]}, False, NOT_STREAMED),
    ("up", READY, False, "trader_service up and streaming it: market closed or quiet?"),
])
def test_the_cause_names_what_trader_service_says_of_itself(view: str, beat: dict[str, Any] | None,
                                                              restarting: bool, expected: str) -> None:
    assert cause(ES, view, beat, restarting) == expected
    assert cause(ES, view, beat, restarting, quiet=LATE_BEAT) == expected  # its beats on time


def test_a_trader_service_that_stopped_beating_is_silent_before_it_is_down() -> None:
    assert cause(ES, "up", READY, False, quiet=LATE_BEAT + 0.1) == "trader_service silent: stopped or restarting?"


def test_the_reason_is_stable_while_the_same_keys_starve() -> None:
    line = reason({ES: 31.2}, 30.0, "broker disconnected")
    assert line == f"no ticks for {ES} for over 30 s: broker disconnected"
    assert reason({ES: 95.0}, 30.0, "broker disconnected") == line


def test_the_table_has_degraded_between_running_and_the_ends() -> None:
    S = StrategyState
    assert S.DEGRADED in TRANSITIONS[S.RUNNING]
    assert TRANSITIONS[S.DEGRADED] == {S.RUNNING, S.WAITING_HISTORY, S.DISABLED, S.ERROR}
    assert S.DEGRADED not in TRANSITIONS[S.WAITING_HISTORY]  # a waiting strategy keeps its state


def test_a_running_strategy_without_ticks_is_degraded_trades_nothing_and_runs_again_once_fed() -> None:
    async def scenario() -> None:
        h = Harness(sizing={"kind": "quantity", "value": 100})
        h.strategy.script = lambda prices: prices["close"] * 0 + 1.0
        await h.start()
        assert h.runner.state is StrategyState.RUNNING
        why = reason({KEY: 30.0}, 30.0, "trader_service restarting")
        h.runner.starve(why)
        h.runner.starve(why)  # the next look: nothing new published
        assert (h.runner.state, h.runner.reason, h.runner.starved) == (StrategyState.DEGRADED, why, why)
        assert h.runner.info()["starved"] == why and h.runner.active
        calls, seen = h.strategy.calls, h.runner.bars_seen
        h.runner.on_bar(h.bar())  # a late bar still fills the window, and decides nothing
        await wait_until(lambda: h.runner.bars_seen > seen, 5, "the bar taken")
        assert h.trader.attempts == [] and h.strategy.calls == calls
        h.runner.fed()
        assert (h.runner.state, h.runner.reason, h.runner.starved) == (StrategyState.RUNNING,
                                                                       "ticks flowing again", None)
        assert h.states()[-3:] == ["RUNNING", "DEGRADED", "RUNNING"]
        await h.decide()
        assert len(h.trader.attempts) == 1  # trading again
        await h.runner.end()

    run(scenario)


def test_a_waiting_strategy_keeps_its_state_and_gets_the_reason_added_then_removed() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start()
        h.runner.wait_for_trader("waiting for trader_service (Unavailable)")
        why = reason({KEY: 30.0}, 30.0, "trader_service restarting")
        h.runner.starve(why)
        assert h.runner.state is StrategyState.WAITING_HISTORY
        assert h.runner.reason == f"waiting for trader_service (Unavailable); {why}"
        h.runner.starve(reason({KEY: 30.0}, 30.0, "broker disconnected"))  # a new cause replaces the old
        assert h.runner.reason == ("waiting for trader_service (Unavailable); "
                                   f"{reason({KEY: 30.0}, 30.0, 'broker disconnected')}")
        h.runner.fed()
        assert h.runner.reason == "waiting for trader_service (Unavailable)" and h.runner.starved is None
        # starved while degraded, then the service makes it wait for trader_service: back once it is back
        h.runner.trader_back()
        assert h.runner.state is StrategyState.RUNNING
        h.runner.starve(why)
        h.runner.wait_for_trader("trader_service restarted: subscribing and resyncing again")
        assert h.runner.state is StrategyState.WAITING_HISTORY
        h.runner.fed()  # the wait's reason is not the starvation's: left as it is
        assert h.runner.reason == "trader_service restarted: subscribing and resyncing again"
        h.runner.trader_back()
        assert h.runner.state is StrategyState.RUNNING
        await h.runner.end()
        assert h.runner.starved is None

    run(scenario)
