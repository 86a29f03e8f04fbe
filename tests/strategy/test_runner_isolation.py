"""StrategyRunner's error isolation: a raising, hung or nonsensical strategy goes to ERROR, the others trade on.

See ``runner_fakes`` for the scripted strategy and the fake trader service.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from tests.strategy.runner_fakes import KEY, T0, Harness, Script, orders_published, run, targets
from tests.waiting import wait_until
from trader.domain import Tick
from trader.strategy.states import StrategyState

S = StrategyState

HUNG = threading.Event()  # what a hung strategy waits for; set at the end of each test so its thread ends


@pytest.fixture(autouse=True)
def _release_hung_threads() -> Any:
    HUNG.clear()
    yield
    HUNG.set()


def _raises(prices: pd.DataFrame) -> pd.Series:
    return pd.Series(1 / 0, index=prices.index)


def _hangs(prices: pd.DataFrame) -> pd.Series:
    HUNG.wait(30)
    return pd.Series(0.0, index=prices.index)


BROKEN: dict[str, tuple[Script, str]] = {
    "raises": (_raises, "signals raised ZeroDivisionError"),
    "hangs": (_hangs, "took longer than its time budget of 0.5 s"),
    "not a Series": (lambda prices: [1.0] * len(prices), "must return a Series as long as prices (3), got list"),
    "wrong length": (lambda prices: pd.Series([1.0]), "must return a Series as long as prices (3), got length 1"),
    "out of range": (targets(1.5), "target 1.5 is outside -1..1"),
    "infinite": (targets(float("inf")), "target is inf"),
    "not a number": (lambda prices: pd.Series("buy", index=prices.index), "target must be a number"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_strategy_goes_to_error_and_the_others_trade_on(case: str) -> None:
    script, reason = BROKEN[case]

    async def scenario() -> None:
        broken = Harness(script, time_budget=0.5, window=3, name="broken")
        healthy = Harness(targets(1.0), name="healthy")
        for h in (broken, healthy):
            await h.start()
            await h.decide()
        await wait_until(lambda: broken.runner.state is S.ERROR, 5, "ERROR")
        assert reason in broken.runner.reason
        assert broken.published("order") == []
        assert broken.published("state")[-1] == {"state": "ERROR", "reason": broken.runner.reason}
        (event,) = await orders_published(healthy, 1)
        assert event["status"] == "SUBMITTED" and healthy.runner.state is S.RUNNING
        broken.runner.on_bar(broken.bar())  # an ERROR strategy takes no more bars
        assert broken.runner.queue.empty()
        for h in (broken, healthy):
            await h.runner.end()

    run(scenario)


def test_the_traceback_of_a_raising_strategy_is_in_its_log() -> None:
    async def scenario() -> None:
        h = Harness(_raises)
        await h.start()
        await h.decide()
        await wait_until(lambda: h.runner.state is S.ERROR, 5, "ERROR")
        (line,) = [ln for ln in h.runner.capture.lines if ln["level"] == "ERROR" and "Traceback" in ln["message"]]
        assert "ZeroDivisionError" in line["message"]
        assert any(p["message"] == line["message"] for p in h.published("log"))

    run(scenario)


def test_nan_skips_the_bar_with_a_warning_and_the_next_bar_trades() -> None:
    async def scenario() -> None:
        h = Harness(targets(float("nan"), 1.0))
        await h.start()
        await h.decide()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["action"] == "BUY" and h.runner.state is S.RUNNING
        assert any("returned NaN" in line["message"] for line in h.runner.capture.lines)

    run(scenario)


@pytest.mark.parametrize("hook", ["on_start", "on_bar", "on_fill"])
def test_a_raising_hook_puts_the_strategy_in_error(hook: str) -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 1.0))

        def boom(*_args: Any) -> None:
            raise RuntimeError(f"{hook} broke")

        setattr(h.strategy, hook, boom)
        h.trader.on_place = h.fill
        await h.start()
        if hook != "on_start":
            await h.decide()
        await wait_until(lambda: h.runner.state is S.ERROR, 5, "ERROR")
        assert h.runner.reason == f"{hook} raised RuntimeError: {hook} broke"

    run(scenario)


def test_a_hung_on_start_is_abandoned_past_its_budget() -> None:
    async def scenario() -> None:
        h = Harness(time_budget=0.5)
        h.strategy.on_start = lambda: HUNG.wait(30)  # type: ignore[method-assign]
        await h.start()
        assert h.runner.state is S.ERROR and "on_start: on_start took longer" in h.runner.reason
        await h.runner.end(S.DISABLED, "restarting")
        assert h.runner.state is S.DISABLED

    run(scenario)


def test_ticks_reach_on_tick_in_order_and_a_raising_one_fails_the_strategy() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start()
        ticks = [Tick(KEY, T0 + timedelta(seconds=i), last=100.0 + i) for i in range(5)]
        for tick in ticks:
            h.runner.on_tick(tick)
        await wait_until(lambda: len(h.strategy.ticks) == 5, 5, "five ticks")
        assert h.strategy.ticks == ticks and h.runner.ticks_seen == 5

        def boom(tick: Tick) -> None:
            raise ValueError("bad tick")

        h.strategy.tick_hook = boom
        h.runner.on_tick(ticks[0])
        await wait_until(lambda: h.runner.state is S.ERROR, 5, "ERROR")
        assert h.runner.reason == "on_tick raised ValueError: bad tick"

    run(scenario)


def test_a_hung_on_tick_is_found_at_the_next_tick() -> None:
    async def scenario() -> None:
        h = Harness(time_budget=0.5)
        await h.start()
        started = threading.Event()
        h.strategy.tick_hook = lambda _tick: (started.set(), HUNG.wait(30))  # type: ignore[assignment,return-value]
        h.runner.on_tick(Tick(KEY, T0, last=100.0))
        assert await asyncio.to_thread(started.wait, 5)
        await asyncio.sleep(0.6)  # past the budget: the next tick sees the first one still running
        h.runner.on_tick(Tick(KEY, T0, last=101.0))
        assert h.runner.state is S.ERROR and "on_tick took longer than its time budget" in h.runner.reason

    run(scenario)


def test_a_bug_in_the_runner_stops_the_strategy_visibly() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0), sizing={"kind": "equity_percent", "value": 10})
        h.equity = ZeroDivisionError("not a TraderError")
        await h.start()
        await h.decide()
        await wait_until(lambda: h.runner.state is S.ERROR, 5, "ERROR")
        assert h.runner.reason == "the strategy runner raised ZeroDivisionError: not a TraderError"

    run(scenario)
