"""Names the running stack knows, for the REPL's completion: strategies, open order ids, jobs, streamed keys.

Each kind is fetched from its service (strategy_service's ``list``,
trader_service's ``orders`` and ``subscriptions``, pycron's jobs) in a
background thread and kept for ``ttl`` seconds. A completion never waits
longer than ``wait`` for a fetch: it gets what is cached (nothing the first
time, if the service is slow) and the fresh names on the next keystroke. A
service that is down answers at once (``ensure_listening`` refuses the
connection) and is remembered as "no names" until the entry goes stale, so a
stopped stack costs the prompt nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from trader.errors import TraderError

log = logging.getLogger(__name__)

TTL = 5.0  # seconds a fetched list is used before it is fetched again
WAIT = 0.3  # the longest a completion waits for a fetch under way
FETCH_TIMEOUT = 1.0  # each service call's own deadline

Fetch = Callable[[], Iterable[str]]


class LiveNames:
    """Fetch names by kind in the background, cache them ``ttl`` seconds; :meth:`get` never blocks long."""

    def __init__(self, fetchers: dict[str, Fetch], *, ttl: float = TTL, wait: float = WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetchers = fetchers
        self.ttl = ttl
        self.wait = wait
        self.clock = clock
        self._names: dict[str, tuple[float, frozenset[str]]] = {}
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> frozenset[str]:
        """Return the names of ``kind`` (empty if unknown or not fetched yet); refresh them if stale."""
        if kind not in self.fetchers:
            return frozenset()
        with self._lock:
            cached = self._names.get(kind)
            fresh = cached is not None and self.clock() - cached[0] < self.ttl
            done = self._running.get(kind)
            if not fresh and done is None:
                done = self._running[kind] = threading.Event()
                threading.Thread(target=self._fetch, args=(kind, done), daemon=True,
                                 name=f"names-{kind}").start()
        if not fresh and cached is None and done is not None:
            done.wait(self.wait)  # the first time only: later, the stale names serve meanwhile
        with self._lock:
            entry = self._names.get(kind)
        return entry[1] if entry is not None else frozenset()

    def _fetch(self, kind: str, done: threading.Event) -> None:
        try:
            names = frozenset(str(name) for name in self.fetchers[kind]())
        except (TraderError, OSError) as exc:  # the service is down or slow: no names for a while
            log.debug("no %s names: %s", kind, exc)
            names = frozenset()
        except Exception:
            log.exception("fetching %s names failed", kind)
            names = frozenset()
        with self._lock:
            self._names[kind] = (self.clock(), names)
            self._running.pop(kind, None)
        done.set()


def stack_fetchers(cli: Any) -> dict[str, Fetch]:
    """Return the fetchers of a ``CliContext``'s stack: strategies, open orders, jobs and streamed keys."""
    from trader.cli.jobs import job_names

    def strategies() -> Iterable[str]:
        result = cli.call_service("strategy_service", "list", timeout=FETCH_TIMEOUT)
        return [info["name"] for info in result["strategies"]]

    def orders() -> Iterable[str]:
        return [o.client_order_id for o in cli.call_trader("orders", open_only=True, timeout=FETCH_TIMEOUT)]

    def keys() -> Iterable[str]:
        return cli.call_trader("subscriptions", timeout=FETCH_TIMEOUT)

    return {"strategy": strategies, "order": orders, "job": lambda: job_names(cli.settings(), FETCH_TIMEOUT),
            "key": keys}
