"""Pub/sub on the bus: a publisher, and a subscriber that exposes Rx Observables per topic.

Framing: one ZeroMQ frame per message, ``topic + b"\\0" + msgpack payload``.
DESIGN.md sketches ``[topic, payload]`` multipart; a single frame carries
about twice the messages per second through pyzmq (multipart costs a second
send/recv call per message), and ZeroMQ's prefix subscription still works on
the topic bytes at the start of the frame. Topics are dotted and hierarchical:
``observe("tick.sim")`` sees ``tick.sim`` and ``tick.sim.AAPL`` but not
``tick.simx``; ``observe("")`` sees everything. With ``curve`` keys both
connect as CURVE clients of the proxy; without, the endpoint must be on
loopback (:mod:`trader.messaging.loopback`).
"""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple

import reactivex
import zmq
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from trader.errors import ProtocolError, ValidationError
from trader.messaging import codec
from trader.messaging.curve import ClientKeys, secure_client
from trader.messaging.drain import Drainer
from trader.messaging.loopback import require_protected
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)

SEPARATOR = b"\x00"
TOPIC_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
MAX_TOPIC = 256  # bytes: the platform's topics are short dotted names; a longer one is a peer's garbage
MAX_ROUTES = 10_000  # cached topic routes: at most MAX_TOPIC bytes each
HWM = 200_000


class Message(NamedTuple):
    """One message from the bus: its topic and its decoded payload."""

    topic: str
    payload: Any


# NamedTuple's generated __new__ is a Python frame; tuple.__new__ builds the same object in C.
_new_message = tuple.__new__


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a dotted name of ``[A-Za-z0-9_-]`` segments, else raise."""
    if not isinstance(topic, str) or not TOPIC_RE.match(topic):
        raise ValidationError(f"invalid topic {topic!r}: use dotted segments of [A-Za-z0-9_-]")
    return topic


def topic_matches(pattern: str, topic: str) -> bool:
    """Return whether ``topic`` is ``pattern`` or below it in the dotted hierarchy."""
    return not pattern or topic == pattern or topic.startswith(pattern + ".")


class Publisher:
    """Publish messages to the bus (connects a PUB socket to the proxy's XSUB side).

    Sending never blocks: past the high-water mark ZeroMQ drops, which is the
    right trade for market data. A publisher belongs to one thread.
    """

    def __init__(
        self, endpoint: str, *, context: zmq.Context | None = None, curve: ClientKeys | None = None
    ) -> None:
        require_protected(endpoint, "bus publisher connecting to", protected=curve is not None)
        self.endpoint = endpoint
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 500)
        self._sock.setsockopt(zmq.SNDHWM, HWM)
        if curve is not None:
            secure_client(self._sock, curve)
        self._sock.connect(endpoint)
        self._topics: dict[str, bytes] = {}

    def publish(self, topic: str, payload: Any) -> None:
        """Encode ``payload`` and publish it under ``topic``."""
        prefix = self._topics.get(topic)
        if prefix is None:
            prefix = check_topic(topic).encode() + SEPARATOR
            if len(self._topics) < 100_000:
                self._topics[topic] = prefix
        self._sock.send(prefix + codec.encode(payload), copy=True)

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if not self._sock.closed:
            self._sock.close()


class Subscriber:
    """Receive bus messages on the running asyncio loop and hand them out as Rx streams.

    ``observe(pattern)`` returns a cold Observable: each subscription adds a
    ZeroMQ subscription for the pattern and removes it when disposed. A frame
    that cannot be decoded is logged and dropped; an observer that raises is
    logged and the others still get the message, so one bad tick ends nothing.
    """

    def __init__(
        self, endpoint: str, *, context: zmq.Context | None = None, curve: ClientKeys | None = None
    ) -> None:
        require_protected(endpoint, "bus subscriber connecting to", protected=curve is not None)
        self.endpoint = endpoint
        self._ctx = context or zmq.Context.instance()
        self._curve = curve
        self._sock: zmq.Socket | None = None
        self._drainer: Drainer | None = None
        self._routes: dict[str, list[abc.ObserverBase[Message]]] = {}
        self._cache: dict[bytes, tuple[str, list[abc.ObserverBase[Message]]]] = {}
        self.received = 0
        self.dropped = 0

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Connect and start reading on the running loop; call from a coroutine."""
        if self._sock is not None:
            return
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, HWM)
        if self._curve is not None:
            secure_client(sock, self._curve)
        sock.connect(self.endpoint)
        for pattern in self._routes:
            sock.setsockopt(zmq.SUBSCRIBE, pattern.encode())
        self._sock = sock
        self._drainer = Drainer(sock, self._dispatch)
        self._drainer.start()

    def close(self) -> None:
        """Stop reading, complete every stream and close the socket; safe to call twice."""
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        if self._drainer is not None:
            self._drainer.stop()
        sock.close()
        routes, self._routes = self._routes, {}
        self._cache.clear()
        for observers in routes.values():
            for observer in list(observers):
                observer.on_completed()

    # -- streams -----------------------------------------------------------
    def observe(self, pattern: str = "") -> Observable[Message]:
        """Return an Observable of every message whose topic is ``pattern`` or below it."""
        if pattern:
            check_topic(pattern)

        def subscribe(observer: abc.ObserverBase[Message], scheduler: Any = None) -> abc.DisposableBase:
            self._add(pattern, observer)
            return Disposable(lambda: self._remove(pattern, observer))

        return reactivex.create(subscribe)

    def _add(self, pattern: str, observer: abc.ObserverBase[Message]) -> None:
        observers = self._routes.setdefault(pattern, [])
        if not observers and self._sock is not None:
            self._sock.setsockopt(zmq.SUBSCRIBE, pattern.encode())
        observers.append(observer)
        self._cache.clear()

    def _remove(self, pattern: str, observer: abc.ObserverBase[Message]) -> None:
        observers = self._routes.get(pattern)
        if not observers or observer not in observers:
            return
        observers.remove(observer)
        if not observers:
            del self._routes[pattern]
            if self._sock is not None:
                self._sock.setsockopt(zmq.UNSUBSCRIBE, pattern.encode())
        self._cache.clear()

    def _route(self, raw_topic: bytes) -> tuple[str, list[abc.ObserverBase[Message]]] | None:
        """Return (topic, observers) for a frame's topic bytes; None if it is not a valid topic.

        Only a valid topic (dotted segments, at most ``MAX_TOPIC`` bytes) is
        cached, in at most ``MAX_ROUTES`` entries: anyone on the host can
        publish, and a cache of whatever topics they invent would be theirs to
        fill (2 MB topics, each kept, held 767 MB). One nobody listens to is
        cached too: the prefix subscription lets such topics through often.
        """
        route = self._cache.get(raw_topic)
        if route is None:
            if len(raw_topic) > MAX_TOPIC:
                return None
            try:
                topic = raw_topic.decode("ascii")
            except UnicodeDecodeError:
                return None
            if not TOPIC_RE.match(topic):
                return None
            found = [o for p, obs in self._routes.items() if topic_matches(p, topic) for o in obs]
            if len(self._cache) >= MAX_ROUTES:
                self._cache.clear()
            route = self._cache[raw_topic] = (topic, found)
        return route

    # -- hot path ------------------------------------------------------------
    def _dispatch(self, data: bytes) -> None:
        # The hot path: one call per frame. Routes are cached by the topic's
        # bytes, and the payload is decoded only if someone listens.
        self.received += 1
        sep = data.find(SEPARATOR)
        if sep <= 0:
            self._drop("frame has no topic separator", data)
            return
        raw_topic = data[:sep]
        route = self._cache.get(raw_topic) or self._route(raw_topic)
        if route is None:
            self._drop("invalid topic (not dotted ASCII segments, or too long)", data)
            return
        topic, observers = route
        if not observers:
            return
        try:
            payload = codec.decode(data[sep + 1:])
        except ProtocolError as exc:
            self._drop(f"undecodable payload on {topic}: {exc}", data)
            return
        message = _new_message(Message, (topic, payload))
        for observer in observers:
            try:
                observer.on_next(message)
            except Exception:
                log.exception("observer of %s raised; message dropped for it", topic)

    def _drop(self, reason: str, data: bytes) -> None:
        self.dropped += 1
        # Logged at a bounded rate: a flood of garbage must not flood the log too.
        _throttle.log(logging.WARNING, "bad frame", "dropped bus frame (%d so far): %s; first bytes %s", self.dropped,
                      clip(reason, 200), clip(data[:32]))

