"""CURVE keys: loaded from the settings, applied to pyzmq sockets, clients authorised through ZAP.

A server socket (the RPC ROUTER, the bus's XSUB and XPUB) gets the server's
secret key and a ZAP domain of its own; a client socket (DEALER, PUB, SUB)
gets its own key pair and the server's public key. libzmq asks the ZAP
handler of the socket's context about every CURVE handshake; here that is one
``zmq.auth.ThreadAuthenticator`` per context, started before the first server
binds (a server bound while no handler listens would accept any key), which
answers each domain from that server's allowed keys. A thread rather than
the asyncio authenticator: it serves the bus proxy (whose sockets live on a
thread of their own) as well as the RPC, on whatever loop a service runs,
and a handshake is answered even while that loop is busy. A client whose key is
not allowed, or who does not know the server's public key, never completes
the handshake: it cannot send a request nor receive a frame, and the server
serves the others.
"""

from __future__ import annotations

import itertools
import logging
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from trader.config import CurveKeySettings, Settings
from trader.errors import ConfigError
from trader.messaging.zmtp_limits import Timeouts
from trader.peer_text import LogThrottle

log = logging.getLogger(__name__)
_throttle = LogThrottle(log, burst=10, interval=60.0)

HANDSHAKE_TIMEOUT = 10.0  # seconds: a connection that has not finished its handshake by then is closed
#: The bus's liveness: a ZMTP PING every 5 s of silence, and a peer silent for 20 s is dropped (well under a
#: minute). The RPC's CURVE sockets pass their own, from the ``rpc_*`` settings.
BUS_TIMEOUTS = Timeouts(heartbeat_ivl=5.0, heartbeat_timeout=20.0)
ZAP_BIND_ATTEMPTS = 200


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """What a CURVE server socket needs: its key pair and the client keys it accepts (raw 32 bytes each)."""

    public: bytes
    secret: bytes = field(repr=False)
    allowed: frozenset[bytes] = field(default_factory=frozenset, repr=False)


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What a CURVE client socket needs: its key pair and the server's public key (raw 32 bytes each)."""

    public: bytes
    secret: bytes = field(repr=False)
    server_public: bytes


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """The keys this process binds and connects with; both None when ``security.mode`` is none."""

    server: ServerKeys | None = None
    client: ClientKeys | None = None

    @classmethod
    def none(cls) -> CurveKeys:
        """Return the keys of a process without CURVE (loopback only)."""
        return cls()

    @classmethod
    def from_settings(cls, settings: Settings, *, need_server: bool = False) -> CurveKeys:
        """Load the keys the settings name; raise ConfigError saying what is missing or unreadable.

        The client pair is always needed in curve mode (every process publishes
        or calls); the server's secret key only where ``need_server`` (a process
        that binds). Without it, ``server`` is None.
        """
        security = settings.security
        if not security.curve:
            return cls.none()
        server_public, server_secret = _load_pair(settings, security.server, "security.server")
        if server_public is None:
            raise ConfigError(
                "security.mode is curve but the server's public key is not set: set security.server.key_file "
                "(NAME.key_secret where the servers run, NAME.key elsewhere) or TRADER_SECURITY__SERVER__PUBLIC_KEY; "
                "`trader keys generate` writes a pair"
            )
        if security.client.configured:
            client_public, client_secret = _load_pair(settings, security.client, "security.client")
        else:  # one host: the server's pair is the client's too
            client_public, client_secret = server_public, server_secret
        if client_public is None or client_secret is None:
            raise ConfigError(
                "security.mode is curve but this host has no client secret key: set security.client.key_file "
                "(a NAME.key_secret from `trader keys generate`) or TRADER_SECURITY__CLIENT__SECRET_KEY"
            )
        client = ClientKeys(client_public, client_secret, server_public)
        server = None
        if server_secret is not None:
            allowed = {client_public, *(_z85(key) for key in security.allowed_clients)}
            if security.allowed_clients_dir is not None:
                allowed |= _load_directory(settings.path(security.allowed_clients_dir))
            server = ServerKeys(server_public, server_secret, frozenset(allowed))
        elif need_server:
            raise ConfigError(
                "security.mode is curve but the server's secret key is not set, and this process binds: set "
                "security.server.key_file to the NAME.key_secret that `trader keys generate` wrote, or "
                "TRADER_SECURITY__SERVER__SECRET_KEY"
            )
        return cls(server, client)


def _z85(key: str) -> bytes:
    return z85.decode(key.encode("ascii"))


def _load_pair(settings: Settings, keys: CurveKeySettings, where: str) -> tuple[bytes | None, bytes | None]:
    """Return (public, secret) in Z85 bytes from a certificate file and inline keys (inline wins)."""
    public: bytes | None = None
    secret: bytes | None = None
    if keys.key_file is not None:
        path = settings.path(keys.key_file)
        try:
            public, secret = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}.key_file: cannot read a CURVE certificate from {path}: {exc}") from None
        if secret is not None and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{where}.key_file: {path} holds a secret key and others may read it "
                              f"(chmod 600 {path})")
    if keys.secret_key is not None:
        secret = keys.secret_key.get_secret_value().encode("ascii")
    if keys.public_key is not None:
        public = keys.public_key.encode("ascii")
    elif secret is not None and public is None:
        public = zmq.curve_public(secret)
    if public is not None and secret is not None and zmq.curve_public(secret) != public:
        raise ConfigError(f"{where}: the public key does not belong to the secret key")
    try:
        return (None if public is None else z85.decode(public),
                None if secret is None else z85.decode(secret))
    except ValueError as exc:
        raise ConfigError(f"{where}: not a Z85 CURVE key: {exc}") from None


def _load_directory(directory: Path) -> set[bytes]:
    if not directory.is_dir():
        raise ConfigError(f"security.allowed_clients_dir: {directory} is not a directory")
    try:
        found = zmq.auth.load_certificates(directory)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"security.allowed_clients_dir: {exc}") from None
    return {z85.decode(key) for key in found}


class _AllowedKeys:
    """A ZAP credentials provider: the allowed client keys of each domain (one domain per server socket)."""

    def __init__(self) -> None:
        self.domains: dict[str, frozenset[bytes]] = {}
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = z85.decode(key) in self.domains.get(domain, frozenset())
        if not allowed:
            self.refused += 1
            # A refused client reconnects on its own, again and again: log at a bounded rate.
            _throttle.log(logging.WARNING, "refused", "CURVE client key %s... refused (%d so far): not an allowed key",
                          key[:8].decode("ascii", "replace"), self.refused)
        return allowed


def _start_authenticator(context: zmq.Context) -> ThreadAuthenticator:
    """Start a ZAP authenticator on ``context``, waiting out a previous one's endpoint (libzmq frees it lazily)."""
    for attempt in range(ZAP_BIND_ATTEMPTS):
        auth = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))
        try:
            auth.start()
            return auth
        except zmq.ZMQError as exc:
            if auth.zap_socket is not None:
                auth.zap_socket.close(linger=0)
                auth.zap_socket = None  # type: ignore[assignment]
            if exc.errno != zmq.EADDRINUSE or attempt == ZAP_BIND_ATTEMPTS - 1:
                raise
            time.sleep(0.005)  # the socket a stopped authenticator closed is reaped on libzmq's thread
    raise AssertionError("unreachable")


class _Zap:
    """One ZAP authenticator per context, shared by that context's server sockets; stopped with the last."""

    _lock = threading.Lock()
    _by_context: dict[int, tuple[ThreadAuthenticator, _AllowedKeys]] = {}
    _domains = itertools.count(1)

    @classmethod
    def register(cls, context: zmq.Context, allowed: frozenset[bytes]) -> str:
        with cls._lock:
            entry = cls._by_context.get(id(context))
            if entry is None:
                entry = cls._by_context[id(context)] = (_start_authenticator(context), _AllowedKeys())
            auth, provider = entry
            domain = f"trader-{next(cls._domains)}"
            provider.domains[domain] = allowed
            auth.configure_curve_callback(domain, provider)
            return domain

    @classmethod
    def unregister(cls, context: zmq.Context, domain: str) -> None:
        with cls._lock:
            entry = cls._by_context.get(id(context))
            if entry is None:
                return
            auth, provider = entry
            provider.domains.pop(domain, None)
            auth.credentials_providers.pop(domain, None)
            if not provider.domains:
                del cls._by_context[id(context)]
                auth.stop()


def _ms(seconds: float | None) -> int:
    """Return ``seconds`` as libzmq's milliseconds (None: 0, which libzmq reads as off)."""
    return 0 if seconds is None else max(1, round(seconds * 1000))


def _liveness(sock: zmq.Socket, timeouts: Timeouts, handshake_timeout: float) -> None:
    """Set ``sock``'s ZMTP heartbeats (and the TTL its PINGs ask of the peer) and its handshake limit."""
    sock.setsockopt(zmq.HEARTBEAT_IVL, _ms(timeouts.heartbeat_ivl))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ms(timeouts.heartbeat_timeout))
    sock.setsockopt(zmq.HEARTBEAT_TTL, min(_ms(timeouts.heartbeat_timeout), 6_553_500))  # the peer drops us
    sock.setsockopt(zmq.HANDSHAKE_IVL, _ms(handshake_timeout))


def secure_server(sock: zmq.Socket, keys: ServerKeys, timeouts: Timeouts = BUS_TIMEOUTS,
                  handshake_timeout: float = HANDSHAKE_TIMEOUT) -> str:
    """Make ``sock`` a CURVE server that accepts only ``keys.allowed``, with these liveness timers; call before ``bind``.

    Return its ZAP domain, to pass to :func:`release_server` once the socket is closed.
    """
    domain = _Zap.register(sock.context, keys.allowed)
    _liveness(sock, timeouts, handshake_timeout)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    return domain


def release_server(context: zmq.Context, domain: str) -> None:
    """Forget a closed server socket's allowed keys (the last one stops the context's authenticator)."""
    _Zap.unregister(context, domain)


def secure_client(sock: zmq.Socket, keys: ClientKeys, timeouts: Timeouts = BUS_TIMEOUTS,
                  handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
    """Make ``sock`` a CURVE client of the server ``keys`` names the public key of; call before ``connect``."""
    _liveness(sock, timeouts, handshake_timeout)
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
