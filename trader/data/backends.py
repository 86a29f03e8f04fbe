"""The store's backends: which :class:`~trader.data.store.MarketStore` a URI opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trader.data.store import MarketStore

if TYPE_CHECKING:
    from trader.config import Settings

__all__ = ["open_store"]


def open_store(settings: Settings | None = None, *, uri: str | None = None) -> MarketStore:
    """Open the store ``uri`` names, else the settings' ``storage.arctic_uri`` (relative LMDB paths: the home)."""
    from trader.data.arctic import ArcticStore

    if uri is None:
        if settings is None:
            from trader.config import load_settings

            settings = load_settings()
        uri = settings.storage.arctic_uri
        if uri.startswith("lmdb://"):
            uri = "lmdb://" + str(settings.path(uri.removeprefix("lmdb://")))
    return ArcticStore(uri)
