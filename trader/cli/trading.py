"""Trading commands: orders (``trade``, ``book``), holdings, instruments, IB link, kill switch.

Each command is one or two RPC calls to trader_service (``CliContext.call_trader``)
and a rich table, or with ``--json`` the same data as JSON. A refusal by the
service (unknown symbol, invalid order, risk limit) arrives as its typed error
and ends the command with that error's exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from rich.text import Text

from trader.cli import render
from trader.cli.context import CliContext, pass_cli
from trader.errors import BrokerError, Unavailable
from trader.trading.requests import infer_order_type, new_client_order_id

PLACE_TIMEOUT = 20.0  # resolve + a quote (2 s) + the broker's acknowledgement (5 s), with room
RECONNECT_TIMEOUT = 25.0
ACCOUNT_TAGS = (
    "NetLiquidation TotalCashValue UnrealizedPnL RealizedPnL GrossPositionValue BuyingPower"
)
HINTS = ("sec_type", "exchange", "currency", "expiry")
PRICES = ("limit_price", "stop_price", "trail_amount", "trail_percent")
BRACKET = ("stop_loss", "stop_loss_percent", "take_profit", "take_profit_percent")


def register(group: click.Group) -> None:
    """Add the trading commands to the ``trader`` group."""
    commands = (trade, book, portfolio, positions, account, resolve, snapshot, reconnect)
    for command in (*commands, kill_switch):
        group.add_command(command)


class DecimalType(click.ParamType):
    """A command-line number read as an exact Decimal (``0.1`` stays ``0.1``)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return ``value`` as a finite Decimal, or fail as a usage error."""
        try:
            result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not result.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return result


DECIMAL = DecimalType()


def _options(specs: list[tuple[str, ...]], **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """Return a decorator adding one option per ``(flags..., help)`` spec, with ``kwargs`` each."""

    def decorate(fn: Callable[..., Any]) -> Any:
        for *flags, help_text in reversed(specs):
            fn = click.option(*flags, help=help_text, **kwargs)(fn)
        return fn

    return decorate


hint_options = _options(
    [
        ("--sec-type", "STK, FUT, OPT, CASH, IND or CMDTY."),
        ("--exchange", "Exchange (SMART, CME, IDEALPRO...)."),
        ("--currency", "Currency of the contract."),
        ("--expiry", "Expiry of a future or option: YYYYMM or YYYYMMDD."),
    ]
)
_size_and_prices = _options(
    [
        ("--quantity", "-q", "Units (shares, contracts) to trade."),
        ("--amount", "Cash to trade instead of a quantity."),
        ("--limit", "limit_price", "Limit price (LMT; with --stop: STP_LMT)."),
        ("--stop", "stop_price", "Stop price (STP; with a trail: its trigger)."),
        ("--trail-amount", "Trailing stop distance in price (TRAIL)."),
        ("--trail-percent", "Trailing stop distance in percent (TRAIL)."),
        ("--stop-loss", "Bracket: stop-loss price."),
        ("--stop-loss-percent", "Bracket: stop loss this many percent away."),
        ("--take-profit", "Bracket: take-profit price."),
        ("--take-profit-percent", "Bracket: take profit this many percent away."),
    ],
    type=DECIMAL,
)


def order_options(fn: Callable[..., Any]) -> Any:
    """Add the options of an order: size, prices, bracket, time in force, id, strategy, hints."""
    tif = click.Choice(["DAY", "GTC", "IOC", "FOK"], case_sensitive=False)
    for option in (
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation when live."),
        hint_options,
        click.option("--strategy", default="manual", show_default=True, help="Who places it."),
        click.option("--id", "client_order_id", help="Client order id (default: a new one)."),
        click.option("--outside-rth", is_flag=True, help="May fill outside regular hours."),
        click.option("--tif", type=tif, default="DAY", show_default=True, help="Time in force."),
        _size_and_prices,
    ):
        fn = option(fn)
    return fn


def hints(options: dict[str, Any]) -> dict[str, str]:
    """Return the symbol hints among ``options`` that were given."""
    return {k: options[k] for k in HINTS if options.get(k)}


def output(cli: CliContext, data: Any, table: Callable[[Any], Any], empty: str = "") -> None:
    """Print ``data`` as JSON with --json; else the table built from it, or ``empty`` if none."""
    if cli.json:
        cli.emit_json(render.to_jsonable(data))
    elif empty and not data:
        cli.console.print(empty, style="dim")
    else:
        cli.console.print(table(data))


def show_result(cli: CliContext, result: dict[str, Any], title: str) -> None:
    """Print an order with its bracket children and the broker's reason; exit 8 if it or a child was refused."""
    order = result["order"]
    reason = result.get("reason") or ""
    if cli.json:
        cli.emit_json(render.to_jsonable(result))
    else:
        cli.console.print(render.orders_table([order, *result["children"]], title=title))
        if reason:
            cli.console.print(Text(f"reason: {reason}", style="yellow"))
    failed = [o for o in (order, *result["children"]) if o.status in render.FAILED]  # a bracket leg too
    if failed:
        why = reason or "no reason given"
        raise BrokerError(f"order {failed[0].client_order_id} is {failed[0].status}: {why}")
    if order.status in render.ENDED_WITHOUT_FILL and not order.filled_quantity:
        cli.err.print(
            f"order {order.client_order_id} ended {order.status} unfilled", style="yellow"
        )


# -- trade buy|sell ------------------------------------------------------------------


def build_request(action: str, symbol: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the place_order arguments for the options, the order type inferred from the prices."""
    if (options["quantity"] is None) == (options["amount"] is None):
        raise click.UsageError("give exactly one of --quantity and --amount")
    for first, second in zip(("trail_amount", *BRACKET[::2]), ("trail_percent", *BRACKET[1::2])):
        if options[first] is not None and options[second] is not None:
            flags = (f"--{name.replace('_', '-')}" for name in (first, second))
            raise click.UsageError("give {} or {}, not both".format(*flags))
    limit = options["limit_price"]
    trail = options["trail_amount"] is not None or options["trail_percent"] is not None
    if trail and limit is not None:
        raise click.UsageError("a trailing stop takes no --limit")
    request = {
        "symbol": symbol,
        "action": action,
        "order_type": str(infer_order_type(options)),
        "tif": options["tif"].upper(),
        "outside_rth": options["outside_rth"],
        "strategy": options["strategy"],
        "client_order_id": options["client_order_id"] or new_client_order_id(),
        **hints(options),
    }
    for name in ("quantity", "amount", *PRICES, *BRACKET):
        if options[name] is not None:
            request[name] = options[name]
    return request


def _place(cli: CliContext, action: str, symbol: str, options: dict[str, Any]) -> None:
    request = build_request(action, symbol, options)
    cli.confirm_if_live(f"{render.describe(request)}. Send?", yes=options["yes"])
    try:
        result = cli.call_trader("place_order", timeout=PLACE_TIMEOUT, retries=1, **request)
    except Unavailable as exc:
        if not exc.details.get("sent"):
            raise
        coid = request["client_order_id"]
        raise Unavailable(
            f"{exc} The order may still be placed: look for id {coid} in "
            f"`trader book`, or send it again with --id {coid}"
        ) from None
    order = result["order"]  # with a reused --id: the order placed before, whatever was asked now
    show_result(cli, result, f"{order.action} {order.contract.key}")


@click.group()
def trade() -> None:
    """Place an order: a type is inferred from the prices given (MKT, LMT, STP, STP_LMT, TRAIL).

    A bracket (--stop-loss*, --take-profit*) adds a stop-loss and a take-profit
    order that close the position, one cancelling the other.

    \b
    Examples:
      trader trade buy AAPL -q 10
      trader trade sell ES -q 1 --limit 6000.25
    """


@trade.command("buy")
@click.argument("symbol")
@order_options
@pass_cli
def buy(cli: CliContext, symbol: str, **options: Any) -> None:
    """Buy SYMBOL (a symbol such as AAPL, ES, EUR.USD, or a contract key).

    \b
    Examples:
      trader trade buy AAPL -q 10  # market order
      trader trade buy AAPL --amount 5000 --limit 230
      trader trade buy ES -q 1 --stop-loss-percent 1 --take-profit-percent 2
    JSON:
      {"order": Order, "children": [Order], "reason": string}  (children: a
        bracket's legs)
    Exits: 3 invalid order, 4 unknown symbol, 5 refused by a risk limit or the
      kill switch, 7 no answer (the message says how to find the order), 8
      refused by the broker, 1 declined on a live account
    """
    _place(cli, "BUY", symbol, options)


@trade.command("sell")
@click.argument("symbol")
@order_options
@pass_cli
def sell(cli: CliContext, symbol: str, **options: Any) -> None:
    """Sell SYMBOL (a symbol such as AAPL, ES, EUR.USD, or a contract key).

    \b
    Examples:
      trader trade sell AAPL -q 10 --trail-percent 0.5 --tif GTC
      trader trade sell EUR.USD -q 20000 --limit 1.0851
    JSON:
      {"order": Order, "children": [Order], "reason": string}
    Exits: 3 invalid order, 4 unknown symbol, 5 refused by a risk limit or the
      kill switch, 7 no answer, 8 refused by the broker, 1 declined on a live
      account
    """
    _place(cli, "SELL", symbol, options)


# -- book ------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.pass_context
def book(ctx: click.Context) -> None:
    """Show and change the orders of the book (alone: every order).

    \b
    Examples:
      trader book
      trader book --json
    JSON:
      [Order]  (alone: as `book orders`)
    Exits: 7 trader_service not running
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(book_orders)


@book.command("orders")
@click.option("--open", "open_only", is_flag=True, help="Only working orders.")
@pass_cli
def book_orders(cli: CliContext, open_only: bool) -> None:
    """Show the orders, oldest first.

    \b
    Examples:
      trader book orders --open
    JSON:
      [Order]
    Exits: 7 trader_service not running
    """
    orders = cli.call_trader("orders", open_only=open_only)
    title = render.count(len(orders), "open order" if open_only else "order")
    output(cli, orders, lambda items: render.orders_table(items, title=title))


@book.command("trades")
@click.option("--order", "client_order_id", default=None, help="Only the fills of this order.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the last N fills.")
@pass_cli
def book_trades(cli: CliContext, client_order_id: str | None, limit: int | None) -> None:
    """Show the fills with their commissions, oldest first, and the totals.

    \b
    Examples:
      trader book trades --limit 20
      trader book trades --order 3f9a2c1dbe01
    JSON:
      [Fill]
    Exits: 7 trader_service not running
    """
    fills = cli.call_trader("trades", client_order_id=client_order_id, limit=limit)
    output(cli, fills, render.fills_table)


@book.command("cancel")
@click.argument("client_order_id", required=False)
@click.option("--all", "all_orders", is_flag=True, help="Cancel every open order the platform placed.")
@click.option("--everything", is_flag=True,
              help="With --all: every open order of the account, those placed in TWS or by other clients too.")
@pass_cli
def book_cancel(cli: CliContext, client_order_id: str | None, all_orders: bool, everything: bool) -> None:
    """Cancel the order CLIENT_ORDER_ID, or with --all every open order the platform placed.

    \b
    Examples:
      trader book cancel 3f9a2c1dbe01
      trader book cancel --all
    JSON:
      {"order": Order, "children": [Order], "reason": string}
      {"cancelled": integer}  (with --all)
    Exits: 4 unknown order id, 9 the order is not working, 8 refused by the
      broker
    """
    if (client_order_id is None) == (not all_orders):
        raise click.UsageError("give an order id or --all")
    if everything and not all_orders:
        raise click.UsageError("--everything goes with --all")
    if all_orders:
        count = cli.call_trader("cancel_all", everything=everything)
        if cli.json:
            cli.emit_json({"cancelled": count})
        else:
            cli.console.print(f"cancel sent for {render.count(count, 'open order')}", highlight=False)
        return
    result = cli.call_trader("cancel_order", client_order_id=client_order_id)
    show_result(cli, result, f"cancel {client_order_id}")


@book.command("modify")
@click.argument("client_order_id")
@click.option("--quantity", "-q", type=DECIMAL, help="New total quantity.")
@click.option("--limit", "limit_price", type=DECIMAL, help="New limit price.")
@click.option("--stop", "stop_price", type=DECIMAL, help="New stop price.")
@click.option("--trail-amount", type=DECIMAL, help="New trailing distance in price.")
@click.option("--trail-percent", type=DECIMAL, help="New trailing distance in percent.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a live account.")
@pass_cli
def book_modify(cli: CliContext, client_order_id: str, yes: bool, **changes: Decimal | None) -> None:
    """Change a working order's quantity, prices or trail.

    \b
    Examples:
      trader book modify 3f9a2c1dbe01 --limit 229.5
      trader book modify 3f9a2c1dbe01 -q 50
    JSON:
      {"order": Order, "children": [Order], "reason": string}
    Exits: 3 invalid change, 4 unknown order id, 9 the order is not working, 8
      refused by the broker, 1 declined on a live account
    """
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("nothing to change: give --quantity, --limit, --stop or a trail")
    what = ", ".join(f"{name.replace('_', ' ')} {render.num(value)}" for name, value in given.items())
    cli.confirm_if_live(f"modify {client_order_id}: {what}. Send?", yes=yes)
    result = cli.call_trader("modify_order", client_order_id, **given)
    show_result(cli, result, f"modified {client_order_id}")


# -- account and positions ----------------------------------------------------------------


@click.command()
@pass_cli
def portfolio(cli: CliContext) -> None:
    """Show the positions with market value, unrealized and realized PnL, and the totals.

    \b
    Examples:
      trader portfolio
      trader portfolio --json
    JSON:
      [Position]
    Exits: 7 trader_service not running
    """
    items = cli.call_trader("portfolio")
    output(cli, items, lambda rows: render.positions_table(rows, market=True), "no positions")


@click.command()
@pass_cli
def positions(cli: CliContext) -> None:
    """Show the broker's positions: quantity and average cost.

    \b
    Examples:
      trader positions
    JSON:
      [Position]  (market_price, market_value and the PnL are null)
    Exits: 7 trader_service not running
    """
    items = cli.call_trader("positions")
    output(cli, items, lambda rows: render.positions_table(rows, market=False), "no positions")


@click.command()
@click.option("--all", "all_tags", is_flag=True, help="Every value the broker reports.")
@pass_cli
def account(cli: CliContext, all_tags: bool) -> None:
    """Show the account's key values: net liquidation, cash, PnL, buying power.

    \b
    Examples:
      trader account
      trader account --all --json
    JSON:
      {"account": string, "values": {tag: {currency: number | string}}}  (a
        number where the value is one)
    Exits: 7 trader_service not running
    """
    result = cli.call_trader("account")
    values = result["values"]
    tags = sorted(values) if all_tags else [t for t in ACCOUNT_TAGS.split() if t in values]
    if cli.json:
        numbers = {t: {cur: _number(text) for cur, text in values[t].items()} for t in tags}
        cli.emit_json({"account": result["account"], "values": numbers})
        return
    cli.console.print(render.account_table(result["account"], values, tags))


def _number(text: str) -> Decimal | str:
    """Return an account value as a Decimal where it is a number (IB sends text), else the text."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        return text
    return value if value.is_finite() else text


# -- instruments ------------------------------------------------------------------------


@click.command()
@click.argument("symbol")
@hint_options
@pass_cli
def resolve(cli: CliContext, symbol: str, **options: Any) -> None:
    """Show the contracts SYMBOL names (a future without --expiry: the front month).

    \b
    Examples:
      trader resolve ES
      trader resolve ES --expiry 202612
      trader resolve EUR.USD
    JSON:
      [Contract]
    Exits: 4 unknown symbol
    """
    output(cli, cli.call_trader("resolve", symbol, **hints(options)), render.contracts_table)


@click.command()
@click.argument("symbol")
@hint_options
@pass_cli
def snapshot(cli: CliContext, symbol: str, **options: Any) -> None:
    """Show the current quote of SYMBOL.

    \b
    Examples:
      trader snapshot AAPL
      trader snapshot ES --json
    JSON:
      Tick
    Exits: 4 unknown symbol, 6 no quote in time
    """
    tick = cli.call_trader("snapshot", symbol, **hints(options))
    output(cli, tick, lambda one: render.quotes_table([one]))


# -- connection and kill switch ------------------------------------------------------------


@click.command()
@pass_cli
def reconnect(cli: CliContext) -> None:
    """Drop trader_service's IB connection and make it again.

    \b
    Examples:
      trader reconnect
    JSON:
      {"connected": boolean, "ib": string, "connects": integer, "open_orders":
        integer, "last_error": string | null, ...}  (trader_service's status)
    Exits: 7 not connected to IB after the reconnect
    """
    status = cli.call_trader("reconnect", timeout=RECONNECT_TIMEOUT)
    if cli.json:
        cli.emit_json(render.to_jsonable(status))
    if not status.get("connected"):
        raise Unavailable(
            f"not connected to IB at {status.get('ib')} after the reconnect: "
            f"{status.get('last_error') or 'no error reported'}"
        )
    if not cli.json:
        done = f"reconnected to IB at {status['ib']} (connection #{status['connects']}, "
        cli.console.print(f"{done}{render.count(status['open_orders'], 'open order')})", highlight=False)


@click.command("kill-switch")
@click.argument("state", required=False, type=click.Choice(["on", "off"], case_sensitive=False))
@click.option("--reason", default="", help="Why (recorded in the journal).")
@pass_cli
def kill_switch(cli: CliContext, state: str | None, reason: str) -> None:
    """Engage (on: cancel every open order, refuse new ones) or release (off) the kill switch.

    Without STATE, show whether it is engaged.

    \b
    Examples:
      trader kill-switch
      trader kill-switch on --reason "stop everything"
      trader kill-switch off
    JSON:
      {"engaged": boolean, "reason": string | null}  (without STATE)
      {"engaged": boolean, "reason": string, "since": time | null,
        "cancel_sent": boolean, "cancel_error": string, "journal_error": string}
        (the last three when they apply)
    Exits: 8 IB's global cancel failed, 7 engaged but not journalled
    """
    if reason and state is None:
        raise click.UsageError("--reason goes with `kill-switch on` (or off)")
    if state is None:
        status = cli.call_trader("status")
        engaged, why = bool(status.get("kill_switch")), status.get("kill_switch_reason")
        if cli.json:
            cli.emit_json({"engaged": engaged, "reason": why})
        else:
            cli.console.print(
                Text(f"kill switch ENGAGED: {why}", style="bold red")
                if engaged
                else Text("kill switch off", style="green")
            )
        return
    result = cli.call_trader("kill_switch", on=state.lower() == "on", reason=reason)
    switch = result["kill_switch"]
    problems = {k: result[k] for k in ("cancel_sent", "cancel_error", "journal_error") if k in result}
    if cli.json:
        cli.emit_json(render.to_jsonable({**switch, **problems}))
    elif switch["engaged"]:
        cancelling = ("open orders are being cancelled" if problems.get("cancel_sent", True)
                      else "no cancel sent yet (not connected to IB): it goes out when the connection is back")
        cli.console.print(Text(f"kill switch ENGAGED ({switch['reason']}): {cancelling}; new orders refused",
                               style="bold red"))
    else:
        cli.console.print(Text("kill switch released: orders are accepted again", style="green"))
    if "cancel_error" in problems:
        raise BrokerError(f"the kill switch is engaged, but IB's global cancel failed: {problems['cancel_error']}")
    if "journal_error" in problems:
        raise Unavailable(f"the kill switch holds in trader_service, but the journal did not take it (a restart "
                          f"would forget it): {problems['journal_error']}")
