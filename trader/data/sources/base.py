"""What a download source is: windows of bars for one instrument over a range, in time order.

Every source (IB, Polygon, Yahoo, a file) yields :class:`Window` s that cover
the requested ``[start, end)`` wholly, each written to the store as one
window, so a download resumed or repeated replaces what it wrote before.
An empty window is legal: no bars there (a holiday, IB's "HMDS query
returned no data"); the store writes nothing for it and keeps what it holds
there, since such an answer may be transient. What a source cannot serve is a :class:`SourceError`
(:mod:`trader.errors`, built with ``SourceError.of(instrument, reason,
retryable=...)``) naming the instrument and the reason; ``retryable`` says whether the same
request may succeed later (a timeout, 429, 5xx) or never will (an unknown
symbol, a malformed payload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd

from trader.errors import SourceError

__all__ = ["Source", "SourceError", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """One piece of a download: the bars inside ``[start, end)`` (possibly none)."""

    start: pd.Timestamp  # UTC, inclusive
    end: pd.Timestamp  # UTC, exclusive
    frame: pd.DataFrame  # UTC DatetimeIndex of bar starts + open high low close volume [wap bar_count]


@runtime_checkable
class Source(Protocol):
    """A download source, built as ``SourceClass(settings, **options)``."""

    name: str
    # A source whose windows cover only the part of the range it has (a file) says so with
    # ``covers_range = False``; otherwise windows ending before the end mean the source stopped.
    # A source that knows an instrument's contract has ``async def describe(key) -> SymbolMeta | None``
    # (the IB source): the download stores it with the bars; else the key's calendar gives the time zone.

    def windows(self, key: str, bar_size: str, start: pd.Timestamp, end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield the windows covering ``[start, end)`` in time order (an async generator)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
