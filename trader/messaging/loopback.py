"""The loopback policy: nothing unauthenticated binds or connects beyond 127.0.0.0/8 and ::1.

Every binder and connecter of the platform (the RPC server and client, the bus
proxy and its publishers and subscribers, pycron's control API) asks
:func:`require_protected` before it opens a socket. A host is loopback if it is
``localhost``, an address in 127.0.0.0/8, or ``::1`` (also IPv4-mapped);
anything else (``*``, ``0.0.0.0``, a LAN address, any other host name, which
is not resolved: a name may resolve elsewhere tomorrow) needs protection:
CURVE keys for ZeroMQ, TLS for pycron's HTTP API. ``ipc://`` and ``inproc://``
never leave the host.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from trader.errors import ConfigError

LOCAL_SCHEMES = frozenset(("ipc", "inproc"))

CURVE_HOW = (
    "create keys with `trader keys generate` and set `security.mode: curve` with "
    "`security.server.key_file` (or TRADER_SECURITY__MODE=curve and TRADER_SECURITY__SERVER__SECRET_KEY), "
    "or bind/connect to 127.0.0.1"
)
CURVE_WHY = "without authentication or encryption (anyone on the network could call, read or forge what crosses it)"
TLS_WHY = "over plain HTTP (its bearer token would cross the network in clear, for anyone to read and replay)"
TLS_HOW = (
    "set `security.tls.cert_file` and `security.tls.key_file` (PEM) so the API serves HTTPS, "
    "or keep `pycron.host: 127.0.0.1`"
)


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names this machine's loopback interface only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # "*", an interface name or a host name: not provably loopback
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def endpoint_host(endpoint: str) -> str | None:
    """Return the host of a ``tcp://host:port`` endpoint; None for a scheme that stays on the host."""
    parts = urlsplit(endpoint)
    if parts.scheme in LOCAL_SCHEMES:
        return None
    if parts.scheme != "tcp":
        raise ConfigError(f"unsupported endpoint {endpoint!r}: expected tcp://host:port, ipc:// or inproc://")
    netloc = parts.netloc
    if netloc.startswith("["):  # tcp://[::1]:5555
        return netloc[1:netloc.find("]")]
    host, _, _ = netloc.rpartition(":")
    host = host or netloc
    if ";" in host:  # tcp://source-iface;host:port: the host is the remote one
        host = host.rpartition(";")[2]
    return host


def is_loopback_endpoint(endpoint: str) -> bool:
    """Return whether a ZeroMQ endpoint stays on this host (loopback TCP, ipc, inproc)."""
    host = endpoint_host(endpoint)
    return host is None or is_loopback_host(host)


def require_protected(
    endpoint: str, what: str, *, protected: bool, how: str = CURVE_HOW, why: str = CURVE_WHY
) -> None:
    """Raise ConfigError if ``endpoint`` leaves loopback while ``protected`` is False.

    ``what`` names the socket for the message ("trader_service RPC server
    binding", "bus publisher connecting to"); ``why`` says what is at risk, ``how`` how to protect it.
    """
    if protected or is_loopback_endpoint(endpoint):
        return
    raise ConfigError(
        f"{what} {endpoint} is beyond loopback (127.0.0.0/8, ::1) {why}. Refusing to start; {how}"
    )


def require_protected_host(
    host: str, port: int, what: str, *, protected: bool, how: str = TLS_HOW, why: str = TLS_WHY
) -> None:
    """Raise ConfigError if the TCP server ``host`` is beyond loopback while ``protected`` is False.

    By default the server is an HTTP one, protected by TLS (pycron's API).
    """
    literal = f"[{host}]" if ":" in host else host
    require_protected(f"tcp://{literal}:{port}", what, protected=protected, how=how, why=why)
