"""Instrument tables: the contracts ``resolve`` found and the quotes of ``snapshot`` and ``subscribe listen``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from trader.cli.formats import clock, num, price
from trader.cli.layout import Col, FitTable
from trader.domain import Contract
from trader.domain.figures import price_decimals


def contracts_table(rows: Sequence[Mapping[str, Any]]) -> FitTable:
    """Return a table of resolved contracts (``resolve``'s rows): what was typed, the key, local symbol,
    exchange, last trade date, description and the universes holding it (shown when any is in one).

    Narrow, the least needed go first: the exchange, then the last trade
    date (shown only when a row has one), then the local symbol; the
    description is cut in its middle before it goes.
    """
    cells: list[list[str]] = []
    for row in rows:
        c: Contract = row["contract"]
        primary = c.primary_exchange and c.exchange == "SMART"
        cells.append([row["input"], row["key"], row["local_symbol"] or "-",
                      c.expiry.isoformat() if c.expiry else "-",
                      f"SMART/{c.primary_exchange}" if primary else c.exchange, row["description"] or "-",
                      ", ".join(row.get("universes") or ()) or "-"])
    columns = [Col("typed"), Col("key"), Col("local symbol", 3), Col("last trade", 4), Col("exchange", 5),
               Col("description", 2, min_width=12), Col("universes", 1, min_width=8)]
    # no dated contract, or none in a universe: no column for it
    keep = [i for i in range(len(columns)) if i not in (3, 6) or any(r[i] != "-" for r in cells)]
    return FitTable([columns[i] for i in keep], [[r[i] for i in keep] for r in cells])


QUOTE_COLUMNS = (
    Col("instrument"),
    Col("bid size", 3, justify="right"),
    Col("bid", justify="right"),
    Col("ask", justify="right"),
    Col("ask size", 3, justify="right"),
    Col("last", 1, justify="right"),
    Col("last size", 5, justify="right"),
    Col("volume", 4, justify="right"),
    Col("time", 2),
)


def quotes_table(ticks: Iterable[Mapping[str, Any]], title: str | None = None,
                 min_ticks: Mapping[str, Any] | None = None) -> FitTable:
    """Return a table of quotes (tick dicts): bid/ask with sizes, last, volume, time.

    Bid, ask and last show the instrument's decimals (its minimum tick's:
    ES 5920.00 next to 5920.25, EUR.USD 1.05400 next to 1.05395): the tick's
    own ``min_tick`` (a ``snapshot``'s), else ``min_ticks[instrument]`` (the
    caller resolved the keys); without either, as the float reads.

    Narrow, it keeps instrument, bid and ask whole, and leaves out the last
    size, the volume, the bid and ask sizes, the time, then the last.
    """
    rows = []
    for tick in ticks:
        instrument = str(tick.get("instrument", "?"))
        places = _decimals(tick.get("min_tick") or (min_ticks or {}).get(instrument))
        rows.append([
            instrument,
            num(tick.get("bid_size")),
            price(tick.get("bid"), places),
            price(tick.get("ask"), places),
            num(tick.get("ask_size")),
            price(tick.get("last"), places),
            num(tick.get("last_size")),
            num(tick.get("volume")),
            clock(tick["time"], millis=True) if isinstance(tick.get("time"), datetime) else "-",
        ])
    return FitTable(QUOTE_COLUMNS, rows, title=title)


def _decimals(min_tick: Any) -> int | None:
    """Return the decimals of a minimum tick (a Decimal, a number or its text); None when there is none."""
    if min_tick is None or isinstance(min_tick, bool):
        return None
    try:
        tick = Decimal(str(min_tick))
    except (InvalidOperation, ValueError):
        return None
    return price_decimals(None, tick) if tick.is_finite() and tick > 0 else None

