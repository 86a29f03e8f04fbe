"""Instruments: ``resolve`` says which contract each symbol names, ``snapshot`` shows their quotes."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from trader.cli import instrument_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import hint_options, hints
from trader.errors import NotFound, error_from_wire


def register(group: click.Group) -> None:
    """Add ``resolve`` and ``snapshot`` to the ``trader`` group."""
    for command in (resolve, snapshot):
        group.add_command(command)


@click.command()
@click.argument("symbols", metavar="SYMBOL...", nargs=-1, required=True)
@hint_options
@pass_cli
def resolve(cli: CliContext, symbols: tuple[str, ...], **options: Any) -> None:
    """Show the contract each SYMBOL names, and what it was read as.

    A SYMBOL is what a trader types: a stock (AAPL), a currency pair (EURUSD,
    EUR/USD, EUR.USD; six letters are a pair only if both halves are
    currencies and no stock has that symbol), a futures code (ESZ6, ESZ26,
    CLF7: root, month code F G H J K M N Q U V X Z, year; one digit is the
    next such year), a future and month (quote it: "ES Dec26"), an index
    (SPX), a contract key (CL.FUT.202701), or with --strike/--right/--expiry
    an option. A future without a month is the front month. Keys are
    SYMBOL.SECTYPE[.QUALIFIER...][.CURRENCY]; a future's qualifier is its
    contract month, not its last trade date.

    \b
    Examples:
      trader resolve EURUSD ESZ6 "ES Dec26" CLF7 SPX
      trader resolve AAPL --strike 230 --right C --expiry 20261218
      trader resolve CLF7 --json
    JSON:
      [{"input": string, "key": string, "local_symbol": string,
        "description": string, "tick": number, "contract": Contract}]  (one
        per contract found)
    Exits: 4 unknown symbol (several: only when none is known), 3 ambiguous
    """
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    for symbol in symbols:
        try:
            rows += cli.call_trader("resolve", symbol, **hints(options))
        except NotFound:
            if len(symbols) == 1:
                raise
            unknown.append(symbol)
    if rows:
        cli.show(rows, instrument_tables.contracts_table)
    if unknown:
        raise NotFound(f"unknown symbol{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
                       symbol=unknown[0])


@click.command()
@click.argument("symbols", metavar="SYMBOL...", nargs=-1, required=True)
@hint_options
@pass_cli
def snapshot(cli: CliContext, symbols: tuple[str, ...], **options: Any) -> None:
    """Show the current quote of each SYMBOL, one row per symbol, asked concurrently.

    With one SYMBOL, its quote, or its error (and that error's exit code).
    With several, every quote found; a symbol that fails is named on stderr
    (in JSON: its row carries the error), and the exit code is non-zero only
    when every symbol failed (then the first one's).

    \b
    Examples:
      trader snapshot AAPL
      trader snapshot AAPL MSFT ES EUR.USD
    JSON:
      Tick + {"min_tick": number}  (one SYMBOL; min_tick: its price increment)
      [{"symbol": string, "quote": Tick} | {"symbol": string, "error":
        Error}]  (several, in the order given; Error: {"type", "code",
        "message", "details"}, details only when it has any)
    Exits: 4 unknown symbol, 6 no quote in time (several: only when every
      symbol failed, the first one's)
    """
    if len(symbols) == 1:
        tick = cli.call_trader("snapshot", symbols[0], **hints(options))
        cli.show(tick, lambda one: instrument_tables.quotes_table([one]))
        return
    rows = cli.call_trader("snapshots", list(symbols), **hints(options))
    quotes = [row["quote"] for row in rows if "quote" in row]
    failed = [row for row in rows if "error" in row]
    if cli.json:
        cli.emit_json(rows)
    if not quotes:  # every one failed: one error, naming each
        why = "; ".join(f"{row['symbol']}: {row['error']['message']}" for row in failed)
        raise error_from_wire({**failed[0]["error"], "message": f"no quote for any symbol ({why})"})
    if not cli.json:
        cli.console.print(instrument_tables.quotes_table(quotes))
        for row in failed:
            cli.err.print(Text(f"{row['symbol']}: {row['error']['message']}", style="red"), highlight=False)

