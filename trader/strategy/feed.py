"""Market data for strategies: the bus's ticks as one shared Rx stream per instrument, and its bars.

``TickFeed.ticks(key)`` is the Observable of ``tick.<source>.<key>`` messages
turned into :class:`Tick` records; ``TickFeed.bars(key, seconds)`` is that
stream through :func:`aggregate_bars`. Both are shared: every
strategy on an instrument hangs off one bus subscription and one bar
aggregator per bar size, and the subscription ends when the last strategy
lets go. A payload that is not a tick of the right instrument, or a tick
outside sane bounds (trader.strategy.sanity: non-finite or absurd prices and
sizes, a price <= 0 where one cannot be, a jump of an order of magnitude), is
counted and dropped here, so nothing downstream sees it and no stream ends
because of it.

trader_service publishes each update as the ticker's whole state (a dict keyed
like :class:`Tick`), so the last trade's size comes again with every quote.
The feed turns the session's cumulative ``volume`` into the size traded since
the previous update (``last_size``, None when nothing traded), which is what
the bar aggregator sums.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable

from trader.domain import Bar, Tick
from trader.errors import TraderError
from trader.messaging.pubsub import Message, Subscriber
from trader.peer_text import LogThrottle, clip
from trader.strategy.bars import BarAggregator, aggregate_bars
from trader.strategy.sanity import TickGuard

__all__ = ["TickFeed"]

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)  # any local process can publish: bound what it makes us log

TICK_FIELDS = ("instrument", "time", "bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume")
_fields = itemgetter(*TICK_FIELDS)


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
        self._observers: dict[str, list[abc.ObserverBase[Tick]]] = {}
        self._links: dict[str, abc.DisposableBase] = {}
        self._bars: dict[tuple[str, int], Observable[Bar]] = {}
        #: The bar aggregators by (key, seconds), for their counts of ticks, bars and drops.
        self.aggregators: dict[tuple[str, int], BarAggregator] = {}

    def topic(self, key: str) -> str:
        return f"tick.{self.source}.{key}"

    def ticks(self, key: str) -> Observable[Tick]:
        """Return the shared Observable of ``key``'s ticks."""
        stream = self._ticks.get(key)
        if stream is None:
            stream = self._ticks[key] = reactivex.create(partial(self._subscribe, key))
        return stream

    def _subscribe(self, key: str, observer: abc.ObserverBase[Tick], scheduler: Any = None) -> abc.DisposableBase:
        # Shared by hand rather than with ops.share(): a Subject and its ref-count add four observer
        # layers to every tick, and this is the hot path. One bus subscription per key, fanned out.
        observers = self._observers.setdefault(key, [])
        if not observers:
            def on_error(exc: Exception) -> None:
                for o in list(observers):
                    o.on_error(exc)

            def on_completed() -> None:
                for o in list(observers):
                    o.on_completed()

            self._links[key] = self.subscriber.observe(self.topic(key)).subscribe(
                self._receiver(key, observers), on_error, on_completed)
        observers.append(observer)

        def dispose() -> None:
            if observer in observers:
                observers.remove(observer)
                if not observers:
                    self._links.pop(key).dispose()

        return Disposable(dispose)

    def _receiver(self, key: str, observers: list[abc.ObserverBase[Tick]]) -> Callable[[Message], None]:
        topic = self.topic(key)
        check = TickGuard(key).check
        previous: float | None = None  # the session volume at the last good update

        def on_message(message: Message) -> None:
            nonlocal previous
            payload = message.payload
            if message.topic != topic:
                self._bad(message.topic, payload, "a topic below the instrument's")
                return
            try:
                if type(payload) is dict and len(payload) == 9:  # trader_service's ticks: every field, fast
                    values = _fields(payload)
                else:
                    get = payload.get if isinstance(payload, dict) else partial(getattr, payload)
                    values = tuple(get(name, None) for name in TICK_FIELDS)
                volume = values[8]
                if volume is not None:
                    traded = volume - previous if previous is not None and volume > previous else None
                    values = (*values[:7], traded, volume)
                tick = Tick(*values)
            except (TypeError, KeyError, AttributeError, TraderError) as exc:
                self._bad(topic, payload, str(exc))
                return
            insane = check(tick)
            if insane is not None:
                self._bad(topic, payload, insane)
                return
            if volume is not None:
                previous = volume
            for observer in observers:
                try:
                    observer.on_next(tick)
                except Exception:  # one consumer's bug must not starve the others
                    log.exception("a consumer of %s raised; the tick is dropped for it", topic)

        return on_message

    def bars(self, key: str, seconds: int) -> Observable[Bar]:
        """Return the shared Observable of ``key``'s bars of ``seconds``."""
        stream = self._bars.get((key, seconds))
        if stream is None:
            aggregator = self.aggregators[(key, seconds)] = aggregate_bars(key, seconds, scheduler=self.scheduler,
                                                                           grace=self.grace)
            stream = self._bars[(key, seconds)] = self.ticks(key).pipe(aggregator, ops.share())
        return stream

    def _bad(self, topic: str, payload: Any, reason: str) -> None:
        self.bad_ticks += 1
        _throttle.log(logging.WARNING, "bad tick", "dropped a bad tick on %s (%d so far): %s (%s)", clip(topic),
                      self.bad_ticks, clip(reason, 200), type(payload).__name__)
