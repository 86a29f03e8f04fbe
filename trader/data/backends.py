"""The store's backends: the URIs ArcticDB opens, their secrets masked, their set-up and their failures in words.

ArcticDB URIs: ``lmdb://DIR`` (``?map_size=50GB`` sets LMDB's map size, the
most the store may ever hold: a write past it fails as a full disk does) and
``s3://HOST:BUCKET?port=P&access=KEY&secret=SECRET`` (``s3s://`` over TLS).
:func:`trader.data.factory.open_store` opens the one the settings name. A URI's ``secret`` (and
any password) never reaches a repr, a log line or an error message:
:func:`mask_uri` replaces it with ``***``, :func:`storage_failure` scrubs it
from a backend's error and says what went wrong in words (a full disk or
LMDB map, a read-only directory, an S3 endpoint down, no such bucket).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

from arcticdb.exceptions import LmdbMapFullError

from trader.errors import StorageError

__all__ = [
    "ASIDE", "BACKEND_ERRORS", "MASK", "asides", "check_directory", "configure_lmdb", "configure_s3", "lmdb_path",
    "mask_uri", "scrub", "secrets_of", "storage_failure", "with_query",
]

#: What ArcticDB raises (its ArcticException is a RuntimeError) and the file system's errors.
BACKEND_ERRORS = (RuntimeError, OSError)
_SECRET = re.compile(r"((?:^|[?&;])(?:secret|password|access_key_secret)=)([^&;]*)", re.IGNORECASE)
_USERINFO = re.compile(r"^([a-z0-9+]+://[^/@:]*:)([^/@]*)(@)", re.IGNORECASE)
MASK = "***"
#: A store a restore moved aside (``.<name>.old-<time>``) where the kernel cannot exchange two directories.
ASIDE = ".old-"


# --- URIs and their secrets ---------------------------------------------------------------------
def secrets_of(uri: str) -> list[str]:
    """Return the secret values ``uri`` carries (to scrub them from messages that echo the URI)."""
    found = [m.group(2) for m in _SECRET.finditer(uri.partition("?")[2]) if m.group(2)]
    user = _USERINFO.match(uri)
    return found + ([user.group(2)] if user and user.group(2) else [])


def mask_uri(uri: str) -> str:
    """Return ``uri`` with its secret (and any password) replaced by ``***``."""
    base, sep, query = uri.partition("?")
    base = _USERINFO.sub(rf"\g<1>{MASK}\g<3>", base)
    return base + sep + _SECRET.sub(rf"\g<1>{MASK}", query)


def scrub(text: str, uri: str) -> str:
    """Return ``text`` with every secret of ``uri`` replaced by ``***``."""
    for secret in secrets_of(uri):
        text = text.replace(secret, MASK)
    return text


def lmdb_path(uri: str) -> Path | None:
    """Return the directory of an ``lmdb://`` URI (None for any other scheme)."""
    if not uri.startswith("lmdb://"):
        return None
    return Path(uri.removeprefix("lmdb://").partition("?")[0])


def with_query(base: str, uri: str) -> str:
    """Return ``base`` with the options of ``uri`` (its ``?query``, e.g. LMDB's ``map_size``) attached."""
    query = uri.partition("?")[2]
    return base + (f"?{query}" if query else "")


def asides(root: Path) -> list[Path]:
    """Return the old stores a restore killed midway left moved aside beside the LMDB store ``root``."""
    return sorted(root.parent.glob(f".{root.name}{ASIDE}*"))


# --- failures -----------------------------------------------------------------------------------
def storage_failure(exc: BaseException, uri: str, what: str, **details: Any) -> StorageError:
    """Return the StorageError for a backend's ``exc`` on the store ``uri``: the reason in words, no secret."""
    text = scrub(str(exc), uri)
    if isinstance(exc, LmdbMapFullError):
        reason = ("the store is full: LMDB's map size is reached (raise it: storage.arctic_uri "
                  "lmdb://DIR?map_size=100GB)")
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text:
        reason = "the disk is full"
    elif (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS)
          or "Permission denied" in text or "Read-only file system" in text):
        reason = "the store's directory is read-only (not writable by this user)"
    elif "Could not connect" in text or "Couldn't resolve" in text or "Timeout was reached" in text:
        reason = "the S3 endpoint does not answer (is it up? the host and port right?)"
    elif "NoSuchBucket" in text:
        reason = "the S3 bucket does not exist (create it first)"
    else:
        reason = text.splitlines()[0] if text else type(exc).__name__
    return StorageError(f"{what}: {reason}", store=mask_uri(uri), **details)


# --- LMDB set-up ----------------------------------------------------------------------------------
def configure_lmdb() -> None:
    """Set two ArcticDB process settings for LMDB stores (unless configured already).

    ``VersionMap.ReloadInterval`` 0: read a symbol's latest version from the
    store at every operation, not from a cache kept for seconds; another
    process may have written the symbol since (it holds the writer lock
    then, see :mod:`trader.data.locks`), and an update built on a cached
    version would drop that write or find its version pruned. On LMDB the
    read is a memory-mapped lookup.

    ``StorageLock.WaitMs`` 5: ArcticDB takes its storage lock to compact a
    library's symbol list (the first ``list_symbols`` of a library) and waits
    before trusting it, for eventually consistent object stores; LMDB's
    transactions are visible at once, and the default wait made every first
    listing cost a second.
    """
    from arcticdb.config import get_config_int, set_config_int

    for name, value in (("VersionMap.ReloadInterval", 0), ("StorageLock.WaitMs", 5)):
        if get_config_int(name) is None:
            set_config_int(name, value)


# --- S3 set-up ------------------------------------------------------------------------------------
def configure_s3(connect_timeout_ms: int | None = None, request_timeout_ms: int | None = None,
                 max_attempts: int | None = None, *, keep: bool = False) -> None:
    """Bound how long an S3 store that does not answer takes to fail (settings ``storage.s3_*``).

    Without this, ArcticDB's AWS client retries a failed request ten times
    with exponential back-off (25 ms doubling): a refused connection is a
    StorageError after ~26 s, an endpoint that swallows packets after minutes.
    Here the client tries ``max_attempts`` times (the SDK's ``standard`` retry
    mode: jittered back-off of at most a second or so between tries), waits at
    most ``connect_timeout_ms`` for each connection and ``request_timeout_ms``
    for an answer: a store that is down fails in seconds (measured with the
    defaults: 0.8 s when the connection is refused, 9 s against a port that
    never accepts).

    ``request_timeout_ms`` bounds an upload too: ArcticDB writes a segment
    (up to 100,000 rows) in one PUT, which must complete in that time; on a
    slow uplink, raise it, or a large write fails ``max_attempts`` times and
    is a StorageError (the recorder keeps its ticks and tries again).

    The timeouts are ArcticDB's process settings ``S3Storage.ConnectTimeoutMs``
    and ``S3Storage.RequestTimeoutMs``; the tries are the AWS SDK's
    ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS`` environment (boto3 in this process
    reads them too). Both are read when a library's S3 client is made, so call
    this before opening the store. ``None`` takes the settings' default; with
    ``keep``, a value already set (in code or by the environment) stays.
    """
    from arcticdb.config import get_config_int, set_config_int

    from trader.config import StorageSettings

    defaults = StorageSettings()
    wanted = {
        "S3Storage.ConnectTimeoutMs": connect_timeout_ms or defaults.s3_connect_timeout_ms,
        "S3Storage.RequestTimeoutMs": request_timeout_ms or defaults.s3_request_timeout_ms,
    }
    for name, value in wanted.items():
        env = "ARCTICDB_" + name.replace(".", "_") + "_int"
        if not keep or (get_config_int(name) is None and env not in os.environ):
            set_config_int(name, value)
    attempts = str(max_attempts or defaults.s3_max_attempts)
    if not keep or "AWS_MAX_ATTEMPTS" not in os.environ:
        os.environ["AWS_MAX_ATTEMPTS"] = attempts
        os.environ["AWS_RETRY_MODE"] = "standard"  # the SDK's default mode ignores AWS_MAX_ATTEMPTS


def check_directory(path: os.PathLike[str] | str) -> None:
    """Create an LMDB store's directory; raise StorageError if it cannot be written.

    A missing directory beside which a restore left the old store moved aside
    (killed between its two renames) is not created empty: StorageError names
    the old store, to be moved back by hand.
    """
    if not os.path.exists(path):
        left = asides(Path(path))
        if left:
            raise StorageError(f"the market store {path} is missing, and {left[-1]} holds the store a restore "
                               f"moved aside before it was stopped: move it back (mv {left[-1]} {path}), "
                               f"or delete it to start an empty store", path=str(path), aside=str(left[-1]))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the market store's directory {path}: {exc.strerror}",
                           path=str(path)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"the market store's directory {path} is read-only (not writable by this user)",
                           path=str(path))
