"""Writer locks: one writer at a time per library and symbol of an LMDB market store.

ArcticDB does not support concurrent writers to one symbol: two processes
updating it at once may both build on the same version and one update is
lost. Two processes may write the same symbol here (history_service's
downloads and trader_service's cache write-back), so every write to an LMDB
store first takes an exclusive ``flock`` on a small file per library and
symbol under ``<store>/.locks/``. A flock belongs to the open file, so two
threads of one process exclude each other too, and the kernel drops it when
its holder dies (a kill -9 leaves no stale lock). Taking one costs an open
and a system call (a few microseconds) beside a write of milliseconds.

A writer also holds its library's lock shared, and a snapshot is taken
with that lock exclusive (:meth:`SymbolLocks.quiet`): ArcticDB's pruning of
old versions checks the snapshots before it deletes, so a snapshot made in
the middle of a write could name a version the write then pruned.

A restore swaps a new store directory in at the same path (see
:mod:`trader.data.restore`). A process that had the old one open would go on
writing into its deleted files, so the locks remember the directory's device
and inode when the store is opened, and every lock taken for a write compares
them first: on a change they call ``on_swap`` (the store's ``reopen``), with
a warning, before the write goes on, into the new store. The ``stat`` costs
a few microseconds (5.7 us measured on a loaded machine) beside a write of
milliseconds.

S3 has no such lock: there, give each symbol one writer (DESIGN: the
history_service), or accept that the last of two concurrent writes wins.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from urllib.parse import quote

from trader.errors import StorageError

log = logging.getLogger(__name__)

__all__ = ["SymbolLocks"]

LOCK_DIR = ".locks"
_LIBRARY = "%library"  # the library-wide lock's file; quote() turns every symbol's % into %25, so none clashes


class SymbolLocks:
    """Exclusive per-(library, symbol) locks under a store directory; ``None``: no locking (S3).

    ``on_swap`` is called when the directory at ``root`` is no longer the one
    these locks were made for (a restore swapped it): it reopens the store.
    """

    def __init__(self, root: Path | None, on_swap: Callable[[], object] | None = None) -> None:
        self.store = root
        self.root = None if root is None else root / LOCK_DIR
        self._on_swap = on_swap
        self._made: set[str] = set()
        self._following = threading.Lock()  # two threads that see the swap reopen the store once
        self.identity: tuple[int, int] | None = None
        if root is not None and root.exists():
            self.identity = _identity(root)

    def renew(self) -> None:
        """Take the directory now at the store's path as the store: its identity, its lock folders."""
        self._made.clear()
        self.identity = None if self.store is None else _identity(self.store)

    def hold(self, library: str, symbol: str) -> AbstractContextManager[None]:
        """Return a context that holds the lock of ``library``/``symbol`` while it is entered.

        The store's directory is checked first: if a restore swapped it, the
        store is reopened, so the write lands in the new one.
        """
        if self.root is None:
            return nullcontext()
        self._follow()
        return self._write(library, symbol)

    def quiet(self, library: str) -> AbstractContextManager[None]:
        """Return a context in which no write to ``library`` is under way (for taking a snapshot)."""
        if self.root is None:
            return nullcontext()
        return self._flock(library, _LIBRARY, fcntl.LOCK_EX)

    def _follow(self) -> None:
        """Reopen the store (``on_swap``) if the directory at its path is not the one it opened."""
        assert self.store is not None
        now = _identity(self.store)
        if self.identity is None:
            self.identity = now
        elif now != self.identity:
            with self._following:
                if now == self.identity:  # another thread has followed it
                    return
                log.warning("the market store %s was replaced (a restore) since this process opened it: "
                            "reopening it, so writes go to the new store", self.store)
                self.renew()
                if self._on_swap is not None:
                    self._on_swap()

    @contextmanager
    def _write(self, library: str, symbol: str) -> Iterator[None]:
        with self._flock(library, _LIBRARY, fcntl.LOCK_SH), self._flock(library, symbol, fcntl.LOCK_EX):
            yield

    @contextmanager
    def _flock(self, library: str, symbol: str, mode: int) -> Iterator[None]:
        assert self.root is not None
        folder = self.root / quote(library, safe="")
        path = folder / (quote(symbol, safe="") + ".lock")
        try:
            if library not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(library)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(_why(exc, f"cannot lock {library}/{symbol} at {path}"),
                               library=library, symbol=symbol) from None
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing the only descriptor of the open file releases its flock


def _identity(root: Path) -> tuple[int, int]:
    """Return the device and inode of the store's directory; StorageError if it is gone."""
    try:
        info = os.stat(root)
    except OSError as exc:
        raise StorageError(_why(exc, f"the market store's directory {root} is gone (moved or deleted while "
                                     f"this process had it open)"), path=str(root)) from None
    return info.st_dev, info.st_ino


def _why(exc: OSError, what: str) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what}: the market store's directory is read-only ({exc.strerror})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what}: the disk is full ({exc.strerror})"
    return f"{what}: {exc.strerror or exc}"
