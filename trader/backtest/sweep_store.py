"""Stored sweeps: one Parquet file per sweep under ``<TRADER_HOME>/data/research/sweeps``, reported again at will.

The file holds the sweep's table (one row per combination, best first) and,
in the Parquet schema's metadata under ``trader.sweep``, what produced it:
strategy, method, objective, space, constraints, seed, timing and chunk
counts. It is written to a temporary name in the same directory and renamed
into place, so a sweep that fails or is interrupted leaves no file, and a
reader never sees half of one. :func:`load` takes the sweep's id (the file's
stem) or a path and returns the same :class:`SweepResult` without computing
anything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trader.backtest.result import SweepResult
from trader.config import default_home
from trader.errors import NotFound

log = logging.getLogger(__name__)

__all__ = ["METADATA_KEY", "listing", "load", "new_id", "store", "sweeps_dir"]

METADATA_KEY = b"trader.sweep"


def sweeps_dir(home: Path | None = None) -> Path:
    """Return the directory sweeps are stored in."""
    return (home or default_home()) / "data" / "research" / "sweeps"


def new_id(strategy: str) -> str:
    """Return a new sweep id: the strategy, the UTC time and a random suffix (``ma_crossover-20260101T120000-3f2a``)."""
    return f"{strategy}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def store(result: SweepResult, *, home: Path | None = None, sweep_id: str | None = None,
          extra: dict[str, Any] | None = None) -> Path:
    """Write ``result`` to ``<sweeps_dir>/<id>.parquet`` atomically; return the path."""
    directory = sweeps_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sweep_id or new_id(result.strategy)}.parquet"
    meta = {"strategy": result.strategy, "method": result.method, "objective": result.objective,
            "space": result.space, "elapsed": result.elapsed, "chunks": result.chunks,
            "chunks_retried": result.chunks_retried, "created": datetime.now(UTC).isoformat(), **(extra or {})}
    table = pa.Table.from_pandas(result.table, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[METADATA_KEY] = json.dumps(meta, default=str).encode()
    table = table.replace_schema_metadata(schema_meta)
    partial = directory / f".{path.name}.{os.getpid()}.partial"
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)  # the file appears whole, or not at all
    finally:
        partial.unlink(missing_ok=True)
    return path


def load(id_or_path: str | Path, *, home: Path | None = None) -> SweepResult:
    """Return the stored sweep ``id_or_path`` (an id under :func:`sweeps_dir`, or a Parquet file)."""
    candidate = Path(id_or_path)
    path = candidate if candidate.suffix == ".parquet" or candidate.exists() else \
        sweeps_dir(home) / f"{id_or_path}.parquet"
    if not path.is_file():
        raise NotFound(f"no stored sweep {str(id_or_path)!r} (looked for {path})")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise NotFound(f"{path} is not a stored sweep (no {METADATA_KEY.decode()} metadata)")
    meta = json.loads(raw)
    frame: pd.DataFrame = table.to_pandas()
    return SweepResult(strategy=meta["strategy"], method=meta["method"], objective=meta["objective"],
                       space=meta["space"], table=frame, path=path, elapsed=float(meta.get("elapsed", 0.0)),
                       chunks=int(meta.get("chunks", 0)), chunks_retried=int(meta.get("chunks_retried", 0)),
                       dropped=int(meta.get("dropped", 0)), constraints=list(meta.get("constraints", [])),
                       trials=int(meta.get("trials", 0)))


def listing(*, home: Path | None = None) -> list[dict[str, Any]]:
    """Return the stored sweeps, newest first: id, strategy, method, objective, rows, best objective, created."""
    directory = sweeps_dir(home)
    found = []
    for path in directory.glob("*.parquet") if directory.is_dir() else ():
        try:
            schema = pq.read_schema(path)
            meta = json.loads((schema.metadata or {})[METADATA_KEY])
            best = pq.read_table(path, columns=["objective"]).column(0).to_pylist()[:1]
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
            log.warning("%s is not a readable stored sweep: %s", path, exc)
            continue
        found.append({"id": path.stem, "strategy": meta["strategy"], "method": meta["method"],
                      "objective": meta["objective"], "rows": rows, "best": best[0] if best else None,
                      "created": meta.get("created"), "path": str(path)})
    return sorted(found, key=lambda entry: entry["created"] or "", reverse=True)
