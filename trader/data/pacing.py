"""IB's historical-data pacing: the three rules a client obeys so that IB never answers error 162.

IB's "Historical Data Limitations" page names what causes a pacing violation:
an identical request within 15 seconds; six or more requests for the same
contract, exchange and tick type within two seconds; more than 60 requests in
any ten minutes (a BID_ASK request counts twice). :class:`Pacer` holds each
request until all three allow it, on an injected clock and sleep, so its tests
run in virtual time. It is the one pacer of the platform: trader_service's
``history`` (through :class:`~trader.brokers.ib.market_data.IbMarketData`) and
history_service's IB source both go through it.

The pacer only knows the requests it let through; IB counts those of every
client of the login. So a violation may still come: IB answers 162 with
:data:`PACING_VIOLATION_TEXT`, raised as :class:`PacingViolation`. The pacer
then learns (:meth:`Pacer.violated`: nothing goes until the shortest rule's
window has passed) and the caller backs off and retries with
:func:`retry_paced` (a :class:`~trader.retry.RetryPolicy`, one log line per retry).

A wait of :data:`WAIT_REPORTED` seconds or more (the pacer's hold or a
back-off) is told to the listener of :data:`wait_listener` (a context
variable: a download job sets it around its source, so ``history jobs`` can
say the job waits on IB pacing, and until when; elsewhere nobody listens).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from trader.errors import BrokerError, Overloaded
from trader.retry import Clock, RetryPolicy, Sleep

log = logging.getLogger(__name__)

__all__ = [
    "IB_RULES",
    "NO_DATA_TEXT",
    "PACING_RETRY",
    "PACING_VIOLATION_TEXT",
    "WAIT_REPORTED",
    "PacedRequest",
    "Pacer",
    "PacingRules",
    "PacingViolation",
    "Spacer",
    "WaitListener",
    "is_no_data",
    "is_pacing_violation",
    "retry_paced",
    "wait_listener",
]

T = TypeVar("T")

#: What IB says (error 162) when a historical request broke a pacing rule.
PACING_VIOLATION_TEXT = "Historical Market Data Service error message:Historical data request pacing violation"
#: What IB says (error 162) when a request's range holds no bars: an empty window, not a failure.
NO_DATA_TEXT = "HMDS query returned no data"
HISTORICAL_DATA_ERROR = 162

#: Told ``(seconds, reason)`` before a pacing wait of :data:`WAIT_REPORTED` seconds or more.
WaitListener = Callable[[float, str], None]
#: The listener of the running task (a download job's): None, nobody listens.
wait_listener: contextvars.ContextVar[WaitListener | None] = contextvars.ContextVar("wait_listener", default=None)
#: The shortest wait worth telling (a person sees a job stand still longer than this).
WAIT_REPORTED = 3.0


def _tell(seconds: float, reason: str) -> None:
    """Tell the task's listener (if any) of a wait of ``seconds``, when it is long enough to be seen."""
    listener = wait_listener.get()
    if listener is not None and seconds >= WAIT_REPORTED:
        listener(seconds, reason)


@dataclass(frozen=True, slots=True)
class PacingRules:
    """The limits, each as "at most": IB's by default (:data:`IB_RULES`)."""

    max_requests: int = 60
    """Requests at most in any ``window`` seconds (a BID_ASK request counts twice)."""
    window: float = 600.0
    identical_interval: float = 15.0
    """Seconds before the same request (contract, end, duration, bar size, what, RTH) may be made again."""
    max_per_series: int = 5
    """Requests at most for one contract, exchange and tick type in any ``series_window`` (IB: six is a violation)."""
    series_window: float = 2.0


IB_RULES = PacingRules()


@dataclass(frozen=True, slots=True)
class PacedRequest:
    """What the rules look at in one historical data request."""

    contract: str  # the contract's key (or conid): one instrument
    exchange: str
    what_to_show: str
    end: str
    duration: str
    bar_size: str
    use_rth: bool

    @property
    def series(self) -> tuple[str, str, str]:
        """Return what the two-second rule counts by: contract, exchange, tick type."""
        return self.contract, self.exchange, self.what_to_show.upper()

    @property
    def identity(self) -> tuple[Hashable, ...]:
        """Return what makes two requests identical."""
        return self.contract, self.end, self.duration, self.bar_size, self.what_to_show.upper(), self.use_rth

    @property
    def weight(self) -> int:
        """Return how many requests this one counts as (BID_ASK: two)."""
        return 2 if self.what_to_show.upper() == "BID_ASK" else 1


class PacingViolation(BrokerError):
    """IB refused a historical request for breaking a pacing rule (error 162)."""


def is_pacing_violation(code: int | None, message: str) -> bool:
    """Return whether IB's error ``code``/``message`` is a pacing violation."""
    return code == HISTORICAL_DATA_ERROR and "pacing violation" in message.lower()


def is_no_data(code: int | None, message: str) -> bool:
    """Return whether IB's error ``code``/``message`` says the range holds no bars."""
    return code == HISTORICAL_DATA_ERROR and NO_DATA_TEXT.lower() in message.lower()


@dataclass
class _Counted:
    """Request times (and weights) inside a sliding window, oldest first."""

    window: float
    times: deque[list[float]] = field(default_factory=deque)  # [time, weight]: the time moves to the answer's
    total: int = 0

    def prune(self, now: float) -> None:
        while self.times and now - self.times[0][0] >= self.window:
            self.total -= int(self.times.popleft()[1])

    def wait(self, now: float, weight: int, limit: int) -> float:
        """Return the seconds until ``weight`` more fit under ``limit`` (0: now)."""
        excess = self.total + min(weight, limit) - limit
        if excess <= 0:
            return 0.0
        for at, counted in self.times:
            excess -= int(counted)
            if excess <= 0:
                return max(at + self.window - now, 0.0)
        return 0.0  # unreachable: the window holds at least the excess

    def add(self, now: float, weight: int) -> list[float]:
        entry = [now, float(weight)]
        self.times.append(entry)
        self.total += weight
        return entry


class Spacer:
    """Space requests' starts at least ``interval`` seconds apart (0: no spacing), on an injected clock.

    For the simple paces beside IB's three rules: an HTTP plan's requests per
    minute, IB's contract searches (about one a second). Concurrent callers
    queue: each waits for the slot after the previous one's.
    """

    def __init__(self, interval: float, *, clock: Clock = time.monotonic, sleep: Sleep | None = None) -> None:
        self.interval = max(0.0, interval)
        self.clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # when the next request may start
        self._lock = asyncio.Lock()

    async def wait(self) -> float:
        """Wait until the next request may start and take its slot; return the seconds waited."""
        if not self.interval:
            return 0.0
        async with self._lock:
            now = self.clock()
            wait = max(0.0, self._next - now)
            if wait:
                await (self._sleep or asyncio.sleep)(wait)
            self._next = max(now, self._next) + self.interval
            return wait


class Pacer:
    """Hold historical requests until IB's three pacing rules allow them.

    ``max_wait`` (None: no bound) refuses a request that would wait longer
    with :class:`~trader.errors.Overloaded` (``retry_after``), for a caller
    that answers a person and should not hang; ``enabled=False`` lets
    everything through (a tws-sim started with ``--no-pacing``).
    """

    def __init__(self, rules: PacingRules = IB_RULES, *, enabled: bool = True, max_wait: float | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep | None = None) -> None:
        self.rules = rules
        self.enabled = enabled
        self.max_wait = max_wait
        self.clock = clock
        self._sleep = sleep
        self.requests = 0
        self.violations = 0
        self.waited = 0.0
        self._all = _Counted(rules.window)
        self._series: dict[tuple[str, str, str], _Counted] = {}
        self._identical: dict[tuple[Hashable, ...], float] = {}
        self._identical_order: deque[tuple[float, tuple[Hashable, ...]]] = deque()
        self._hold_until = float("-inf")

    def _prune(self, now: float) -> None:
        self._all.prune(now)
        for key, counted in list(self._series.items()):
            counted.prune(now)
            if not counted.times:
                del self._series[key]
        order, interval = self._identical_order, self.rules.identical_interval
        while order and now - order[0][0] >= interval:
            at, identity = order.popleft()
            if self._identical.get(identity) == at:
                del self._identical[identity]

    def delay(self, request: PacedRequest) -> float:
        """Return how long ``request`` must wait before it may go (0: now)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        self._prune(now)
        rules, weight = self.rules, request.weight
        waits = [self._hold_until - now, self._all.wait(now, weight, rules.max_requests)]
        series = self._series.get(request.series)
        if series is not None:
            waits.append(series.wait(now, weight, rules.max_per_series))
        last = self._identical.get(request.identity)
        if last is not None:
            waits.append(last + rules.identical_interval - now)
        return max(0.0, *waits)

    def record(self, request: PacedRequest) -> list[list[float]]:
        """Count ``request`` as made now; return its entries (for :meth:`answered`)."""
        self.requests += 1
        if not self.enabled:
            return []
        now = self.clock()
        self._identical[request.identity] = now
        self._identical_order.append((now, request.identity))
        series = self._series.setdefault(request.series, _Counted(self.rules.series_window))
        return [self._all.add(now, request.weight), series.add(now, request.weight)]

    def answered(self, request: PacedRequest, entries: list[list[float]]) -> None:
        """Count ``request`` (recorded as ``entries``) from now, when its answer came.

        IB counts a request when it receives it, some time after it was sent and
        before the answer: counting from the answer never lets the next request
        reach IB early, whatever the latency.
        """
        if not entries:
            return
        now = self.clock()
        for entry in entries:
            entry[0] = max(entry[0], now)
        self._identical[request.identity] = now
        self._identical_order.append((now, request.identity))

    @contextlib.asynccontextmanager
    async def slot(self, request: PacedRequest) -> AsyncIterator[float]:
        """Hold ``request`` until it may go and count it (as :meth:`acquire`); from its answer on leaving.

        The block makes the request and awaits its answer; it is given the seconds waited.
        """
        waited = await self._wait(request)
        entries = self.record(request)
        try:
            yield waited
        finally:
            self.answered(request, entries)

    async def acquire(self, request: PacedRequest) -> float:
        """Wait until ``request`` may go, count it, and return the seconds waited.

        Raise Overloaded if the wait would be longer than ``max_wait``.
        """
        waited = await self._wait(request)
        self.record(request)
        return waited

    async def _wait(self, request: PacedRequest) -> float:
        sleep = self._sleep or asyncio.sleep
        waited = 0.0
        while (wait := self.delay(request)) > 0:
            if self.max_wait is not None and wait > self.max_wait:
                raise Overloaded(f"IB pacing: {request.contract} {request.bar_size} {request.what_to_show} may go "
                                 f"in {wait:.0f} s (IB's historical data limits)", retry_after=round(wait, 1))
            _tell(wait, "IB pacing")
            await sleep(wait)  # again after: another request may have taken the slot meanwhile
            waited += wait
        self.waited += waited
        return waited

    def hold(self, seconds: float) -> None:
        """Let no request go for ``seconds`` from now."""
        self._hold_until = max(self._hold_until, self.clock() + seconds)

    def violated(self, request: PacedRequest) -> None:
        """Learn from IB's refusal of ``request``: IB counts requests this pacer did not see.

        Nothing goes until the shortest rule's window has passed (the caller's
        backoff may add more with :meth:`hold`). The refused request still counts
        toward the limits, but its retry is not an identical request: nothing was served.
        """
        self.violations += 1
        self._identical.pop(request.identity, None)
        log.debug("IB pacing violation on %s %s %s (%d so far); holding requests %.1f s", request.contract,
                  request.bar_size, request.what_to_show, self.violations, self.rules.series_window)
        self.hold(self.rules.series_window)


#: How a pacing violation is retried: 2 s, 4 s, 8 s... up to a minute, for at most 10 attempts.
PACING_RETRY = RetryPolicy(initial=2.0, cap=60.0, factor=2.0, jitter=0.1, attempts=10)


async def retry_paced(fn: Callable[[], Awaitable[T]], *, pacer: Pacer, what: str,
                      policy: RetryPolicy = PACING_RETRY, sleep: Sleep | None = None,
                      clock: Clock | None = None) -> T:
    """Await ``fn()``, backing off and retrying on :class:`PacingViolation`; the pacer holds every request meanwhile.

    One warning is logged per retry (by the policy). On giving up, the last
    violation is raised.
    """
    async def backoff(seconds: float) -> None:
        pacer.hold(seconds)  # the other requests of this pacer wait too: IB is counting us
        _tell(seconds, "IB pacing back-off")
        await (sleep or asyncio.sleep)(seconds)

    return await policy.call(fn, retry_on=PacingViolation, what=what, logger=log, sleep=backoff,
                             clock=clock or pacer.clock)
