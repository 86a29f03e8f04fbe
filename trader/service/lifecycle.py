"""Service lifecycle: the states a service passes through and the legal moves between them."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from trader.errors import Conflict

S = TypeVar("S", bound=enum.Enum)

log = logging.getLogger(__name__)


class ServiceState(str, enum.Enum):
    """Where a service is in its life; published on every heartbeat."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


TRANSITIONS: dict[ServiceState, frozenset[ServiceState]] = {
    ServiceState.STARTING: frozenset({ServiceState.RUNNING, ServiceState.DEGRADED, ServiceState.STOPPING}),
    ServiceState.RUNNING: frozenset({ServiceState.DEGRADED, ServiceState.STOPPING}),
    ServiceState.DEGRADED: frozenset({ServiceState.RUNNING, ServiceState.STOPPING}),
    ServiceState.STOPPING: frozenset({ServiceState.STOPPED}),
    ServiceState.STOPPED: frozenset(),
}


def check_move(name: str, table: Mapping[S, frozenset[S]], current: S, to: S) -> None:
    """Raise Conflict unless ``to`` is ``current`` or a legal next state of it in ``table``.

    The one check of every state table: a service's ``TRANSITIONS`` here, a
    strategy's in ``trader.strategy.runner``.
    """
    if to != current and to not in table[current]:
        raise Conflict(f"{name}: illegal state change {current.value} -> {to.value}")


class Lifecycle:
    """A service's current state, changed only along ``TRANSITIONS``.

    Moving to the state it is already in is a no-op, so start and stop paths
    can be safely taken twice; any other illegal move raises ``Conflict``.
    """

    def __init__(self, name: str, on_change: Callable[[ServiceState, str], None] | None = None) -> None:
        self.name = name
        self.state = ServiceState.STARTING
        self.reason = ""
        self.since = time.monotonic()
        self._on_change = on_change

    def can_move(self, to: ServiceState) -> bool:
        """Return whether ``to`` is the current state or a legal next one."""
        return to == self.state or to in TRANSITIONS[self.state]

    def move(self, to: ServiceState, reason: str = "") -> bool:
        """Move to ``to``; return False if already there, raise Conflict if illegal."""
        if to == self.state:
            return False
        check_move(self.name, TRANSITIONS, self.state, to)
        log.info("%s: %s -> %s%s", self.name, self.state.value, to.value, f" ({reason})" if reason else "")
        self.state, self.reason, self.since = to, reason, time.monotonic()
        if self._on_change is not None:
            self._on_change(to, reason)
        return True
