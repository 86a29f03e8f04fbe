"""The market store on ArcticDB: LMDB on a local disk, or S3 (MinIO, AWS) for several machines.

Libraries by kind: ``bars.<size>`` (one per bar size, ``bars.1m``, ``bars.1d``),
``ticks``, and ``records.<kind>`` (universes, ...). Symbols are contract keys,
each with its :class:`~trader.data.store.SymbolMeta` (contract, source, time
zone) in the ``metadata`` library as ``<library>.<key>``, written only when it
changes (:mod:`trader.data.arctic_libraries`: the connection, libraries,
metadata and reads this stands on). A window write is ArcticDB's ``update``
with the window as its date range, so it replaces exactly what was stored
there and nothing else; older versions are pruned (every 8th write) unless a
snapshot holds them. An empty window writes nothing: a transient empty answer
must not erase good bars, so what is stored there stays (with a warning).

Failures: a read-only directory, a full disk or LMDB map (``?map_size=``) and
an unreachable S3 raise :class:`~trader.errors.StorageError` with the reason in
words; ArcticDB writes a version's data before it points the symbol at it, so
a failed write leaves the previous version whole. On LMDB every write holds the
symbol's writer lock (:mod:`trader.data.locks`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from arcticdb.exceptions import LmdbMapFullError
from arcticdb.version_store.library import WritePayload
from arcticdb_ext.version_store import DataError

from trader.data.arctic_libraries import (
    BARS,
    METADATA,
    ONE_NS,
    PRUNE_EVERY,
    RECORDS,
    TICKS,
    ArcticLibraries,
)
from trader.data.backends import BACKEND_ERRORS
from trader.data.frames import check_bars, check_ticks, resample_bars, utc
from trader.data.store import SymbolMeta
from trader.errors import Conflict, NotFound, StorageError, ValidationError
from trader.strategy.bars import parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["BACKEND_ERRORS", "PRUNE_EVERY", "ArcticStore", "resample_bars"]

_META_FIELDS = {f.name for f in fields(SymbolMeta)}


class ArcticStore(ArcticLibraries):
    """A :class:`~trader.data.store.MarketStore` on one ArcticDB URI."""

    # --- bars -------------------------------------------------------------------------------
    def write_bars(self, key: str, bar_size: str, frame: pd.DataFrame, *, start: datetime, end: datetime,
                   meta: SymbolMeta | None = None) -> int:
        """Replace the window ``[start, end)`` of ``key``'s bars with ``frame``; return rows written.

        ``meta`` is merged into the symbol's stored metadata (an empty field keeps the stored one).
        An empty ``frame`` writes nothing and keeps what is stored (see :meth:`_keep`).
        """
        lo, hi = utc(start), utc(end)
        if hi <= lo:
            raise ValidationError(f"{key}: an empty window {lo.isoformat()} .. {hi.isoformat()}", key=key)
        bars = check_bars(frame, key, lo, hi)
        name = BARS + self._size(bar_size)
        if bars.empty:
            self._keep(name, key, lo, hi)
            return 0
        try:
            with self.locks.hold(name, key):  # first: a restore's swap reopens the store
                lib = self._lib(name)
                exists = lib.has_symbol(key)
                if not exists:  # the window is all there will be: a plain write is the same, and cheaper
                    lib.write(key, bars)
                else:
                    try:
                        lib.update(key, bars, date_range=(lo, hi - ONE_NS),
                                   prune_previous_versions=self._prune_now(name, key))
                    except BACKEND_ERRORS as exc:
                        if "not identical" not in str(exc):
                            raise
                        # stored before every bar frame had all seven columns: rewritten once in that shape
                        log.info("%s: %s bars rewritten with the columns wap and bar_count", key, name)
                        lib.write(key, check_bars(lib.read(key).data, key))
                        lib.update(key, bars, date_range=(lo, hi - ONE_NS))
                if meta is not None:
                    self._put_meta(name, key, meta)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot write {len(bars)} {self._size(bar_size)} bars", key=key) from None
        return len(bars)

    def _keep(self, library: str, key: str, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        """Write nothing for an empty window ``[lo, hi)``; warn if bars stored there are kept.

        An empty answer may be transient (IB's "HMDS query returned no data"
        for a farm that is down, a Yahoo or Polygon hiccup): erasing on it
        would lose good bars, so they stay, and the warning says so.
        """
        lib = self._lib(library, create=False)
        if lib is None:
            return
        try:
            if not lib.has_symbol(key):
                return
            kept = len(lib.read(key, date_range=(lo, hi - ONE_NS), columns=[]).data)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot read the bars of an empty window", key=key) from None
        if kept:
            log.warning("%s: the %s window %s .. %s came empty; its %d stored bars are kept", key,
                        library.removeprefix(BARS), lo.isoformat(), hi.isoformat(), kept)

    def read_bars(self, key: str, bar_size: str, start: datetime | None = None, end: datetime | None = None,
                  *, as_of: str | None = None) -> pd.DataFrame:
        """Return the bars in ``[start, end)``, resampled from the finest finer size when this one is not stored."""
        size = self._size(bar_size)
        lib = self._lib(BARS + size, create=False)
        if lib is not None:
            bars = self._read(lib, key, start, end, as_of, missing_ok=True)
            if bars is not None:
                return bars
        seconds = parse_bar_size(size)
        for finer in sorted(parse_bar_size(s) for s, keys in self.bar_symbols().items() if key in keys):
            if finer < seconds and seconds % finer == 0:
                finer_lib = self._lib(BARS + short_bar_size(finer))
                lo, hi = _whole_periods(start, end, seconds)  # whole bars: not a part of one cut by the range
                bars = self._read(finer_lib, key, lo, hi, as_of, missing_ok=True)
                if bars is None:
                    continue
                timezone = (self._stored_meta(BARS + short_bar_size(finer), key) or {}).get("timezone") or "UTC"
                bars = resample_bars(bars, seconds, timezone)
                inside = (bars.index >= utc(start) if start is not None else True) & (
                    bars.index < utc(end) if end is not None else True)
                return bars if inside is True else bars[inside]
        if as_of and as_of not in self.snapshots():  # checked only when nothing was found: free otherwise
            raise NotFound(f"no snapshot named {as_of} (see `trader data snapshots`)", snapshot=as_of)
        where = f" in snapshot {as_of}" if as_of else ""
        raise NotFound(f"no {size} bars stored for {key}{where}", key=key, bar_size=size)

    def read_index(self, key: str, bar_size: str) -> pd.DatetimeIndex:
        """Return the bar starts of a stored series, reading no prices (for summaries)."""
        lib = self._lib(BARS + self._size(bar_size), create=False)
        try:
            if lib is None or not lib.has_symbol(key):
                raise NotFound(f"no {self._size(bar_size)} bars stored for {key}", key=key)
            return lib.read(key, columns=[]).data.index.rename("time")
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot read the bars' index", key=key) from None

    def bar_symbols(self, bar_size: str | None = None) -> dict[str, list[str]]:
        """Return the stored keys per bar size."""
        names = [BARS + self._size(bar_size)] if bar_size else [
            n for n in self.libraries() if n.startswith(BARS)]
        out = {}
        for name in names:
            lib = self._lib(name, create=False)
            if lib is not None:
                out[name.removeprefix(BARS)] = sorted(self._symbols(lib, name))
        return out

    def meta(self, key: str, bar_size: str) -> SymbolMeta:
        """Return a stored symbol's metadata (``bar_size`` ``"ticks"``: its recorded ticks')."""
        name = TICKS if bar_size == "ticks" else BARS + self._size(bar_size)
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
        name = BARS + self._size(bar_size)
        try:
            with self.locks.hold(name, key):  # first: a restore's swap reopens the store
                lib = self._lib(name, create=False)
                if lib is None or not lib.has_symbol(key):
                    return False
                lib.delete(key)
                meta = self._lib(METADATA, create=False)
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
        try:
            with self.locks.hold(TICKS, key):
                lib = self._lib(TICKS)
                lib.append(key, ticks, prune_previous_versions=self._prune_now(TICKS, key))
                if meta is not None:
                    self._put_meta(TICKS, key, meta)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"{key}: cannot append {len(ticks)} ticks", key=key) from None
        return len(ticks)

    def append_ticks_many(self, frames: Mapping[str, pd.DataFrame], *,
                          metas: Mapping[str, SymbolMeta] | None = None) -> dict[str, int | StorageError | ValidationError]:
        """Append several keys' ticks in one ArcticDB call (``append_batch``); return each key's rows or refusal.

        Each key is checked, locked and pruned as :meth:`append_ticks` does it
        (its symbol locks taken in sorted order, so two batch writers never
        wait on each other in a cycle), its ``metas`` entry merged into the
        stored metadata *before* its ticks are appended: a key whose metadata
        cannot be written is not appended, and no refused key has ticks
        written, so it can simply be tried again. The call is not
        atomic: keys are written or refused one by one, and ArcticDB's
        per-payload error comes back as that key's StorageError. The per-append
        cost of ArcticDB (milliseconds whatever the size) is paid once per call
        (twice when some keys prune their older versions this time and some
        do not). Raises StorageError only when nothing was written (the library
        or a lock cannot be had).
        """
        out: dict[str, int | StorageError | ValidationError] = {}
        ticks: dict[str, pd.DataFrame] = {}
        for key, frame in frames.items():
            try:
                checked = check_ticks(frame, key)
            except ValidationError as exc:
                out[key] = exc
                continue
            if len(checked):
                ticks[key] = checked
            else:
                out[key] = 0
        if not ticks:
            return out
        with ExitStack() as held:
            for key in sorted(ticks):
                held.enter_context(self.locks.hold(TICKS, key))
            lib = self._lib(TICKS)  # inside the locks: after their check for a store a restore swapped
            groups: dict[bool, list[WritePayload]] = {}
            for key, checked in ticks.items():
                meta = (metas or {}).get(key)
                try:
                    if meta is not None:
                        self._put_meta(TICKS, key, meta)
                except BACKEND_ERRORS as exc:
                    out[key] = self.failure(exc, f"{key}: cannot store its ticks' metadata", key=key)
                    continue
                groups.setdefault(self._prune_now(TICKS, key), []).append(WritePayload(key, checked))
            for prune, payloads in groups.items():
                try:
                    results = lib.append_batch(payloads, prune_previous_versions=prune)
                except BACKEND_ERRORS as exc:
                    results = [exc] * len(payloads)
                for payload, result in zip(payloads, results, strict=True):
                    key, rows = payload.symbol, len(ticks[payload.symbol])
                    if isinstance(result, DataError):
                        result = _data_error(result)
                    out[key] = self.failure(result, f"{key}: cannot append {rows} ticks", key=key) \
                        if isinstance(result, BaseException) else rows
        return out

    def read_ticks(self, key: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Return the recorded ticks in ``[start, end)``."""
        lib = self._lib(TICKS, create=False)
        ticks = None if lib is None else self._read(lib, key, start, end, None, missing_ok=True)
        if ticks is None:
            raise NotFound(f"no ticks recorded for {key}", key=key)
        return ticks

    def tick_symbols(self) -> list[str]:
        """Return the keys with recorded ticks."""
        lib = self._lib(TICKS, create=False)
        return sorted(self._symbols(lib, TICKS)) if lib is not None else []

    # --- records ----------------------------------------------------------------------------
    def put_record(self, kind: str, name: str, data: Mapping[str, Any]) -> None:
        """Store a small document under ``kind``/``name`` (pickled: no empty frame, no warning)."""
        lib_name = RECORDS + kind
        try:
            with self.locks.hold(lib_name, name):
                lib = self._lib(lib_name)
                lib.write_pickle(name, dict(data), prune_previous_versions=True)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot store {kind} {name}", kind=kind, name=name) from None

    def get_record(self, kind: str, name: str) -> dict[str, Any]:
        """Return a document."""
        lib = self._lib(RECORDS + kind, create=False)
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
        lib = self._lib(RECORDS + kind, create=False)
        return sorted(self._symbols(lib, RECORDS + kind)) if lib is not None else []

    def delete_record(self, kind: str, name: str) -> bool:
        """Remove a document."""
        lib_name = RECORDS + kind
        try:
            with self.locks.hold(lib_name, name):
                lib = self._lib(lib_name, create=False)
                if lib is None or not lib.has_symbol(name):
                    return False
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


def _data_error(error: DataError) -> RuntimeError:
    """Return ArcticDB's per-payload ``error`` of a batch as the exception its single call raises (map full: its own)."""
    text = str(error.exception_string)
    return LmdbMapFullError(text) if "MDB_MAP_FULL" in text else RuntimeError(text)


def _whole_periods(start: datetime | None, end: datetime | None,
                   seconds: int) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Return ``[start, end)`` widened to whole ``seconds``-long periods (by a day more for days: time zones)."""
    step = pd.Timedelta(seconds=seconds)
    pad = pd.Timedelta(days=1) if seconds >= 86_400 else pd.Timedelta(0)
    epoch = pd.Timestamp(0, tz="UTC")
    lo = epoch + (utc(start) - epoch) // step * step - pad if start is not None else None
    hi = epoch + ((utc(end) - epoch - ONE_NS) // step + 1) * step + pad if end is not None else None
    return lo, hi
