"""pycron's HTTP control API (aiohttp): status, job start/stop/restart, shutdown; bearer token required.

Every reply is one envelope: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"type", "code", "message"}}`` with the HTTP status
taken from ``HTTP_STATUS`` by the error's code. The token is compared in
constant time and never logged; a refused request is logged as one short
line (method and path clipped), at most ``REFUSED_BURST`` a minute with a
count of those left out. A header that is not UTF-8 is just a wrong token (401);
a request aiohttp cannot parse is one short line too, as rate-limited.
Connections are bounded (``pycron.connections``): one that has not completed
a request within 5 s is closed, and beyond 32 a new one closes the oldest idle.

    GET  /status                  {profile, pid, closing, jobs: [JobStatus...]}
    POST /jobs/{name}/start       the job's status once the start settled
    POST /jobs/{name}/stop        the job's status once stopped
    POST /jobs/{name}/restart     the job's status once the start settled
    POST /shutdown                {"shutting_down": true}; jobs stop in reverse order, then pycron exits
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pycron.connections import IDLE_TIMEOUT, MAX_CONNECTIONS, ConnectionGuard, listen
from pycron.supervisor import Supervisor
from trader.errors import InternalError, NotFound, TraderError, Unauthorized, Unavailable
from trader.messaging.loopback import require_protected_host
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)

REFUSED_BURST = 5  # refused requests logged per REFUSED_INTERVAL; the rest are counted
REFUSED_INTERVAL = 60.0


class ShortHttpErrors(logging.Filter):
    """Turn aiohttp's report of a malformed request into one short line, at most ``REFUSED_BURST`` a minute.

    aiohttp logs each request it cannot parse (a line over 8 KB, garbage) as
    an ERROR with its traceback and the offending bytes, ~650 bytes a request.
    """

    def __init__(self) -> None:
        super().__init__()
        self.throttle = LogThrottle(burst=REFUSED_BURST, interval=REFUSED_INTERVAL)

    def filter(self, record: logging.LogRecord) -> bool:
        dropped = self.throttle.allow("bad request")
        if dropped is None:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        what = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
        record.msg = "malformed HTTP request refused: %s%s"
        record.args = (clip(what, 120), f" ({dropped} more not logged)" if dropped else "")
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


# The control server's own logger for what aiohttp reports about connections (not aiohttp.server).
http_log = logging.getLogger(f"{__name__}.http")
http_log.addFilter(ShortHttpErrors())

HTTP_STATUS: dict[str, int] = {
    "invalid": 400,
    "config": 400,
    "unauthorized": 401,
    "not_found": 404,
    "unknown_method": 404,
    "conflict": 409,
    "overloaded": 429,
    "internal": 500,
    "unavailable": 503,
    "timeout": 504,
}

_SUPERVISOR = web.AppKey("supervisor", Supervisor)
_SHUTDOWN: web.AppKey[Callable[[], None]] = web.AppKey("request_shutdown")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(result: Any) -> web.Response:
    """Return the success envelope."""
    return web.json_response({"ok": True, "result": result})


def error_response(exc: TraderError) -> web.Response:
    """Return the error envelope with the status mapped from the error's code."""
    return web.json_response(
        {"ok": False, "error": exc.to_wire()}, status=HTTP_STATUS.get(exc.code, 500)
    )


def presented_token(request: web.Request) -> bytes:
    """Return the ``Authorization`` header's bytes as sent (b"" if absent).

    aiohttp decodes header values as UTF-8 with surrogate escapes, so a value
    that is not UTF-8 comes back to its bytes here instead of raising.
    """
    return request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")


def _middlewares(token: str, guard: ConnectionGuard | None) -> list[Any]:
    expected = ("Bearer " + token).encode()
    # A refused request is one short line, and at most REFUSED_BURST of them per interval:
    # a flood of bad requests must not flood the log (before: the whole path, ~7 KB, each).
    throttle = LogThrottle(burst=REFUSED_BURST, interval=REFUSED_INTERVAL)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hmac.compare_digest(presented_token(request), expected):
            dropped = throttle.allow("refused")
            if dropped is not None:
                log.warning(
                    "refused %s %s from %s: missing or wrong token%s",
                    clip(request.method, 16),
                    clip(request.path, 64),
                    request.remote,
                    f" ({dropped} more refused, not logged)" if dropped else "",
                )
            return error_response(Unauthorized("missing or invalid bearer token"))
        return await handler(request)

    @web.middleware
    async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except TraderError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status == 404:
                return error_response(
                    NotFound(f"no such endpoint: {request.method} {request.path}")
                )
            return web.json_response(
                {
                    "ok": False,
                    "error": {"type": "HTTPError", "code": "invalid", "message": exc.reason},
                },
                status=exc.status,
            )
        except Exception as exc:
            log.exception("control API: %s %s failed", request.method, request.path)
            return error_response(InternalError(f"{type(exc).__name__}: {exc}"))

    # Authentication first: an unauthenticated caller learns nothing, not even which paths exist.
    # The guard before it: a request in progress keeps its connection from being evicted.
    return [*([guard.middleware] if guard else []), authenticate, envelope]


async def get_status(request: web.Request) -> web.Response:
    return ok(request.app[_SUPERVISOR].summary())


async def post_job(request: web.Request) -> web.Response:
    supervisor = request.app[_SUPERVISOR]
    name, action = request.match_info["name"], request.match_info["action"]
    operations = {
        "start": supervisor.start_job,
        "stop": supervisor.stop_job,
        "restart": supervisor.restart_job,
    }
    status = await operations[action](name)
    return ok(status.to_dict())


async def post_shutdown(request: web.Request) -> web.Response:
    request.app[_SHUTDOWN]()
    return ok({"shutting_down": True})


def create_app(
    supervisor: Supervisor,
    token: str,
    request_shutdown: Callable[[], None],
    guard: ConnectionGuard | None = None,
) -> web.Application:
    """Return the control application; ``request_shutdown`` is called by ``POST /shutdown``."""
    if not token:
        raise Unavailable("the control API needs a token")
    app = web.Application(middlewares=_middlewares(token, guard))
    app[_SUPERVISOR] = supervisor
    app[_SHUTDOWN] = request_shutdown
    app.router.add_get("/status", get_status)
    app.router.add_post("/jobs/{name}/{action:start|stop|restart}", post_job)
    app.router.add_post("/shutdown", post_shutdown)
    return app


class ControlServer:
    """Serve the control API on ``host:port`` (port 0: an ephemeral port, see ``port``).

    At most ``max_connections`` connections are kept (``pycron.connections``);
    one that has not completed a request within ``idle_timeout`` is closed.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        token: str,
        request_shutdown: Callable[[], None],
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self.guard: ConnectionGuard | None = None
        self._supervisor, self._token, self._request_shutdown = supervisor, token, request_shutdown
        if not token:
            raise Unavailable("the control API needs a token")
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Bind and serve (HTTPS with ``ssl_context``); return the bound port.

        Raise ConfigError if ``host`` is beyond loopback without ``ssl_context``
        (the bearer token would cross the network in clear), Unavailable if the
        address is taken.
        """
        require_protected_host(host, port, "pycron's control API binding", protected=ssl_context is not None)
        # The guard needs the server the runner makes, and the app needs the guard's middleware:
        # the guard is made empty-handed and given the server once the runner is set up.
        guard = ConnectionGuard(None, self._max_connections)
        app = create_app(self._supervisor, self._token, self._request_shutdown, guard)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=http_log,
                               keepalive_timeout=self._idle_timeout)
        await runner.setup()
        assert runner.server is not None
        guard.attach(runner.server)
        try:
            listener = await listen(guard, host, port, ssl_context)
        except OSError as exc:
            await runner.cleanup()
            raise Unavailable(
                f"control API cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._runner, self._listener, self.guard = runner, listener, guard
        self.port = listener.sockets[0].getsockname()[1]
        log.info("control API listening on %s://%s:%d", "https" if ssl_context else "http", host, self.port)
        return self.port

    async def close(self) -> None:
        """Stop serving; safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()  # closes the open connections, then the application
        if listener is not None:
            await listener.wait_closed()
