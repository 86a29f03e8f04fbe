"""The market store and what fills it: bars, ticks and universes (see docs/ARCHITECTURE.md, "Data layer").

The names below are loaded on first use (PEP 562), not when the package is
imported: importing any ``trader.data`` module (a source's options, the job
records) must not import ArcticDB and pandas, which cost the ``trader``
command most of its start-up time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trader.data.factory import open_store
    from trader.data.frames import (
        BAR_COLUMNS,
        OPTIONAL_BAR_COLUMNS,
        TICK_COLUMNS,
        check_bars,
        check_ticks,
    )
    from trader.data.store import MarketStore, SymbolMeta

# Each public name -> the module that defines it.
_HOMES = {
    "BAR_COLUMNS": "trader.data.frames",
    "OPTIONAL_BAR_COLUMNS": "trader.data.frames",
    "TICK_COLUMNS": "trader.data.frames",
    "MarketStore": "trader.data.store",
    "SymbolMeta": "trader.data.store",
    "check_bars": "trader.data.frames",
    "check_ticks": "trader.data.frames",
    "open_store": "trader.data.factory",
}

__all__ = [
    "BAR_COLUMNS",
    "OPTIONAL_BAR_COLUMNS",
    "TICK_COLUMNS",
    "MarketStore",
    "SymbolMeta",
    "check_bars",
    "check_ticks",
    "open_store",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` and return it (AttributeError for any other name)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value
