"""Strategy commands: ``strategy list|enable|disable|reload|logs`` against strategy_service (and ``drift``).

Each command is an RPC call to strategy_service (``CliContext.call_service``)
and a table or a line, or with ``--json`` the same data as JSON. An unknown
strategy name ends the command with NotFound's exit code; a reload in which
a plugin did not load ends with ValidationError's, after showing what loaded.
``logs --follow`` then reads the strategy's ``strategy.<name>.log`` topic
straight from the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click

from trader.cli import formats, money_tables, service_tables
from trader.cli.context import CliContext, ensure_listening, pass_cli
from trader.cli.options import YES_OPTION
from trader.cli.strategy_drift import drift
from trader.errors import ValidationError
from trader.messaging.pubsub import Message, Subscriber

SERVICE = "strategy_service"
# Disable and reload stop strategies, each on_stop under its time budget.
STOP_TIMEOUT = 30.0
# Flattening places orders through trader_service, retried while it is away
# (strategies.order_retry_seconds, 30 s by default): wait for that and the broker.
FLATTEN_TIMEOUT = 60.0


def register(group: click.Group) -> None:
    """Add the ``strategy`` commands to the ``trader`` group."""
    strategy.add_command(drift)
    group.add_command(strategy)


@click.group()
def strategy() -> None:
    """Show, start, stop and reload the strategy plugins, and read their logs.

    \b
    Examples:
      trader strategy list
      trader strategy logs ma_crossover -f
    """


def _show_errors(cli: CliContext, errors: list[dict[str, Any]]) -> None:
    for error in errors:
        cli.console.print(service_tables.plugin_error(error), soft_wrap=True)


def _show(cli: CliContext, info: dict[str, Any]) -> None:
    if cli.json:
        cli.emit_json(info)
    else:
        cli.console.print(service_tables.strategy_summary(info), soft_wrap=True)


FIGURES_NOTE = ("net pnl = realized + unrealized; commissions are inside both (avg cost includes the "
                "opening ones), comm shows them; prices and avg costs per unit, without the multiplier")


@strategy.command("list", epilog="""\b
The table shows each strategy, then each holding's money figures as
`trader portfolio` shows them (docs/ARCHITECTURE.md, "Money figures"):
avg cost per unit (without the multiplier, with the opening commissions),
price, value, unrealized, realized (net of commissions), net pnl =
realized + unrealized, comm (the commissions, already inside those).""")
@pass_cli
def list_(cli: CliContext) -> None:
    """Show every strategy (state, instruments, positions, PnL, orders), then the plugin errors.

    A strategy whose instruments sent no tick for `no_ticks_seconds` is
    DEGRADED (or stays WAITING_HISTORY) with why in its reason, e.g. "no ticks
    for ES.FUT.202612 for over 30 s: trader_service restarting"; --json gives
    that line as "starved" too (null while ticks flow).

    \b
    Examples:
      trader strategy list
      trader strategy list --json
    JSON:
      {"strategies": [Strategy], "errors": [{"file": string, "line": integer |
        null, "reason": string}]}
    Exits: 7 strategy_service not running
    """
    result = cli.call_service(SERVICE, "list")
    if cli.json:
        cli.emit_json(result)
        return
    if result["strategies"]:
        cli.console.print(service_tables.strategies_table(result["strategies"]))
        holdings = money_tables.strategy_holdings_table(result["strategies"])
        if holdings is not None:
            cli.console.print(holdings)
            cli.console.print(FIGURES_NOTE, style="dim", highlight=False)
    else:
        cli.console.print("no strategies loaded", style="dim")
    _show_errors(cli, result["errors"])


@strategy.command()
@click.argument("name")
@pass_cli
def enable(cli: CliContext, name: str) -> None:
    """Start strategy NAME (a disabled one, or one in ERROR): subscribe, warm up, trade.

    \b
    Examples:
      trader strategy enable rsi_reversion
    JSON:
      Strategy
    Exits: 4 unknown strategy
    """
    _show(cli, cli.call_service(SERVICE, "enable", name))  # answers WAITING_HISTORY at once


@strategy.command()
@click.argument("name")
@click.option(
    "--flatten", is_flag=True, help="Also cancel its working orders and close its positions."
)
@YES_OPTION
@pass_cli
def disable(cli: CliContext, name: str, flatten: bool, yes: bool) -> None:
    """Stop strategy NAME; its orders and positions stay unless --flatten.

    \b
    Examples:
      trader strategy disable ma_crossover
      trader strategy disable ma_crossover --flatten --yes
    JSON:
      Strategy
    Exits: 4 unknown strategy, 1 declined on a live account
    """
    if flatten:
        cli.confirm_if_live(f"disable {name}, cancel its orders and close its positions at market?", yes=yes)
    timeout = FLATTEN_TIMEOUT if flatten else STOP_TIMEOUT
    info = cli.call_service(SERVICE, "disable", name, flatten=flatten, timeout=timeout)
    _show(cli, info)
    if flatten and info["positions"] and not cli.json:
        cli.console.print(
            f"closing orders sent for {service_tables.holdings(info['positions'])}; "
            "`trader strategy list` shows the position once they fill",
            style="dim",
            highlight=False,
        )


@strategy.command()
@pass_cli
def reload(cli: CliContext) -> None:
    """Stop every strategy and load the plugins again.

    Those running before start again; a new one starts if its config enables it.
    Each strategy keeps its log lines, its order count and its positions'
    marks (their unrealized PnL) across the reload.

    Exits with the validation error's code if a plugin did not load, after
    showing the strategies that did.

    \b
    Examples:
      trader strategy reload
    JSON:
      {"loaded": [string], "errors": [{"file": string, "line": integer | null,
        "reason": string}]}
    Exits: 3 a plugin did not load
    """
    result = cli.call_service(SERVICE, "reload", timeout=STOP_TIMEOUT)
    loaded, errors = result["loaded"], result["errors"]
    if cli.json:
        cli.emit_json(result)
    else:
        cli.console.print(
            f"loaded {formats.count(len(loaded), 'strategy', 'strategies')}: {', '.join(loaded) or '-'}",
            highlight=False,
        )
        _show_errors(cli, errors)
    if errors:
        first = service_tables.plugin_error(errors[0]).plain
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationError(f"{formats.count(len(errors), 'plugin')} did not load: {first}{more}")


@strategy.command()
@click.argument("name")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show the last N lines.",
)
@click.option("--follow", "-f", is_flag=True, help="Then show new lines as they come, to Ctrl-C.")
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="With --follow: stop after N lines."
)
@pass_cli
def logs(cli: CliContext, name: str, limit: int, follow: bool, count: int | None) -> None:
    """Show strategy NAME's last log lines: time, level, message.

    The lines outlive a `strategy reload`, and a restart of strategy_service
    (read back from its log file, times to the millisecond).

    With --json, a JSON list; with --json --follow, one JSON object per line.

    \b
    Examples:
      trader strategy logs ma_crossover -n 20
      trader strategy logs ma_crossover --follow
    JSON:
      [{"time": time, "level": string, "message": string}]  (with --follow: one
        object per line)
    Exits: 4 unknown strategy
    """
    if count is not None and not follow:
        raise click.UsageError("--count goes with --follow")
    if not follow:
        lines = cli.call_service(SERVICE, "logs", name, limit=limit)
        if cli.json:
            cli.emit_json(lines)
            return
        if not lines:
            cli.err.print(f"no log lines from {name}", style="dim", highlight=False)
        for line in lines:
            cli.console.print(service_tables.log_line(line), soft_wrap=True)
        return

    def show(line: dict[str, Any]) -> None:
        if cli.json:
            cli.emit_json_line(line)
        else:
            cli.console.print(service_tables.log_line(line), soft_wrap=True)

    try:
        asyncio.run(_follow(cli, name, limit, count, show))
    except KeyboardInterrupt:
        pass


async def _follow(
    cli: CliContext,
    name: str,
    limit: int,
    count: int | None,
    show: Callable[[dict[str, Any]], None],
) -> None:
    """Show the last ``limit`` lines, then ``count`` new ones from the bus (None: until Ctrl-C)."""
    endpoint = cli.settings().bus.sub_endpoint
    ensure_listening(endpoint, "the bus")
    queue: asyncio.Queue[Message] = asyncio.Queue()
    subscriber = Subscriber(endpoint, curve=cli.curve_client())
    subscriber.start()
    # Listen before asking for the history, so no line falls between the two;
    # a line in both is shown once.
    stream = subscriber.observe(f"strategy.{name}.log").subscribe(queue.put_nowait)
    try:
        history = await cli.call_service_async(SERVICE, "logs", name, limit=limit)
        for line in history:
            show(line)
        shown = {_identity(line) for line in history}
        seen = 0
        while count is None or seen < count:
            line = (await queue.get()).payload
            if not isinstance(line, dict):
                cli.err.print(f"not a log line on the bus: {line!r}", style="yellow", markup=False)
            elif _identity(line) not in shown:
                show(line)
                seen += 1
    finally:
        stream.dispose()
        subscriber.close()


def _identity(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line.get("time"), line.get("level"), line.get("message"))
