"""Stored history as a user reads it: ``history read``, ``history export`` and ``history bar-sizes``.

The commands are plain click commands in :data:`READ_COMMANDS`, which
trader/cli/history.py adds to its ``history`` group (beside history_service's
own commands). They open
the store directly (``storage.arctic_uri``): no service has to run. A SYMBOL
is read as ``history get`` reads it (:func:`trader.data.requests.stored_key`): a contract key as it
is, else the symbol parser's first reading (``ESZ6`` -> ``ES.FUT.202612``),
else the one stored key it starts (``ES``), if only one does.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.cli.options import MOMENT
from trader.data.requests import job_bar_size, stored_key
from trader.data.store import MarketStore
from trader.errors import NotFound, StorageError, ValidationError
from trader.strategy.bars import BAR_SIZES, ib_bar_size, parse_bar_size

TAIL = 20  # rows a table shows by default
WHOLE_COLUMNS = ("volume", "bar_count", "bid_size", "ask_size", "last_size")  # integers in a CSV when whole


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a frame's rows as JSON-ready dicts: ``time`` first (ISO, UTC), NaN as null."""
    rows = []
    for moment, values in zip(frame.index, frame.to_dict("records"), strict=True):
        row: dict[str, Any] = {"time": moment.isoformat()}
        for name, value in values.items():
            unknown = name == "bar_count" and value < 0  # -1: the source did not count trades
            row[name] = None if unknown or isinstance(value, float) and not math.isfinite(value) else value
        rows.append(row)
    return rows


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` as a CSV export writes it, so that reading it back gives the same values.

    Times are ISO 8601 in UTC with ``+00:00`` and as many fractional digits as
    they need (none, 6 or 9: a tick's sub-second is kept); sizes, volumes and
    bar counts that are whole are written as integers (``207``, not ``207.0``).
    """
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        finite = column.dropna()
        if name in WHOLE_COLUMNS and pd.api.types.is_float_dtype(column) and (finite == finite.round()).all():
            out[name] = column.astype("Int64")  # NaN stays an empty cell
    out.index = pd.Index(iso_times(pd.DatetimeIndex(frame.index)), name="time")
    return out


def iso_times(index: pd.DatetimeIndex) -> list[str]:
    """Return UTC times as ISO 8601 text with ``+00:00``: whole seconds, micro- or nanoseconds as needed."""
    index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    fraction = index.asi8 % 10**9
    digits = 0 if not fraction.any() else 6 if not (fraction % 1000).any() else 9
    parts = [f".{f // 10 ** (9 - digits):0{digits}d}" if digits else "" for f in fraction.tolist()]
    return [f"{t}{p}+00:00" for t, p in zip(index.strftime("%Y-%m-%dT%H:%M:%S"), parts, strict=True)]


def _decimals(values: pd.Series) -> int:
    """Return the fewest decimals (at most 6) that show every finite value of a column exactly."""
    finite = values[values.notna()].to_numpy(dtype="float64")
    for places in range(7):
        scaled = finite * 10**places
        if (abs(scaled - scaled.round()) < 1e-6 * max(1.0, 10**places)).all():
            return places
    return 6


def _table(frame: pd.DataFrame, title: str) -> FitTable:
    names = list(frame.columns)
    cols = [Col("time (UTC)")] + [Col(n, 0 if n in ("open", "high", "low", "close") else 3, justify="right")
                                  for n in names]
    places = {n: _decimals(frame[n]) for n in names}
    prices = [n for n in names if n in ("open", "high", "low", "close", "wap", "bid", "ask", "last")]
    shared = max((places[n] for n in prices), default=0)  # one price grid for every price column
    places.update({n: shared for n in prices})
    cells = {n: ["-" if pd.isna(v) or n == "bar_count" and v < 0 else f"{v:,.{places[n]}f}" for v in frame[n]]
             for n in names}
    times = [t.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00").removesuffix(" 00:00") for t in frame.index]
    rows = [[when, *(cells[n][i] for n in names)] for i, when in enumerate(times)]
    return FitTable(cols, rows, title=title)


def _load(cli: CliContext, symbol: str, bar_size: str, lo: datetime | None, hi: datetime | None,
          ticks: bool, as_of: str | None) -> tuple[str, pd.DataFrame]:
    from trader.data.factory import open_store  # ArcticDB: imported on use, not at start-up

    return _load_from(open_store(cli.settings()), symbol, bar_size, lo, hi, ticks, as_of)


def _load_from(store: MarketStore, symbol: str, bar_size: str, lo: datetime | None, hi: datetime | None,
               ticks: bool, as_of: str | None) -> tuple[str, pd.DataFrame]:
    key = stored_key(store, symbol, ticks=ticks)
    if ticks:
        if as_of:
            raise ValidationError("--as-of reads bars; recorded ticks are read as they are now")
        return key, store.read_ticks(key, lo, hi)
    return key, store.read_bars(key, job_bar_size(bar_size), lo, hi, as_of=as_of)


def _source(store: MarketStore, key: str, size: str) -> str:
    """Return who wrote ``key``'s series of ``size`` (``ticks``) as its metadata says ("" if unsaid)."""
    try:
        return store.meta(key, size).source
    except NotFound:  # a size resampled on read has no metadata of its own
        return ""


@click.command("read")
@click.argument("symbol")
@click.option("--bar-size", default="1m", show_default=True, help="1m, 5m, 1h, 1d... (a size not stored "
              "is resampled from a finer one).")
@click.option("--start", type=MOMENT, default=None, help="First time (UTC unless it says; a date is its midnight).")
@click.option("--end", type=MOMENT, default=None, help="End time, not included.")
@click.option("--ticks", is_flag=True, help="Read the recorded ticks instead of bars.")
@click.option("--as-of", default=None, metavar="SNAPSHOT", help="Read as the snapshot SNAPSHOT holds it.")
@click.option("--tail", type=click.IntRange(min=1), default=None,
              help=f"Only the last N rows (table default: {TAIL}; JSON: all).")
@pass_cli
def read_command(cli: CliContext, symbol: str, bar_size: str, start: datetime | None, end: datetime | None,
                 ticks: bool, as_of: str | None, tail: int | None) -> None:
    """Show SYMBOL's stored bars (or recorded ticks) in a range.

    \b
    Examples:
      trader history read AAPL.STK --bar-size 1d --start 2026-01-01
      trader history read AAPL --start 2026-03-02 --end 2026-03-03 --tail 5
      trader history read ES.FUT.202612 --bar-size 1h --as-of before-rebuild
      trader history read EUR.CASH.USD --ticks --tail 50 --json
    JSON:
      [{"time": time, "open": number, "high": number, "low": number,
        "close": number, "volume": number, "wap": number | null,
        "bar_count": integer | null}]  (null: not given by the source;
        with --ticks: {"time", "bid", "ask", "last", "bid_size",
        "ask_size", "last_size", "volume"}, null where a tick had none)
    Exits: 4 nothing stored for SYMBOL, 3 bad size or ambiguous SYMBOL,
      14 store unusable
    """
    from trader.data.factory import open_store  # ArcticDB: imported on use, not at start-up

    store = open_store(cli.settings())
    key, frame = _load_from(store, symbol, bar_size, start, end, ticks, as_of)
    if cli.json:
        cli.emit_json(frame_rows(frame.tail(tail) if tail else frame))
        return
    shown = frame.tail(tail or TAIL)
    what = "ticks" if ticks else f"{job_bar_size(bar_size)} bars"
    source = _source(store, key, "ticks" if ticks else job_bar_size(bar_size))
    title = (f"{key} {what}" + (f" from {source}" if source else "") + f": last {len(shown)} of {len(frame):,}"
             + (f" (as of {as_of})" if as_of else ""))
    if shown.empty:
        cli.console.print(f"no {what} of {key} in that range", style="dim")
    else:
        cli.console.print(_table(shown, title), highlight=False)


@click.command("export")
@click.argument("symbol")
@click.option("--bar-size", default="1m", show_default=True, help="1m, 5m, 1h, 1d...")
@click.option("--start", type=MOMENT, default=None, help="First time (UTC unless it says).")
@click.option("--end", type=MOMENT, default=None, help="End time, not included.")
@click.option("--ticks", is_flag=True, help="Export the recorded ticks instead of bars.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write CSV to this file.")
@click.option("--parquet", "parquet_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write Parquet to this file.")
@pass_cli
def export_command(cli: CliContext, symbol: str, bar_size: str, start: datetime | None, end: datetime | None,
                   ticks: bool, csv_file: Path | None, parquet_file: Path | None) -> None:
    """Write SYMBOL's stored bars (or ticks) in a range to a CSV or Parquet file.

    The CSV's first column is time, ISO 8601 in UTC with "+00:00" and the
    sub-seconds a tick has (2026-12-07T19:17:21.250113+00:00); volumes,
    sizes and bar counts are integers where whole. Parquet keeps the UTC
    index and the stored types. Exactly one of --csv and --parquet. Bars
    always have the columns open high low close volume wap bar_count: wap
    is empty and bar_count -1 where the source did not give them (IB's
    convention). A bars CSV (or Parquet) imports back unchanged: `history
    get SYMBOL --source file --file F`.

    \b
    Examples:
      trader history export AAPL.STK --bar-size 1d --csv aapl.csv
      trader history export ES --start 2026-03-02 --parquet es.parquet
      trader history export EUR.CASH.USD --ticks --csv eur-ticks.csv
    JSON:
      {"symbol": string, "bar_size": string, "rows": integer, "file": string,
       "format": "csv" | "parquet", "first": time | null, "last": time | null}
    Exits: 4 nothing stored for SYMBOL, 3 bad options, 14 store unusable or
      FILE not writable
    """
    if (csv_file is None) == (parquet_file is None):
        raise click.UsageError("give exactly one of --csv FILE and --parquet FILE")
    key, frame = _load(cli, symbol, bar_size, start, end, ticks, None)
    path = csv_file or parquet_file
    assert path is not None
    try:
        if csv_file is not None:
            csv_frame(frame).to_csv(csv_file)
        else:
            frame.to_parquet(path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from None
    result = {"symbol": key, "bar_size": "ticks" if ticks else job_bar_size(bar_size), "rows": len(frame),
              "file": str(path), "format": "csv" if csv_file else "parquet",
              "first": frame.index[0].isoformat() if len(frame) else None,
              "last": frame.index[-1].isoformat() if len(frame) else None}
    cli.show(result, lambda r: f"{r['rows']:,} {r['bar_size']} rows of {r['symbol']} written to {r['file']}")


@click.command("bar-sizes")
@pass_cli
def bar_sizes_command(cli: CliContext) -> None:
    """List the bar sizes (IB's), and how many instruments have each stored.

    \b
    Examples:
      trader history bar-sizes
      trader history bar-sizes --json
    JSON:
      [{"size": string, "ib": string, "seconds": integer, "stored":
        integer}]  (stored: instruments with bars of that size)
    Exits: 14 store unusable
    """
    from trader.data.factory import open_store  # ArcticDB: imported on use, not at start-up

    stored = {size: len(keys) for size, keys in open_store(cli.settings()).bar_symbols().items()}
    rows = [{"size": size, "ib": ib_bar_size(parse_bar_size(size)), "seconds": parse_bar_size(size),
             "stored": stored.get(size, 0)} for size in BAR_SIZES]
    cols = (Col("size"), Col("IB's spelling"), Col("seconds", 2, justify="right"),
            Col("instruments stored", justify="right"))
    cli.show(rows, lambda rs: FitTable(cols, [[r["size"], r["ib"], str(r["seconds"]), str(r["stored"] or "-")]
                                              for r in rs]))


READ_COMMANDS: list[click.Command] = [read_command, export_command, bar_sizes_command]
