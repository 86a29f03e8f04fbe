"""Replay data: bars or ticks from a file (or any chunked source), ready to play.

A :class:`ReplayData` is anything that yields pandas DataFrames in time order
(chunks, so a long file never sits in memory whole). :class:`FileReplayData`
reads CSV or Parquet; an ArcticDB source plugs in by implementing the same
``frames()`` (reading a library symbol by date ranges) - nothing else changes.

The frame's columns:

- the time: a ``time``, ``timestamp``, ``datetime`` or ``date`` column, or a
  DatetimeIndex; naive times are UTC. A bar's time is its start, as IB's.
- the instrument: a ``symbol`` column (a catalogue contract key such as
  ``ES.FUT.202612``, a local symbol such as ``ESZ6``, a symbol the catalogue
  holds once, or a name mapped by the config's ``symbols``), a ``conid``
  column, or none and the config's ``symbol``.
- bars: ``open``, ``high``, ``low``, ``close`` and optionally ``volume``. Each
  bar plays as four prints spread over its length: open, the nearer extreme,
  the other extreme, close; the volume is shared between them.
- ticks: any of ``bid``, ``ask``, ``last`` with optional ``bid_size``,
  ``ask_size``, ``last_size``. A row with a last and a size is a trade.

Prices are rounded to the instrument's tick (:func:`prepare_chunk`); where only
a trade price is known, :mod:`trader.sim.replay` moves the quote to bracket a
trade outside it, with the instrument's spread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from trader.errors import ConfigError
from trader.sim.catalogue import Catalogue, ReplayConfig, SimInstrument

log = logging.getLogger(__name__)

__all__ = ["NO_PRICE", "Chunk", "FileReplayData", "ReplayData", "SymbolResolver", "prepare_chunk"]

CHUNK_ROWS = 200_000
_TIME_COLUMNS = ("time", "timestamp", "datetime", "date")
_BAR_COLUMNS = ("open", "high", "low", "close")
_TICK_COLUMNS = ("bid", "ask", "last")
NO_PRICE = -1  # "no price" in the tick arrays


class ReplayData(Protocol):
    """A source of rows in time order, in chunks."""

    name: str

    def frames(self) -> Iterator[pd.DataFrame]: ...


class FileReplayData:
    """A CSV or Parquet file read in chunks of ``chunk_rows``."""

    def __init__(self, path: Path, chunk_rows: int = CHUNK_ROWS) -> None:
        if not path.is_file():
            raise ConfigError(f"replay file {path} does not exist")
        if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ConfigError(f"replay file {path}: expected a .csv or .parquet file")
        self.path = path
        self.name = str(path)
        self.chunk_rows = chunk_rows

    def frames(self) -> Iterator[pd.DataFrame]:
        try:
            if self.path.suffix.lower() == ".csv":
                with pd.read_csv(self.path, chunksize=self.chunk_rows) as reader:
                    yield from reader
            else:
                import pyarrow.parquet as pq

                for batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows):
                    yield batch.to_pandas()
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ConfigError(f"replay file {self.path}: {exc}") from None


@dataclass(slots=True)
class Chunk:
    """Rows ready to play: times (ns since the epoch) and prices in ticks of each instrument."""

    time: np.ndarray  # int64 ns, sorted
    conid: np.ndarray  # int64
    bid: np.ndarray  # int64 ticks, NO_PRICE when absent
    ask: np.ndarray
    last: np.ndarray
    bid_size: np.ndarray  # float64, NaN when absent
    ask_size: np.ndarray
    last_size: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


class SymbolResolver:
    """File symbols to catalogue instruments, with the config's mapping first."""

    def __init__(self, catalogue: Catalogue, config: ReplayConfig, source: str) -> None:
        self.catalogue, self.config, self.source = catalogue, config, source
        self._names: dict[str, SimInstrument] = {}
        by_symbol: dict[str, list[SimInstrument]] = {}
        for inst in catalogue:
            c = inst.contract
            self._names[c.key.upper()] = inst
            self._names[c.local_symbol.upper()] = inst
            by_symbol.setdefault(c.symbol.upper(), []).append(inst)
        for symbol, found in by_symbol.items():
            if len(found) == 1:
                self._names.setdefault(symbol, found[0])
        for name, conid in config.symbols.items():
            mapped = catalogue.get(conid)
            if mapped is None:
                raise ConfigError(f"replay symbols: {name} maps to conid {conid}, which the catalogue lacks")
            self._names[name.upper()] = mapped

    def conids(self, frame: pd.DataFrame) -> np.ndarray:
        if "conid" in frame.columns:
            conids = frame["conid"].to_numpy(dtype=np.int64)
            for conid in np.unique(conids):
                if self.catalogue.get(int(conid)) is None:
                    raise ConfigError(f"replay file {self.source}: conid {conid} is not in the catalogue")
            return conids
        if "symbol" in frame.columns:
            names = frame["symbol"].astype(str)
        elif self.config.symbol is not None:
            names = pd.Series(self.config.symbol, index=frame.index)
        else:
            raise ConfigError(f"replay file {self.source}: no symbol or conid column and no replay.symbol set")
        out = np.empty(len(names), dtype=np.int64)
        for name, rows in names.groupby(names, sort=False).indices.items():
            inst = self._names.get(str(name).upper())
            if inst is None:
                raise ConfigError(f"replay file {self.source}: unknown symbol {name!r} (map it in replay.symbols)")
            out[rows] = inst.conid
        return out


def _times(frame: pd.DataFrame, source: str) -> np.ndarray:
    column = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    if column is not None:
        raw: Any = frame[column]
    elif isinstance(frame.index, pd.DatetimeIndex):
        raw = frame.index.to_series()
    else:
        raise ConfigError(f"replay file {source}: no time column (one of {', '.join(_TIME_COLUMNS)})")
    try:
        times = pd.to_datetime(raw, utc=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"replay file {source}: unreadable time: {exc}") from None
    if times.isna().any():
        raise ConfigError(f"replay file {source}: a row has no time")
    return times.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


def _ticks(prices: np.ndarray, conids: np.ndarray, tick_of: dict[int, float]) -> np.ndarray:
    ticks = np.array([tick_of[int(c)] for c in conids], dtype=np.float64) if len(conids) else np.empty(0)
    out = np.full(len(prices), NO_PRICE, dtype=np.int64)
    ok = np.isfinite(prices) & (prices > 0)
    out[ok] = np.rint(prices[ok] / ticks[ok]).astype(np.int64)
    return out


def prepare_chunk(frame: pd.DataFrame, resolver: SymbolResolver, bar_nanos: int | None,
                  source: str) -> tuple[Chunk, int | None]:
    """Turn one frame of bars or ticks into playable rows sorted by time; also return the bar length used.

    ``bar_nanos`` None infers a bar file's bar length from this frame.
    """
    columns = {str(c).lower(): c for c in frame.columns}
    frame = frame.rename(columns={v: k for k, v in columns.items()})
    times = _times(frame, source)
    conids = resolver.conids(frame)
    tick_of = {int(c): float(resolver.catalogue.get(int(c)).tick_size) for c in np.unique(conids)}  # type: ignore[union-attr]
    if all(c in frame.columns for c in _BAR_COLUMNS):
        length = bar_nanos or _bar_nanos(times, conids)
        o, h, lo, c = (_column(frame, name) for name in _BAR_COLUMNS)
        if np.any(np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c)) or np.any((h < lo) | (o > h) | (o < lo)
                                                                                     | (c > h) | (c < lo)):
            raise ConfigError(f"replay file {source}: a bar is missing a price or has open/close outside high-low")
        up = c >= o
        paths = np.stack([o, np.where(up, lo, h), np.where(up, h, lo), c], axis=1).ravel()
        offsets = (np.arange(4) * length // 4).astype(np.int64)
        t = (times[:, None] + offsets[None, :]).ravel()
        cid = np.repeat(conids, 4)
        volume = _column(frame, "volume")
        share = np.repeat(np.where(np.isfinite(volume) & (volume > 0), np.floor(volume / 4), np.nan), 4)
        share[3::4] = np.where(np.isfinite(volume) & (volume > 0), volume - 3 * np.floor(volume / 4), np.nan)
        share[share == 0] = np.nan
        empty = np.full(len(t), NO_PRICE, dtype=np.int64)
        chunk = Chunk(t, cid, empty, empty.copy(), _ticks(paths, cid, tick_of), np.full(len(t), np.nan),
                      np.full(len(t), np.nan), share)
    elif any(c in frame.columns for c in _TICK_COLUMNS):
        length = None
        chunk = Chunk(times, conids, _ticks(_column(frame, "bid"), conids, tick_of),
                      _ticks(_column(frame, "ask"), conids, tick_of), _ticks(_column(frame, "last"), conids, tick_of),
                      _column(frame, "bid_size"), _column(frame, "ask_size"), _column(frame, "last_size"))
        if np.all((chunk.bid == NO_PRICE) & (chunk.ask == NO_PRICE) & (chunk.last == NO_PRICE)):
            raise ConfigError(f"replay file {source}: no row has a bid, ask or last price")
    else:
        raise ConfigError(f"replay file {source}: expected bar columns (open, high, low, close) "
                          f"or tick columns (bid, ask, last); got {', '.join(map(str, frame.columns))}")
    order = np.argsort(chunk.time, kind="stable")
    return Chunk(*(getattr(chunk, f)[order] for f in Chunk.__slots__)), length


def _bar_nanos(times: np.ndarray, conids: np.ndarray) -> int:
    """Return the commonest gap between one instrument's bars (a minute when there is none)."""
    gaps: list[np.ndarray] = []
    for conid in np.unique(conids):
        own = np.sort(times[conids == conid])
        gaps.append(np.diff(own))
    joined = np.concatenate(gaps) if gaps else np.empty(0, dtype=np.int64)
    joined = joined[joined > 0]
    if len(joined) == 0:
        return 60_000_000_000
    values, counts = np.unique(joined, return_counts=True)
    return int(values[np.argmax(counts)])
