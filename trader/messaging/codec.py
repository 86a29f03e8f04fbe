"""Codec: the one wire format of the platform, msgpack with extension types.

``encode(obj) -> bytes`` and ``decode(data) -> object`` carry every bus
payload, RPC envelope and journal entry. Nothing is ever pickled: a received
frame can only produce plain values and the types listed below, and a domain
object is rebuilt through its constructor, so its validation runs on arrival.

Plain values: ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1; larger is a
ValidationError), ``float``, ``str``, ``bytes``, ``list``, ``dict``. A tuple
(a namedtuple too) is encoded as a list and decodes as a list. Subclasses of
``str``/``int``/``float``/``dict``/``list`` decode as the base type; numpy
scalars decode as ``bool``/``int``/``float``. Dict keys should be ``str`` or
``int`` (enums, dates and other hashable extension values work too); a
list/tuple key cannot be decoded.

Extension types (code: what, payload):

    -1  datetime            msgpack's standard Timestamp (UTC seconds + nanoseconds):
                            packed by msgpack's C code; decodes as an aware UTC datetime.
                            Covers years 1..9999, so ``datetime.max`` is fine. Naive
                            datetimes are refused (ValidationError).
     1  Decimal             ASCII ``str(d)``: exact, keeps -0, exponents, NaN, sNaN, Inf.
     2  date                int32 big-endian proleptic ordinal.
     3  timedelta           int32 days, uint32 seconds, uint32 microseconds (exact).
     4  pandas.Timestamp    int64 big-endian UTC nanoseconds (exact); empty = NaT.
                            Must be tz-aware; decodes with tz UTC.
     5  pandas.Timedelta    int64 big-endian nanoseconds.
     6  Enum member         msgpack ``[enum_code, value]``, enum_code from ``ENUM_CODES``.
     7  domain dataclass    msgpack ``[class_code, {field: value}]``, class_code from
                            ``DATACLASS_CODES``; rebuilt with ``cls(**fields)``.
     8  pandas.DataFrame    msgpack ``[arrow_ipc_stream, meta]``; meta holds the column
     9  pandas.Series       labels (or the Series name) and the index freq.

The pandas payloads (4, 5, 8, 9) are built and checked in
:mod:`trader.messaging.codec_pandas`; the codes and registries are
:mod:`trader.messaging.codec_types`'s; encoding, with the framing and the
nesting, is here, decoding in :mod:`trader.messaging.codec_decode` (``decode``
is re-exported here: import both from this module).

Design choices worth knowing:

* datetimes use msgpack's own Timestamp extension rather than a custom int64
  nanosecond one: it is packed and unpacked in C (the hot path stays free of
  Python per-field work), other languages' msgpack libraries read it, and it
  covers the whole ``datetime`` range where int64 nanoseconds stop at 2262.
  ``pandas.Timestamp`` keeps its own code because it carries nanoseconds.
* The registries are explicit tables (``codec_types``), with stable numeric codes: a
  class is on the wire only if it is listed there. Never reuse a code.
* Decoding raises ``ProtocolError`` and nothing else, whatever the bytes.
  Nested extension payloads are limited to ``MAX_DEPTH`` levels, because each
  level costs a C stack frame of msgpack's unpacker. DataFrames arrive as
  Arrow IPC; compressed IPC bodies are refused and the table is fully
  validated before pandas sees it (see ``codec_pandas``).
* A ``Contract`` is frozen and rides in every order, fill and position: each
  instance is encoded once, and each distinct payload is decoded (and
  validated) once, later messages sharing that instance (bounded caches,
  emptied when full).
* Encoding reuses ``msgpack.Packer`` objects from a pool: a packer is popped
  by one caller at a time, so no packer is ever shared by two threads or
  re-entered. Plain dicts of str/int/float go through msgpack's C path; the
  Python ``default`` hook only runs for the extension types.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

import msgpack

from trader.domain.contract import Contract
from trader.errors import TraderError, ValidationError
from trader.messaging import codec_pandas
from trader.messaging.codec_decode import CONTRACT_CACHE, decode
from trader.messaging.codec_types import (
    CONTRACT_CACHE_SIZE,
    DATACLASS_CODECS,
    DATACLASS_CODES,
    ENUM_CODES,
    ENUM_EXT,
    EPOCH,
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
    TIMEDELTA,
    DataclassCodec,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DATACLASS_CODES",
    "ENUM_CODES",
    "EXT_DATACLASS",
    "EXT_DATAFRAME",
    "EXT_DATE",
    "EXT_DECIMAL",
    "EXT_ENUM",
    "EXT_PD_TIMEDELTA",
    "EXT_PD_TIMESTAMP",
    "EXT_SERIES",
    "EXT_TIMEDELTA",
    "MAX_DEPTH",
    "decode",
    "encode",
]

# A pooled packer whose buffer grew past this (a big DataFrame) is dropped
# rather than kept, so one large message does not pin its memory forever.
_MAX_POOLED_BUFFER = 1 << 20

# The decoded contracts' cache (codec_decode's) and the bound both caches share, under this module's name.
_CONTRACT_CACHE: Final = CONTRACT_CACHE
_CONTRACT_CACHE_SIZE: Final = CONTRACT_CACHE_SIZE


# --- Encoding ----------------------------------------------------------------

_new_tuple = tuple.__new__


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    # ExtType.__new__ re-checks code and data in Python (a third of a Tick's
    # encoding time); the codes and payloads built here are valid by construction.
    return _new_tuple(msgpack.ExtType, (code, data))


def encode(obj: Any) -> bytes:
    """Return ``obj`` as msgpack bytes.

    Raises ``ValidationError`` naming the offending type if ``obj`` holds a
    value the codec does not carry (or a naive datetime, or an int beyond 64 bits).
    """
    try:
        return _pack(obj, 0)
    except TraderError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValidationError(f"cannot encode {type(obj).__name__}: {exc}") from exc


_POOLS: Final[list[list[msgpack.Packer]]] = [[] for _ in range(MAX_DEPTH + 1)]


def _pack(obj: Any, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise ValidationError(f"cannot encode: extension values nest deeper than {MAX_DEPTH}")
    pool = _POOLS[depth]
    # list.pop/append are atomic: the popped packer belongs to this call alone,
    # even when another thread, or this one re-entering, encodes meanwhile.
    try:
        packer = pool.pop()
    except IndexError:
        packer = msgpack.Packer(
            default=_DEFAULTS[depth],
            strict_types=True,  # so enums (str subclasses) and tuples reach `default`
            datetime=True,
            use_bin_type=True,
            buf_size=4096 if depth else 64 * 1024,
        )
    # A packer that raised is not put back: nothing is assumed about its state.
    data: bytes = packer.pack(obj)
    if len(data) < _MAX_POOLED_BUFFER:
        pool.append(packer)
    return data


def _make_default(depth: int) -> Callable[[Any], Any]:
    def default(obj: Any) -> Any:
        cls = type(obj)
        members = ENUM_EXT.get(cls)
        if members is not None:
            return members[obj]
        if cls is Contract:
            return _encode_contract(obj, depth)
        codec = DATACLASS_CODECS.get(cls)
        if codec is not None:
            return _encode_dataclass(obj, codec, depth)
        encoder = _ENCODERS.get(cls)
        if encoder is not None:
            return encoder(obj, depth)
        return _encode_other(obj, depth)

    return default


def _encode_dataclass(obj: Any, codec: DataclassCodec, depth: int) -> msgpack.ExtType:
    values = codec.getter(obj)
    if len(codec.names) == 1:
        values = (values,)
    body = [codec.code, dict(zip(codec.names, values, strict=True))]
    return _new_tuple(msgpack.ExtType, (EXT_DATACLASS, _pack(body, depth + 1)))


# A Contract is frozen, so its encoding never changes: each instance is encoded once while it is
# cached (keyed by id; the entry holds the instance, so the id cannot be reused meanwhile).
_CONTRACT_EXT: dict[int, tuple[Contract, msgpack.ExtType]] = {}
_CONTRACT_CODEC: Final = DATACLASS_CODECS[Contract]


def _encode_contract(obj: Contract, depth: int) -> msgpack.ExtType:
    known = _CONTRACT_EXT.get(id(obj))
    if known is not None and known[0] is obj and depth < MAX_DEPTH:
        return known[1]
    ext = _encode_dataclass(obj, _CONTRACT_CODEC, depth)
    if len(_CONTRACT_EXT) >= _CONTRACT_CACHE_SIZE:
        _CONTRACT_EXT.clear()
    _CONTRACT_EXT[id(obj)] = (obj, ext)
    return ext


def _encode_decimal(obj: Decimal, depth: int) -> msgpack.ExtType:
    return _ext(EXT_DECIMAL, str(obj).encode("ascii"))


def _encode_date(obj: date, depth: int) -> msgpack.ExtType:
    return _ext(EXT_DATE, I32.pack(obj.toordinal()))


def _encode_timedelta(obj: timedelta, depth: int) -> msgpack.ExtType:
    return _ext(EXT_TIMEDELTA, TIMEDELTA.pack(obj.days, obj.seconds, obj.microseconds))


def _encode_datetime(obj: datetime, depth: int) -> msgpack.Timestamp:
    # Only naive datetimes and datetime subclasses get here (msgpack packs exact
    # aware ones itself). Integer arithmetic keeps it exact before 1970 too.
    if obj.tzinfo is None or obj.utcoffset() is None:
        raise ValidationError(f"cannot encode a naive datetime ({obj!r}): make it UTC-aware")
    delta = obj - EPOCH
    return msgpack.Timestamp(delta.days * 86_400 + delta.seconds, delta.microseconds * 1000)


def _encode_list(obj: Any, depth: int) -> list[Any]:
    return list(obj)


def _encode_pd_timestamp(obj: pd.Timestamp, depth: int) -> msgpack.ExtType:
    return _ext(EXT_PD_TIMESTAMP, codec_pandas.timestamp_payload(obj))


def _encode_nat(obj: Any, depth: int) -> msgpack.ExtType:
    return _ext(EXT_PD_TIMESTAMP, codec_pandas.nat_payload())


def _encode_pd_timedelta(obj: pd.Timedelta, depth: int) -> msgpack.ExtType:
    return _ext(EXT_PD_TIMEDELTA, codec_pandas.timedelta_payload(obj))


def _encode_dataframe(obj: pd.DataFrame, depth: int) -> msgpack.ExtType:
    return _ext(EXT_DATAFRAME, _pack(codec_pandas.dataframe_body(obj), depth + 1))


def _encode_series(obj: pd.Series, depth: int) -> msgpack.ExtType:
    return _ext(EXT_SERIES, _pack(codec_pandas.series_body(obj), depth + 1))


_ENCODERS: dict[type, Callable[[Any, int], Any]] = {
    Decimal: _encode_decimal,
    date: _encode_date,
    timedelta: _encode_timedelta,
    datetime: _encode_datetime,
    tuple: _encode_list,
}
"""Encoders by exact type; pandas types are added on first sight (see _encode_other)."""


def _encode_other(obj: Any, depth: int) -> Any:
    """Encode a value whose exact type is not in ``_ENCODERS``: subclasses, pandas, numpy."""
    cls = type(obj)
    pandas_encoder = _pandas_encoder(obj)
    if pandas_encoder is not None:
        # Cache by exact type: pandas is imported lazily (a CLI that never
        # touches a DataFrame should not pay for importing it), so its types
        # cannot be listed in _ENCODERS up front.
        _ENCODERS[cls] = pandas_encoder
        return pandas_encoder(obj, depth)
    if isinstance(obj, Enum):
        raise ValidationError(
            f"cannot encode {cls.__module__}.{cls.__qualname__}: enum not in the codec registry"
        )
    if isinstance(obj, int) and not isinstance(obj, bool) and cls is not int:
        return int(obj)
    if cls is int:
        raise ValidationError(f"cannot encode int {obj}: outside the 64-bit range")
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list | tuple):
        return list(obj)
    if isinstance(obj, datetime):
        return _encode_datetime(obj, depth)
    if isinstance(obj, date):
        return _encode_date(obj, depth)
    if isinstance(obj, timedelta):
        return _encode_timedelta(obj, depth)
    if isinstance(obj, Decimal):
        return _encode_decimal(obj, depth)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.generic):
        if isinstance(obj, numpy.bool_):
            return bool(obj)
        if isinstance(obj, numpy.integer):
            return int(obj)
        if isinstance(obj, numpy.floating):
            return float(obj)
    raise ValidationError(f"cannot encode {cls.__module__}.{cls.__qualname__}: unsupported type")


def _pandas_encoder(obj: Any) -> Callable[[Any, int], Any] | None:
    pd = sys.modules.get("pandas")
    if pd is None:
        return None  # pandas never imported: obj cannot be a pandas value
    if obj is pd.NaT:
        return _encode_nat
    if isinstance(obj, pd.Timestamp):
        return _encode_pd_timestamp
    if isinstance(obj, pd.Timedelta):
        return _encode_pd_timedelta
    if isinstance(obj, pd.DataFrame):
        return _encode_dataframe
    if isinstance(obj, pd.Series):
        return _encode_series
    return None


_DEFAULTS: Final = [_make_default(depth) for depth in range(MAX_DEPTH + 1)]
