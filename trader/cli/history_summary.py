"""``history summary``: what the market store holds, per symbol and bar size, and its gaps against the calendar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.text import Text

from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.data.requests import read_key, reading, stored_key
from trader.data.store import MarketStore
from trader.errors import NotFound

if TYPE_CHECKING:  # pandas, ArcticDB and the calendars: imported by the command, not at start-up
    import pandas as pd

    from trader.data.summary import SeriesSummary

__all__ = ["summary_command", "summary_table"]

SUMMARY_COLUMNS = (
    Col("symbol", min_width=8), Col("size"), Col("first"), Col("last"), Col("rows", justify="right"),
    Col("gaps", 3, wrap=True),
)
_SHOWN_GAPS = 1  # sessions named in the gaps cell; the rest counted


@click.command("summary")
@click.argument("symbols", nargs=-1, metavar="[SYMBOL]...")
@click.option("--bar-size", default=None, help="Only this bar size (1m, 5m, 1h, 1d; IB spellings too).")
@click.option("--partial", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="SHARE",
              help="Also count a session with fewer than SHARE of its expected bars as a gap (e.g. 0.5).")
@pass_cli
def summary_command(cli: CliContext, symbols: Sequence[str], bar_size: str | None, partial: float | None) -> None:
    """Show each stored series: first and last bar, rows, and gaps.

    A gap is a session of the symbol's exchange calendar (NYSE for stocks,
    CME Globex for futures, 24/5 for FX; holidays and early closes known)
    between the first and last bar with no bar in it. A SYMBOL is read as
    `history get` and `history read` read it (AAPL -> AAPL.STK, ESZ6 ->
    ES.FUT.202612, a contract key as it is); none: every stored symbol.
    Times are UTC.

    \b
    Examples:
      trader history summary
      trader history summary AAPL ESZ6 --bar-size 1m
      trader history summary --bar-size 1d --json
    JSON:
      [{key, bar_size, first, last (ISO 8601 UTC or null), rows,
        calendar (XNYS, CMES, 24/5 or ""), gap_count,
        gaps: [{session (date), first, last (missing bar starts),
                expected, found}]}]
    Exits: 4 none of the SYMBOLs stored, 14 the store cannot be read
    """
    from trader.data.factory import open_store
    from trader.data.summary import summary

    store = open_store(cli.settings())
    keys = [_key(store, s) for s in symbols]
    rows = summary(store, keys or None, bar_size, partial=partial)
    if symbols and not rows:
        read = "; ".join(f"{s}: {reading(s, read_key(s))}" for s in symbols)
        raise NotFound(f"no {bar_size + ' ' if bar_size else ''}bars stored for {', '.join(symbols)} ({read})",
                       symbols=list(symbols))
    if cli.json:
        cli.emit_json([r.as_dict() for r in rows])
        return
    cli.show(rows, summary_table, "no bars stored")


def _key(store: MarketStore, symbol: str) -> str:
    """Return the stored key SYMBOL names, as ``history read`` reads it (SYMBOL itself if none)."""
    try:
        return stored_key(store, symbol)
    except NotFound:
        return symbol


def summary_table(rows: Sequence[SeriesSummary]) -> FitTable:
    """Return the summaries as a table that fits the terminal."""
    cells: list[list[str | Text]] = []
    for r in rows:
        daily = r.bar_size.endswith(("d", "w", "M"))
        cells.append([r.key, r.bar_size, _when(r.first, daily), _when(r.last, daily), f"{r.rows:,}", _gaps(r)])
    return FitTable(SUMMARY_COLUMNS, cells)


def _when(t: pd.Timestamp | None, daily: bool) -> str:
    if t is None:
        return "-"
    return t.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


def _gaps(r: SeriesSummary) -> Text:
    if not r.calendar:
        return Text("-", style="dim")
    if not r.gaps:
        return Text("0", style="green")
    named = ", ".join(g.session.isoformat() for g in r.gaps[:_SHOWN_GAPS])
    more = f" +{len(r.gaps) - _SHOWN_GAPS}" if len(r.gaps) > _SHOWN_GAPS else ""
    return Text(f"{len(r.gaps)}: {named}{more}", style="yellow")
