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
from ``DIR`` must have the rows and checksum read from the source. Symbols
are copied and checked in bounded row ranges (:mod:`trader.data.backup_copy`),
so a symbol of any size needs the memory of one range. A restore verifies
the backup against its manifest first, refuses a store that is not empty
(unless ``force``), copies into a staging store, verifies it against the
manifest and swaps it in (:mod:`trader.data.restore`): a failure at any
point leaves the old store as it was.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trader.data.arctic import BACKEND_ERRORS, ArcticStore
from trader.data.backup_copy import checksum, copy_symbols, verify_symbols
from trader.data.restore import restore_into
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


def verify(store: ArcticStore, manifest: Manifest) -> None:
    """Check that ``store`` holds exactly the manifest's symbols, rows and checksums; StorageError naming the first miss."""
    verify_symbols(store, {(e.library, e.symbol): (e.rows, e.checksum) for e in manifest.symbols})


def backup(store: ArcticStore, directory: Path) -> Manifest:
    """Copy ``store`` into ``directory`` (new or empty), verify the copy, write its manifest; return it."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise Conflict(f"{directory} is not empty: a backup goes into a new or empty directory",
                       path=str(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the backup directory {directory}: {exc.strerror or exc}",
                           path=str(directory)) from None
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
            entries = [SymbolEntry(*copied) for copied in copy_symbols(store, target, as_of=taken)]
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
    """Verify the backup in ``directory``, restore it into ``store`` and verify that; return its manifest.

    A store that holds anything is refused (Conflict) unless ``force``, which
    replaces it (its snapshots too). On LMDB the backup is copied into a
    staging store beside the target and swapped in only once verified: a
    failure at any point leaves the old store as it was. An S3 store is
    restored only when empty (see :mod:`trader.data.restore`).
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
    restore_into(store, source, lambda copy: verify(copy, manifest), replace=bool(held))
    log.info("restored %d symbols (%d rows) from %s into %s", len(manifest.symbols), manifest.rows,
             directory, store.uri)
    return manifest
