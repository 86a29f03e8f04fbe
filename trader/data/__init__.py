"""The market store and what fills it: bars, ticks and universes (see docs/ARCHITECTURE.md, "Data layer")."""

from trader.data.factory import open_store
from trader.data.frames import (
    BAR_COLUMNS,
    OPTIONAL_BAR_COLUMNS,
    TICK_COLUMNS,
    check_bars,
    check_ticks,
)
from trader.data.store import MarketStore, SymbolMeta

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
