"""The retry policy in virtual time: delays, cap, jitter, the give-ups, the log line, what is not retried."""

from __future__ import annotations

import asyncio
import logging
import random
import statistics

import pytest

from trader.errors import ConfigError, Unavailable, ValidationError
from trader.retry import Backoff, RetryPolicy


class VirtualTime:
    """A clock that moves only when the code under test sleeps (or a call is said to take time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """An async call that fails ``failures`` times with ``error``, each attempt taking ``cost`` seconds."""

    def __init__(self, vt: VirtualTime, failures: int, error: type[Exception] = ConnectionError,
                 cost: float = 0.0) -> None:
        self.vt, self.failures, self.error, self.cost = vt, failures, error, cost
        self.calls = 0
        self.raised: list[Exception] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.vt.now += self.cost
        if self.calls <= self.failures:
            exc = self.error(f"failure {self.calls}")
            self.raised.append(exc)
            raise exc
        return "done"


def run_call(policy: RetryPolicy, fn: Flaky, vt: VirtualTime, **kwargs: object) -> str:
    options: dict[str, object] = {"retry_on": (ConnectionError, Unavailable), "what": "the thing"}
    options.update(kwargs)
    return asyncio.run(policy.call(fn, sleep=vt.sleep, clock=vt.clock, **options))  # type: ignore[arg-type]


# -- delays ---------------------------------------------------------------------


def test_delays_grow_by_the_factor_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=0.5, cap=4.0, factor=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 10)] == [0.5, 1.5, 4.0, 4.0, 4.0]
    assert [RetryPolicy(0.25, 5.0).delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert [RetryPolicy(1.0, 1.0, factor=1).delay(n) for n in (1, 5)] == [1.0, 1.0]
    assert RetryPolicy(initial=2.0, cap=0.5).delay(1) == 0.5  # the cap bounds the first wait too


def test_a_retry_number_beyond_any_float_is_the_cap() -> None:
    # An adapter reconnecting for days reaches numbers where factor**n overflows a float.
    assert RetryPolicy(0.5, 30.0, factor=3.0).delay(100_000) == 30.0


def test_jitter_spreads_each_delay_around_its_nominal_value() -> None:
    policy = RetryPolicy(initial=1.0, cap=8.0, jitter=0.5)
    rng = random.Random(7)
    for n, nominal in ((1, 1.0), (3, 4.0), (9, 8.0)):
        draws = [policy.delay(n, rng) for _ in range(2000)]
        assert min(draws) >= nominal * 0.5 and max(draws) <= nominal * 1.5
        assert min(draws) < nominal * 0.55 and max(draws) > nominal * 1.45  # the whole band is used
        assert statistics.fmean(draws) == pytest.approx(nominal, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0, "cap": 1}, "initial must be > 0"),
        ({"initial": 1, "cap": 0}, "cap must be > 0"),
        ({"initial": 1, "cap": 2, "factor": 0.5}, "factor must be >= 1"),
        ({"initial": 1, "cap": 2, "jitter": 1.0}, "jitter must be in"),
        ({"initial": 1, "cap": 2, "attempts": 0}, "attempts must be >= 1"),
        ({"initial": 1, "cap": 2, "deadline": -1}, "deadline must be >= 0"),
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- call -------------------------------------------------------------------------


def test_call_retries_until_it_succeeds_waiting_longer_each_time() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=5)
    assert run_call(RetryPolicy(initial=0.25, cap=2.0), fn, vt) == "done"
    assert fn.calls == 6
    assert vt.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_call_that_succeeds_at_once_never_sleeps() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=0)
    assert run_call(RetryPolicy(initial=0.25, cap=2.0, attempts=1), fn, vt) == "done"
    assert (fn.calls, vt.sleeps) == (1, [])


def test_call_gives_up_after_its_attempts_raising_the_last_error() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=100)
    with pytest.raises(ConnectionError) as caught:
        run_call(RetryPolicy(initial=0.05, cap=2.0, attempts=8), fn, vt)
    assert caught.value is fn.raised[-1]  # the error itself, not a RetryError wrapping it
    assert fn.calls == 8
    assert vt.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_call_gives_up_rather_than_sleep_past_its_deadline() -> None:
    vt = VirtualTime()
    start = vt.now
    fn = Flaky(vt, failures=100, error=Unavailable, cost=0.1)
    with pytest.raises(Unavailable):
        run_call(RetryPolicy(initial=0.25, cap=5.0, deadline=10.0), fn, vt)
    # Attempts at 0, 0.35, 0.95, 2.05, 4.15, 8.25 (each costs 0.1 s); the next wait (5 s) would end past 10 s.
    assert vt.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert fn.calls == 6
    assert vt.now - start == pytest.approx(8.35)


def test_a_zero_deadline_means_one_attempt() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=1, error=Unavailable)
    with pytest.raises(Unavailable):
        run_call(RetryPolicy(initial=0.25, cap=5.0, deadline=0.0), fn, vt)
    assert (fn.calls, vt.sleeps) == (1, [])


def test_jittered_waits_are_what_the_policy_draws() -> None:
    vt = VirtualTime()
    policy = RetryPolicy(initial=1.0, cap=30.0, jitter=0.5)
    assert run_call(policy, Flaky(vt, failures=4), vt, rng=random.Random(11)) == "done"
    expected = random.Random(11)
    assert vt.sleeps == [policy.delay(n, expected) for n in (1, 2, 3, 4)]
    assert all(0.5 * 2 ** (n - 1) <= s <= 1.5 * 2 ** (n - 1) for n, s in enumerate(vt.sleeps, 1))


def test_an_error_it_does_not_retry_propagates_at_once() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=3, error=ValidationError)
    with pytest.raises(ValidationError):
        run_call(RetryPolicy(initial=0.1, cap=1.0), fn, vt)
    assert (fn.calls, vt.sleeps) == (1, [])


def test_give_up_is_asked_after_each_failure() -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=100)
    with pytest.raises(ConnectionError):
        run_call(RetryPolicy(initial=0.1, cap=1.0), fn, vt, give_up=lambda: fn.calls >= 3)
    assert fn.calls == 3 and len(vt.sleeps) == 2


def test_each_retry_logs_one_line_with_lazy_arguments_and_calls_on_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vt = VirtualTime()
    fn = Flaky(vt, failures=2)
    seen: list[tuple[Exception, int]] = []
    logger = logging.getLogger("tests.retry.caller")
    with caplog.at_level(logging.WARNING):
        run_call(RetryPolicy(initial=0.5, cap=2.0), fn, vt, what="journal append", logger=logger,
                 on_retry=lambda exc: seen.append((exc, len(vt.sleeps))))
    records = [r for r in caplog.records if r.name == "tests.retry.caller"]
    assert len(records) == 2
    assert all(r.msg == "%s failed (attempt %d: %r); retrying in %.2f s" for r in records)  # formatted lazily
    assert records[0].args == ("journal append", 1, fn.raised[0], 0.5)
    assert records[1].getMessage() == (
        "journal append failed (attempt 2: ConnectionError('failure 2')); retrying in 1.00 s"
    )
    assert seen == [(fn.raised[0], 0), (fn.raised[1], 1)]  # each before its wait


def test_a_cancelled_wait_ends_the_retries() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    async def scenario() -> None:
        waiting = asyncio.Event()

        async def sleep(_seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()  # a wait that only a cancellation ends

        task = asyncio.create_task(RetryPolicy(0.1, 1.0).call(
            failing, retry_on=ConnectionError, what="x", sleep=sleep))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert calls == 1


# -- Backoff -------------------------------------------------------------------------


def test_backoff_walks_the_delays_and_starts_again_after_a_success() -> None:
    backoff = Backoff(RetryPolicy(initial=0.05, cap=0.3))
    assert [backoff.next_delay() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    assert backoff.failures == 5
    backoff.reset()
    assert [backoff.next_delay() for _ in range(2)] == [0.05, 0.1]


def test_backoff_jitters_with_the_given_draw() -> None:
    policy = RetryPolicy(initial=1.0, cap=4.0, jitter=0.2)
    backoff = Backoff(policy, rng=random.Random(5))
    expected = random.Random(5)
    assert [backoff.next_delay() for _ in range(4)] == [policy.delay(n, expected) for n in (1, 2, 3, 4)]
