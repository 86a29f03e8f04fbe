"""Market data streaming commands: ``subscribe start|list|stop|listen``.

trader_service streams a subscribed instrument's quotes on the bus as
``tick.ib.<key>``; ``listen`` reads them straight from the bus (not through
trader_service), as a live table for people or one JSON line per tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from trader.cli import formats, instrument_tables
from trader.cli.context import CliContext, ensure_listening, pass_cli
from trader.cli.options import hint_options, hints
from trader.errors import NotFound, TraderError
from trader.messaging.curve import ClientKeys
from trader.messaging.pubsub import Message, Subscriber, topic_matches

TOPIC = "tick.ib"


def register(group: click.Group) -> None:
    """Add the ``subscribe`` commands to the ``trader`` group."""
    group.add_command(subscribe)


@click.group()
def subscribe() -> None:
    """Stream instruments' quotes on the bus, and watch them.

    \b
    Examples:
      trader subscribe start AAPL
      trader subscribe listen
    """


@subscribe.command("start")
@click.argument("symbol")
@hint_options
@pass_cli
def start(cli: CliContext, symbol: str, **options: Any) -> None:
    """Stream SYMBOL's quotes on the bus (topic tick.ib.<key>).

    The subscription is saved in Redis: trader_service streams it again after
    a restart (and after a reconnect to IB) until `trader subscribe stop KEY`.

    \b
    Examples:
      trader subscribe start ES
      trader subscribe start EUR.USD
    JSON:
      {"key": string, "topic": string, "contract": Contract, "tick": number}
    Exits: 4 unknown symbol
    """
    result = cli.call_trader("subscribe", symbol, **hints(options))
    cli.show(result, lambda r: f"streaming {r['key']} on {r['topic']}; watch it with "
                               f"`trader subscribe listen {r['key']}`")


@subscribe.command("list")
@pass_cli
def list_(cli: CliContext) -> None:
    """Show the keys streamed on the bus.

    \b
    Examples:
      trader subscribe list
    JSON:
      [string]  (the keys streamed)
    Exits: 7 trader_service not running
    """
    keys = cli.call_trader("subscriptions")
    cli.show(keys, _streams_table, "nothing is streamed; start with `trader subscribe start SYMBOL`")


def _streams_table(keys: list[str]) -> Table:
    """Return the streamed keys with their topics."""
    table = Table("key", "topic")
    for key in keys:
        table.add_row(key, f"{TOPIC}.{key}")
    return table


@subscribe.command("stop")
@click.argument("key")
@pass_cli
def stop(cli: CliContext, key: str) -> None:
    """Stop the stream a user started of KEY (AAPL.STK, or what `resolve` reads: aapl, EURUSD).

    The stream goes on while a strategy or a working order still needs it;
    the output says for whom. Either way a restart no longer streams it.

    \b
    Examples:
      trader subscribe stop AAPL.STK
      trader subscribe stop EURUSD --json
    JSON:
      {"key": string, "streaming": boolean, "streamed_for": [string],
        "forgotten": boolean}  (streaming: still streamed for the others named)
    Exits: 4 the key is not streamed
    """
    reply = cli.call_trader("unsubscribe", key)

    def said(r: dict[str, Any]) -> str:
        if r["streaming"]:
            return f"{r['key']}: your stream stopped; still streamed for {', '.join(r['streamed_for'])}"
        return f"stopped streaming {r['key']}"

    cli.show(reply, said)


@subscribe.command("listen")
@click.argument("keys", nargs=-1)
@click.option("--count", "-n", type=click.IntRange(min=1), default=None, help="Stop after N ticks.")
@click.option(
    "--duration",
    "-d",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after S seconds.",
)
@pass_cli
def listen(
    cli: CliContext, keys: tuple[str, ...], count: int | None, duration: float | None
) -> None:
    """Show the ticks of KEYS (default: all streamed) until --count, --duration or Ctrl-C.

    A KEY is a streamed key (AAPL.STK, or AAPL) or anything `resolve` reads
    (EURUSD, ESZ6): it is "not subscribed" only when what it names is not
    streamed. With --json, print one JSON object per tick and line.

    \b
    Examples:
      trader subscribe listen
      trader subscribe listen AAPL.STK -n 10
      trader subscribe listen EURUSD ESZ6
      trader subscribe listen --json -d 5
    JSON:
      Tick  (one object per line, as the ticks come)
    Exits: 7 the bus is not running, 4 a key that is not streamed
    """
    endpoint = cli.settings().bus.sub_endpoint
    ensure_listening(endpoint, "the bus")
    keys = _check_streamed(cli, keys)
    started = time.monotonic()
    latest: dict[str, dict[str, Any]] = {}
    if cli.json:
        _run(endpoint, keys, count, duration, cli.emit_json_line, cli.curve_client())
        return
    title = f"ticks of {', '.join(keys) or 'every streamed key'}"
    min_ticks = _min_ticks(cli, keys)
    with Live(
        instrument_tables.quotes_table([], title=title),
        console=cli.console,
        auto_refresh=True,
        refresh_per_second=8,
        transient=False,
    ) as live:

        def on_tick(tick: dict[str, Any]) -> None:
            latest[str(tick.get("instrument", "?"))] = tick
            live.update(instrument_tables.quotes_table([latest[k] for k in sorted(latest)], title=title,
                                                       min_ticks=min_ticks))

        seen = _run(endpoint, keys, count, duration, on_tick, cli.curve_client())
    if not cli.console.is_terminal:  # rich ends a live display with a newline only on a terminal
        cli.console.line()
    cli.err.print(f"{formats.count(seen, 'tick')} in {time.monotonic() - started:.1f}s", highlight=False)


def _min_ticks(cli: CliContext, keys: tuple[str, ...]) -> dict[str, Any]:
    """Return the minimum tick of each of KEYS (default: those streamed), resolved once, for the prices' decimals.

    A key that does not resolve, or trader_service not answering, leaves its
    prices as the floats read.
    """
    found: dict[str, Any] = {}
    try:
        streamed = keys or cli.call_trader("subscriptions", timeout=2.0)
    except TraderError:
        return found
    for key in streamed:
        try:
            rows = cli.call_trader("resolve", key, timeout=2.0)
        except TraderError:
            continue
        if len(rows) == 1:
            found[rows[0]["key"]] = rows[0]["tick"]
    return found


def _run(
    endpoint: str,
    keys: tuple[str, ...],
    count: int | None,
    duration: float | None,
    on_tick: Callable[[dict[str, Any]], None],
    curve: ClientKeys | None = None,
) -> int:
    """Hand each tick from the bus to ``on_tick``; return how many came (Ctrl-C ends quietly)."""
    seen = [0]
    try:
        asyncio.run(
            _listen(
                endpoint, [f"{TOPIC}.{k}" for k in keys] or [TOPIC], count, duration, on_tick, seen,
                curve,
            )
        )
    except KeyboardInterrupt:
        pass
    return seen[0]


async def _listen(
    endpoint: str,
    topics: list[str],
    count: int | None,
    duration: float | None,
    on_tick: Callable[[dict[str, Any]], None],
    seen: list[int],
    curve: ClientKeys | None = None,
) -> None:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    subscriber = Subscriber(endpoint, curve=curve)
    subscriber.start()
    streams = [subscriber.observe(topic).subscribe(queue.put_nowait) for topic in topics]
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    try:
        while count is None or seen[0] < count:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                message = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            seen[0] += 1
            on_tick(message.payload)
    finally:
        for stream in streams:
            stream.dispose()
        subscriber.close()


def _check_streamed(cli: CliContext, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Return the streamed key each of KEYS names; refuse one that is not streamed (NotFound).

    KEYS are read as every command reads a symbol: a streamed key (or a
    prefix of its dots: AAPL for AAPL.STK) is taken as it is; any other text
    is resolved by trader_service (EURUSD -> EUR.CASH.USD, ESZ6 ->
    ES.FUT.202612) and is "not subscribed" only when what it names is not
    streamed. Asked before listening, so a key nobody subscribed is said to
    be one at once rather than found out as "0 ticks" later. Without keys
    and nothing streamed, only warn: a subscription may start while we
    listen. When trader_service cannot be asked, listen to KEYS as typed.
    """
    try:
        streamed = cli.call_trader("subscriptions", timeout=2.0)
    except TraderError:
        return keys
    chosen: list[str] = []
    missing: list[tuple[str, list[str]]] = []  # (typed, the keys it resolved to)
    for typed in keys:
        if any(topic_matches(f"{TOPIC}.{typed}", f"{TOPIC}.{s}") for s in streamed):
            chosen.append(typed)
            continue
        named = _resolved_keys(cli, typed)
        live = [key for key in named if key in streamed]
        if live:
            chosen += live
        else:
            missing.append((typed, named))
    if missing:
        names = ", ".join(typed if not named or named == [typed] else f"{typed} ({', '.join(named)})"
                          for typed, named in missing)
        raise NotFound(
            f"not subscribed: {names} (streamed: {', '.join(streamed) or 'nothing'}); "
            f"start with `trader subscribe start {missing[0][0]}`",
            keys=[typed for typed, _named in missing],
        )
    if not keys and not streamed:
        cli.err.print(
            "nothing is streamed yet; start with `trader subscribe start SYMBOL`", style="yellow"
        )
    return tuple(dict.fromkeys(chosen))


def _resolved_keys(cli: CliContext, typed: str) -> list[str]:
    """Return the keys of the contracts ``typed`` names, as `resolve` reads it; none if it names none."""
    try:
        rows = cli.call_trader("resolve", typed, timeout=5.0)
    except TraderError:  # unknown, ambiguous beyond what resolve lists, or no answer: nothing to map it to
        return []
    return [str(row["key"]) for row in rows]
