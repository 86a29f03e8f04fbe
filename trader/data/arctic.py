"""The market store on ArcticDB: LMDB on a local disk, or S3 (MinIO, AWS) for several machines.

Libraries by kind: ``bars.<size>`` (one per bar size, ``bars.1m``, ``bars.1d``),
``ticks``, and ``records.<kind>`` (universes, ...). Symbols are contract keys,
each with its :class:`~trader.data.store.SymbolMeta` (contract, source, time
zone) in the ``metadata`` library as ``<library>.<key>``, written only when it
changes. A window write is ArcticDB's ``update`` with the window as its date
range, so it replaces exactly what was stored there and nothing else; older
versions are pruned (every 8th write) unless a snapshot holds them.

Failures: a read-only directory, a full disk or LMDB map (``?map_size=``) and
an unreachable S3 raise :class:`~trader.errors.StorageError` with the reason in
words; ArcticDB writes a version's data before it points the symbol at it, so
a failed write leaves the previous version whole. On LMDB every write holds the
symbol's writer lock (:mod:`trader.data.locks`).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import arcticdb
import pandas as pd
from arcticdb.exceptions import NoDataFoundException

from trader.data.backends import (
    BACKEND_ERRORS,
    check_directory,
    configure_lmdb,
    configure_s3,
    lmdb_path,
    mask_uri,
    storage_failure,
)
from trader.data.frames import check_bars, check_ticks, resample_bars, utc
from trader.data.locks import SymbolLocks
from trader.data.store import SymbolMeta, merge_meta
from trader.errors import Conflict, NotFound, StorageError, ValidationError
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["BACKEND_ERRORS", "ArcticStore", "resample_bars"]

_BARS = "bars."
_METADATA = "metadata"
_TICKS = "ticks"
_RECORDS = "records."
_ONE_NS = pd.Timedelta(1, "ns")
_META_FIELDS = {f.name for f in fields(SymbolMeta)}
PRUNE_EVERY = 8
# One arcticdb.Arctic per store and process: LMDB does not support opening one path twice in a process
# (the first opening's map_size holds for the process).
_OPEN: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


class ArcticStore:
    """A :class:`~trader.data.store.MarketStore` on one ArcticDB URI."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self.uri = mask_uri(uri)  # what may be shown: the secret masked
        path = lmdb_path(uri)
        if path is not None:
            check_directory(path)
            configure_lmdb()
        elif uri.startswith(("s3://", "s3s://")):
            configure_s3(keep=True)  # a down S3 fails in seconds, not after ArcticDB's minutes of retries
        self.locks = SymbolLocks(path)
        try:
            opened = f"lmdb:{os.path.realpath(path)}" if path is not None else uri  # one path, however spelt
            self._arctic = _OPEN.get(opened)
            if self._arctic is None:
                self._arctic = _OPEN[opened] = arcticdb.Arctic(uri)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot open the market store {self.uri}") from None
        self._libs: dict[str, Any] = {}
        self._writes: dict[tuple[str, str], int] = {}
        self._metas: dict[tuple[str, str], dict[str, Any]] = {}  # what this process last stored or read

    def __repr__(self) -> str:
        return f"ArcticStore({self.uri!r})"

    def failure(self, exc: BaseException, what: str, **details: Any) -> StorageError:
        """Return the StorageError for ``exc``: the reason in words, no secret of the URI in it."""
        return storage_failure(exc, self._uri, what, **details)

    # --- libraries --------------------------------------------------------------------------
    def _lib(self, name: str, *, create: bool = True) -> Any:
        lib = self._libs.get(name)
        if lib is None:
            try:
                if not create and not self._arctic.has_library(name):
                    return None
                lib = self._arctic.get_library(name, create_if_missing=create)
            except BACKEND_ERRORS as exc:
                raise self.failure(exc, f"market store {self.uri}, library {name}", library=name) from None
            self._libs[name] = lib
        return lib

    def libraries(self) -> list[str]:
        """Return the names of the store's libraries."""
        try:
            return sorted(self._arctic.list_libraries())
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot list the libraries of {self.uri}") from None

    def library(self, name: str, *, create: bool = False) -> Any:
        """Return the ArcticDB library ``name`` (None if absent and not ``create``): for backups and benchmarks."""
        return self._lib(name, create=create)

    def drop_library(self, name: str) -> None:
        """Delete the library ``name``, its symbols and snapshots (a restore with ``--force``)."""
        try:
            self._arctic.delete_library(name)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot delete the library {name}", library=name) from None
        self._libs.pop(name, None)

    def reopen(self) -> None:
        """Open the store's URI afresh and forget what this object cached (a restore swapped the LMDB directory)."""
        path = lmdb_path(self._uri)
        opened = f"lmdb:{os.path.realpath(path)}" if path is not None else self._uri
        try:
            self._arctic = _OPEN[opened] = arcticdb.Arctic(self._uri)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot open the market store {self.uri}") from None
        self.locks = SymbolLocks(path)  # its lock directories were the old store's
        self._libs.clear()
        self._writes.clear()
        self._metas.clear()

    @staticmethod
    def _size(bar_size: str) -> str:
        return short_bar_size(parse_bar_size(bar_size))

    # --- bars -------------------------------------------------------------------------------
    def write_bars(self, key: str, bar_size: str, frame: pd.DataFrame, *, start: datetime, end: datetime,
                   meta: SymbolMeta | None = None) -> int:
        """Replace the window ``[start, end)`` of ``key``'s bars with ``frame``; return rows written.

        ``meta`` is merged into the symbol's stored metadata (an empty field keeps the stored one).
        """
        lo, hi = utc(start), utc(end)
        if hi <= lo:
            raise ValidationError(f"{key}: an empty window {lo.isoformat()} .. {hi.isoformat()}", key=key)
        bars = check_bars(frame, key, lo, hi)
        name = _BARS + self._size(bar_size)
        lib = self._lib(name)
        try:
            with self.locks.hold(name, key):
                exists = lib.has_symbol(key)
                if bars.empty:  # the window holds no bar: remove what was stored there
                    if exists:
                        lib.delete_data_in_range(key, (lo, hi - _ONE_NS), prune_previous_versions=True)
                elif not exists:  # the window is all there will be: a plain write is the same, and cheaper
                    lib.write(key, bars)
                else:
                    try:
                        lib.update(key, bars, date_range=(lo, hi - _ONE_NS),
                                   prune_previous_versions=self._prune_now(name, key))
                    except BACKEND_ERRORS as exc:
                        if "not identical" not in str(exc):
                            raise
                        # stored before every bar frame had all seven columns: rewritten once in that shape
                        log.info("%s: %s bars rewritten with the columns wap and bar_count", key, name)
                        lib.write(key, check_bars(lib.read(key).data, key))
                        lib.update(key, bars, date_range=(lo, hi - _ONE_NS))
                if meta is not None and (exists or not bars.empty):
                    self._put_meta(name, key, meta)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot write {len(bars)} {self._size(bar_size)} bars", key=key) from None
        return len(bars)

    def _prune_now(self, library: str, key: str) -> bool:
        """Return whether this write prunes the symbol's older versions: the first of a process, then every 8th.

        Each update leaves the version before it (and the segments it replaced)
        until a prune; pruning on every write cost 10% of the write, so the
        store keeps at most :data:`PRUNE_EVERY` unpruned versions per symbol.
        A version a snapshot names is never pruned.
        """
        count = self._writes.get((library, key), 0)
        self._writes[(library, key)] = count + 1
        return count % PRUNE_EVERY == 0

    def _put_meta(self, library: str, key: str, meta: SymbolMeta) -> None:
        """Merge ``meta`` into ``key``'s stored metadata in ``library``; write it only if that changes it."""
        stored = self._metas[(library, key)] if (library, key) in self._metas else self._stored_meta(library, key)
        data = merge_meta(stored, meta)
        if stored == data:
            return
        self._lib(_METADATA).write_pickle(f"{library}.{key}", data, prune_previous_versions=True)
        self._metas[(library, key)] = data

    def _stored_meta(self, library: str, key: str) -> dict[str, Any] | None:
        """Return ``key``'s metadata in ``library``, or None if none was stored."""
        lib = self._lib(_METADATA, create=False)
        if lib is None:
            return None
        try:
            data = dict(lib.read(f"{library}.{key}").data)
        except BACKEND_ERRORS as exc:
            if isinstance(exc, NoDataFoundException):  # no such symbol
                return None
            raise
        self._metas[(library, key)] = data
        return data

    def read_bars(self, key: str, bar_size: str, start: datetime | None = None, end: datetime | None = None,
                  *, as_of: str | None = None) -> pd.DataFrame:
        """Return the bars in ``[start, end)``, resampled from the finest finer size when this one is not stored."""
        size = self._size(bar_size)
        lib = self._lib(_BARS + size, create=False)
        if lib is not None:
            bars = self._read(lib, key, start, end, as_of, missing_ok=True)
            if bars is not None:
                return bars
        seconds = parse_bar_size(size)
        for finer in sorted(parse_bar_size(s) for s, keys in self.bar_symbols().items() if key in keys):
            if finer < seconds and seconds % finer == 0:
                finer_lib = self._lib(_BARS + short_bar_size(finer))
                lo, hi = _whole_periods(start, end, seconds)  # whole bars: not a part of one cut by the range
                bars = self._read(finer_lib, key, lo, hi, as_of, missing_ok=True)
                if bars is None:
                    continue
                timezone = (self._stored_meta(_BARS + short_bar_size(finer), key) or {}).get("timezone") or "UTC"
                bars = resample_bars(bars, seconds, timezone)
                inside = (bars.index >= utc(start) if start is not None else True) & (
                    bars.index < utc(end) if end is not None else True)
                return bars if inside is True else bars[inside]
        if as_of and as_of not in self.snapshots():  # checked only when nothing was found: free otherwise
            raise NotFound(f"no snapshot named {as_of} (see `trader data snapshots`)", snapshot=as_of)
        where = f" in snapshot {as_of}" if as_of else ""
        raise NotFound(f"no {size} bars stored for {key}{where}", key=key, bar_size=size)

    def _read(self, lib: Any, key: str, start: datetime | None, end: datetime | None, as_of: str | None,
              *, missing_ok: bool = False) -> pd.DataFrame | None:
        """Return ``key``'s data in ``[start, end)``; None if it (or the snapshot) is absent and ``missing_ok``."""
        lo = utc(start) if start is not None else None
        hi = utc(end) - _ONE_NS if end is not None else None
        try:
            data = lib.read(key, date_range=(lo, hi), as_of=as_of).data
        except BACKEND_ERRORS as exc:
            if missing_ok and isinstance(exc, NoDataFoundException):
                return None
            raise self.failure(exc, f"{key}: cannot read", key=key) from None
        data.index = data.index.rename("time")
        return data

    def read_index(self, key: str, bar_size: str) -> pd.DatetimeIndex:
        """Return the bar starts of a stored series, reading no prices (for summaries)."""
        lib = self._lib(_BARS + self._size(bar_size), create=False)
        try:
            if lib is None or not lib.has_symbol(key):
                raise NotFound(f"no {self._size(bar_size)} bars stored for {key}", key=key)
            return lib.read(key, columns=[]).data.index.rename("time")
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot read the bars' index", key=key) from None

    def bar_symbols(self, bar_size: str | None = None) -> dict[str, list[str]]:
        """Return the stored keys per bar size."""
        names = [_BARS + self._size(bar_size)] if bar_size else [
            n for n in self.libraries() if n.startswith(_BARS)]
        out = {}
        for name in names:
            lib = self._lib(name, create=False)
            if lib is not None:
                out[name.removeprefix(_BARS)] = sorted(self._symbols(lib, name))
        return out

    def _symbols(self, lib: Any, name: str) -> list[str]:
        """Return the symbols of the library ``name``, a backend failure as StorageError."""
        try:
            return list(lib.list_symbols())
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot list the symbols of {name}", library=name) from None

    def meta(self, key: str, bar_size: str) -> SymbolMeta:
        """Return a stored symbol's metadata (``bar_size`` ``"ticks"``: its recorded ticks')."""
        name = _TICKS if bar_size == "ticks" else _BARS + self._size(bar_size)
        lib = self._lib(name, create=False)
        try:
            if lib is None or not lib.has_symbol(key):
                raise NotFound(f"nothing stored in {name} for {key}", key=key)
            data = self._stored_meta(name, key) or {}
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot read its metadata", key=key) from None
        known = {k: v for k, v in data.items() if k in _META_FIELDS}
        return SymbolMeta(**{"key": key, **known})

    def delete_bars(self, key: str, bar_size: str) -> bool:
        """Remove a symbol's bars of one size."""
        name = _BARS + self._size(bar_size)
        lib = self._lib(name, create=False)
        try:
            if lib is None or not lib.has_symbol(key):
                return False
            with self.locks.hold(name, key):
                lib.delete(key)
                meta = self._lib(_METADATA, create=False)
                if meta is not None and meta.has_symbol(f"{name}.{key}"):
                    meta.delete(f"{name}.{key}")
                self._metas.pop((name, key), None)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot delete its {self._size(bar_size)} bars", key=key) from None
        return True

    # --- ticks ------------------------------------------------------------------------------
    def append_ticks(self, key: str, frame: pd.DataFrame, *, meta: SymbolMeta | None = None) -> int:
        """Append ticks after the stored ones (``meta`` merged into the stored metadata)."""
        ticks = check_ticks(frame, key)
        if not len(ticks):
            return 0
        lib = self._lib(_TICKS)
        try:
            with self.locks.hold(_TICKS, key):
                lib.append(key, ticks, prune_previous_versions=self._prune_now(_TICKS, key))
                if meta is not None:
                    self._put_meta(_TICKS, key, meta)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot append {len(ticks)} ticks", key=key) from None
        return len(ticks)

    def read_ticks(self, key: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Return the recorded ticks in ``[start, end)``."""
        lib = self._lib(_TICKS, create=False)
        ticks = None if lib is None else self._read(lib, key, start, end, None, missing_ok=True)
        if ticks is None:
            raise NotFound(f"no ticks recorded for {key}", key=key)
        return ticks

    def tick_symbols(self) -> list[str]:
        """Return the keys with recorded ticks."""
        lib = self._lib(_TICKS, create=False)
        return sorted(self._symbols(lib, _TICKS)) if lib is not None else []

    # --- records ----------------------------------------------------------------------------
    def put_record(self, kind: str, name: str, data: Mapping[str, Any]) -> None:
        """Store a small document under ``kind``/``name`` (pickled: no empty frame, no warning)."""
        lib_name = _RECORDS + kind
        try:
            lib = self._lib(lib_name)
            with self.locks.hold(lib_name, name):
                lib.write_pickle(name, dict(data), prune_previous_versions=True)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot store {kind} {name}", kind=kind, name=name) from None

    def get_record(self, kind: str, name: str) -> dict[str, Any]:
        """Return a document."""
        lib = self._lib(_RECORDS + kind, create=False)
        try:
            if lib is None or not lib.has_symbol(name):
                raise NotFound(f"no {kind} named {name}", kind=kind, name=name)
            item = lib.read(name)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot read {kind} {name}", kind=kind, name=name) from None
        if isinstance(item.data, pd.DataFrame):  # the first format: the document as the metadata
            return dict(item.metadata or {})
        return dict(item.data)

    def records(self, kind: str) -> list[str]:
        """Return the names stored under ``kind``."""
        lib = self._lib(_RECORDS + kind, create=False)
        return sorted(self._symbols(lib, _RECORDS + kind)) if lib is not None else []

    def delete_record(self, kind: str, name: str) -> bool:
        """Remove a document."""
        lib_name = _RECORDS + kind
        lib = self._lib(lib_name, create=False)
        try:
            if lib is None or not lib.has_symbol(name):
                return False
            with self.locks.hold(lib_name, name):
                lib.delete(name)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot delete {kind} {name}", kind=kind, name=name) from None
        return True

    # --- snapshots --------------------------------------------------------------------------
    def snapshot(self, name: str) -> None:
        """Snapshot every library that holds data under ``name``."""
        if name in self.snapshots():
            raise Conflict(f"a snapshot named {name} exists", name=name)
        taken = 0
        created = datetime.now(UTC).isoformat()
        try:
            for lib_name in self.libraries():
                lib = self._lib(lib_name)
                if lib.list_symbols():
                    with self.locks.quiet(lib_name):  # no write half done: one could prune what this names
                        lib.snapshot(name, metadata={"created": created})
                    taken += 1
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot take snapshot {name}", name=name) from None
        if not taken:
            raise NotFound(f"the store is empty: nothing to snapshot as {name}", name=name)
        log.info("snapshot %s of %d libraries in %s", name, taken, self.uri)

    def snapshots(self) -> list[str]:
        """Return the snapshot names."""
        return sorted(self.snapshot_info())

    def snapshot_info(self) -> dict[str, dict[str, Any]]:
        """Return each snapshot's ``created`` time and the ``libraries`` it holds."""
        out: dict[str, dict[str, Any]] = {}
        try:
            for lib_name in self.libraries():
                for name, metadata in self._lib(lib_name).list_snapshots(load_metadata=True).items():
                    info = out.setdefault(name, {"created": None, "libraries": []})
                    info["libraries"].append(lib_name)
                    if isinstance(metadata, dict) and metadata.get("created"):
                        info["created"] = metadata["created"]
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, "cannot list the snapshots") from None
        return out

    def delete_snapshot(self, name: str) -> bool:
        """Remove a snapshot from every library."""
        found = False
        try:
            for lib_name in self.libraries():
                lib = self._lib(lib_name)
                if name in lib.list_snapshots(load_metadata=False):
                    lib.delete_snapshot(name)
                    found = True
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot delete snapshot {name}", name=name) from None
        return found


def _whole_periods(start: datetime | None, end: datetime | None,
                   seconds: int) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Return ``[start, end)`` widened to whole ``seconds``-long periods (by a day more for days: time zones)."""
    step = pd.Timedelta(seconds=seconds)
    pad = pd.Timedelta(days=1) if seconds >= 86_400 else pd.Timedelta(0)
    epoch = pd.Timestamp(0, tz="UTC")
    lo = epoch + (utc(start) - epoch) // step * step - pad if start is not None else None
    hi = epoch + ((utc(end) - epoch - _ONE_NS) // step + 1) * step + pad if end is not None else None
    return lo, hi
