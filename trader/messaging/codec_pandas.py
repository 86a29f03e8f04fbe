"""Codec payloads for pandas: Timestamp, Timedelta, and DataFrame/Series as Arrow IPC.

The codec (:mod:`trader.messaging.codec`) owns the extension codes, the
msgpack framing and the nesting depth; this module only turns pandas values
into plain payloads and back, and checks what arrives before pandas sees it:

* a ``pandas.Timestamp`` is its int64 big-endian UTC nanoseconds (empty: NaT),
  a ``pandas.Timedelta`` its int64 big-endian nanoseconds;
* a DataFrame or Series is a body ``[arrow_ipc_stream, meta]`` the codec packs
  and unpacks; ``meta`` holds the column labels (or the Series name) and the
  index freq, which Arrow does not keep. Compressed IPC bodies are refused (a
  small frame could otherwise inflate to gigabytes) and the table is fully
  validated before it is converted.

pandas and pyarrow are imported on first use, never at import, so a process
that never touches a DataFrame does not pay for loading them.
"""

from __future__ import annotations

import struct
import warnings
from typing import TYPE_CHECKING, Any, Final

from trader.errors import ProtocolError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "dataframe_body",
    "dataframe_from_body",
    "nat_payload",
    "series_body",
    "series_from_body",
    "timedelta_from_payload",
    "timedelta_payload",
    "timestamp_from_payload",
    "timestamp_payload",
]

_I64: Final = struct.Struct(">q")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_S32: Final = struct.Struct("<i")
_VALUES: Final = "__values__"  # the one column a Series travels as


# --- Timestamp and Timedelta -------------------------------------------------


def timestamp_payload(obj: pd.Timestamp) -> bytes:
    """Return an aware ``obj`` as int64 UTC nanoseconds; raise ValidationError if it is naive."""
    if obj.tzinfo is None:
        raise ValidationError(f"cannot encode a naive pandas.Timestamp ({obj!r}): localize it")
    return _I64.pack(obj.as_unit("ns").value)


def nat_payload() -> bytes:
    """Return the payload of ``pandas.NaT``: empty."""
    return b""


def timestamp_from_payload(data: bytes) -> Any:
    """Return the UTC ``pandas.Timestamp`` (or NaT) ``data`` holds."""
    import pandas as pd

    if not data:
        return pd.NaT
    return pd.Timestamp(_I64.unpack(data)[0], unit="ns", tz="UTC")


def timedelta_payload(obj: pd.Timedelta) -> bytes:
    """Return ``obj`` as int64 nanoseconds."""
    return _I64.pack(obj.as_unit("ns").value)


def timedelta_from_payload(data: bytes) -> Any:
    """Return the ``pandas.Timedelta`` ``data`` holds."""
    import pandas as pd

    return pd.Timedelta(_I64.unpack(data)[0], unit="ns")


# --- DataFrame and Series: encoding ------------------------------------------


def dataframe_body(obj: pd.DataFrame) -> list[Any]:
    """Return ``[arrow_ipc, meta]`` for ``obj``; raise ValidationError if Arrow cannot carry it."""
    import pandas as pd

    columns = obj.columns
    if isinstance(columns, pd.MultiIndex):
        raise ValidationError("cannot encode a DataFrame with MultiIndex columns")
    # Arrow wants unique string field names: columns travel under positional
    # names and their real labels (any encodable values) go in the meta.
    renamed = obj.set_axis([f"__col{i}__" for i in range(len(columns))], axis=1)
    meta = {"columns": list(columns), "columns_name": columns.name, "freq": _index_freq(obj.index)}
    return [_arrow_ipc(renamed), meta]


def series_body(obj: pd.Series) -> list[Any]:
    """Return ``[arrow_ipc, meta]`` for ``obj``; raise ValidationError if Arrow cannot carry it."""
    meta = {"name": obj.name, "freq": _index_freq(obj.index)}
    return [_arrow_ipc(obj.to_frame(name=_VALUES)), meta]


def _index_freq(index: pd.Index) -> str | None:
    # Arrow keeps a DatetimeIndex's values but not its freq.
    return getattr(index, "freqstr", None)


def _arrow_ipc(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValidationError(f"cannot encode {type(frame).__name__} as Arrow: {exc}") from exc


# --- DataFrame and Series: decoding ------------------------------------------


def dataframe_from_body(body: Any) -> pd.DataFrame:
    """Return the DataFrame a decoded ``[arrow_ipc, meta]`` body holds; raise ProtocolError if malformed."""
    import pandas as pd

    ipc, meta = _frame_body(body)
    frame = _read_arrow(ipc).to_pandas()
    labels = meta.get("columns")
    if type(labels) is not list or len(labels) != frame.shape[1]:
        raise ProtocolError("DataFrame column labels do not match its columns")
    frame.columns = pd.Index(labels, name=meta.get("columns_name"), tupleize_cols=False)
    return _restore_freq(frame, meta)


def series_from_body(body: Any) -> pd.Series:
    """Return the Series a decoded ``[arrow_ipc, meta]`` body holds; raise ProtocolError if malformed."""
    ipc, meta = _frame_body(body)
    frame = _read_arrow(ipc).to_pandas()
    if list(frame.columns) != [_VALUES]:
        raise ProtocolError("Series payload does not hold exactly one column")
    series = frame[_VALUES].rename(meta.get("name"))
    return _restore_freq(series, meta)


def _frame_body(body: Any) -> tuple[bytes, dict[str, Any]]:
    if type(body) is not list or len(body) != 2:
        raise ProtocolError("frame payload is not [arrow_ipc, meta]")
    ipc, meta = body
    if type(ipc) is not bytes or type(meta) is not dict:
        raise ProtocolError("frame payload is not [arrow_ipc, meta]")
    return ipc, meta


def _restore_freq(obj: Any, meta: dict[str, Any]) -> Any:
    import pandas as pd

    freq = meta.get("freq")
    if freq is None:
        return obj
    if type(freq) is not str or not isinstance(obj.index, pd.DatetimeIndex | pd.TimedeltaIndex):
        raise ProtocolError(f"frame freq {freq!r} does not fit its index")
    # The constructor checks the values conform to freq, so a lie is an error.
    # The encoder writes pandas' own current spelling, so a deprecated alias
    # (pandas warns) can only come from a forged frame: refuse it too.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        obj.index = type(obj.index)(obj.index, freq=freq)
    return obj


def _read_arrow(ipc: bytes) -> pa.Table:
    import pyarrow as pa

    buffer = pa.py_buffer(ipc)
    for message in pa.ipc.MessageReader.open_stream(buffer):
        if message.type in ("record batch", "dictionary batch") and _is_compressed(
            message.metadata.to_pybytes(), dictionary=message.type == "dictionary batch"
        ):
            raise ProtocolError("compressed Arrow IPC bodies are not accepted")
    with pa.ipc.open_stream(buffer) as reader:
        table = reader.read_all()
    # Offsets and lengths in the buffers are not checked by the reader; pandas
    # conversion would trust them, so check every one first.
    table.validate(full=True)
    return table


def _is_compressed(metadata: bytes, *, dictionary: bool) -> bool:
    """Return whether an Arrow IPC batch message declares a compressed body.

    Reads the flatbuffer just far enough: ``Message.header`` (field 2) is a
    ``RecordBatch`` (or a ``DictionaryBatch`` whose field 1 is one) whose
    field 3, ``compression``, is present only when the body is compressed.
    """

    def field_position(table: int, index: int) -> int:
        if table < 0:
            raise ProtocolError("malformed Arrow message")
        vtable = table - _S32.unpack_from(metadata, table)[0]
        if vtable < 0:
            raise ProtocolError("malformed Arrow message")
        vtable_size = _U16.unpack_from(metadata, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return 0
        offset = _U16.unpack_from(metadata, vtable + slot)[0]
        return table + offset if offset else 0

    def child_table(table: int, index: int) -> int:
        position = field_position(table, index)
        if not position:
            return 0
        return position + _U32.unpack_from(metadata, position)[0]

    root = _U32.unpack_from(metadata, 0)[0]
    batch = child_table(root, 2)
    if batch and dictionary:
        batch = child_table(batch, 1)
    if not batch:
        return False
    return field_position(batch, 3) != 0
