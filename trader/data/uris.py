"""Store URIs: the LMDB directory one names, and the same URI safe to show (its secret masked).

ArcticDB URIs: ``lmdb://DIR`` (``?map_size=50GB`` sets LMDB's map size, the
most the store may ever hold: a write past it fails as a full disk does) and
``s3://HOST:BUCKET?port=P&access=KEY&secret=SECRET`` (``s3s://`` over TLS).
A URI's ``secret`` (and any password) never reaches a repr, a log line or an
error message: :func:`mask_uri` replaces it with ``***``.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["MASK", "lmdb_path", "mask_uri", "scrub", "secrets_of"]

_SECRET = re.compile(r"((?:^|[?&;])(?:secret|password|access_key_secret)=)([^&;]*)", re.IGNORECASE)
_USERINFO = re.compile(r"^([a-z0-9+]+://[^/@:]*:)([^/@]*)(@)", re.IGNORECASE)
MASK = "***"


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
