"""Instruments: ``resolve`` says which contract each symbol names, ``snapshot`` shows their quotes."""

from __future__ import annotations

from typing import Any

import click

from trader.cli import instrument_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import hint_options, hints
from trader.errors import NotFound, ValidationError, error_from_wire


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
    contract month, not its last trade date. A symbol held by a universe
    (`trader universes`) is answered from it, without asking the broker;
    the universes column names those holding it.

    \b
    Examples:
      trader resolve EURUSD ESZ6 "ES Dec26" CLF7 SPX
      trader resolve AAPL --strike 230 --right C --expiry 20261218
      trader resolve CLF7 --json
    JSON:
      [{"input": string, "key": string, "local_symbol": string,
        "description": string, "tick": number, "min_size": number,
        "last_trade": string|null, "contract": Contract,
        "universes": [string]} |
       {"input": string, "error": Error}]  (one per contract found, one per
        symbol that failed, in the order given)
    Exits: 4 unknown symbol, 3 ambiguous (several: the first failure's, once
      every contract found is shown; each failure is named on stderr)
    """
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for symbol in symbols:
        try:
            rows += cli.call_trader("resolve", symbol, **hints(options))
        except (NotFound, ValidationError) as exc:  # this symbol's failure; the service's own ends the command
            if len(symbols) == 1:
                raise
            failed.append({"input": symbol, "error": exc.to_wire()})
            rows.append(failed[-1])
    found = [row for row in rows if "error" not in row]
    if cli.json:
        cli.emit_json(rows)
    elif found:
        cli.console.print(instrument_tables.contracts_table(found), highlight=False)
    fail_if_any(failed, "input", len(symbols), "not resolved")


def fail_if_any(failed: list[dict[str, Any]], name: str, count: int, what: str) -> None:
    """Raise the first failure's error, its message naming every failed symbol (stderr), if any failed."""
    if not failed:
        return
    why = "; ".join(f"{row[name]}: {row['error']['message']}" for row in failed)
    raise error_from_wire({**failed[0]["error"], "message": f"{len(failed)} of {count} symbols {what} ({why})"})


@click.command()
@click.argument("symbols", metavar="SYMBOL...", nargs=-1, required=True)
@hint_options
@pass_cli
def snapshot(cli: CliContext, symbols: tuple[str, ...], **options: Any) -> None:
    """Show the current quote of each SYMBOL, one row per symbol, asked concurrently.

    With one SYMBOL, its quote, or its error (and that error's exit code).
    With several, every quote found; each symbol that fails is named on
    stderr (in JSON: its row carries the error), and if any failed the exit
    code is the first failure's, as `resolve` does, so a script notices.

    \b
    Examples:
      trader snapshot AAPL
      trader snapshot AAPL MSFT ES EUR.USD
    JSON:
      Tick + {"min_tick": number}  (one SYMBOL; min_tick: its price increment)
      [{"symbol": string, "quote": Tick} | {"symbol": string, "error":
        Error}]  (several, in the order given; Error: {"type", "code",
        "message", "details"}, details only when it has any)
    Exits: 4 unknown symbol, 6 no quote in time (several: the first
      failure's, once every quote found is shown)
    """
    if len(symbols) == 1:
        tick = cli.call_trader("snapshot", symbols[0], **hints(options))
        cli.show(tick, lambda one: instrument_tables.quotes_table([one]))
        return
    rows = cli.call_trader("snapshots", list(symbols), **hints(options))
    quotes = [row["quote"] for row in rows if "quote" in row]
    if cli.json:
        cli.emit_json(rows)
    elif quotes:
        cli.console.print(instrument_tables.quotes_table(quotes), highlight=False)
    fail_if_any([row for row in rows if "error" in row], "symbol", len(symbols), "without a quote")
