"""The pacer: IB's three historical-data rules, and the backoff on a violation, in virtual time."""

from __future__ import annotations

import asyncio
import logging

import pytest

from trader.data.pacing import (
    IB_RULES,
    PACING_RETRY,
    PACING_VIOLATION_TEXT,
    PacedRequest,
    Pacer,
    PacingRules,
    PacingViolation,
    Spacer,
    is_no_data,
    is_pacing_violation,
    retry_paced,
    wait_listener,
)
from trader.errors import Overloaded
from trader.retry import RetryPolicy


class VirtualTime:
    """A clock that moves only when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def request(contract: str = "AAPL.STK", end: str = "20261120-15:00:00", what: str = "TRADES",
            exchange: str = "SMART", duration: str = "86400 S", bar_size: str = "1 min",
            use_rth: bool = False) -> PacedRequest:
    return PacedRequest(contract, exchange, what, end, duration, bar_size, use_rth)


def ends(count: int, start: int = 0) -> list[str]:
    """Distinct end times: requests that differ, so only the count rules apply."""
    return [f"20261120-{10 + (i // 60):02d}:{i % 60:02d}:00" for i in range(start, start + count)]


def paced(rules: PacingRules = IB_RULES, **kwargs: object) -> tuple[Pacer, VirtualTime]:
    time = VirtualTime()
    return Pacer(rules, clock=time, sleep=time.sleep, **kwargs), time  # type: ignore[arg-type]


def test_five_requests_for_one_contract_go_at_once_the_sixth_waits_for_the_two_second_window() -> None:
    pacer, time = paced()

    async def run() -> list[float]:
        return [await pacer.acquire(request(end=e)) for e in ends(11)]

    waited = asyncio.run(run())
    assert waited[:5] == [0.0] * 5
    assert waited[5] == pytest.approx(2.0)  # IB: six or more within two seconds is a violation
    assert waited[6:10] == [0.0] * 4 and waited[10] == pytest.approx(2.0)
    assert time.now == pytest.approx(4.0)


def test_the_two_second_rule_counts_by_contract_exchange_and_tick_type() -> None:
    pacer, _ = paced()
    for e in ends(5):
        pacer.record(request(end=e))
    assert pacer.delay(request(end="20261121-00:00:00")) == pytest.approx(2.0)
    assert pacer.delay(request("MSFT.STK", end="20261121-00:00:00")) == 0.0
    assert pacer.delay(request(end="20261121-00:00:00", what="MIDPOINT")) == 0.0
    assert pacer.delay(request(end="20261121-00:00:00", exchange="ISLAND")) == 0.0


def test_an_identical_request_waits_fifteen_seconds_a_different_one_does_not() -> None:
    pacer, time = paced()
    asyncio.run(pacer.acquire(request()))
    time.now = 3.0
    assert pacer.delay(request()) == pytest.approx(12.0)
    # The identity is (contract, end, duration, bar size, what, RTH): each differing field makes another request.
    for other in (request("MSFT.STK"), request(end="20261120-16:00:00"), request(duration="3600 S"),
                  request(bar_size="5 mins"), request(what="MIDPOINT"), request(use_rth=True)):
        assert pacer.delay(other) == 0.0, other
    waited = asyncio.run(pacer.acquire(request()))
    assert waited == pytest.approx(12.0) and time.now == pytest.approx(15.0)


def test_at_most_sixty_requests_in_any_ten_minutes_bid_ask_counting_twice() -> None:
    pacer, time = paced()

    async def run() -> None:
        for i, e in enumerate(ends(60)):
            await pacer.acquire(request(f"S{i}.STK", end=e))  # one per contract: only the 10-minute rule applies
            time.now += 1.0

    asyncio.run(run())
    assert time.sleeps == [] and time.now == 60.0
    assert pacer.delay(request("X.STK")) == pytest.approx(540.0)  # the first left the window at 600 s
    time.now = 600.0
    assert pacer.delay(request("X.STK")) == 0.0
    assert pacer.delay(request("X.STK", what="BID_ASK")) == pytest.approx(1.0)  # two slots: the second frees at 601


def test_a_wait_past_max_wait_is_overloaded_with_retry_after() -> None:
    pacer, _ = paced(PacingRules(max_requests=2, window=10.0), max_wait=5.0)
    asyncio.run(pacer.acquire(request("A.STK")))
    asyncio.run(pacer.acquire(request("B.STK")))
    with pytest.raises(Overloaded) as refused:
        asyncio.run(pacer.acquire(request("C.STK")))
    assert refused.value.details["retry_after"] == 10.0


def test_a_disabled_pacer_lets_everything_through_and_still_counts() -> None:
    pacer, time = paced(enabled=False)

    async def run() -> None:
        for _ in range(100):
            await pacer.acquire(request())

    asyncio.run(run())
    assert time.sleeps == [] and pacer.requests == 100


def test_ibs_error_texts_are_told_apart() -> None:
    assert is_pacing_violation(162, PACING_VIOLATION_TEXT)
    assert not is_pacing_violation(200, PACING_VIOLATION_TEXT)
    no_data = "Historical Market Data Service error message:HMDS query returned no data: AAPL@SMART Trades"
    assert is_no_data(162, no_data) and not is_pacing_violation(162, no_data)
    assert not is_no_data(162, PACING_VIOLATION_TEXT)


def test_a_violation_is_backed_off_retried_and_the_pacer_holds_every_request(
        caplog: pytest.LogCaptureFixture) -> None:
    pacer, time = paced()
    policy = RetryPolicy(initial=2.0, cap=60.0, factor=2.0)
    answers: list[object] = [PacingViolation(PACING_VIOLATION_TEXT, code=162)] * 3 + ["bars"]
    calls: list[float] = []

    async def call() -> object:
        await pacer.acquire(request(end=f"20261120-15:00:{len(calls):02d}"))
        calls.append(time.now)
        answer = answers[len(calls) - 1]
        if isinstance(answer, PacingViolation):
            pacer.violated(request())
            raise answer
        return answer

    with caplog.at_level(logging.WARNING, logger="trader.data.pacing"):
        got = asyncio.run(retry_paced(call, pacer=pacer, what="AAPL.STK 1 min", policy=policy, sleep=time.sleep))
    assert got == "bars"
    assert calls == pytest.approx([0.0, 2.0, 6.0, 14.0])  # 2, 4, 8 s between the attempts
    assert pacer.violations == 3
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 3 and "AAPL.STK 1 min" in retries[0].getMessage()
    # While backing off, the pacer holds every request, not only the one refused.
    pacer.violated(request())
    assert pacer.delay(request("MSFT.STK")) == pytest.approx(IB_RULES.series_window)


def test_a_wait_of_three_seconds_or_more_is_told_to_the_task_s_listener_only() -> None:
    """The pacer's waits and the back-off's: a download job hears them, as (seconds, reason), and says it waits."""
    pacer, time = paced()
    told: list[tuple[float, str]] = []
    answers: list[object] = [PacingViolation(PACING_VIOLATION_TEXT, code=162)] * 2 + ["bars"]

    async def call() -> object:
        answer = answers.pop(0)
        if isinstance(answer, PacingViolation):
            raise answer
        return answer

    async def run() -> None:
        for e in ends(6):  # nobody listens: the sixth's 2 s wait is told to no one
            await pacer.acquire(request(end=e))
        token = wait_listener.set(lambda seconds, reason: told.append((seconds, reason)))
        try:
            for e in ends(6, start=6):  # 2 s: too short to tell
                await pacer.acquire(request(end=e))
            pacer.hold(30.0)
            await pacer.acquire(request("MSFT.STK"))
            await retry_paced(call, pacer=pacer, what="x", policy=RetryPolicy(initial=2.0, cap=60.0, factor=2.0),
                              sleep=time.sleep)
        finally:
            wait_listener.reset(token)

    asyncio.run(run())
    assert told == [(pytest.approx(30.0), "IB pacing"), (pytest.approx(4.0), "IB pacing back-off")]


def test_the_backoff_gives_up_with_the_last_violation() -> None:
    pacer, time = paced()

    async def refused() -> None:
        raise PacingViolation(PACING_VIOLATION_TEXT, code=162)

    with pytest.raises(PacingViolation):
        asyncio.run(retry_paced(refused, pacer=pacer, what="AAPL.STK", sleep=time.sleep))
    assert len(time.sleeps) == (PACING_RETRY.attempts or 0) - 1


def test_a_refused_request_is_not_identical_to_its_retry_but_still_counts() -> None:
    pacer, time = paced(PacingRules(max_requests=6))
    for e in ends(4):
        pacer.record(request(end=e))
    refused = request(end="20261121-00:00:00")
    pacer.record(refused)
    pacer.violated(refused)
    time.now = IB_RULES.series_window  # the hold and the two-second window are over: no 15 s wait for the retry
    assert pacer.delay(refused) == 0.0
    pacer.record(refused)
    # The refusal still counted toward the ten-minute limit: six made, the seventh waits for the first to leave.
    assert pacer.delay(request("MSFT.STK")) == pytest.approx(600.0 - IB_RULES.series_window)


def test_a_request_counts_from_its_answer_so_latency_never_lets_the_next_arrive_early() -> None:
    pacer, time = paced(PacingRules(max_per_series=1, series_window=2.0))

    async def run() -> None:
        async with pacer.slot(request(end="a")):
            time.now += 0.5  # the answer takes half a second
        assert pacer.delay(request(end="b")) == pytest.approx(2.0)  # from the answer, not from the send

    asyncio.run(run())


def test_a_spacer_spaces_starts_including_concurrent_callers() -> None:
    clock = VirtualTime()
    spacer = Spacer(1.5, clock=clock, sleep=clock.sleep)

    async def scenario() -> list[float]:
        first = await spacer.wait()
        together = await asyncio.gather(spacer.wait(), spacer.wait())  # queued: one slot each
        clock.now += 10  # idle long enough: no wait
        return [first, *together, await spacer.wait()]

    assert asyncio.run(scenario()) == [0.0, 1.5, 1.5, 0.0]
    assert clock.now == 13.0
    assert asyncio.run(Spacer(0).wait()) == 0.0
