"""How much of tws-sim one client may take: connections, time to finish what it began, buffered bytes.

A TWS client sends small frames (a placeOrder is under 2 KB) and sends each
one whole, so a connection that holds a large half-sent frame, takes longer
than a few seconds to finish one, or never completes its handshake is broken
or hostile: it is dropped, and the other clients keep trading. The limits are
the ``connections`` section of configs/sim.yaml.
"""

from __future__ import annotations

from pydantic import Field

from trader.config import StrictModel
from trader.sim.wire import MAX_FRAME_BYTES

__all__ = ["BufferBudget", "ConnectionLimits"]

MIB = 1024 * 1024


class ConnectionLimits(StrictModel):
    """The bounds every client connection is held to."""

    max_connections: int = Field(
        64, ge=1, le=4096,
        description="open connections at most; at the limit a new one displaces the oldest that has not "
                    "sent startApi, else it is refused (TWS itself serves 32 clients)")
    handshake_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds from connecting to startApi: longer and the connection is dropped")
    frame_timeout: float = Field(
        10.0, gt=0, le=300,
        description="seconds to finish a frame once its first byte arrived: longer and the connection is dropped")
    max_frame_bytes: int = Field(
        MIB, ge=1024, le=MAX_FRAME_BYTES,
        description="largest frame a client may announce; a larger length prefix drops the connection")
    max_buffered_bytes: int = Field(
        16 * MIB, ge=1024, le=1024 * MIB,
        description="bytes of unfinished frames held for all connections together; past it the connection "
                    "holding the most is dropped")
    max_write_buffer: int = Field(
        32 * MIB, ge=64 * 1024, le=1024 * MIB,
        description="bytes queued to a client that does not read its messages; past it the client is dropped "
                    "(ample for a client that falls behind a market stepped 1000 times a second, as the benchmark's)")


class BufferBudget:
    """The bytes of unfinished frames each connection holds, counted against one total."""

    __slots__ = ("_held", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._held: dict[object, int] = {}

    def hold(self, owner: object, nbytes: int) -> object | None:
        """Record that ``owner`` now holds ``nbytes``; return the owner to drop if the total is over the limit.

        The one to drop is the largest holder, which is the stalled or hostile
        connection rather than whichever client happened to cross the line.
        """
        self.used += nbytes - self._held.get(owner, 0)
        if nbytes:
            self._held[owner] = nbytes
        else:
            self._held.pop(owner, None)
        if self.used <= self.limit:
            return None
        return max(self._held, key=self._held.__getitem__)

    def release(self, owner: object) -> None:
        """Forget ``owner`` and what it held."""
        self.used -= self._held.pop(owner, 0)

    def held(self, owner: object) -> int:
        """Return how many bytes ``owner`` holds."""
        return self._held.get(owner, 0)
