"""A market store's ArcticDB connection: opened once per process, its libraries, symbols' metadata, reads.

:class:`ArcticLibraries` is what :class:`~trader.data.arctic.ArcticStore`
stands on: the ``arcticdb.Arctic`` of a URI (one per path and process: LMDB
cannot open a path twice in a process), its libraries by name (created on
first write), each symbol's :class:`~trader.data.store.SymbolMeta` in the
``metadata`` library (``<library>.<key>``, written only when it changes, and
cached by this process), when a write prunes older versions, and the reads of
a date range. Every backend failure comes out as a
:class:`~trader.errors.StorageError` naming what was being done.
"""

from __future__ import annotations

import gc
import os
import weakref
from datetime import datetime
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
from trader.data.frames import utc
from trader.data.locks import SymbolLocks
from trader.data.store import SymbolMeta, merge_meta
from trader.errors import StorageError
from trader.strategy.bars import parse_bar_size, short_bar_size

__all__ = ["BARS", "METADATA", "ONE_NS", "PRUNE_EVERY", "RECORDS", "TICKS", "ArcticLibraries"]

BARS = "bars."
METADATA = "metadata"
TICKS = "ticks"
RECORDS = "records."
ONE_NS = pd.Timedelta(1, "ns")
PRUNE_EVERY = 8
# One arcticdb.Arctic per store and process: LMDB does not support opening one path twice in a process
# (the first opening's map_size holds for the process).
_OPEN: weakref.WeakValueDictionary[str, arcticdb.Arctic] = weakref.WeakValueDictionary()


class ArcticLibraries:
    """The ArcticDB libraries of one URI, their symbols' metadata and reads; see the module docstring."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self.uri = mask_uri(uri)  # what may be shown: the secret masked
        path = lmdb_path(uri)
        if path is not None:
            check_directory(path)
            configure_lmdb()
        elif uri.startswith(("s3://", "s3s://")):
            configure_s3(keep=True)  # a down S3 fails in seconds, not after ArcticDB's minutes of retries
        owner = weakref.ref(self)  # not self.reopen: a cycle would keep the LMDB files open until a gc

        def swapped() -> None:
            libraries = owner()
            if libraries is not None:
                libraries.reopen()

        self.locks = SymbolLocks(path, on_swap=swapped)
        self._key = ""
        self._arctic: arcticdb.Arctic = self._open()
        self._libs: dict[str, Any] = {}
        self._writes: dict[tuple[str, str], int] = {}
        self._metas: dict[tuple[str, str], dict[str, Any]] = {}  # what this process last stored or read

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def failure(self, exc: BaseException, what: str, **details: Any) -> StorageError:
        """Return the StorageError for ``exc``: the reason in words, no secret of the URI in it."""
        return storage_failure(exc, self._uri, what, **details)

    def _lib(self, name: str, *, create: bool = True) -> Any:
        """Return the library ``name``, created if missing and ``create`` (else None when missing)."""
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

    def _open(self) -> arcticdb.Arctic:
        """Return this process's ``arcticdb.Arctic`` of the store, opened if none is.

        Its key in ``_OPEN``: the URI, or an LMDB store's real path and the
        identity of its directory (a restore's new directory is another).
        """
        path = lmdb_path(self._uri)
        self._key = self._uri if path is None else f"lmdb:{os.path.realpath(path)}@{self.locks.identity}"
        try:
            arctic = _OPEN.get(self._key)
            if arctic is None:
                arctic = _OPEN[self._key] = arcticdb.Arctic(self._uri)
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot open the market store {self.uri}") from None
        return arctic

    def reopen(self) -> None:
        """Open the store's URI afresh and forget what this object cached (a restore swapped the LMDB directory).

        The old handle is let go first (LMDB warns when a process opens a
        path that it still has open, though it is another directory now).
        """
        if _OPEN.get(self._key) is self._arctic:
            del _OPEN[self._key]
        self._libs.clear()
        self._writes.clear()
        self._metas.clear()
        del self._arctic
        gc.collect()
        self.locks.renew()  # the new directory: its identity, its lock folders
        self._arctic = self._open()

    @staticmethod
    def _size(bar_size: str) -> str:
        return short_bar_size(parse_bar_size(bar_size))

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
        self._lib(METADATA).write_pickle(f"{library}.{key}", data, prune_previous_versions=True)
        self._metas[(library, key)] = data

    def _stored_meta(self, library: str, key: str) -> dict[str, Any] | None:
        """Return ``key``'s metadata in ``library``, or None if none was stored."""
        lib = self._lib(METADATA, create=False)
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

    def _read(self, lib: Any, key: str, start: datetime | None, end: datetime | None, as_of: str | None,
              *, missing_ok: bool = False) -> pd.DataFrame | None:
        """Return ``key``'s data in ``[start, end)``; None if it (or the snapshot) is absent and ``missing_ok``."""
        lo = utc(start) if start is not None else None
        hi = utc(end) - ONE_NS if end is not None else None
        try:
            data = lib.read(key, date_range=(lo, hi), as_of=as_of).data
        except BACKEND_ERRORS as exc:
            if missing_ok and isinstance(exc, NoDataFoundException):
                return None
            raise self.failure(exc, f"{key}: cannot read", key=key) from None
        data.index = data.index.rename("time")
        return data

    def _symbols(self, lib: Any, name: str) -> list[str]:
        """Return the symbols of the library ``name``, a backend failure as StorageError."""
        try:
            return list(lib.list_symbols())
        except BACKEND_ERRORS as exc:
            raise self.failure(exc, f"cannot list the symbols of {name}", library=name) from None
