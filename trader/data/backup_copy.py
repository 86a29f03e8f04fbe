"""The copy of a market store's symbols in bounded row ranges, with their rows and checksum, for backups and restores.

A symbol is never read whole: a frame is read ``CHUNK_ROWS`` rows at a time
(ArcticDB's ``row_range``), each range written to the target (the first as a
``write``, the next as ``append``\\ s) and fed to the checksum before the next
is read, so a symbol of any size copies in the memory of one range (100 000
rows of bars: about 6 MB of values, besides ArcticDB's own buffers). Every
range is read from one version, fixed before the first: a writer that goes
on meanwhile cannot mix two versions into one copy. A pickled value (records,
symbol metadata) is small and copied whole.

The checksum is the one of :func:`checksum` (version 1 manifests), fed range
by range: pandas' ``hash_pandas_object`` hashes each row on its own (its
index and values), so the hashes of the ranges, one after another, are the
hashes of the whole frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from trader.data.arctic import ArcticStore
from trader.errors import StorageError

__all__ = ["CHUNK_ROWS", "Digest", "checksum", "copy_symbols", "read_digest", "verify_symbols"]

#: Rows read (and written) at a time; module-level so a test can make it small.
CHUNK_ROWS = 100_000


class Digest:
    """A symbol's rows and SHA-256, fed its frame range by range (or its pickled value whole)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._header = False
        self.rows = 0

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Feed the next rows of a frame (the first call also feeds its columns and dtypes)."""
        if not self._header:
            self._sha.update(json.dumps([list(map(str, frame.columns)), [str(t) for t in frame.dtypes]]).encode())
            self._header = True
        self._sha.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        self.rows += len(frame)

    def add_value(self, value: Any) -> None:
        """Feed a pickled value (one row)."""
        self._sha.update(json.dumps(value, sort_keys=True, default=str).encode())
        self.rows += 1

    def finish(self, metadata: Any) -> str:
        """Feed the metadata and return the hex digest."""
        self._sha.update(json.dumps(metadata, sort_keys=True, default=str).encode())
        return self._sha.hexdigest()


def checksum(data: Any, metadata: Any) -> str:
    """Return a SHA-256 over a symbol's data (a frame: every value, the index and the columns) and metadata."""
    digest = Digest()
    if isinstance(data, pd.DataFrame):
        digest.add_frame(data)
    else:
        digest.add_value(data)
    return digest.finish(metadata)


def _ranges(lib: Any, symbol: str, as_of: Any) -> tuple[Any, Iterator[Any]]:
    """Return a symbol's metadata and its data: frames of at most CHUNK_ROWS rows, or one pickled value."""
    version = lib.read_metadata(symbol, as_of=as_of)
    fixed = version.version  # every range from this one version
    rows = lib.get_description(symbol, as_of=fixed).row_count

    def frames() -> Iterator[Any]:
        if rows is None or rows == 0:  # a pickled value, or an empty frame: read whole
            yield lib.read(symbol, as_of=fixed).data
            return
        step = max(1, CHUNK_ROWS)
        for start in range(0, rows, step):
            yield lib.read(symbol, as_of=fixed, row_range=(start, min(start + step, rows))).data

    return version.metadata, frames()


def _feed(digest: Digest, data: Any) -> None:
    if isinstance(data, pd.DataFrame):
        digest.add_frame(data)
    else:
        digest.add_value(data)


def read_digest(lib: Any, symbol: str, as_of: Any = None) -> tuple[int, str]:
    """Return the rows and checksum of ``symbol`` in the ArcticDB library ``lib``, read range by range."""
    metadata, parts = _ranges(lib, symbol, as_of)
    digest = Digest()
    for part in parts:
        _feed(digest, part)
    return digest.rows, digest.finish(metadata)


def _copy_symbol(lib: Any, out: Any, symbol: str, as_of: Any) -> tuple[int, str]:
    metadata, parts = _ranges(lib, symbol, as_of)
    digest = Digest()
    for n, part in enumerate(parts):
        if not isinstance(part, pd.DataFrame):
            out.write_pickle(symbol, part, metadata=metadata, prune_previous_versions=True)
        elif n == 0:
            out.write(symbol, part, metadata=metadata, prune_previous_versions=True)
        else:
            out.append(symbol, part, metadata=metadata, prune_previous_versions=True)
        _feed(digest, part)
    return digest.rows, digest.finish(metadata)


def copy_symbols(source: ArcticStore, target: ArcticStore, *,
                 as_of: dict[str, str] | None = None) -> list[tuple[str, str, int, str]]:
    """Copy every symbol of ``source`` (as of each library's snapshot in ``as_of``) into ``target``.

    Return (library, symbol, rows, checksum) of each, in library and symbol order.
    """
    copied = []
    for lib_name in source.libraries():
        lib = source.library(lib_name)
        snap = (as_of or {}).get(lib_name)
        symbols = lib.list_symbols(snapshot_name=snap) if snap else lib.list_symbols()
        if not symbols:
            continue
        out = target.library(lib_name, create=True)
        for symbol in sorted(symbols):
            with target.locks.hold(lib_name, symbol):
                rows, digest = _copy_symbol(lib, out, symbol, snap)
            copied.append((lib_name, symbol, rows, digest))
    return copied


def verify_symbols(store: ArcticStore, expected: dict[tuple[str, str], tuple[int, str]]) -> None:
    """Check that ``store`` holds exactly ``expected``'s symbols, rows and checksums; StorageError naming the first miss."""
    problems: list[str] = []
    held = {(lib, sym) for lib in store.libraries() for sym in store.library(lib).list_symbols()}
    problems += [f"{lib}/{sym} is not in the manifest" for lib, sym in sorted(held - set(expected))]
    for (lib_name, symbol), (rows, digest) in expected.items():
        if (lib_name, symbol) not in held:
            problems.append(f"{lib_name}/{symbol} is missing")
            continue
        got_rows, got_digest = read_digest(store.library(lib_name), symbol)
        if got_rows != rows:
            problems.append(f"{lib_name}/{symbol} has {got_rows} rows, not {rows}")
        elif got_digest != digest:
            problems.append(f"{lib_name}/{symbol}'s checksum differs")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StorageError(f"{store.uri} does not match the backup manifest: {problems[0]}{more}",
                           problems=problems[:20])
