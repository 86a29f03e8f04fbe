"""The store's backends: which :class:`~trader.data.store.MarketStore` a URI opens (see :mod:`trader.data.uris`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trader.data.store import MarketStore
from trader.data.uris import lmdb_path, mask_uri

if TYPE_CHECKING:
    from trader.config import Settings

__all__ = ["lmdb_path", "mask_uri", "open_store"]


def open_store(settings: Settings | None = None, *, uri: str | None = None) -> MarketStore:
    """Open the store ``uri`` names, else the settings' ``storage.arctic_uri`` (relative LMDB paths: the home)."""
    from trader.data.arctic import ArcticStore

    if uri is None:
        if settings is None:
            from trader.config import load_settings

            settings = load_settings()
        uri = settings.storage.arctic_uri
        path = lmdb_path(uri)
        if path is not None:
            query = uri.partition("?")[2]
            uri = "lmdb://" + str(settings.path(path)) + (f"?{query}" if query else "")
    return ArcticStore(uri)
