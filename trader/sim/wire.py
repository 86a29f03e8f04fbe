"""The TWS wire format: length-prefixed frames of NUL-terminated text fields.

Every message after the handshake is a frame: a 4-byte big-endian length, then
that many bytes of fields, each field terminated by ``\\0``. The first field is
the message id. This module turns Python values into fields the way TWS writes
them, splits a byte stream into frames, and reads typed fields from a request.
Nothing here does I/O.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum

from trader.errors import FrameTooLarge, ProtocolError
from trader.peer_text import clip

__all__ = [
    "API_SIGNATURE",
    "MAX_FRAME_BYTES",
    "UNSET_DECIMAL",
    "UNSET_DOUBLE",
    "UNSET_INTEGER",
    "Field",
    "FieldReader",
    "FrameSplitter",
    "WireError",
    "decode_fields",
    "encode_field",
    "encode_message",
    "frame",
    "parse_version_range",
]

API_SIGNATURE = b"API\0"
# TWS refuses larger messages too; a client sending more is broken or hostile.
MAX_FRAME_BYTES = 16 * 1024 * 1024
_LENGTH = struct.Struct(">I")

# IB's "no value" markers: the largest int32 and the largest double.
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = sys.float_info.max
# Sizes (fractional since server version 163) use the largest long as unset.
UNSET_DECIMAL = Decimal(2**63 - 1)

Field = int | float | str | bool | Decimal | Enum | None


class WireError(ProtocolError):
    """A request could not be read: missing fields, bad numbers, trailing garbage."""

    code = "protocol"


def encode_field(value: Field) -> str:
    """Return one field's text as TWS writes it.

    ``None`` is empty; bools are ``1``/``0``; Decimals never use an exponent;
    floats are written shortest-exact (``150.25``), the unset double as IB's
    ``1.7976931348623157E308`` and infinity as ``Infinity``. Enum members are
    written as their value.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Enum):
        return encode_field(value.value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot encode non-finite Decimal {value!r}")
        return format(value, "f")
    if isinstance(value, float):
        if value == UNSET_DOUBLE:
            return "1.7976931348623157E308"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if math.isnan(value):
            raise ValueError("cannot encode NaN")
        text = repr(value)
        return text.removesuffix(".0")
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError(f"a field cannot contain NUL: {value!r}")
        return value
    raise TypeError(f"cannot encode {type(value).__name__} {value!r} as a TWS field")


def encode_message(fields: Iterable[Field]) -> bytes:
    """Return one framed message: the fields NUL-terminated, UTF-8, length-prefixed."""
    body = "".join(encode_field(f) + "\0" for f in fields).encode("utf-8")
    return frame(body)


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length."""
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


def decode_fields(payload: bytes) -> list[str]:
    """Split a frame's payload into its text fields.

    Messages end with a NUL, so the empty string after the last one is dropped;
    a payload without the final NUL (the handshake's version string) keeps its
    last field. Bytes that are not UTF-8 are kept as backslash escapes, so a
    bad byte makes a field wrong rather than the whole message unreadable.
    """
    text = payload.decode("utf-8", errors="backslashreplace")
    fields = text.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


class FrameSplitter:
    """Cut a byte stream into frame payloads; keep a partial frame for the next chunk."""

    __slots__ = ("_buffer", "max_bytes")

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self.max_bytes = max_bytes

    @property
    def pending(self) -> int:
        """Return how many bytes wait for the rest of their frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every frame payload it completes, in order.

        Raises ``FrameTooLarge`` when a length prefix announces more than
        ``max_bytes``: the stream cannot be resynchronised after that.
        """
        self._buffer += data
        out: list[bytes] = []
        while len(self._buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > self.max_bytes:
                raise FrameTooLarge(f"frame of {length} bytes announced, limit {self.max_bytes}")
            end = 4 + length
            if len(self._buffer) < end:
                break
            out.append(bytes(self._buffer[4:end]))
            del self._buffer[:end]
        return out


def parse_version_range(text: str) -> tuple[int, int, str]:
    """Parse the handshake's ``v<min>..<max>[ <options>]``; return (min, max, options).

    A bare ``v<n>`` means min = max = n.
    """
    head, _, options = text.strip().partition(" ")
    if not head.startswith("v"):
        raise WireError(f"handshake version must start with 'v': {clip(text)}")
    low, sep, high = head[1:].partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise WireError(f"bad version range in handshake: {clip(text)}") from None
    if lo <= 0 or hi < lo:
        raise WireError(f"bad version range in handshake: {clip(text)}")
    return lo, hi, options.strip()


def _is_unset_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value >= UNSET_DOUBLE or value == UNSET_INTEGER


class FieldReader:
    """Read a request's fields in order, each as its type; errors name the field.

    Empty fields and IB's unset markers read as ``None`` with the ``optional_``
    readers, which is how clients send "no value".
    """

    __slots__ = ("_fields", "_pos", "what")

    def __init__(self, fields: Sequence[str], what: str, start: int = 0) -> None:
        self._fields = fields
        self._pos = start
        self.what = what

    @property
    def remaining(self) -> int:
        """Return how many fields are left to read."""
        return len(self._fields) - self._pos

    def _next(self, name: str) -> str:
        if self._pos >= len(self._fields):
            raise WireError(f"{self.what}: missing field {name!r} (only {len(self._fields)} fields)")
        value = self._fields[self._pos]
        self._pos += 1
        return value

    def string(self, name: str) -> str:
        """Read a text field (possibly empty)."""
        return self._next(name)

    def skip(self, count: int = 1, name: str = "ignored") -> None:
        """Skip ``count`` fields that must exist but are not used."""
        for _ in range(count):
            self._next(name)

    def integer(self, name: str) -> int:
        """Read a required integer."""
        value = self.optional_integer(name)
        if value is None:
            raise WireError(f"{self.what}: field {name!r} must be an integer, got empty")
        return value

    def optional_integer(self, name: str) -> int | None:
        """Read an integer; empty or unset reads as None."""
        text = self._next(name).strip()
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise WireError(f"{self.what}: field {name!r} is not an integer: {clip(text)}") from None
            if not as_float.is_integer():
                raise WireError(f"{self.what}: field {name!r} is not an integer: {clip(text)}") from None
            value = int(as_float)
        return None if value == UNSET_INTEGER else value

    def flag(self, name: str) -> bool:
        """Read a bool written as 0/1 (empty is false)."""
        value = self.optional_integer(name)
        return bool(value)

    def optional_decimal(self, name: str) -> Decimal | None:
        """Read a number as an exact Decimal; empty or unset reads as None."""
        text = self._next(name).strip()
        if not text or _is_unset_number(text):
            return None
        if text in ("Infinite", "Infinity"):  # ib_async writes infinity as "Infinite"
            return Decimal("Infinity")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise WireError(f"{self.what}: field {name!r} is not a number: {clip(text)}") from None
        if value.is_nan():
            raise WireError(f"{self.what}: field {name!r} is not a number: {clip(text)}")
        return value

    def decimal(self, name: str) -> Decimal:
        """Read a required number as a Decimal."""
        value = self.optional_decimal(name)
        if value is None:
            raise WireError(f"{self.what}: field {name!r} must be a number, got empty")
        return value

    def optional_float(self, name: str) -> float | None:
        """Read a number as a float; empty or unset reads as None."""
        value = self.optional_decimal(name)
        return None if value is None else float(value)

    def expect_end(self) -> None:
        """Raise if fields are left over: the request was longer than its layout."""
        if self._pos != len(self._fields):
            extra = len(self._fields) - self._pos
            raise WireError(f"{self.what}: {extra} unexpected trailing field(s)")
