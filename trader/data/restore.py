"""The all-or-nothing step of a restore: a verified staging store beside an LMDB store takes its place in one rename.

A restore used to drop the target's libraries and then copy: a full disk or
map, a crash or a bad read midway left a half-restored store. Now, on LMDB,
the backup is copied into a new store next to the target (the hidden
directory ``.<name>.restoring-<time>`` in the same parent, so on the same
file system), verified there, and only then exchanged with the target
directory by one ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+; where the file
system refuses it, three renames, the first undone if the second fails; the
old store waits between them at ``.<name>.old-<time>``, which no cleanup
deletes: a store killed there is not opened empty, the error names it).
Until the exchange the target is not touched; a failure removes the staging
store and raises (a restore killed midway leaves it: the next one deletes it). After it, the old store (now at the staging path) is
deleted, and the caller's :class:`~trader.data.arctic.ArcticStore` reopens
the new one. The staging store takes the target's URI options (its
``map_size``), and needs the free space of a second copy while it is built.
A store directory that is a mount point (a disk of its own) is refused
before anything is copied: the staging store would fill the parent file
system, and a mount point cannot be renamed. Keep the store in a
subdirectory of the mount.

Stop the services that write to the store (history_service, the tick
recorder, trader_service's history cache) before a restore: ``data restore``
refuses while pycron runs one. A process that still has the old store open
notices the swap at its next write (:mod:`trader.data.locks`) and reopens
the store, so that write and the later ones go to the restored store; a
write already under way during the swap goes with the old store.

S3 has no rename of a bucket or a prefix, and copying a staging prefix back
over the target would bring back the half-written window. So an S3 store is
restored only when it is empty: restore into a new bucket or ``path_prefix``
(``s3://HOST:BUCKET?path_prefix=...``), check it, then point
``storage.arctic_uri`` at it (that change of setting is the swap). A failure
while restoring into an empty S3 store drops what it wrote, as far as S3 lets.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from trader.data.arctic import BACKEND_ERRORS, ArcticStore
from trader.data.backends import ASIDE, lmdb_path, with_query
from trader.data.backup_copy import copy_symbols
from trader.errors import Conflict, StorageError

log = logging.getLogger(__name__)

__all__ = ["STAGING", "exchange", "restore_into"]

STAGING = ".restoring-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap the directories ``a`` and ``b``: atomically where the kernel can, else by renames undone on a failure."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(a), None, str(b))
    aside = a.with_name(f".{a.name}{ASIDE}{datetime.now(UTC):%Y%m%dT%H%M%S%f}")  # not a staging name
    os.rename(a, aside)
    try:
        os.rename(b, a)
    except OSError:
        os.rename(aside, a)
        raise
    os.rename(aside, b)


def restore_into(store: ArcticStore, source: ArcticStore, check: Callable[[ArcticStore], None], *,
                 replace: bool) -> None:
    """Copy every symbol of ``source`` into ``store``, ``check`` the copy, and make it the store, or change nothing.

    ``replace``: the store holds symbols (the caller was told to replace them).
    """
    root = lmdb_path(store.uri)  # an LMDB URI carries no secret: the masked one is the same
    if root is None:
        _restore_in_place(store, source, check, replace=replace)
    else:
        _restore_by_swap(store, Path(os.path.realpath(root)), source, check)


def _build(uri: str, staging: Path, source: ArcticStore, check: Callable[[ArcticStore], None]) -> None:
    """Copy ``source`` into a new store at ``staging`` and check it; its handles are gone on return."""
    copy = ArcticStore(uri)
    try:
        copy_symbols(source, copy)
    except BACKEND_ERRORS as exc:
        raise copy.failure(exc, f"cannot restore into the staging store {staging}") from None
    check(copy)


def _size(path: Path) -> int:
    """Return the bytes of the files under ``path``."""
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, names in os.walk(path) for name in names)


def _check_not_mount(root: Path) -> None:
    """Refuse a store directory that is a mount point: the staging store could not be beside it."""
    if os.stat(root).st_dev != os.stat(root.parent).st_dev:
        raise Conflict(f"{root} is a mount point: a restore builds the new store beside it, on the parent "
                       f"file system, and cannot rename a mount point; keep the store in a subdirectory "
                       f"of the mount (e.g. {root / 'arctic'})", path=str(root))


def _restore_by_swap(store: ArcticStore, root: Path, source: ArcticStore,
                     check: Callable[[ArcticStore], None]) -> None:
    _check_not_mount(root)
    for left in root.parent.glob(f".{root.name}{STAGING}*"):  # a copy a restore killed midway left
        log.warning("restore: deleting %s (%d bytes), the copy of a restore that did not finish",
                    left, _size(left))
        shutil.rmtree(left, ignore_errors=True)
    staging = root.with_name(f".{root.name}{STAGING}{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    try:
        _build(with_query(f"lmdb://{staging}", store.uri), staging, source, check)
        gc.collect()  # the staging store's LMDB environments closed: the same files are opened again below
        exchange(root, staging)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot swap the restored store into {root}: {exc.strerror or exc}; "
                               f"the store is as it was", path=str(root)) from None
        raise
    log.info("restore: the verified copy is now %s; deleting the old store", root)
    store.reopen()
    gc.collect()
    shutil.rmtree(staging, ignore_errors=True)  # the old store, since the exchange
    if staging.exists():
        log.warning("restore: cannot delete the old store at %s: delete it by hand", staging)


def _restore_in_place(store: ArcticStore, source: ArcticStore, check: Callable[[ArcticStore], None], *,
                      replace: bool) -> None:
    if replace:
        raise Conflict(f"{store.uri} is not empty, and an S3 store cannot be swapped whole: restore into an "
                       f"empty one (a new bucket or ?path_prefix=), check it, then point storage.arctic_uri "
                       f"at it", store=store.uri)
    for lib_name in store.libraries():  # no symbols: empty libraries, perhaps old snapshots
        store.drop_library(lib_name)
    try:
        try:
            copy_symbols(source, store)
        except BACKEND_ERRORS as exc:
            raise store.failure(exc, f"cannot restore into {store.uri}") from None
        check(store)
    except BaseException:
        try:
            for lib_name in store.libraries():
                store.drop_library(lib_name)
        except StorageError as exc:
            log.warning("restore: cannot drop what the failed restore wrote into %s: %s", store.uri, exc)
        raise
