"""The control API's connection guard: idle connections time out, and a full house evicts an idle one.

Without it, 300 idle TCP connections under ``ulimit -n 256`` left pycron at
its descriptor limit: an authorised ``GET /status`` went unanswered for 20 s
and more, and pycron could not create a job's output pipes or fork, so it
could not restart jobs. Two rules keep the API and the supervisor usable:

- A connection that has not completed a request within ``IDLE_TIMEOUT``
  seconds is closed, and so is one idle that long between requests. aiohttp's
  ``keepalive_timeout`` does both: it is armed when the connection is made
  (aiohttp >= 3.10), not only after the first request.
- At most ``MAX_CONNECTIONS`` are kept. A connection beyond that closes the
  oldest ones that have no request in progress, instead of being refused: a
  flood of idle connections cannot lock out the CLI, whose request follows its
  connect at once, and pycron's descriptors stay bounded. asyncio accepts up
  to the listen backlog (``BACKLOG``) at once before any is counted, so the
  bound is MAX_CONNECTIONS + BACKLOG: 64, against the 300 the probe held open.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from trader.peer_text import LogThrottle

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32  # kept open; a flood briefly adds up to BACKLOG more (accepted in one batch)
BACKLOG = 32  # the listen backlog, also how many connections asyncio accepts at once
IDLE_TIMEOUT = 5.0  # seconds a connection may wait for its first or next request

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    """Wrap an aiohttp ``Server`` as a protocol factory that keeps at most ``limit`` connections.

    Give ``middleware`` to the application (first), so the guard knows which
    connections have a request in progress: those are never evicted.
    """

    def __init__(self, server: web.Server | None = None, limit: int = MAX_CONNECTIONS) -> None:
        self._server = server
        self.limit = limit
        self._busy: set[RequestHandler] = set()  # the middleware removes what it adds
        self._throttle = LogThrottle(burst=3, interval=60.0)
        #: Connections closed to make room for a newer one.
        self.evicted = 0

    def attach(self, server: web.Server) -> None:
        """Guard ``server`` (the one an ``AppRunner`` made, once set up)."""
        self._server = server

    def __call__(self) -> RequestHandler:
        """Return the handler for a new connection, first closing an idle one if the house is full."""
        assert self._server is not None, "attach() a server first"
        self._trim(self.limit - 1)  # room for this one
        return self._server()

    def _trim(self, keep: int) -> None:
        """Close the oldest connections with no request in progress until at most ``keep`` are open."""
        assert self._server is not None
        # A closed connection stays listed until its task ends: count (and close) the open ones,
        # oldest first (the server lists them in the order they were made).
        open_now = [h for h in self._server.connections if h.transport is not None]
        excess = len(open_now) - keep
        for handler in open_now:
            if excess <= 0:
                break
            if handler not in self._busy:
                handler.force_close()
                self.evicted += 1
                excess -= 1
        closed_some = excess < len(open_now) - keep
        if closed_some and self._throttle.allow("evicted") is not None:
            log.warning("control API: %d connections open; closed the oldest idle ones "
                        "(%d closed so far)", len(open_now), self.evicted)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the request's connection busy while its handler runs."""
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)


async def listen(
    guard: ConnectionGuard, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> asyncio.Server:
    """Listen on ``host:port`` with ``guard`` as the protocol factory; raise OSError if the address is taken."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard, host, port, ssl=ssl_context, reuse_address=True, backlog=BACKLOG)
