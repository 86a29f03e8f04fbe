"""Universes: ``universes bootstrap | create | destroy | list | get | add | remove``, named sets of instruments.

A universe is kept in the market store (:mod:`trader.data.universes`); these
commands read and write the store directly. ``bootstrap`` connects to the IB
endpoint itself (client id ``history.client_id + 1``); ``create`` and ``add``
resolve their symbols through trader_service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trader.brokers.records import ContractDetails
from trader.cli.context import CliContext, pass_cli
from trader.cli.formats import count
from trader.cli.instruments import fail_if_any
from trader.cli.layout import Col, FitTable
from trader.data.universe_bootstrap import Bootstrap, BootstrapProgress
from trader.data.universes import Member, Universe, Universes, check_name
from trader.errors import Conflict, NotFound, TraderError, Unavailable, ValidationError

IB_PACE = 1.0  # seconds between IB's reqMatchingSymbols: IB answers about one a second


def register(group: click.Group) -> None:
    """Add the ``universes`` group to the ``trader`` group."""
    group.add_command(universes)


@click.group()
def universes() -> None:
    """Named sets of instruments (with their contract ids), kept in the store.

    A universe names what to download (`trader history get --universe U`),
    and `trader resolve` answers a symbol a universe holds without asking
    the broker.

    \b
    Examples:
      trader universes bootstrap --exchange NASDAQ
      trader universes create tech AAPL MSFT
      trader universes list
      trader universes get tech
    """


def _store(cli: CliContext) -> Universes:
    from trader.data.factory import open_store  # ArcticDB: imported on use, not at start-up

    return Universes(open_store(cli.settings()))


def _name_arg(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_name(value)
    except TraderError as exc:
        raise click.BadParameter(exc.message) from None


def members_table(members: Sequence[Member]) -> FitTable:
    """Return a universe's members: key, type, exchange, currency, local symbol, conid, name."""
    rows = [[m.key, m.sec_type, m.primary_exchange or m.exchange, m.currency, m.local_symbol or "-", str(m.conid),
             m.long_name or "-"] for m in members]
    columns = [Col("key"), Col("type", 4), Col("exchange", 2), Col("ccy", 5), Col("local symbol", 6),
               Col("conid", 3), Col("name", 1, min_width=10)]
    return FitTable(columns, rows)


def _summary(u: Universe) -> dict[str, Any]:
    return {"name": u.name, "members": len(u.members), "created": u.created, "updated": u.updated,
            "source": u.source}


def _full(u: Universe) -> dict[str, Any]:
    return {**_summary(u), "members": [m for m in u.to_record()["members"]]}


@universes.command("list")
@pass_cli
def list_(cli: CliContext) -> None:
    """List the universes: name, member count, when last changed, how made.

    \b
    Examples:
      trader universes list
      trader universes list --json
    JSON:
      [{"name": string, "members": int, "created": string,
        "updated": string, "source": string}]  (sorted by name)
    Exits: 14 the store cannot be read
    """
    found = [_summary(u) for u in _store(cli).all()]
    cli.show(found, lambda rows: FitTable(
        [Col("name"), Col("members", justify="right"), Col("updated", 1), Col("source", 2, min_width=8)],
        [[r["name"], str(r["members"]), r["updated"].replace("T", " ")[:19], r["source"] or "-"] for r in rows]),
        "no universes (make one: trader universes bootstrap --exchange NASDAQ)")


@universes.command()
@click.argument("name", callback=_name_arg)
@pass_cli
def get(cli: CliContext, name: str) -> None:
    """Show the members of universe NAME, sorted by contract key.

    \b
    Examples:
      trader universes get nasdaq
      trader universes get nasdaq --json
    JSON:
      {"name": string, "created": string, "updated": string,
       "source": string, "members": [{"key", "conid", "symbol",
       "sec_type", "exchange", "primary_exchange", "currency",
       "local_symbol", "trading_class", "multiplier", "expiry",
       "contract_month", "strike", "right", "tick_size", "min_size",
       "long_name", "last_trade"}]}
    Exits: 2 a bad name, 4 no such universe
    """
    universe = _store(cli).get(name)
    universe = replace(universe, members=tuple(sorted(universe.members, key=lambda m: m.key)))  # as listed
    if cli.json:
        cli.emit_json(_full(universe))
        return
    cli.console.print(f"{universe.name}: {count(len(universe.members), 'member')}, updated "
                      f"{universe.updated.replace('T', ' ')[:19]}", highlight=False)
    if universe.members:
        cli.console.print(members_table(universe.members), highlight=False)


def _resolve(cli: CliContext, symbols: Sequence[str]) -> tuple[list[Member], list[dict[str, Any]]]:
    """Return the members the symbols name, resolved by trader_service, and each symbol that failed.

    A failure is ``{"input": symbol, "error": Error}`` as `trader resolve` gives
    it (an unknown or ambiguous symbol, or one that names no contract).
    """
    members: list[Member] = []
    failed: list[dict[str, Any]] = []
    for symbol in symbols:
        try:
            rows = cli.call_trader("resolve", symbol)
        except Unavailable as exc:
            raise Unavailable(f"resolving {symbol!r} needs a running trader_service (`trader up`): {exc.message}",
                              symbol=symbol) from None
        except (NotFound, ValidationError) as exc:  # this symbol's failure; the service's own ends the command
            failed.append({"input": symbol, "error": exc.to_wire()})
            continue
        if not rows:
            failed.append({"input": symbol, "error": NotFound(f"no contract named {symbol}").to_wire()})
        for row in rows:
            members.append(Member.of(ContractDetails(row["contract"], row["tick"], row.get("min_size") or Decimal(1),
                                                     row["description"] or "", row.get("last_trade"))))
    return members, failed


@universes.command()
@click.argument("name", callback=_name_arg)
@click.argument("symbols", metavar="[SYMBOL...]", nargs=-1)
@pass_cli
def create(cli: CliContext, name: str, symbols: tuple[str, ...]) -> None:
    """Create universe NAME, with the instruments the SYMBOLs name.

    Each SYMBOL is resolved as `trader resolve` does (by trader_service,
    so the stack must be up when SYMBOLs are given); a future without a
    month joins as its front month.

    \b
    Examples:
      trader universes create tech AAPL MSFT NVDA
      trader universes create empty
    JSON:
      {"name": string, "members": int, "created": string,
       "updated": string, "source": "create", "not_resolved": [string]}
    Exits: 2 a bad name, 4 an unknown symbol (created with the others;
      each failure named on stderr), 3 an ambiguous symbol, 7
      trader_service not running, 9 a universe NAME exists
    """
    store = _store(cli)
    _refuse_existing(store, name, "destroy it first, or add to it")
    members, failed = _resolve(cli, symbols)
    universe = store.create(name, members)
    cli.show({**_summary(universe), "not_resolved": [f["input"] for f in failed]},
             lambda s: f"created {s['name']}: {count(s['members'], 'member')}")
    fail_if_any(failed, "input", len(symbols), "not resolved")


@universes.command()
@click.argument("name", callback=_name_arg)
@click.option("--force", "-f", is_flag=True, help="Destroy without asking.")
@pass_cli
def destroy(cli: CliContext, name: str, force: bool) -> None:
    """Delete universe NAME (its instruments' stored bars stay).

    \b
    Examples:
      trader universes destroy tech
      trader universes destroy tech --force --json
    JSON:
      {"name": string, "destroyed": true}
    Exits: 2 a bad name, 4 no such universe, 1 not confirmed
    """
    store = _store(cli)
    universe = store.get(name)
    if not force:
        click.confirm(f"destroy universe {name} ({count(len(universe.members), 'member')})?", abort=True, err=True)
    store.destroy(name)
    cli.show({"name": name, "destroyed": True}, lambda _: f"destroyed {name}")


@universes.command()
@click.argument("name", callback=_name_arg)
@click.argument("symbols", metavar="SYMBOL...", nargs=-1, required=True)
@pass_cli
def add(cli: CliContext, name: str, symbols: tuple[str, ...]) -> None:
    """Add the instruments the SYMBOLs name to universe NAME (needs the stack: see create).

    \b
    Examples:
      trader universes add tech AMZN TSLA
    JSON:
      {"name": string, "members": int, "added": [string],
       "not_resolved": [string]}  (keys added, one already in it not added
        again; the SYMBOLs that named no contract)
    Exits: 2 a bad name, 4 no such universe or an unknown symbol (the
      others are added; each failure named on stderr), 3 an ambiguous
      symbol, 7 trader_service not running
    """
    store = _store(cli)
    store.get(name)  # NotFound before resolving
    members, failed = _resolve(cli, symbols)
    universe, added = store.add(name, members)
    cli.show({"name": name, "members": len(universe.members), "added": [m.key for m in added],
              "not_resolved": [f["input"] for f in failed]},
             lambda r: f"{name}: added {count(len(r['added']), 'instrument')} "
                       f"({', '.join(r['added']) or ('none' if failed else 'all were in it')}); "
                       f"{count(r['members'], 'member')}")
    fail_if_any(failed, "input", len(symbols), "not resolved")


@universes.command()
@click.argument("name", callback=_name_arg)
@click.argument("symbols", metavar="SYMBOL...", nargs=-1, required=True)
@pass_cli
def remove(cli: CliContext, name: str, symbols: tuple[str, ...]) -> None:
    """Remove the members each SYMBOL names (a key, symbol or local symbol) from universe NAME.

    \b
    Examples:
      trader universes remove tech TSLA
      trader universes remove futures ES.FUT.202612
    JSON:
      {"name": string, "members": int, "removed": [string]}
    Exits: 2 a bad name, 4 no such universe, or a SYMBOL not in it
      (then nothing is removed)
    """
    universe, gone = _store(cli).remove(name, symbols)
    cli.show({"name": name, "members": len(universe.members), "removed": [m.key for m in gone]},
             lambda r: f"{name}: removed {', '.join(r['removed'])}; {count(r['members'], 'member')}")


@universes.command()
@click.option("--exchange", "exchanges", multiple=True, required=True, metavar="EXCHANGE",
              help="A primary exchange to take instruments from (repeat for several): NASDAQ, NYSE, ARCA, "
                   "CME, CBOT, NYMEX, COMEX, IDEALPRO...")
@click.option("--name", callback=_name_arg, help="The universe's name (default: the first exchange, lowercased).")
@click.option("--sec-type", "sec_types", multiple=True, metavar="TYPE",
              help="Keep only this type (STK, FUT, CASH, IND; repeat for several).")
@click.option("--pace", type=click.FloatRange(min=0), default=None,
              help=f"Seconds between symbol searches (default: {IB_PACE:g}, IB's pace; 0 against tws-sim).")
@click.option("--replace", is_flag=True, help="Replace a universe of that name (default: refuse).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="Seconds to wait for the IB connection.")
@pass_cli
def bootstrap(cli: CliContext, exchanges: tuple[str, ...], name: str | None, sec_types: tuple[str, ...],
              pace: float | None, replace: bool, timeout: float) -> None:
    """Build a universe of every instrument the broker lists on the EXCHANGEs.

    Searches the broker's symbols by prefix (A..Z, 0..9, and deeper where
    an answer is full: IB answers at most 16 a search), keeps those listed
    on an EXCHANGE, and asks each one's contract details (a futures root
    gives its listed contracts, a currency its pairs). It connects to the
    IB endpoint itself, as client id history.client_id + 1. IB paces the
    symbol search to about one a second: a whole exchange takes many
    minutes there; tws-sim does not pace it (detected through its control
    port, then --pace defaults to 0).

    \b
    Examples:
      trader universes bootstrap --exchange NASDAQ
      trader universes bootstrap --exchange NYSE --exchange ARCA --name us
      trader universes bootstrap --exchange CME --sec-type FUT --json
    JSON:
      {"name": string, "members": int, "searches": int, "seconds":
       number, "pace": number, "exchanges": [string]}
    Exits: 2 a bad name, 7 no IB connection, 9 the universe exists
      (give --replace), 14 the store cannot be written
    """
    universe_name = name or exchanges[0].lower()
    check_name(universe_name)
    store = _store(cli)
    if not replace:
        _refuse_existing(store, universe_name, "give --replace to build it again")
    pace, why = (pace, "given") if pace is not None else _default_pace(cli)
    if not cli.json:
        cli.err.print(f"searching {', '.join(e.upper() for e in exchanges)}: {pace:g} s between searches ({why})",
                      highlight=False)
    members, progress, seconds = asyncio.run(_run(cli, exchanges, sec_types, pace, timeout))
    universe = store.create(universe_name, members, source="bootstrap " + " ".join(e.upper() for e in exchanges),
                            replace_existing=True)
    result = {"name": universe_name, "members": len(universe.members), "searches": progress.searched,
              "seconds": round(seconds, 1), "pace": pace, "exchanges": [e.upper() for e in exchanges]}
    cli.show(result, lambda r: f"{r['name']}: {count(r['members'], 'instrument')} from "
                               f"{count(r['searches'], 'search', 'searches')} in {r['seconds']:g} s")


def _refuse_existing(store: Universes, name: str, hint: str) -> None:
    """Raise Conflict if universe ``name`` exists (before any work is done for it)."""
    if store.exists(name):
        raise Conflict(f"a universe named {name} exists ({hint})", universe=name)


def _default_pace(cli: CliContext) -> tuple[float, str]:
    """Return 0 when the endpoint is tws-sim (its control port answers), else IB's pace."""
    try:
        cli.call_service("tws_sim", "requests", 1, timeout=2.0)
    except TraderError:
        return IB_PACE, "IB paces reqMatchingSymbols; --pace to change"
    return 0.0, "tws-sim does not pace its symbol search"


async def _run(cli: CliContext, exchanges: Sequence[str], sec_types: Sequence[str], pace: float,
               timeout: float) -> tuple[list[Member], BootstrapProgress, float]:
    from trader.brokers.factory import create_broker

    settings = cli.settings()
    ib = settings.ib.model_copy(update={"client_id": settings.history.client_id + 1})
    update: dict[str, Any] = {"ib": ib}
    if pace == 0:  # tws-sim: ib_async's own throttle (45 requests a second) would be the bootstrap's pace
        update["trading"] = settings.trading.model_copy(update={"ib_max_requests": 0})
    broker = create_broker(settings.model_copy(update=update))
    broker.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        if not await broker.wait_connected(timeout):
            raise Unavailable(f"no IB connection at {ib.host}:{ib.port} (client id {ib.client_id}) within "
                              f"{timeout:g}s; is TWS or tws-sim running? (`trader up`)", endpoint=f"{ib.host}:{ib.port}")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=cli.err, transient=True, disable=cli.json) as bar:
            task = bar.add_task("searching", total=None)

            def shown(p: BootstrapProgress) -> None:
                if p.phase == "search":
                    bar.update(task, description=f"search {p.prefix:<6} {p.matches:>5} kept",
                               completed=p.searched, total=p.searched + p.pending)
                else:
                    bar.update(task, description="contract details", completed=p.details_done,
                               total=p.details_total)

            run = Bootstrap(broker, exchanges, sec_types, pace=pace, on_progress=shown)
            members = await run.run()
        return members, run.progress, loop.time() - started
    finally:
        await broker.stop()
