"""StrategyRunner: its states and their legal moves, trading a change of target, sizing, order retries.

See ``runner_fakes`` for the scripted strategy and the fake trader service.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.strategy.runner_fakes import KEY, Harness, close_runners, orders_published, run, targets
from tests.waiting import wait_until
from trader.domain import Action, OrderStatus
from trader.errors import Conflict, RiskLimitExceeded, Unavailable
from trader.strategy.states import TRANSITIONS, StrategyState

S = StrategyState
D = Decimal


@pytest.fixture(autouse=True)
def _detach_runners() -> Iterator[None]:
    yield
    close_runners()

# -- states ------------------------------------------------------------------------


def test_a_strategy_warms_up_runs_and_stops_along_its_states() -> None:
    async def scenario() -> None:
        h = Harness()
        assert h.runner.state is S.INSTALLED and not h.runner.active
        await h.start(history=1)  # one bar of two: still warming up
        assert h.runner.state is S.WAITING_HISTORY
        await h.decide()  # not RUNNING yet: signals is not called, the bar only counts
        assert h.runner.state is S.RUNNING
        await h.decide()
        assert h.strategy.calls >= 1
        await h.runner.end()
        assert h.runner.state is S.DISABLED and not h.runner.active
        h.runner.begin({"AAPL": KEY})  # enabled again
        assert h.runner.state is S.WAITING_HISTORY
        await h.runner.end()
        assert h.states() == ["WAITING_HISTORY", "RUNNING", "DISABLED", "WAITING_HISTORY", "DISABLED"]

    run(scenario)


def test_enough_history_runs_at_once_and_no_warmup_needs_none() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start(history=5)
        assert h.runner.state is S.RUNNING
        await h.runner.end()
        bare = Harness(warmup=0)
        await bare.start(history=0)
        assert bare.runner.state is S.RUNNING
        await bare.runner.end()

    run(scenario)


LEGAL = [(a, b) for a in S for b in sorted(TRANSITIONS[a], key=lambda s: s.value)]  # sets: an order for xdist
ILLEGAL = [(a, b) for a in S for b in S if b is not a and b not in TRANSITIONS[a]]


def test_the_table_is_the_lifecycle_the_service_drives() -> None:
    assert (S.ERROR, S.RUNNING) in ILLEGAL and (S.DISABLED, S.RUNNING) in ILLEGAL
    assert (S.INSTALLED, S.RUNNING) in ILLEGAL and (S.RUNNING, S.INSTALLED) in ILLEGAL
    assert (S.RUNNING, S.WAITING_HISTORY) in LEGAL  # trader_service restarted: waiting for it again
    assert (S.ERROR, S.DISABLED) in LEGAL and (S.DISABLED, S.WAITING_HISTORY) in LEGAL


@pytest.mark.parametrize(("start", "to"), ILLEGAL, ids=lambda s: s.value)
def test_an_illegal_move_raises_and_changes_nothing(start: StrategyState, to: StrategyState) -> None:
    h = Harness()
    h.runner.state, h.runner.reason = start, "before"
    with pytest.raises(Conflict, match=f"illegal state change {start.value} -> {to.value}"):
        h.runner.move(to, "after")
    assert (h.runner.state, h.runner.reason) == (start, "before")
    assert h.published("state") == []


@pytest.mark.parametrize(("start", "to"), LEGAL, ids=lambda s: s.value)
def test_a_legal_move_is_made_and_published(start: StrategyState, to: StrategyState) -> None:
    h = Harness()
    h.runner.state = start
    h.runner.move(to, "why")
    assert h.runner.state is to
    assert h.published("state") == [{"state": to.value, "reason": "why"}]


def test_staying_in_a_state_with_a_new_reason_is_published_once() -> None:
    h = Harness()
    h.runner.move(S.WAITING_HISTORY, "starting")
    h.runner.move(S.WAITING_HISTORY, "starting")
    h.runner.move(S.WAITING_HISTORY, "waiting for trader_service")
    assert [p["reason"] for p in h.published("state")] == ["starting", "waiting for trader_service"]


def test_a_failed_strategy_restarts_only_through_disabled() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start()
        h.runner.fail("signals", ValueError("boom"))
        assert h.runner.state is S.ERROR
        with pytest.raises(Conflict):
            h.runner.begin({"AAPL": KEY})
        await h.runner.end(S.DISABLED, "restarting")
        h.runner.begin({"AAPL": KEY})
        assert h.runner.state is S.WAITING_HISTORY
        await h.runner.end()

    run(scenario)


def test_a_failure_reported_after_the_stop_leaves_the_state_alone() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start()
        await h.runner.end()
        h.runner.fail("on_tick", ValueError("late"))
        assert h.runner.state is S.DISABLED
        assert any("failed after the strategy stopped" in line["message"] for line in h.runner.capture.lines)

    run(scenario)


def test_service_stop_keeps_an_error_on_show() -> None:
    async def scenario() -> None:
        h = Harness()
        await h.start()
        h.runner.fail("signals", ValueError("boom"))
        await h.runner.end(S.DISABLED, "stopping")
        assert h.runner.state is S.ERROR and "boom" in h.runner.reason

    run(scenario)


# -- trading and sizing ------------------------------------------------------------


def test_a_change_of_target_trades_the_difference_and_publishes_the_order_status() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 1.0, -0.5, -0.5, 0.0), sizing={"kind": "quantity", "value": 100})
        h.trader.on_place = h.fill  # each order fills at once, so the ledger follows
        await h.start()
        for _ in range(5):
            await h.decide()
        events = await orders_published(h, 3)
        assert [(e["action"], e["quantity"]) for e in events] == [("BUY", D(100)), ("SELL", D(150)), ("BUY", D(50))]
        assert {e["status"] for e in events} == {"SUBMITTED"}  # the status place_order answered, never ""
        assert [e["client_order_id"] for e in events] == list(h.trader.book)
        assert h.runner.ledger.position(KEY) == 0 and h.runner.orders_sent == 3
        assert [s["target"] for s in h.published("signal")] == [1.0, -0.5, 0.0]
        await h.runner.end()

    run(scenario)


def test_the_broker_status_and_reason_reach_the_order_event() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0))
        h.trader.status, h.trader.reason = OrderStatus.REJECTED, "IB 201: no trading permission"
        await h.start()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["status"] == "REJECTED" and event["reason"] == "IB 201: no trading permission"
        await h.runner.end()

    run(scenario)


def test_an_unchanged_target_after_a_stop_out_does_not_reenter() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 1.0, 1.0, 0.0))
        await h.start()
        await h.decide()
        await orders_published(h, 1)
        h.runner.ledger.reset()  # the position went (a stop loss filled): flat, target still 1
        await h.decide()
        await h.decide()
        await h.decide()  # the signal changes: 0 against a flat ledger, nothing to send
        await wait_until(lambda: len(h.published("signal")) == 2, 5, "the second signal")
        assert len(h.published("order")) == 1
        await h.runner.end()

    run(scenario)


@pytest.mark.parametrize(("sizing", "close", "quantity"), [
    ({"kind": "quantity", "value": 100, "lot": 10}, 100.0, D(50)),  # 0.5 * 100, a multiple of the lot
    ({"kind": "cash", "value": 10_000}, 40.0, D(125)),  # 0.5 * 10,000 / 40
    ({"kind": "equity_percent", "value": 10}, 50.0, D(100)),  # 0.5 * 10% of 100,000 / 50
])
def test_sizing_turns_the_target_into_a_quantity(sizing: dict[str, Any], close: float, quantity: Decimal) -> None:
    async def scenario() -> None:
        h = Harness(targets(0.5), sizing=sizing)
        await h.start()
        await h.decide(close)
        (event,) = await orders_published(h, 1)
        assert (event["action"], event["quantity"]) == ("BUY", quantity)
        await h.runner.end()

    run(scenario)


def test_shares_units_trade_the_target_itself() -> None:
    async def scenario() -> None:
        h = Harness(targets(-30), units="shares", max_shares=100)
        await h.start()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert (event["action"], event["quantity"]) == ("SELL", D(30))
        await h.runner.end()

    run(scenario)


def test_no_equity_means_no_trade_this_bar_and_a_trade_at_the_next() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 1.0), sizing={"kind": "equity_percent", "value": 10})
        h.equity = Unavailable("trader_service is away")
        await h.start()
        await h.decide()
        await wait_until(lambda: any("no account equity" in line["message"] for line in h.runner.capture.lines),
                         5, "the warning")
        assert h.published("order") == [] and h.runner.state is S.RUNNING
        h.equity = D(100_000)
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["quantity"] == D(100)
        await h.runner.end()

    run(scenario)


def test_a_target_too_small_for_a_lot_sends_nothing() -> None:
    async def scenario() -> None:
        h = Harness(targets(0.01, 1.0), sizing={"kind": "quantity", "value": 10})
        await h.start()
        await h.decide()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["quantity"] == D(10)
        await h.runner.end()

    run(scenario)


# -- retries -----------------------------------------------------------------------


def test_an_order_is_retried_under_its_id_while_the_trader_service_is_away() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0))
        h.trader.refusals = [Unavailable("re-syncing"), Unavailable("re-syncing")]
        await h.start()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["status"] == "SUBMITTED"
        assert h.sleeps == [0.25, 0.5]  # virtual time: doubling from a quarter second
        assert len(set(h.trader.attempts)) == 1 and len(h.trader.attempts) == 3  # one id: placed once
        await h.runner.end()

    run(scenario)


def test_an_order_gives_up_after_the_retry_budget_and_the_strategy_carries_on() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 0.5), sizing={"kind": "quantity", "value": 100})
        h.trader.refusals = [Unavailable("down")] * 10
        await h.start()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["status"] == "FAILED" and "down" in event["reason"]
        assert h.sleeps == [0.25, 0.5, 1.0]  # 1.75 s slept; 2 more would pass order_retry_seconds (2)
        assert h.runner.state is S.RUNNING
        h.trader.refusals = []
        await h.decide()
        events = await orders_published(h, 2)  # the failed target counts as traded: the next change trades
        assert (events[1]["status"], events[1]["quantity"]) == ("SUBMITTED", D(50))
        await h.runner.end()

    run(scenario)


def test_a_risk_refusal_is_published_as_rejected_and_not_retried() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0))
        h.trader.refusals = [RiskLimitExceeded("max_order_quantity 50 < 100")]
        await h.start()
        await h.decide()
        (event,) = await orders_published(h, 1)
        assert event["status"] == "REJECTED" and "max_order_quantity" in event["reason"]
        assert len(h.trader.attempts) == 1 and h.sleeps == [] and h.runner.state is S.RUNNING
        await h.runner.end()

    run(scenario)


def test_flatten_cancels_the_strategy_orders_and_closes_its_positions() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0), sizing={"kind": "quantity", "value": 20})
        h.trader.on_place = h.fill
        await h.start()
        await h.decide()
        await orders_published(h, 1)
        await h.runner.end()
        (entry,) = h.trader.book
        await h.runner.flatten()
        assert h.trader.cancelled == [entry]  # our working order (the fake keeps it SUBMITTED)
        close = h.trader.book[list(h.trader.book)[1]]
        assert (close.action, close.quantity) == (Action.SELL, D(20))

    run(scenario)


def test_a_pipeline_target_trades_like_a_signal_and_a_bad_one_fails_the_strategy() -> None:
    async def scenario() -> None:
        h = Harness(sizing={"kind": "quantity", "value": 10})
        await h.start()
        h.runner.on_target(KEY, 0.5)
        (event,) = await orders_published(h, 1)
        assert (event["action"], event["quantity"]) == ("BUY", D(5))
        assert h.published("signal")[0]["target"] == 0.5
        h.runner.on_target(KEY, 7.0)
        await wait_until(lambda: h.runner.state is S.ERROR, 5, "ERROR")
        assert h.runner.reason == "pipeline: target 7 is outside -1..1 (units: fraction; use units: shares for share counts)"

    run(scenario)
