"""The retry policy: exponential backoff with a cap, jitter and a give-up, for every retry loop.

A frozen :class:`RetryPolicy` says how long to wait before retry number n,
``min(initial * factor**(n-1), cap)`` scaled by a random draw from
``[1 - jitter, 1 + jitter]`` (so that many clients cut off together do not come
back in step), and when to give up: after ``attempts`` attempts, or rather than
sleep past ``deadline`` seconds after the first attempt, or when the caller's
``give_up()`` says so. :meth:`RetryPolicy.call` retries one awaitable call on
tenacity's ``AsyncRetrying`` and logs one line per retry; :class:`Backoff` walks
the same delays for a loop that retries something other than a single call (a
socket that reconnects, whose connections then last a while) and starts again
from ``initial`` once it succeeds. pycron asks a policy for the delay before a
restart. The sleep, the clock and the random draw are parameters, so the policy's
tests run in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from trader.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Errors = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before each retry, and when to stop retrying.

    ``initial`` is the wait before the first retry, multiplied by ``factor`` for
    each further one; ``cap`` bounds every wait (the first too); ``jitter`` (0 <= jitter < 1) scales each wait
    by a uniform draw from ``[1 - jitter, 1 + jitter]``. ``attempts`` (the first
    included) and ``deadline`` (seconds from the first attempt; a retry whose wait
    would end past it is not made) are the give-ups; None retries for ever.
    """

    initial: float
    cap: float
    factor: float = 2.0
    jitter: float = 0.0
    attempts: int | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        problems = [
            what for what, bad in (
                ("initial must be > 0", not self.initial > 0),
                ("cap must be > 0", not self.cap > 0),
                ("factor must be >= 1", not self.factor >= 1),
                ("jitter must be in [0, 1)", not 0 <= self.jitter < 1),
                ("attempts must be >= 1", self.attempts is not None and self.attempts < 1),
                ("deadline must be >= 0", self.deadline is not None and not self.deadline >= 0),
            ) if bad
        ]
        if problems:
            raise ConfigError(f"retry policy {self}: {'; '.join(problems)}")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Return the wait in seconds before retry number ``retry`` (1 is the first retry)."""
        try:
            base = min(self.initial * self.factor ** max(0, retry - 1), self.cap)
        except OverflowError:  # days of reconnecting: factor**n outgrew a float long after the cap
            base = self.cap
        if self.jitter:
            base *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return base

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_on: Errors,
        what: str,
        logger: logging.Logger | None = None,
        on_retry: Callable[[BaseException], object] | None = None,
        give_up: Callable[[], bool] | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> T:
        """Await ``fn()`` until it returns, retrying on ``retry_on``; on giving up, raise its last error.

        Before each wait, log ``<what> failed (attempt n: error); retrying in s``
        on ``logger`` (this module's by default) and call ``on_retry(error)``.
        ``give_up()`` is asked after each failure. Any other exception, and a
        cancellation, propagates at once. ``sleep`` and ``clock`` default to
        ``asyncio.sleep`` and ``time.monotonic``, looked up at each call.
        """
        sleep = sleep or asyncio.sleep
        now = clock or time.monotonic
        started = now()
        try:  # the first attempt outside tenacity: a call that succeeds costs nothing more (tenacity: ~25 us)
            return await fn()
        except retry_on as exc:
            first: BaseException | None = exc
        logger = logger or log

        def stop(state: RetryCallState) -> bool:
            if give_up is not None and give_up():
                return True
            if self.attempts is not None and state.attempt_number >= self.attempts:
                return True
            return self.deadline is not None and now() + state.upcoming_sleep > started + self.deadline

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            logger.warning("%s failed (attempt %d: %r); retrying in %.2f s",
                           what, state.attempt_number, error, state.upcoming_sleep)
            if on_retry is not None and error is not None:
                on_retry(error)

        async def attempt() -> T:  # a coroutine function: tenacity calls anything else without awaiting it
            nonlocal first
            if first is not None:  # tenacity's attempt 1 is the one made above
                exc, first = first, None
                raise exc
            return await fn()

        retrying = AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=lambda state: self.delay(state.attempt_number, rng),
            retry=retry_if_exception_type(retry_on),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(attempt)


#: Waiting for a counterpart to come back, for as long as the caller's ``give_up`` allows (no give-up of its own):
#: trader_service's re-sync with the broker and its restore of the saved subscriptions (while connected), and
#: strategy_service's rejoin of trader_service (a strategy's start, its resubscribe and resync after a restart).
#: A long outage costs at most ``cap`` once it ends.
RECOVERY_RETRY = RetryPolicy(0.5, 10.0, jitter=0.2)


class Backoff:
    """Walk a policy's delays across consecutive failures; after a success, start again from ``initial``.

    For a loop that retries something other than one call, such as a socket that
    reconnects whenever its connection is lost: the loop asks :meth:`next_delay`
    before each wait and calls :meth:`reset` once it got through.
    """

    __slots__ = ("policy", "failures", "_rng")

    def __init__(self, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng

    def next_delay(self) -> float:
        """Count a failure and return the wait before the next try."""
        self.failures += 1
        return self.policy.delay(self.failures, self._rng)

    def reset(self) -> None:
        """Forget the failures: the next wait is the policy's ``initial`` again."""
        self.failures = 0
