"""Tick payloads into columns, a key's batch at a time: the recorder's decoding, off the bus-reading thread.

The recorder keeps each tick as it came off the bus (its msgpack payload)
and decodes a key's payloads together, in the writer thread, when they are
written: the loop that reads the bus only files them, which is what lets it
keep up with the bus (issue 17's ``recorder_vs_raw``). Every payload goes
through :mod:`trader.messaging.codec`, the platform's one codec (no second
parser of msgpack for speed), and is stored or refused by one rule: its
instrument is the topic's, its time a time, its prices numbers or nil.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


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


def decode(key: str, bodies: list[bytes], bad: BadTick) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Return the times (int64 ns), the :data:`TICK_COLUMNS` values (float64, nil as NaN) and the good payloads.

    Payloads that are not ticks of ``key`` are passed to ``bad`` and left
    out; the rows keep the order of ``bodies``. The good payloads are
    ``bodies`` itself when none was bad. The columns are built once, from
    lists, not row by row.
    """
    times: list[int] = []
    rows: list[tuple[Any, ...]] = []
    good: list[bytes] = []
    columns = TICK_COLUMNS
    for body in bodies:
        tick = _tick(key, body, columns, bad)
        if tick is not None:
            times.append(tick[0])
            rows.append(tick[1])
            good.append(body)
    values = np.array(rows, dtype="float64") if rows else np.full((0, len(columns)), np.nan)  # None -> NaN
    return np.array(times, dtype="int64"), values, bodies if len(good) == len(bodies) else good


def _tick(key: str, body: bytes, columns: tuple[str, ...], bad: BadTick) -> tuple[int, tuple[Any, ...]] | None:
    """Decode one payload with the codec: its time (ns) and values, or None once ``bad`` was told why not."""
    try:
        payload = codec.decode(body)
    except ProtocolError as exc:
        bad(f"undecodable payload: {exc}", body)
        return None
    if type(payload) is dict:
        instrument, stamp = payload.get("instrument"), payload.get("time")
        found = tuple(map(payload.get, columns))
    else:
        instrument, stamp = getattr(payload, "instrument", None), getattr(payload, "time", None)
        found = tuple(getattr(payload, c, None) for c in columns)
    if instrument != key:
        bad(f"not a tick of {key} (instrument {clip(instrument, 40)})", body)
        return None
    if isinstance(stamp, pd.Timestamp):
        ns = stamp.value if stamp.tzinfo is not None else None
    elif isinstance(stamp, datetime):
        ns = (stamp - _EPOCH) // _ONE_US * 1000 if stamp.tzinfo is not None else None
    else:
        ns = None
    if ns is None or not 0 < ns < _MAX_NS:
        bad(f"not a tick (time {clip(stamp, 40)})", body)
        return None
    if not _NUMBERS.issuperset(map(type, found)):
        bad("not a tick (a price or size that is not a number)", body)
        return None
    return ns, found
