"""The ZMTP 3.1 wire format (rfc.zeromq.org specs 23 and 37): greeting, frames, commands, endpoints.

A 64-byte greeting (signature ``FF 00*8 7F``, version 3.1, mechanism
``NULL``), then a READY command carrying ``Socket-Type`` (and ``Identity``),
then frames ``flags size body`` with flags bit0 MORE, bit1 LONG (8-byte size),
bit2 COMMAND. A command body is ``name-length name data``; PING's data is a
2-byte TTL (deciseconds) and a context that PONG echoes. The connection that
speaks it is :class:`trader.messaging.zmtp.Connection`.
"""

from __future__ import annotations

import struct

from trader.peer_text import clip

MAX_COMMAND = 65536
GREETING = (
    b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
)
_SHORT_LAST = [bytes((0, n)) for n in range(256)]
_SHORT_MORE = [bytes((1, n)) for n in range(256)]
_LONG = struct.Struct(">BQ")


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` into ``(host, port)``; port 0 means an ephemeral port.

    ``*`` as host means every interface (``0.0.0.0``) and ``[::1]`` an IPv6
    address. Other transports (ipc://, inproc://) or a malformed endpoint raise
    ``ValueError``.
    """
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        raise ValueError(f"unsupported endpoint {endpoint!r}: only tcp://host:port is supported")
    host, sep, port_text = endpoint[6:].rpartition(":")
    if not sep or not host or not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"malformed endpoint {endpoint!r}: expected tcp://host:port")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"malformed endpoint {endpoint!r}: port {port} out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "*":
        host = "0.0.0.0"
    if not host or any(c in host for c in "/[] "):
        raise ValueError(f"malformed endpoint {endpoint!r}: bad host {host!r}")
    return host, port


def encode(frames: list[bytes]) -> bytes:
    """Encode one message (a non-empty list of frames) into its ZMTP wire bytes."""
    if len(frames) == 1:
        body = frames[0]
        n = len(body)
        return (_SHORT_LAST[n] if n < 256 else _LONG.pack(2, n)) + body
    parts: list[bytes] = []
    last = len(frames) - 1
    for i, body in enumerate(frames):
        n = len(body)
        more = i < last
        if n < 256:
            parts.append(_SHORT_MORE[n] if more else _SHORT_LAST[n])
        else:
            parts.append(_LONG.pack(3 if more else 2, n))
        parts.append(body)
    return b"".join(parts)


def command(name: bytes, data: bytes = b"") -> bytes:
    """Encode one command frame: ``name`` and its ``data``."""
    body = bytes((len(name),)) + name + data
    n = len(body)
    return (bytes((4, n)) if n < 256 else _LONG.pack(6, n)) + body


def ping(ttl: float | None) -> bytes:
    """A PING command; ``ttl`` (seconds) tells the peer how long to wait for us before dropping us."""
    return command(b"PING", min(int((ttl or 0) * 10), 65535).to_bytes(2, "big"))


def ready_command(socket_type: bytes, identity: bytes | None) -> bytes:
    """Encode the READY command announcing ``socket_type`` (and ``identity``)."""
    props = [(b"Socket-Type", socket_type)]
    if identity is not None:
        props.append((b"Identity", identity))
    data = b"".join(bytes((len(k),)) + k + len(v).to_bytes(4, "big") + v for k, v in props)
    return command(b"READY", data)


def greeting_problem(buf: bytes | bytearray) -> tuple[str, tuple[object, ...]] | None:
    """Return why the peer greeting ``buf`` begins with is refused (a %-format and its arguments), else None.

    The signature is judged as its bytes arrive, the version and the security
    mechanism (only NULL) once the 64 bytes are in; None for a greeting not
    complete yet means nothing is wrong so far.
    """
    if buf[0] != 0xFF or (len(buf) >= 10 and not buf[9] & 1):
        return "not a ZMTP greeting", ()
    if len(buf) >= 64:
        if buf[10] < 3:
            return "unsupported ZMTP version %d.%d", (buf[10], buf[11])
        mechanism = bytes(buf[12:32]).rstrip(b"\x00")
        if mechanism != b"NULL":
            return "security mechanism %s refused (only NULL)", (clip(mechanism),)
    return None


def parse_properties(data: bytes) -> dict[bytes, bytes]:
    """Parse READY metadata; raise ValueError on a truncated property."""
    props: dict[bytes, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        klen = data[pos]
        if pos + 1 + klen + 4 > n:
            raise ValueError("truncated property name")
        key = data[pos + 1 : pos + 1 + klen]
        pos += 1 + klen
        vlen = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + vlen > n:
            raise ValueError("truncated property value")
        props[key.lower()] = data[pos : pos + vlen]
        pos += vlen
    return props
