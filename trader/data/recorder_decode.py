"""Tick payloads into columns, a batch at a time: the recorder's decoding, off the bus-reading thread.

The recorder keeps each tick as it came off the bus (its msgpack payload)
and decodes a key's payloads together, when they are written. Ticks of one
source share their *layout*: the same map, the same keys in the same order,
the same instrument, each price a float64 or nil. :func:`decode` finds a
layout in one payload (read by :func:`_layout`, checked against what msgpack
itself decodes), then takes every payload of that length whose bytes
outside the values are the layout's, and reads their times and prices
straight out of the bytes with numpy: one pass per layout, not a decode per
tick, which is what lets the recorder keep up with the bus (issue 17's
``recorder_vs_raw``). A payload of another shape (ints, a ``Tick``
dataclass, a malformed message) goes through :mod:`trader.messaging.codec`
one at a time, as every payload used to, and is stored or refused by the
same rules: its instrument is the topic's, its time a time, its prices
numbers or nil.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgpack
import numpy as np
import pandas as pd

from trader.data.frames import TICK_COLUMNS
from trader.errors import ProtocolError
from trader.messaging import codec
from trader.peer_text import clip

__all__ = ["Batch", "decode"]

BadTick = Callable[[str, bytes], None]  # (reason, payload): count and log one malformed payload

_NUMBERS = frozenset({float, int, type(None)})
_MAX_NS = 2**63 - 1
_MAX_SECONDS = _MAX_NS // 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MAX_LAYOUTS = 8  # layouts tried per payload length before the rest go one at a time
_COLUMN_NAMES = tuple(c.encode() for c in TICK_COLUMNS)


class Batch:
    """Ticks received and not yet stored: per key, their payloads in the order they came."""

    __slots__ = ("keys", "since", "size")

    def __init__(self) -> None:
        self.keys: dict[str, list[bytes]] = {}
        self.size = 0
        self.since = 0.0  # time.monotonic() of its first tick

    def put_back(self, older: Batch) -> None:
        """Put ``older``'s unwritten ticks in front of this batch's (a write that failed)."""
        for key, bodies in older.keys.items():
            mine = self.keys.get(key)
            self.keys[key] = bodies + mine if mine else bodies
        self.since = min(self.since, older.since) if self.size else older.since
        self.size += older.size


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where one payload shape keeps its values: byte offsets, and the bytes every such payload shares."""

    fixed: np.ndarray  # the byte positions outside the values
    skeleton: np.ndarray  # those bytes
    time: int  # offset of the timestamp's data
    wide_time: bool  # timestamp 64 (seconds and nanoseconds) rather than 32 (seconds)
    floats: tuple[tuple[int, int], ...]  # (column, offset of its big-endian float64)


def decode(key: str, bodies: list[bytes], bad: BadTick) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Return the times (int64 ns), the :data:`TICK_COLUMNS` values (float64, nil as NaN) and the good payloads.

    Payloads that are not ticks of ``key`` are passed to ``bad`` and left
    out; the rows keep the order of ``bodies``. The good payloads are
    ``bodies`` itself when none was bad.
    """
    n = len(bodies)
    times = np.zeros(n, dtype="int64")
    values = np.full((n, len(TICK_COLUMNS)), np.nan)
    ok = np.zeros(n, dtype=bool)
    lengths = np.fromiter(map(len, bodies), dtype="int64", count=n)
    sizes = np.unique(lengths)
    for length in sizes:
        rows = np.arange(n) if len(sizes) == 1 else np.flatnonzero(lengths == length)
        for _ in range(_MAX_LAYOUTS):
            if not len(rows):
                break
            layout = _layout(bodies[rows[0]], key)
            if layout is None:
                _one(key, bodies, int(rows[0]), times, values, ok, bad)
                rows = rows[1:]
                continue
            rows = _fill(layout, bodies, rows, int(length), times, values, ok)
        for row in rows:
            _one(key, bodies, int(row), times, values, ok, bad)
    if ok.all():
        return times, values, bodies
    return times[ok], values[ok], [b for b, good in zip(bodies, ok, strict=True) if good]


def _fill(layout: _Layout, bodies: list[bytes], rows: np.ndarray, length: int, times: np.ndarray,
          values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Read the ``rows`` whose bytes fit ``layout``; return the rows that do not."""
    every = len(rows) == len(bodies)  # the usual batch: one layout throughout
    joined = b"".join(bodies) if every else b"".join([bodies[i] for i in rows.tolist()])
    blob = np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), length)
    fits = (blob[:, layout.fixed] == layout.skeleton).all(axis=1)
    if layout.wide_time:
        packed = _column(blob, layout.time, ">u8").astype(np.uint64)
        seconds = packed & np.uint64(2**34 - 1)
        nanos = packed >> np.uint64(34)
        fits &= (seconds < _MAX_SECONDS) & (nanos < 1_000_000_000)
        stamps = seconds.astype("int64") * 1_000_000_000 + nanos.astype("int64")
    else:
        seconds = _column(blob, layout.time, ">u4").astype("int64")
        fits &= seconds < _MAX_SECONDS
        stamps = seconds * 1_000_000_000
    fits &= stamps > 0
    if every and fits.all():
        times[:] = stamps
        for column, offset in layout.floats:
            values[:, column] = _column(blob, offset, ">f8")
        ok[:] = True
        return rows[:0]
    taken = rows[fits]
    times[taken] = stamps[fits]
    for column, offset in layout.floats:
        values[taken, column] = _column(blob, offset, ">f8")[fits]
    ok[taken] = True
    return rows[~fits]


def _column(blob: np.ndarray, offset: int, dtype: str) -> np.ndarray:
    """Return the big-endian number at ``offset`` of each row of ``blob``, one per row."""
    width = np.dtype(dtype).itemsize
    return np.ascontiguousarray(blob[:, offset:offset + width]).view(dtype).ravel()


def _layout(body: bytes, key: str) -> _Layout | None:
    """Return the layout of ``body`` if it is a plain tick map of ``key`` (fixstr keys, float64/nil values)."""
    if not body or not 0x80 <= body[0] <= 0x8F:
        return None
    fields: dict[bytes, tuple[str, int]] = {}
    variable: list[tuple[int, int]] = []  # (offset, width) of the values
    pos = 1
    try:
        for _ in range(body[0] & 0x0F):
            head = body[pos]
            if not 0xA0 <= head <= 0xBF:
                return None
            name = body[pos + 1:pos + 1 + (head & 0x1F)]
            pos += 1 + (head & 0x1F)
            kind = body[pos]
            if name in fields:
                return None
            if kind == 0xCB:
                fields[name] = ("float", pos + 1)
                variable.append((pos + 1, 8))
                pos += 9
            elif kind == 0xC0:
                fields[name] = ("nil", pos)
                pos += 1
            elif kind == 0xD6 and body[pos + 1] == 0xFF:  # timestamp 32
                fields[name] = ("time32", pos + 2)
                variable.append((pos + 2, 4))
                pos += 6
            elif kind == 0xD7 and body[pos + 1] == 0xFF:  # timestamp 64
                fields[name] = ("time64", pos + 2)
                variable.append((pos + 2, 8))
                pos += 10
            elif 0xA0 <= kind <= 0xBF:  # a short string: the instrument (kept in the skeleton)
                fields[name] = ("str", pos)
                pos += 1 + (kind & 0x1F)
            else:
                return None
    except IndexError:
        return None
    instrument, stamp = fields.get(b"instrument"), fields.get(b"time")
    if pos != len(body) or instrument is None or stamp is None or not stamp[0].startswith("time"):
        return None
    if instrument[0] != "str" or body[instrument[1] + 1:_str_end(body, instrument[1])] != key.encode():
        return None
    if any(fields.get(name, ("nil", 0))[0] not in ("float", "nil") for name in _COLUMN_NAMES):
        return None
    try:  # what msgpack makes of it must be what the layout says
        plain = msgpack.unpackb(body, timestamp=2)
    except Exception:  # noqa: BLE001 - not msgpack after all: one at a time
        return None
    if not isinstance(plain, dict) or plain.get("instrument") != key or len(plain) != len(fields):
        return None
    mask = np.ones(len(body), dtype=bool)
    for offset, width in variable:
        mask[offset:offset + width] = False
    fixed = np.flatnonzero(mask)
    floats = tuple((i, fields[name][1]) for i, name in enumerate(_COLUMN_NAMES)
                   if fields.get(name, ("nil", 0))[0] == "float")
    return _Layout(fixed=fixed, skeleton=np.frombuffer(body, dtype=np.uint8)[fixed].copy(), time=stamp[1],
                   wide_time=stamp[0] == "time64", floats=floats)


def _str_end(body: bytes, at: int) -> int:
    """Return the end of the fixstr whose header is at ``at``."""
    return at + 1 + (body[at] & 0x1F)


def _one(key: str, bodies: list[bytes], row: int, times: np.ndarray, values: np.ndarray, ok: np.ndarray,
         bad: BadTick) -> None:
    """Decode payload ``row`` with the codec (any tick it decodes), or pass it to ``bad``."""
    body = bodies[row]
    try:
        payload = codec.decode(body)
    except ProtocolError as exc:
        bad(f"undecodable payload: {exc}", body)
        return
    if isinstance(payload, dict):
        instrument, stamp = payload.get("instrument"), payload.get("time")
        found = tuple(payload.get(c) for c in TICK_COLUMNS)
    else:
        instrument, stamp = getattr(payload, "instrument", None), getattr(payload, "time", None)
        found = tuple(getattr(payload, c, None) for c in TICK_COLUMNS)
    if instrument != key:
        bad(f"not a tick of {key} (instrument {clip(instrument, 40)})", body)
        return
    if isinstance(stamp, pd.Timestamp):
        ns = stamp.value if stamp.tzinfo is not None else None
    elif isinstance(stamp, datetime):
        ns = (stamp - _EPOCH) // _ONE_US * 1000 if stamp.tzinfo is not None else None
    else:
        ns = None
    if ns is None or not 0 < ns < _MAX_NS:
        bad(f"not a tick (time {clip(stamp, 40)})", body)
        return
    if not _NUMBERS.issuperset(map(type, found)):
        bad("not a tick (a price or size that is not a number)", body)
        return
    times[row] = ns
    values[row] = np.array(found, dtype="float64")
    ok[row] = True
