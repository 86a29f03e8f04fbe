"""The codec's type tables: extension codes, the registered enums and dataclasses, fixed payload layouts.

:mod:`trader.messaging.codec` describes the wire format (its docstring lists
every code and payload) and encodes; :mod:`trader.messaging.codec_decode`
decodes. Both read the tables here, so a code and its meaning are written
once. The registries are append only: a code, once used, is never reused.
"""

from __future__ import annotations

import struct
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from decimal import Context, InvalidOperation
from enum import Enum
from operator import attrgetter
from typing import Any, Final

import msgpack

from trader.domain.contract import Contract
from trader.domain.enums import Action, OrderStatus, OrderType, Right, SecType, TimeInForce
from trader.domain.order import Order
from trader.domain.records import AccountValue, Bar, Fill, Position, Tick

__all__ = [
    "CONTRACT_CACHE_SIZE",
    "DATACLASS_BY_CODE",
    "DATACLASS_CODECS",
    "DATACLASS_CODES",
    "ENUM_BY_PAYLOAD",
    "ENUM_CODES",
    "ENUM_EXT",
    "EPOCH",
    "EXT_DATACLASS",
    "EXT_DATAFRAME",
    "EXT_DATE",
    "EXT_DECIMAL",
    "EXT_ENUM",
    "EXT_PD_TIMEDELTA",
    "EXT_PD_TIMESTAMP",
    "EXT_SERIES",
    "EXT_TIMEDELTA",
    "I32",
    "MAX_DEPTH",
    "STRICT_DECIMAL",
    "TIMEDELTA",
    "DataclassCodec",
]

# --- The registries: append only; a code, once used, is never reused. -------

ENUM_CODES: Final[tuple[tuple[int, type[Enum]], ...]] = (
    (1, SecType),
    (2, Right),
    (3, Action),
    (4, OrderType),
    (5, TimeInForce),
    (6, OrderStatus),
)

DATACLASS_CODES: Final[tuple[tuple[int, type], ...]] = (
    (1, Contract),
    (2, Order),
    (3, Fill),
    (4, Position),
    (5, Tick),
    (6, Bar),
    (7, AccountValue),
)

# --- Extension type codes. ---------------------------------------------------

EXT_DECIMAL: Final = 1
EXT_DATE: Final = 2
EXT_TIMEDELTA: Final = 3
EXT_PD_TIMESTAMP: Final = 4
EXT_PD_TIMEDELTA: Final = 5
EXT_ENUM: Final = 6
EXT_DATACLASS: Final = 7
EXT_DATAFRAME: Final = 8
EXT_SERIES: Final = 9

MAX_DEPTH: Final = 16
"""How many extension payloads may nest inside each other (an Order holding a Contract is 2)."""

CONTRACT_CACHE_SIZE: Final = 4096
"""How many contracts each of the codec's two caches (encoded instances, decoded payloads) holds before it is emptied."""

# --- Fixed payload layouts. --------------------------------------------------

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
I32: Final = struct.Struct(">i")  # a date: its proleptic ordinal
TIMEDELTA: Final = struct.Struct(">iII")  # a timedelta: days, seconds, microseconds
# Decimal() only raises on malformed text if the context traps it; the
# caller's thread context might not, so decoding uses its own.
STRICT_DECIMAL: Final = Context(traps=[InvalidOperation])


def _index(table: tuple[tuple[int, Any], ...], kind: str) -> dict[int, Any]:
    by_code: dict[int, Any] = {}
    for code, cls in table:
        if code in by_code or cls in by_code.values():
            raise RuntimeError(f"codec {kind} registry lists code {code} or {cls!r} twice")
        by_code[code] = cls
    return by_code


_ENUM_BY_CODE: Final = _index(ENUM_CODES, "enum")
DATACLASS_BY_CODE: Final = _index(DATACLASS_CODES, "dataclass")

# Enum members are few and fixed, so their wire form is computed once: encoding
# is a dict lookup and decoding maps the exact payload bytes back to the member.
ENUM_EXT: Final[dict[type, dict[Enum, msgpack.ExtType]]] = {}
ENUM_BY_PAYLOAD: Final[dict[bytes, Enum]] = {}
for _code, _cls in ENUM_CODES:
    ENUM_EXT[_cls] = {}
    for _member in _cls:
        _payload = msgpack.packb([_code, _member.value])
        ENUM_EXT[_cls][_member] = msgpack.ExtType(EXT_ENUM, _payload)
        ENUM_BY_PAYLOAD[_payload] = _member


class DataclassCodec:
    """How one registered dataclass is written: its code, field names and a fast getter."""

    __slots__ = ("cls", "code", "getter", "names")

    def __init__(self, code: int, cls: type) -> None:
        self.cls = cls
        self.code = code
        self.names = tuple(f.name for f in dataclass_fields(cls) if f.init)
        self.getter = attrgetter(*self.names)


DATACLASS_CODECS: Final[dict[type, DataclassCodec]] = {
    cls: DataclassCodec(code, cls) for code, cls in DATACLASS_CODES
}
