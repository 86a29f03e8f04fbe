"""RPC over DEALER -> ROUTER: one envelope, a correlation id, deadlines and typed errors.

Request ``{id, method, args, kwargs, deadline}`` (deadline: absolute epoch
seconds, or None); reply ``{id, ok: true, result}`` or ``{id, ok: false, error:
{type, message, code}}``. A server calls only the methods in its explicit
``MethodRegistry``, with the argument types its signature declares (checked
strictly: ``"false"`` is not a bool); a remote ``TraderError`` arrives on the
caller's side as the same class (see ``trader.errors.error_from_wire``). Every
frame is one msgpack message through the platform codec: nothing is ever
unpickled. What the server logs about a bad request quotes at most
``peer_text.CLIP`` characters of it, at most one line per error kind every
few seconds.

The sockets are :mod:`trader.messaging.zmtp`'s: the ZeroMQ wire protocol spoken
from the service's own loop, without libzmq's I/O threads (a round trip wakes
two threads instead of six), and open to any ZeroMQ DEALER or REQ peer. With
``security.mode: curve`` they are pyzmq's instead (:mod:`trader.messaging.curve_sockets`):
CURVE-encrypted, and only allowed client keys get through. Which one is the
caller's ``curve`` keys' choice; the envelope, the registry and the semantics
are the same. Without keys, an endpoint beyond loopback is refused
(:mod:`trader.messaging.loopback`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import traceback
from typing import Any

from trader.errors import (
    FrameTooLarge,
    InternalError,
    Overloaded,
    ProtocolError,
    Timeout,
    TraderError,
    error_from_wire,
)
from trader.messaging import codec
from trader.messaging.curve import ClientKeys, ServerKeys
from trader.messaging.curve_sockets import CurveDealer, CurvePeer, CurveRouter
from trader.messaging.loopback import require_protected
from trader.messaging.methods import MethodRegistry, bad_arguments
from trader.messaging.zmtp_sockets import (
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_OUTBOUND,
    DEFAULT_WRITE_HIGH_WATER,
    SERVER_TIMEOUTS,
    Dealer,
    Peer,
    RouterServer,
    Timeouts,
)
from trader.peer_text import LogThrottle, clip, cut

__all__ = ["MethodRegistry", "RpcClient", "RpcServer"]

log = logging.getLogger(__name__)
_throttle = LogThrottle(log)  # what does not concern one caller: one line per kind every 5 s
# A refused request: one line per kind and caller every 5 s (one client's flood does not hide another's
# first error), and at most 20 per kind in all (many callers do not multiply the lines without end).
_per_caller = LogThrottle(max_keys=1024)
_errors = LogThrottle(log, burst=20)

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_FRAME = 8 * 1024 * 1024
MAX_REPLY = 256 * 1024 * 1024  # a client's ceiling for one reply (history can be large)
# Where a reply goes: the caller's connection, and the delimiter frames a REQ-style caller sent first.
Route = tuple[Peer | CurvePeer, list[bytes]]
_STR = {str}
MAX_ID = 256  # characters of a request id; a longer one is refused, not echoed back


def _check_request(request: Any) -> tuple[Any, str, list[Any], dict[str, Any], float | None]:
    if not isinstance(request, dict):
        raise ProtocolError("request is not a mapping")
    rid = request.get("id")
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise ProtocolError("request id must be a string or an integer")
    if isinstance(rid, str) and len(rid) > MAX_ID:
        raise ProtocolError(f"request id longer than {MAX_ID} characters")
    method = request.get("method")
    args = request.get("args", [])
    kwargs = request.get("kwargs", {})
    deadline = request.get("deadline")
    if not isinstance(method, str):
        raise ProtocolError("method must be a string", id=rid)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ProtocolError("args must be a list and kwargs a mapping", id=rid)
    if not set(map(type, kwargs)) <= _STR:  # msgpack keys: str, or another plain type
        raise ProtocolError("kwargs keys must be strings", id=rid)
    if deadline is not None and (not isinstance(deadline, (int, float)) or isinstance(deadline, bool)):
        raise ProtocolError("deadline must be a number or null", id=rid)
    return rid, method, args, kwargs, deadline


class RpcServer:
    """Serve a ``MethodRegistry`` on a ROUTER endpoint from the running asyncio loop.

    Sync methods run inline; async ones run as tasks so calls proceed
    concurrently, at most ``max_inflight`` at once (past that: ``Overloaded``;
    the registry's ``urgent`` methods run anyway).
    Garbage, unknown methods and bad arguments get typed error replies; a
    request whose deadline has passed is answered with ``Timeout`` unexecuted.
    A request over ``max_frame_bytes`` gets ``FrameTooLarge``; one over four
    times that closes its connection before it is read, as does one that
    would take the bytes of unfinished requests held across connections past
    ``max_buffered_bytes``. Past ``max_connections`` open connections, a new
    one evicts the longest idle; ``timeouts`` close dead, idle and stalled
    connections; replies a peer leaves unread hold back its requests, and
    past ``max_outbound_bytes`` across connections the peer leaving the most
    unread is dropped (see ``zmtp_sockets.Peer``). With ``curve`` keys the
    socket is a CURVE ROUTER (libzmq's: it disconnects a sender over four
    times the limit, takes its heartbeat interval and timeout and its
    handshake time from ``timeouts``, and has no connection limit or budgets
    of its own: only allowed keys complete a handshake); without, the
    endpoint must be on loopback, else ConfigError.
    """

    def __init__(
        self,
        endpoint: str,
        registry: MethodRegistry,
        *,
        max_inflight: int = 256,
        max_frame_bytes: int = DEFAULT_MAX_FRAME,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        curve: ServerKeys | None = None,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED,
        timeouts: Timeouts = SERVER_TIMEOUTS,
        max_outbound_bytes: int = DEFAULT_MAX_OUTBOUND,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        require_protected(endpoint, "RPC server binding", protected=curve is not None)
        self.registry = registry
        self.max_inflight = max_inflight
        self.max_frame_bytes = max_frame_bytes
        self._router: RouterServer | CurveRouter
        if curve is not None:
            self._router = CurveRouter(endpoint, self._on_frames, keys=curve, max_message_bytes=max_frame_bytes * 4,
                                       timeouts=timeouts)
        else:
            self._router = RouterServer(endpoint, self._on_frames, max_message_bytes=max_frame_bytes * 4,
                                        max_connections=max_connections, max_buffered_bytes=max_buffered_bytes,
                                        timeouts=timeouts, max_outbound_bytes=max_outbound_bytes,
                                        write_high_water=write_high_water)
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.endpoint = endpoint
        self.served = 0
        self.errors = 0

    async def start(self) -> None:
        """Bind and start serving; port 0 binds an ephemeral port (see ``endpoint``)."""
        if self._started:
            return
        await self._router.start()
        self._started = True
        self.endpoint = self._router.endpoint
        log.info("RPC serving %d methods on %s", len(self.registry.names()), self.endpoint)

    async def close(self) -> None:
        """Stop serving, cancel calls in flight and close the connections; safe to call twice."""
        if not self._started:
            return
        self._started = False
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._router.close()

    def _on_frames(self, peer: Peer | CurvePeer, frames: list[bytes]) -> None:
        # [(empty delimiter from REQ-style peers)..., payload]; the reply goes back on the same connection
        envelope, payload = (peer, frames[:-1]), frames[-1]
        rid: Any = None
        method: Any = "?"
        try:
            if len(payload) > self.max_frame_bytes:
                raise FrameTooLarge(f"request of {len(payload)} bytes exceeds {self.max_frame_bytes}")
            request = codec.decode(payload)
            rid, method, args, kwargs, deadline = _check_request(request)
            if deadline is not None and time.time() > deadline:
                raise Timeout(f"deadline of {clip(method)} passed before it ran")
            fn, signature, is_async, check = self.registry.resolve(method)
            if check is not None:  # binds and checks the types: the call below cannot fail to bind
                check(method, args, kwargs)
            if is_async:
                if len(self._tasks) >= self.max_inflight and method not in self.registry.urgent:
                    raise Overloaded(f"{len(self._tasks)} calls in flight; retry later")
                try:  # calling a coroutine function only binds its arguments (in C, unlike Signature.bind)
                    coro = fn(*args, **kwargs)
                except TypeError as exc:
                    raise bad_arguments(method, exc) from None
                task = asyncio.get_running_loop().create_task(self._run_async(envelope, rid, method, coro))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            if check is None:  # checked before the call: a TypeError raised inside a method is not the caller's fault
                try:
                    signature.bind(*args, **kwargs)
                except TypeError as exc:
                    raise bad_arguments(method, exc) from None
            result = fn(*args, **kwargs)
        except Exception as exc:
            if rid is None and isinstance(exc, ProtocolError):
                rid = exc.details.pop("id", None)
            self._reply_error(envelope, rid, method, exc)
            return
        self._reply(envelope, {"id": rid, "ok": True, "result": result})

    async def _run_async(self, envelope: Route, rid: Any, method: str, coro: Any) -> None:
        try:
            result = await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._reply_error(envelope, rid, method, exc)
            return
        self._reply(envelope, {"id": rid, "ok": True, "result": result})

    def _reply_error(self, envelope: Route, rid: Any, method: Any, exc: Exception) -> None:
        # What is logged quotes the wire clipped (a method name can be megabytes), an exception's text too
        # (it may quote an 8 MB argument): its stack is logged, not its whole text.
        self.errors += 1
        kind = exc.code if isinstance(exc, TraderError) else type(exc).__name__
        caller = getattr(envelope[0], "address", "?")
        if _per_caller.allow(f"{kind} {caller}") is not None:
            if isinstance(exc, TraderError):
                _errors.log(logging.WARNING, kind, "RPC %s (id %s) from %s -> %s: %s", clip(method), clip(rid),
                            caller, kind, clip(str(exc), 300))
            else:
                _errors.log(logging.ERROR, kind, "RPC %s (id %s) from %s failed: %s: %s\nTraceback (most recent "
                            "call last):\n%s", clip(method), clip(rid), caller, kind, cut(str(exc)),
                            "".join(traceback.format_tb(exc.__traceback__)).rstrip())
        error = exc if isinstance(exc, TraderError) else InternalError(f"{type(exc).__name__}: {cut(str(exc))}")
        self._reply(envelope, {"id": rid, "ok": False, "error": error.to_wire()})

    def _reply(self, envelope: Route, reply: dict[str, Any]) -> None:
        if not self._started:
            return
        try:
            data = codec.encode(reply)
        except TraderError as exc:
            _throttle.log(logging.ERROR, "unencodable", "RPC reply for id %s cannot be encoded: %s",
                          clip(reply.get("id")), clip(str(exc), 300))
            data = codec.encode(
                {"id": reply.get("id"), "ok": False, "error": InternalError(f"result not encodable: {exc}").to_wire()}
            )
        self.served += 1
        peer, delimiters = envelope
        if not peer.send([*delimiters, data]):
            _throttle.log(logging.WARNING, "dropped", "RPC reply for id %s dropped: %s", clip(reply.get("id")),
                          "peer gone" if peer.closed else "peer not reading (its queue is full)")


class RpcClient:
    """Call a service's methods; many calls may be in flight at once from one client.

    The DEALER reconnects on its own, so a client survives a server restart:
    calls in flight when it died time out with ``Timeout``, calls made while
    it is down wait (queued) for it within their timeout, and a reply that
    arrives after its call timed out is dropped, never delivered to a later
    call (ids are unique per client). Create and use it on one loop. With
    ``curve`` keys it connects as a CURVE client; without, the endpoint must be
    on loopback, else ConfigError.
    """

    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT, curve: ClientKeys | None = None) -> None:
        require_protected(endpoint, "RPC client connecting to", protected=curve is not None)
        self.endpoint = endpoint
        self.timeout = timeout
        self._curve = curve
        self._dealer: Dealer | CurveDealer | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._prefix = f"{os.getpid():x}-{os.urandom(4).hex()}-"
        self._ids = itertools.count(1)
        self.stale_replies = 0

    def _connect(self) -> Dealer | CurveDealer:
        if self._dealer is None:
            if self._curve is not None:
                self._dealer = CurveDealer(self.endpoint, self._on_reply, keys=self._curve,
                                           max_message_bytes=MAX_REPLY, reconnect_ivl=0.05, reconnect_ivl_max=1.0)
            else:
                self._dealer = Dealer(self.endpoint, self._on_reply, max_message_bytes=MAX_REPLY,
                                      reconnect_ivl=0.05, reconnect_ivl_max=1.0)
            self._dealer.start()
        return self._dealer

    async def call(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` and return its result, or raise the remote error, typed.

        Raises ``Timeout`` if no reply arrives within ``timeout`` seconds (the
        client's default if None); the server skips a call whose deadline passed.
        """
        dealer = self._connect()
        timeout = self.timeout if timeout is None else timeout
        rid = f"{self._prefix}{next(self._ids)}"
        request = {"id": rid, "method": method, "args": list(args), "kwargs": kwargs,
                   "deadline": time.time() + timeout}
        data = codec.encode(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            # The timer is armed before the send, so that after it the task only waits: the server,
            # woken by the send, may take this CPU at once (see IbAdapter.place_order).
            async with asyncio.timeout(timeout):  # no task per call, unlike wait_for
                if dealer.send([data]):
                    return await future
            raise Timeout(f"{method}: send queue to {self.endpoint} is full")
        except TimeoutError:
            raise Timeout(f"{method}: no reply from {self.endpoint} within {timeout:g}s") from None
        finally:
            self._pending.pop(rid, None)

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            reply = codec.decode(frames[-1])
            rid = reply["id"]
        except (ProtocolError, TypeError, KeyError):
            log.warning("undecodable RPC reply from %s dropped", self.endpoint)
            return
        future = self._pending.get(rid) if isinstance(rid, str) else None
        if future is None or future.done():
            self.stale_replies += 1
            log.debug("stale RPC reply %s dropped", rid)
            return
        if reply.get("ok") is True:
            future.set_result(reply.get("result"))
        else:
            future.set_exception(error_from_wire(reply.get("error")))

    def close(self) -> None:
        """Cancel the calls in flight and close the connection; safe to call twice."""
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
        if self._dealer is not None:
            self._dealer.close()
            self._dealer = None
