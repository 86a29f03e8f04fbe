"""Backups of the market store: a verified copy on another disk (``data backup DIR``) and its way back (``data restore DIR``).

A backup is a new LMDB ArcticDB store under ``DIR/arctic`` and a manifest,
``DIR/manifest.json``, with the rows and a checksum of every symbol of every
library. It is copied through ArcticDB, not as files: a temporary snapshot
is taken in each library first and every symbol is read *as of* it, so each
symbol is copied at one version, whole, while writers go on (a version is
immutable once written). Copying the LMDB files instead would be consistent
only while no writer holds LMDB's lock, which a running history_service or
recorder may hold at any time, and it could not copy an S3 store.

The copy is verified before the manifest is written: each symbol read back
from ``DIR`` must have the rows and checksum read from the source. A restore
verifies the backup against its manifest first, refuses a store that is not
empty (unless ``force``: then the store's libraries are dropped, snapshots
included), copies, and verifies the restored store against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from trader.data.arctic import BACKEND_ERRORS, ArcticStore
from trader.errors import Conflict, NotFound, StorageError

log = logging.getLogger(__name__)

__all__ = ["Manifest", "SymbolEntry", "backup", "checksum", "restore", "verify"]

MANIFEST = "manifest.json"
STORE_DIR = "arctic"
VERSION = 1


@dataclass(frozen=True, slots=True)
class SymbolEntry:
    """One symbol of a backup: where it lives, its rows and the checksum of its data and metadata."""

    library: str
    symbol: str
    rows: int
    checksum: str


@dataclass(slots=True)
class Manifest:
    """What a backup holds: the time, the source store (secrets masked) and every symbol."""

    created: str
    source: str
    symbols: list[SymbolEntry] = field(default_factory=list)
    version: int = VERSION

    @property
    def rows(self) -> int:
        """Return the rows of every symbol together."""
        return sum(entry.rows for entry in self.symbols)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready values."""
        return {"version": self.version, "created": self.created, "source": self.source,
                "symbols": [asdict(entry) for entry in self.symbols]}

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read ``directory``'s manifest; NotFound if there is none, StorageError if it is unreadable."""
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text())
            return cls(created=data["created"], source=data["source"], version=data["version"],
                       symbols=[SymbolEntry(**entry) for entry in data["symbols"]])
        except FileNotFoundError:
            raise NotFound(f"no backup in {directory} (no {MANIFEST})", path=str(directory)) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"the backup manifest {path} is unreadable: {exc}", path=str(path)) from None


def checksum(data: Any, metadata: Any) -> str:
    """Return a SHA-256 over a symbol's data (a frame: every value, the index and the columns) and metadata."""
    digest = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        digest.update(json.dumps([list(map(str, data.columns)), [str(t) for t in data.dtypes]]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    else:
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    digest.update(json.dumps(metadata, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _rows(data: Any) -> int:
    return len(data) if isinstance(data, pd.DataFrame) else 1


def _copy(source: ArcticStore, target: ArcticStore, *, as_of: dict[str, str] | None = None) -> list[SymbolEntry]:
    """Copy every symbol of ``source`` (as of each library's snapshot in ``as_of``) into ``target``."""
    entries = []
    for lib_name in source.libraries():
        lib = source.library(lib_name)
        snap = (as_of or {}).get(lib_name)
        symbols = lib.list_symbols(snapshot_name=snap) if snap else lib.list_symbols()
        if not symbols:
            continue
        out = target.library(lib_name, create=True)
        for symbol in sorted(symbols):
            item = lib.read(symbol, as_of=snap)
            with target.locks.hold(lib_name, symbol):
                if isinstance(item.data, pd.DataFrame):
                    out.write(symbol, item.data, metadata=item.metadata, prune_previous_versions=True)
                else:
                    out.write_pickle(symbol, item.data, metadata=item.metadata, prune_previous_versions=True)
            entries.append(SymbolEntry(lib_name, symbol, _rows(item.data), checksum(item.data, item.metadata)))
    return entries


def verify(store: ArcticStore, manifest: Manifest) -> None:
    """Check that ``store`` holds exactly the manifest's symbols, rows and checksums; StorageError naming the first miss."""
    problems: list[str] = []
    expected = {(e.library, e.symbol): e for e in manifest.symbols}
    held = {(lib, sym) for lib in store.libraries() for sym in store.library(lib).list_symbols()}
    problems += [f"{lib}/{sym} is not in the manifest" for lib, sym in sorted(held - set(expected))]
    for (lib_name, symbol), entry in expected.items():
        if (lib_name, symbol) not in held:
            problems.append(f"{lib_name}/{symbol} is missing")
            continue
        item = store.library(lib_name).read(symbol)
        rows, digest = _rows(item.data), checksum(item.data, item.metadata)
        if rows != entry.rows:
            problems.append(f"{lib_name}/{symbol} has {rows} rows, not {entry.rows}")
        elif digest != entry.checksum:
            problems.append(f"{lib_name}/{symbol}'s checksum differs")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StorageError(f"{store.uri} does not match the backup manifest: {problems[0]}{more}",
                           problems=problems[:20])


def backup(store: ArcticStore, directory: Path) -> Manifest:
    """Copy ``store`` into ``directory`` (new or empty), verify the copy, write its manifest; return it."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise Conflict(f"{directory} is not empty: a backup goes into a new or empty directory",
                       path=str(directory))
    started = datetime.now(UTC)
    snap = f"backup-{started:%Y%m%dT%H%M%S%f}"
    taken: dict[str, str] = {}
    for lib_name in store.libraries():
        lib = store.library(lib_name)
        if lib.list_symbols():
            with store.locks.quiet(lib_name):  # not in the middle of a write that may prune what it names
                lib.snapshot(snap)
            taken[lib_name] = snap
    try:
        target = ArcticStore(f"lmdb://{directory / STORE_DIR}")
        try:
            entries = _copy(store, target, as_of=taken)
        except BACKEND_ERRORS as exc:
            raise target.failure(exc, f"cannot back up {store.uri} into {directory}") from None
    finally:
        for lib_name in taken:
            store.library(lib_name).delete_snapshot(snap)
    manifest = Manifest(created=started.isoformat(), source=store.uri, symbols=entries)
    verify(target, manifest)
    partial = directory / (MANIFEST + ".part")
    try:
        partial.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        os.replace(partial, directory / MANIFEST)  # the manifest appears whole, and only after the check
    except OSError as exc:
        raise StorageError(f"cannot write the backup manifest in {directory}: {exc.strerror or exc}",
                           path=str(directory)) from None
    log.info("backed up %d symbols (%d rows) of %s into %s", len(entries), manifest.rows, store.uri, directory)
    return manifest


def restore(store: ArcticStore, directory: Path, *, force: bool = False) -> Manifest:
    """Verify the backup in ``directory``, copy it into ``store`` and verify that; return its manifest.

    A store that holds anything is refused (Conflict) unless ``force``, which
    drops its libraries first (their snapshots too).
    """
    directory = Path(directory)
    manifest = Manifest.load(directory)
    if not (directory / STORE_DIR).is_dir():
        raise NotFound(f"no backup store in {directory} (no {STORE_DIR}/)", path=str(directory))
    source = ArcticStore(f"lmdb://{directory / STORE_DIR}")
    verify(source, manifest)
    held = [lib for lib in store.libraries() if store.library(lib).list_symbols()]
    if held and not force:
        raise Conflict(f"{store.uri} is not empty ({', '.join(held)}); restoring replaces it: use --force",
                       libraries=held)
    for lib_name in store.libraries():
        store.drop_library(lib_name)
    try:
        _copy(source, store)
    except BACKEND_ERRORS as exc:
        raise store.failure(exc, f"cannot restore {directory} into {store.uri}") from None
    verify(store, manifest)
    log.info("restored %d symbols (%d rows) from %s into %s", len(manifest.symbols), manifest.rows,
             directory, store.uri)
    return manifest
