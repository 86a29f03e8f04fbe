"""Market data for strategies: the bus's ticks as one shared Rx stream per instrument, and its bars.

``TickFeed.ticks(key)`` is the Observable of ``tick.<source>.<key>`` messages
turned into :class:`Tick` records; ``TickFeed.bars(key, seconds)`` is that
stream through :func:`aggregate_bars`. Both are shared (``share()``): every
strategy on an instrument hangs off one bus subscription and one bar
aggregator per bar size, and the subscription ends when the last strategy
lets go. A payload that is not a tick of the right instrument is counted and
dropped here, so nothing downstream sees it and no stream ends because of it.

trader_service publishes each update as the ticker's whole state (a dict keyed
like :class:`Tick`), so the last trade's size comes again with every quote.
The feed turns the session's cumulative ``volume`` into the size traded since
the previous update (``last_size``, None when nothing traded), which is what
the bar aggregator sums.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from reactivex import Observable, abc
from reactivex import operators as ops

from trader.domain import Bar, Tick
from trader.errors import TraderError
from trader.messaging.pubsub import Message, Subscriber
from trader.strategy.bars import aggregate_bars

__all__ = ["TickFeed"]

log = logging.getLogger(__name__)


class TickFeed:
    """Shared tick and bar Observables per instrument key, from one bus subscriber."""

    def __init__(self, subscriber: Subscriber, *, source: str = "ib", scheduler: abc.SchedulerBase | None = None,
                 grace: float = 0.25) -> None:
        self.subscriber = subscriber
        self.source = source
        self.scheduler = scheduler
        self.grace = grace
        self.bad_ticks = 0
        self._ticks: dict[str, Observable[Tick]] = {}
        self._bars: dict[tuple[str, int], Observable[Bar]] = {}

    def topic(self, key: str) -> str:
        return f"tick.{self.source}.{key}"

    def ticks(self, key: str) -> Observable[Tick]:
        """Return the shared Observable of ``key``'s ticks."""
        stream = self._ticks.get(key)
        if stream is None:
            topic = self.topic(key)

            previous: list[float | None] = [None]  # the session volume at the last update

            def as_tick(message: Message) -> Tick | None:
                payload = message.payload
                if message.topic != topic:
                    self._bad(message.topic, payload, "topic below the instrument's")
                    return None
                try:
                    tick = payload if isinstance(payload, Tick) else Tick(**payload)
                except (TypeError, TraderError) as exc:
                    self._bad(topic, payload, str(exc))
                    return None
                if tick.volume is None:
                    return tick
                last, previous[0] = previous[0], tick.volume
                traded = tick.volume - last if last is not None and tick.volume >= last else None
                return replace(tick, last_size=traded or None)

            stream = self._ticks[key] = self.subscriber.observe(topic).pipe(
                ops.map(as_tick), ops.filter(lambda t: t is not None), ops.share())
        return stream  # type: ignore[return-value]

    def bars(self, key: str, seconds: int) -> Observable[Bar]:
        """Return the shared Observable of ``key``'s bars of ``seconds``."""
        stream = self._bars.get((key, seconds))
        if stream is None:
            stream = self._bars[(key, seconds)] = self.ticks(key).pipe(
                aggregate_bars(key, seconds, scheduler=self.scheduler, grace=self.grace), ops.share())
        return stream

    def _bad(self, topic: str, payload: Any, reason: str) -> None:
        self.bad_ticks += 1
        if self.bad_ticks <= 10 or self.bad_ticks % 10_000 == 0:
            log.warning("dropped a bad tick on %s (%d so far): %s (%s)", topic, self.bad_ticks, reason,
                        type(payload).__name__)
