"""The market store's interface: what every part of the platform reads and writes market data through.

One small :class:`MarketStore` Protocol, so a backend other than ArcticDB can
be added later (ArcticDB is BSL 1.1: free for personal use, a commercial
agreement for business use). :func:`trader.data.factory.open_store` picks the
backend from the ``storage.arctic_uri`` setting: ``lmdb://DIR`` (relative to
the home) or an ``s3://`` URI.

The model:

- **bars** of one size per instrument, the size in its short form (``"1m"``,
  ``"1d"``, see :mod:`trader.strategy.bars`), the instrument by contract key
  (``AAPL.STK``, ``ES.FUT.202612``); a UTC DatetimeIndex of bar starts named
  ``time`` and the columns of :data:`trader.data.frames.BAR_COLUMNS` (plus
  ``wap``, ``bar_count`` where the source has them).
- **windows**: a write names the half-open window ``[start, end)`` it covers;
  whatever was stored in that window is replaced, so a download repeated or
  retried never duplicates a bar or leaves a gap. Every bar written lies
  inside its window (checked: :func:`trader.data.frames.check_bars`).
- **ticks** per instrument, appended in batches (the recorder).
- **records**: small named documents by kind (universes, job results...).
- **snapshots**: a name for the whole store's state, readable later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from trader.errors import StorageError, ValidationError


__all__ = ["MarketStore", "SymbolMeta", "contract_fields", "merge_meta"]


@dataclass(frozen=True, slots=True)
class SymbolMeta:
    """What the store keeps beside a symbol's data: where it came from and how to read it.

    A write's metadata is merged into the stored one (:func:`merge_meta`): an
    empty field keeps what is stored, so a source that knows no contract does
    not erase the contract another writer stored.
    """

    key: str  # the contract key the symbol is named by
    source: str = ""  # ib, polygon, yahoo, file, recorder... (the last writer's)
    timezone: str = ""  # the exchange's time zone, "" unknown (the index itself is always UTC)
    contract: Mapping[str, Any] = field(default_factory=dict)  # the contract's fields, as plain values
    extra: Mapping[str, Any] = field(default_factory=dict)


def contract_fields(contract: Any) -> dict[str, str]:
    """Return a contract (a dataclass such as :class:`~trader.domain.Contract`) as the metadata keeps it.

    Its fields that are set, as text (enums by value): plain values any backend stores.
    """
    if contract is None:
        return {}
    items = asdict(contract).items() if is_dataclass(contract) and not isinstance(contract, type) \
        else dict(contract).items()
    return {k: str(v.value if isinstance(v, Enum) else v) for k, v in items if v not in (None, "")}


def merge_meta(stored: Mapping[str, Any] | None, meta: SymbolMeta) -> dict[str, Any]:
    """Return the metadata to store: ``meta`` over ``stored`` (plain values).

    ``source`` and ``timezone`` replace the stored ones when set; ``contract``
    and ``extra`` are merged field by field (the new value of a field wins).
    """
    old = dict(stored or {})
    return {
        "key": meta.key,
        "source": meta.source or str(old.get("source") or ""),
        "timezone": meta.timezone or str(old.get("timezone") or ""),
        "contract": {**dict(old.get("contract") or {}), **dict(meta.contract)},
        "extra": {**dict(old.get("extra") or {}), **dict(meta.extra)},
    }


@runtime_checkable
class MarketStore(Protocol):
    """Bars, ticks, records and snapshots, keyed by contract key."""

    # --- bars -------------------------------------------------------------------------------
    def write_bars(self, key: str, bar_size: str, frame: pd.DataFrame, *, start: datetime, end: datetime,
                   meta: SymbolMeta | None = None) -> int:
        """Replace the window ``[start, end)`` of ``key``'s ``bar_size`` bars with ``frame``; return rows written.

        ``frame`` may be empty: nothing is written and what is stored there stays (an empty
        answer may be transient; the store logs a warning when it keeps bars).
        ``meta`` is merged into the symbol's stored metadata (:func:`merge_meta`).
        Raises ``ValidationError`` naming ``key`` for a frame that fails :func:`check_bars`
        and ``StorageError`` when the store cannot be written; either way nothing is written.
        """
        ...

    def read_bars(self, key: str, bar_size: str, start: datetime | None = None, end: datetime | None = None,
                  *, as_of: str | None = None) -> pd.DataFrame:
        """Return the bars in ``[start, end)`` (a missing bound: from the first / to the last).

        A size not stored is resampled from the finest finer size stored. ``as_of``
        names a snapshot. Raises ``NotFound`` when neither exists for ``key``.
        """
        ...

    def bar_symbols(self, bar_size: str | None = None) -> dict[str, list[str]]:
        """Return the stored keys per bar size (one size, or every size)."""
        ...

    def meta(self, key: str, bar_size: str) -> SymbolMeta:
        """Return a stored symbol's metadata (``bar_size`` ``"ticks"``: its ticks'; ``NotFound`` if not stored)."""
        ...

    def delete_bars(self, key: str, bar_size: str) -> bool:
        """Remove a symbol's bars of one size; return whether there were any."""
        ...

    # --- ticks ------------------------------------------------------------------------------
    def append_ticks(self, key: str, frame: pd.DataFrame, *, meta: SymbolMeta | None = None) -> int:
        """Append ticks (time-ordered, UTC index, :data:`TICK_COLUMNS`) after the stored ones; return rows.

        ``meta`` is merged into the symbol's stored metadata (:func:`merge_meta`).
        """
        ...

    def append_ticks_many(self, frames: Mapping[str, pd.DataFrame], *,
                          metas: Mapping[str, SymbolMeta] | None = None) -> dict[str, int | StorageError | ValidationError]:
        """Append several keys' ticks at once, each as :meth:`append_ticks` would; return each key's rows or refusal.

        Per key: the rows appended (0 for an empty frame), the ``ValidationError``
        of a frame that fails :func:`check_ticks`, or the ``StorageError`` of a
        write the store refused; a refused key has no tick written (so it may
        be tried again as it is), the others are written whatever it got.
        Raises ``StorageError`` only when nothing was written.
        """
        ...

    def read_ticks(self, key: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Return the recorded ticks in ``[start, end)``."""
        ...

    def tick_symbols(self) -> list[str]:
        """Return the keys with recorded ticks."""
        ...

    # --- records ----------------------------------------------------------------------------
    def put_record(self, kind: str, name: str, data: Mapping[str, Any]) -> None:
        """Store a small document (msgpack-able plain values) under ``kind``/``name``, replacing it."""
        ...

    def get_record(self, kind: str, name: str) -> dict[str, Any]:
        """Return a document (``NotFound`` if absent)."""
        ...

    def records(self, kind: str) -> list[str]:
        """Return the names stored under ``kind``."""
        ...

    def delete_record(self, kind: str, name: str) -> bool:
        """Remove a document; return whether it existed."""
        ...

    # --- snapshots --------------------------------------------------------------------------
    def snapshot(self, name: str) -> None:
        """Name the store's current state (every library); ``Conflict`` if the name is taken."""
        ...

    def snapshots(self) -> list[str]:
        """Return the snapshot names."""
        ...

    def delete_snapshot(self, name: str) -> bool:
        """Remove a snapshot; return whether it existed."""
        ...

