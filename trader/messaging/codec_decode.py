"""Decoding of the codec's wire format: bytes back to values, raising ``ProtocolError`` and nothing else.

The format, its extension codes and why it is built so are described in
:mod:`trader.messaging.codec`, which re-exports :func:`decode`; the tables
both directions share are :mod:`trader.messaging.codec_types`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

import msgpack

from trader.domain.contract import Contract
from trader.errors import ProtocolError, ValidationError
from trader.messaging import codec_pandas
from trader.messaging.codec_types import (
    CONTRACT_CACHE_SIZE,
    DATACLASS_BY_CODE,
    ENUM_BY_PAYLOAD,
    EXT_DATACLASS,
    EXT_DATAFRAME,
    EXT_DATE,
    EXT_DECIMAL,
    EXT_ENUM,
    EXT_PD_TIMEDELTA,
    EXT_PD_TIMESTAMP,
    EXT_SERIES,
    EXT_TIMEDELTA,
    I32,
    MAX_DEPTH,
    STRICT_DECIMAL,
    TIMEDELTA,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CONTRACT_CACHE", "decode"]


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Return the value encoded in ``data``.

    Raises ``ProtocolError`` (and nothing else) if ``data`` is not exactly one
    well-formed value of the supported types, including when a domain object
    it carries fails its own validation.
    """
    try:
        return _unpack(data, _HOOK0)
    except ProtocolError:
        raise
    except ValidationError as exc:
        raise ProtocolError(f"cannot decode: {exc}") from exc
    except Exception as exc:  # any byte string must end as a ProtocolError
        raise ProtocolError(f"cannot decode: {type(exc).__name__}: {exc}") from exc


def _unpack_nested(data: bytes, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"extension values nest deeper than {MAX_DEPTH}")
    return _unpack(data, _HOOKS[depth])


def _unpack(data: bytes | bytearray | memoryview, ext_hook: Callable[[int, bytes], Any]) -> Any:
    # Keyword arguments spelled out rather than a **options dict: building the
    # kwargs dict per call costs a third of a small frame's decode. unpackb's
    # max_*_len default to len(data): a declared length can never exceed what
    # was received, so a tiny frame cannot claim a huge array.
    return msgpack.unpackb(
        data,
        ext_hook=ext_hook,
        raw=False,
        strict_map_key=False,
        timestamp=3,  # msgpack Timestamp -> aware UTC datetime
        use_list=True,
    )


def _make_ext_hook(depth: int) -> Callable[[int, bytes], Any]:
    def ext_hook(code: int, data: bytes) -> Any:
        decoder = _DECODERS.get(code)
        if decoder is None:
            raise ProtocolError(f"unknown extension type {code}")
        return decoder(data, depth)

    return ext_hook


def _decode_decimal(data: bytes, depth: int) -> Decimal:
    return Decimal(data.decode("ascii"), STRICT_DECIMAL)


def _decode_date(data: bytes, depth: int) -> date:
    return date.fromordinal(I32.unpack(data)[0])


def _decode_timedelta(data: bytes, depth: int) -> timedelta:
    days, seconds, microseconds = TIMEDELTA.unpack(data)
    return timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _decode_pd_timestamp(data: bytes, depth: int) -> Any:
    return codec_pandas.timestamp_from_payload(data)


def _decode_pd_timedelta(data: bytes, depth: int) -> Any:
    return codec_pandas.timedelta_from_payload(data)


def _decode_enum(data: bytes, depth: int) -> Enum:
    member = ENUM_BY_PAYLOAD.get(data)
    if member is None:
        raise ProtocolError(f"unknown enum code or value in {data!r}")
    return member


# Contracts are immutable and few, and ride in every order, fill and position: each distinct
# payload is decoded (and validated) once, and later copies share that instance.
CONTRACT_CACHE: dict[bytes, Contract] = {}


def _decode_dataclass(data: bytes, depth: int) -> Any:
    known = CONTRACT_CACHE.get(data)
    if known is not None:
        return known
    obj = _decode_dataclass_body(data, depth)
    if type(obj) is Contract:
        if len(CONTRACT_CACHE) >= CONTRACT_CACHE_SIZE:
            CONTRACT_CACHE.clear()
        CONTRACT_CACHE[bytes(data)] = obj
    return obj


def _decode_dataclass_body(data: bytes, depth: int) -> Any:
    body = _unpack_nested(data, depth + 1)
    if type(body) is not list or len(body) != 2:
        raise ProtocolError("dataclass payload is not [code, fields]")
    code, values = body
    cls = DATACLASS_BY_CODE.get(code) if type(code) is int else None
    if cls is None:
        raise ProtocolError(f"unknown dataclass code {code!r}")
    if type(values) is not dict:
        raise ProtocolError(f"{cls.__name__} fields are not a map")
    try:
        return cls(**values)
    except TypeError as exc:  # unknown, missing or non-string field names
        raise ProtocolError(f"bad fields for {cls.__name__}: {exc}") from exc
    except ValidationError as exc:
        raise ProtocolError(f"invalid {cls.__name__}: {exc}") from exc


def _decode_dataframe(data: bytes, depth: int) -> pd.DataFrame:
    return codec_pandas.dataframe_from_body(_unpack_nested(data, depth + 1))


def _decode_series(data: bytes, depth: int) -> pd.Series:
    return codec_pandas.series_from_body(_unpack_nested(data, depth + 1))


_DECODERS: Final[dict[int, Callable[[bytes, int], Any]]] = {
    EXT_DECIMAL: _decode_decimal,
    EXT_DATE: _decode_date,
    EXT_TIMEDELTA: _decode_timedelta,
    EXT_PD_TIMESTAMP: _decode_pd_timestamp,
    EXT_PD_TIMEDELTA: _decode_pd_timedelta,
    EXT_ENUM: _decode_enum,
    EXT_DATACLASS: _decode_dataclass,
    EXT_DATAFRAME: _decode_dataframe,
    EXT_SERIES: _decode_series,
}

_HOOKS: Final = [_make_ext_hook(depth) for depth in range(MAX_DEPTH + 1)]
_HOOK0: Final = _HOOKS[0]
