"""The market store on ArcticDB: LMDB on a local disk, or S3 (MinIO, AWS) for several machines.

Libraries by kind: ``bars.<size>`` (one per bar size, ``bars.1m``, ``bars.1d``),
``ticks``, and ``records.<kind>`` (universes, ...). Symbols are contract keys.
A window write is ArcticDB's ``update`` with the window as its date range, so
it replaces exactly what was stored there and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pandas as pd

from trader.data.frames import check_bars, check_ticks, utc
from trader.data.store import SymbolMeta
from trader.errors import Conflict, NotFound, StorageError, ValidationError
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["ArcticStore"]

_BARS = "bars."
_TICKS = "ticks"
_RECORDS = "records."
_ONE_NS = pd.Timedelta(1, "ns")


class ArcticStore:
    """A :class:`~trader.data.store.MarketStore` on one ArcticDB URI."""

    def __init__(self, uri: str) -> None:
        import arcticdb

        self.uri = uri
        try:
            self._arctic = arcticdb.Arctic(uri)
        except Exception as exc:  # arcticdb raises its own and OSErrors alike
            raise StorageError(f"cannot open the market store {uri}: {exc}", uri=uri) from None
        self._libs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ArcticStore({self.uri.split('?')[0]!r})"  # an s3 URI's query holds the secret

    # --- libraries --------------------------------------------------------------------------
    def _lib(self, name: str, *, create: bool = True) -> Any:
        lib = self._libs.get(name)
        if lib is None:
            try:
                if not create and not self._arctic.has_library(name):
                    return None
                lib = self._arctic.get_library(name, create_if_missing=create)
            except Exception as exc:
                raise StorageError(f"market store library {name}: {exc}", library=name) from None
            self._libs[name] = lib
        return lib

    @staticmethod
    def _size(bar_size: str) -> str:
        return short_bar_size(parse_bar_size(bar_size))

    # --- bars -------------------------------------------------------------------------------
    def write_bars(self, key: str, bar_size: str, frame: pd.DataFrame, *, start: datetime, end: datetime,
                   meta: SymbolMeta | None = None) -> int:
        """Replace the window ``[start, end)`` of ``key``'s bars with ``frame``; return rows written."""
        lo, hi = utc(start), utc(end)
        if hi <= lo:
            raise ValidationError(f"{key}: an empty window {lo.isoformat()} .. {hi.isoformat()}", key=key)
        bars = check_bars(frame, key, lo, hi)
        lib = self._lib(_BARS + self._size(bar_size))
        metadata = asdict(meta or SymbolMeta(key=key))
        metadata["contract"], metadata["extra"] = dict(metadata["contract"]), dict(metadata["extra"])
        try:
            lib.update(key, bars, upsert=True, date_range=(lo, hi - _ONE_NS), metadata=metadata)
        except Exception as exc:
            raise StorageError(f"{key}: cannot write {len(bars)} bars: {exc}", key=key) from None
        return len(bars)

    def read_bars(self, key: str, bar_size: str, start: datetime | None = None, end: datetime | None = None,
                  *, as_of: str | None = None) -> pd.DataFrame:
        """Return the bars in ``[start, end)``, resampled from a finer size when this one is not stored."""
        size = self._size(bar_size)
        lib = self._lib(_BARS + size, create=False)
        if lib is not None and lib.has_symbol(key):
            return self._read(lib, key, start, end, as_of)
        seconds = parse_bar_size(size)
        for finer in sorted((parse_bar_size(s) for s, keys in self.bar_symbols().items() if key in keys),
                            reverse=True):
            if finer < seconds and seconds % finer == 0:
                bars = self._read(self._lib(_BARS + short_bar_size(finer)), key, start, end, as_of)
                return resample_bars(bars, seconds)
        raise NotFound(f"no {size} bars stored for {key}", key=key, bar_size=size)

    @staticmethod
    def _read(lib: Any, key: str, start: datetime | None, end: datetime | None, as_of: str | None) -> pd.DataFrame:
        lo = utc(start) if start is not None else None
        hi = utc(end) - _ONE_NS if end is not None else None
        try:
            data = lib.read(key, date_range=(lo, hi), as_of=as_of).data
        except Exception as exc:
            raise StorageError(f"{key}: cannot read bars: {exc}", key=key) from None
        data.index = data.index.rename("time")
        return data

    def read_index(self, key: str, bar_size: str) -> pd.DatetimeIndex:
        """Return the bar starts of a stored series, reading no prices (for summaries)."""
        lib = self._lib(_BARS + self._size(bar_size), create=False)
        if lib is None or not lib.has_symbol(key):
            raise NotFound(f"no {self._size(bar_size)} bars stored for {key}", key=key)
        try:
            return lib.read(key, columns=[]).data.index.rename("time")
        except Exception as exc:
            raise StorageError(f"{key}: cannot read the bars' index: {exc}", key=key) from None

    def bar_symbols(self, bar_size: str | None = None) -> dict[str, list[str]]:
        """Return the stored keys per bar size."""
        names = [_BARS + self._size(bar_size)] if bar_size else [
            n for n in self._arctic.list_libraries() if n.startswith(_BARS)]
        out = {}
        for name in names:
            lib = self._lib(name, create=False)
            if lib is not None:
                out[name.removeprefix(_BARS)] = sorted(lib.list_symbols())
        return out

    def meta(self, key: str, bar_size: str) -> SymbolMeta:
        """Return a stored symbol's metadata."""
        lib = self._lib(_BARS + self._size(bar_size), create=False)
        if lib is None or not lib.has_symbol(key):
            raise NotFound(f"no {self._size(bar_size)} bars stored for {key}", key=key)
        data = lib.read_metadata(key).metadata or {"key": key}
        return SymbolMeta(**data)

    def delete_bars(self, key: str, bar_size: str) -> bool:
        """Remove a symbol's bars of one size."""
        lib = self._lib(_BARS + self._size(bar_size), create=False)
        if lib is None or not lib.has_symbol(key):
            return False
        lib.delete(key)
        return True

    # --- ticks ------------------------------------------------------------------------------
    def append_ticks(self, key: str, frame: pd.DataFrame) -> int:
        """Append ticks after the stored ones."""
        ticks = check_ticks(frame, key)
        if not len(ticks):
            return 0
        try:
            self._lib(_TICKS).append(key, ticks)
        except Exception as exc:
            raise StorageError(f"{key}: cannot append {len(ticks)} ticks: {exc}", key=key) from None
        return len(ticks)

    def read_ticks(self, key: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Return the recorded ticks in ``[start, end)``."""
        lib = self._lib(_TICKS, create=False)
        if lib is None or not lib.has_symbol(key):
            raise NotFound(f"no ticks recorded for {key}", key=key)
        return self._read(lib, key, start, end, None)

    def tick_symbols(self) -> list[str]:
        """Return the keys with recorded ticks."""
        lib = self._lib(_TICKS, create=False)
        return sorted(lib.list_symbols()) if lib is not None else []

    # --- records ----------------------------------------------------------------------------
    def put_record(self, kind: str, name: str, data: Mapping[str, Any]) -> None:
        """Store a small document under ``kind``/``name``."""
        try:
            self._lib(_RECORDS + kind).write(name, pd.DataFrame(), metadata=dict(data))
        except Exception as exc:
            raise StorageError(f"cannot store {kind} {name}: {exc}", kind=kind, name=name) from None

    def get_record(self, kind: str, name: str) -> dict[str, Any]:
        """Return a document."""
        lib = self._lib(_RECORDS + kind, create=False)
        if lib is None or not lib.has_symbol(name):
            raise NotFound(f"no {kind} named {name}", kind=kind, name=name)
        return dict(lib.read_metadata(name).metadata or {})

    def records(self, kind: str) -> list[str]:
        """Return the names stored under ``kind``."""
        lib = self._lib(_RECORDS + kind, create=False)
        return sorted(lib.list_symbols()) if lib is not None else []

    def delete_record(self, kind: str, name: str) -> bool:
        """Remove a document."""
        lib = self._lib(_RECORDS + kind, create=False)
        if lib is None or not lib.has_symbol(name):
            return False
        lib.delete(name)
        return True

    # --- snapshots --------------------------------------------------------------------------
    def snapshot(self, name: str) -> None:
        """Snapshot every library under ``name``."""
        if name in self.snapshots():
            raise Conflict(f"a snapshot named {name} exists", name=name)
        for lib_name in self._arctic.list_libraries():
            lib = self._lib(lib_name)
            if lib.list_symbols():
                lib.snapshot(name)

    def snapshots(self) -> list[str]:
        """Return the snapshot names."""
        names: set[str] = set()
        for lib_name in self._arctic.list_libraries():
            names.update(self._lib(lib_name).list_snapshots())
        return sorted(names)

    def delete_snapshot(self, name: str) -> bool:
        """Remove a snapshot from every library."""
        found = False
        for lib_name in self._arctic.list_libraries():
            lib = self._lib(lib_name)
            if name in lib.list_snapshots():
                lib.delete_snapshot(name)
                found = True
        return found


def resample_bars(bars: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """Aggregate bars to ``seconds``-long bars aligned to UTC (days at midnight UTC)."""
    if bars.empty:
        return bars
    rule = f"{seconds}s"
    grouped = bars.resample(rule, label="left", closed="left")
    out = pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                        "low": grouped["low"].min(), "close": grouped["close"].last(),
                        "volume": grouped["volume"].sum()})
    return out.dropna(subset=["open"])
