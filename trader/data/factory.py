"""Which market store the settings or a URI name: the one place a :class:`~trader.data.store.MarketStore` is opened.

As :mod:`trader.brokers.factory` picks the broker, this picks the backend: an
``lmdb://`` or ``s3://`` URI opens an :class:`~trader.data.arctic.ArcticStore`
(the only backend so far; another plugs in here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trader.data.arctic import ArcticStore
from trader.data.backends import configure_s3, lmdb_path, with_query
from trader.data.store import MarketStore

if TYPE_CHECKING:
    from trader.config import Settings

__all__ = ["open_store"]


def open_store(settings: Settings | None = None, *, uri: str | None = None) -> MarketStore:
    """Open the store ``uri`` names, else the settings' ``storage.arctic_uri`` (relative LMDB paths: the home).

    An S3 store gets the settings' timeouts and tries (``storage.s3_*``; with
    ``uri`` and no settings, their defaults: see :func:`configure_s3`).
    """
    if uri is None:
        if settings is None:
            from trader.config import load_settings

            settings = load_settings()
        uri = settings.storage.arctic_uri
        path = lmdb_path(uri)
        if path is not None:
            uri = with_query("lmdb://" + str(settings.path(path)), uri)
    if settings is not None and uri.startswith(("s3://", "s3s://")):
        storage = settings.storage
        configure_s3(storage.s3_connect_timeout_ms, storage.s3_request_timeout_ms, storage.s3_max_attempts)
    return ArcticStore(uri)
