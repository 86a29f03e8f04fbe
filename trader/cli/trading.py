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
from trader.cli.order_report import cancel_lines, sent_prices, show_what_if
from trader.errors import BrokerError, NotFound, Unavailable, error_from_wire
from trader.trading.requests import infer_order_type, new_client_order_id

PLACE_TIMEOUT = 20.0  # resolve + a quote (2 s) + the broker's acknowledgement (5 s), with room
RECONNECT_TIMEOUT = 25.0
ACCOUNT_TAGS = (
    "NetLiquidation TotalCashValue UnrealizedPnL RealizedPnL GrossPositionValue BuyingPower"
)
HINTS = ("sec_type", "exchange", "currency", "expiry", "strike", "right")
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


_hint_texts = _options(
    [
        ("--sec-type", "STK, FUT, OPT, CASH, IND or CMDTY."),
        ("--exchange", "Exchange (SMART, CME, IDEALPRO...)."),
        ("--currency", "Currency of the contract."),
        ("--expiry", ("Expiry of an option (YYYYMMDD, or YYYYMM: any day of that month) or a "
                      "future's contract month (YYYYMM).")),
    ]
)
_RIGHT = click.Choice(["C", "P", "CALL", "PUT"], case_sensitive=False)


def hint_options(fn: Callable[..., Any]) -> Any:
    """Add the options that narrow a symbol: sec type, exchange, currency, expiry; an option's strike, right."""
    fn = click.option("--right", type=_RIGHT, help="Option right: C (call) or P (put); makes SYMBOL an option.")(fn)
    fn = click.option("--strike", type=DECIMAL, help="Option strike; makes SYMBOL an option.")(fn)
    return _hint_texts(fn)


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


ROUND_OPTION = click.option(
    "--round", "round_prices", is_flag=True,
    help="Put a price off the tick grid on the cautious tick: a limit toward the passive side (buy down, "
         "sell up), a stop away from the market (buy up, sell down) (default: refuse it, naming both).")


def order_options(fn: Callable[..., Any]) -> Any:
    """Add the options of an order: size, prices, bracket, time in force, id, strategy, hints."""
    tif = click.Choice(["DAY", "GTC", "IOC", "FOK"], case_sensitive=False)
    for option in (
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation when live."),
        click.option("--what-if", is_flag=True,
                     help="Ask the broker what the order would cost (commission, margin) and the risk gate "
                          "whether it passes; nothing is sent."),
        ROUND_OPTION,
        hint_options,
        click.option("--strategy", default="manual", show_default=True, help="Who places it."),
        click.option("--account", default=None, help="The account (when the login manages several)."),
        click.option("--id", "client_order_id", help="Client order id (default: a new one)."),
        click.option("--outside-rth", is_flag=True, help="May fill outside regular hours."),
        click.option("--tif", type=tif, default="DAY", show_default=True, help="Time in force."),
        _size_and_prices,
    ):
        fn = option(fn)
    return fn


def hints(options: dict[str, Any]) -> dict[str, Any]:
    """Return the symbol hints among ``options`` that were given (a right as ``C`` or ``P``)."""
    given = {k: options[k] for k in HINTS if options.get(k) is not None and options.get(k) != ""}
    if "right" in given:
        given["right"] = given["right"].upper()[:1]
    return given


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
        for line in sent_prices(result):
            cli.console.print(line, highlight=False)
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
        **({"account": options["account"]} if options.get("account") else {}),
    }
    if options.get("round_prices"):
        request["round_prices"] = True
    for name in ("quantity", "amount", *PRICES, *BRACKET):
        if options[name] is not None:
            request[name] = options[name]
    return request


def _place(cli: CliContext, action: str, symbol: str, options: dict[str, Any]) -> None:
    request = build_request(action, symbol, options)
    if options.get("what_if"):
        show_what_if(cli, cli.call_trader("what_if", timeout=PLACE_TIMEOUT, **request))
        return
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

    A price off the instrument's tick grid is refused with the nearest valid
    prices (as IB refuses it, error 110); --round puts it on the cautious
    tick instead: a limit toward the passive side (a buy down, a sell up: it
    never pays more than asked), a stop away from the market (a buy stop up,
    a sell stop down: it never triggers early), a trail amount up. Bracket
    prices given in percent are always rounded, the same way. The output ends
    with the prices sent, and how each rounded one came about.

    --what-if sends nothing: it shows the orders as they would go, IB's
    commission and margin changes and the risk gate's verdict.

    \b
    Examples:
      trader trade buy AAPL -q 10 --limit 229.12
      trader trade buy ES -q 1 --limit 6000.1 --round
      trader trade buy AAPL -q 10 --limit 229.12 --stop-loss-percent 2
      trader trade sell AAPL -q 100 --what-if
    JSON:
      {"order": Order, "children": [Order], "reason": string, "rounded":
        [{"client_order_id", "field", "asked", "sent", "how"}]}
      --what-if: {"order": Order, "children": [Order], "rounded": [...],
        "risk": {"passed", "limit", "message"}, "broker": {"commission",
        "min_commission", "max_commission", "commission_currency",
        "init_margin_change", "maint_margin_change",
        "equity_with_loan_change", ..., "warning"}, "market",
        "reference_price"}
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


def book_filters(fn: Callable[..., Any]) -> Any:
    """Add the filters of the book's orders: --open, --symbol, --strategy, -n."""
    for option in reversed((
        click.option("--open", "open_only", is_flag=True, help="Only working orders."),
        click.option("--symbol", help="A symbol (ES: every expiry) or a contract key."),
        click.option("--strategy", help="Only the orders this strategy placed (manual: by hand)."),
        click.option("-n", "last", type=click.IntRange(min=1), metavar="N", help="Only the last N (after the other filters)."),
    )):
        fn = option(fn)
    return fn


BOOK_HELP = """Show and change the orders of the book (alone: the orders, as `book orders`).

    The filters (--open, --symbol, --strategy, -n) combine, and run in
    trader_service, so a large book is filtered before it is sent.

    \b
    Examples:
      trader book --open
      trader book --symbol ES --strategy demo -n 5
      trader book cancel a1b2c3d4e5f6
    JSON:
      [Order]  (`book` and `book orders`, oldest first)
    Exits: 7 trader_service not running
    """


@click.group(invoke_without_command=True, help=BOOK_HELP)
@book_filters
@click.pass_context
def book(ctx: click.Context, **filters: Any) -> None:
    """Show the orders (as `book orders`) when no subcommand is given; its help is ``BOOK_HELP``."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(book_orders, **filters)
    elif any(filters.values()):
        raise click.UsageError(f"the filters go with `book` or `book orders`, not `book {ctx.invoked_subcommand}`")


@book.command("orders")
@book_filters
@pass_cli
def book_orders(cli: CliContext, open_only: bool, symbol: str | None, strategy: str | None,
                last: int | None) -> None:
    """Show the orders, oldest first; the filters combine.

    \b
    Examples:
      trader book orders --open --symbol AAPL
      trader book orders --strategy demo -n 20 --json
    JSON:
      [Order]
    Exits: 7 trader_service not running
    """
    orders = cli.call_trader("orders", open_only=open_only, symbol=symbol, strategy=strategy, last=last)
    what = " ".join(filter(None, ("open" if open_only else "", symbol or "", "order")))
    title = render.count(len(orders), what)
    if strategy:
        title += f" of {strategy}"
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
@ROUND_OPTION
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a live account.")
@pass_cli
def book_modify(cli: CliContext, client_order_id: str, yes: bool, round_prices: bool,
                **changes: Decimal | None) -> None:
    """Change a working order's quantity, prices or trail.

    A price off the instrument's tick grid is refused with the nearest valid
    prices; with --round it goes to the cautious tick (a limit toward the
    passive side, a stop away from the market, as for `trade`). The output
    ends with the prices sent ("sent ID: limit 229.12 (from 229.123: down
    to tick 0.01)").

    \b
    Examples:
      trader book modify 3f9a2c1dbe01 --limit 229.5
      trader book modify 3f9a2c1dbe01 --limit 229.123 --round
      trader book modify 3f9a2c1dbe01 -q 50
    JSON:
      {"order": Order, "children": [Order], "reason": string, "rounded":
        [{"client_order_id", "field", "asked", "sent", "how"}]}
    Exits: 3 invalid change or a price off the tick grid, 4 unknown order id,
      9 the order is not working, 8 refused by the broker, 1 declined on a
      live account
    """
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("nothing to change: give --quantity, --limit, --stop or a trail")
    what = ", ".join(f"{name.replace('_', ' ')} {render.num(value)}" for name, value in given.items())
    if round_prices:
        what += " (rounded to the cautious tick)"
    cli.confirm_if_live(f"modify {client_order_id}: {what}. Send?", yes=yes)
    if round_prices:
        given["round_prices"] = True
    result = cli.call_trader("modify_order", client_order_id, **given)
    show_result(cli, result, f"modified {client_order_id}")


# -- account and positions ----------------------------------------------------------------


account_option = click.option(
    "--account", default=None, help="One account's (when the login manages several; default: every one)."
)


@click.command()
@account_option
@pass_cli
def portfolio(cli: CliContext, account: str | None) -> None:
    """Show the positions with market value, unrealized and realized PnL, and the totals.

    \b
    Examples:
      trader portfolio
      trader portfolio --account DU7654321 --json
    JSON:
      [Position]
    Exits: 4 an account the login does not manage, 7 trader_service not running
    """
    items = cli.call_trader("portfolio", account=account)
    output(cli, items, lambda rows: render.positions_table(rows, market=True), "no positions")


@click.command()
@account_option
@pass_cli
def positions(cli: CliContext, account: str | None) -> None:
    """Show the broker's positions: quantity and average cost.

    \b
    Examples:
      trader positions
      trader positions --account DU7654321 --json
    JSON:
      [Position]  (market_price, market_value and the PnL are null)
    Exits: 4 an account the login does not manage, 7 trader_service not running
    """
    items = cli.call_trader("positions", account=account)
    output(cli, items, lambda rows: render.positions_table(rows, market=False), "no positions")


@click.command()
@click.option("--all", "all_tags", is_flag=True, help="Every value the broker reports.")
@click.option("--account", default=None, help="The account (when the login manages several).")
@pass_cli
def account(cli: CliContext, all_tags: bool, account: str | None) -> None:
    """Show the account's key values: net liquidation, cash, PnL, buying power.

    With one account managed, that one; with several, --account names one
    (default: the one the settings' ib.account names). An account the login
    does not manage is not_found (exit 4).

    \b
    Examples:
      trader account
      trader account --all --account DU7654321 --json
    JSON:
      {"account": string, "accounts": [string], "values": {tag: {currency:
        number | string}}}  (a number where the value is one)
    Exits: 3 several accounts and none named, 4 an account the login does not
      manage, 7 trader_service not running
    """
    result = cli.call_trader("account", account=account)
    values = result["values"]
    tags = sorted(values) if all_tags else [t for t in ACCOUNT_TAGS.split() if t in values]
    if cli.json:
        numbers = {t: {cur: _number(text) for cur, text in values[t].items()} for t in tags}
        cli.emit_json({"account": result["account"], "accounts": result.get("accounts", []), "values": numbers})
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
        output(cli, rows, lambda found: render.contracts_table(found))
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
      Tick  (one SYMBOL)
      [{"symbol": string, "quote": Tick} | {"symbol": string, "error":
        {"type", "code", "message"}}]  (several, in the order given)
    Exits: 4 unknown symbol, 6 no quote in time (several: only when every
      symbol failed, the first one's)
    """
    if len(symbols) == 1:
        tick = cli.call_trader("snapshot", symbols[0], **hints(options))
        output(cli, tick, lambda one: render.quotes_table([one]))
        return
    rows = cli.call_trader("snapshots", list(symbols), **hints(options))
    quotes = [row["quote"] for row in rows if "quote" in row]
    failed = [row for row in rows if "error" in row]
    if cli.json:
        cli.emit_json(render.to_jsonable(rows))
    if not quotes:  # every one failed: one error, naming each
        why = "; ".join(f"{row['symbol']}: {row['error']['message']}" for row in failed)
        raise error_from_wire({**failed[0]["error"], "message": f"no quote for any symbol ({why})"})
    if not cli.json:
        cli.console.print(render.quotes_table(quotes))
        for row in failed:
            cli.err.print(Text(f"{row['symbol']}: {row['error']['message']}", style="red"), highlight=False)


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

    Without STATE, show whether it is engaged. `on` again without --reason
    keeps the reason in force; a new --reason replaces it (and says which it
    replaced). Engaging reports how many of the platform's open orders IB
    confirmed cancelled and names the bracket legs (parent and children).

    \b
    Examples:
      trader kill-switch
      trader kill-switch on --reason "runaway strategy"
      trader kill-switch on
      trader kill-switch off
    JSON:
      {"engaged": boolean, "reason": string | null}  (without STATE)
      {"engaged": boolean, "reason": string, "since": time | null,
        "already_engaged": boolean, "replaced_reason": string, "cancel_sent":
        boolean, "cancelled": integer, "cancel_pending": integer, "orders":
        [{"client_order_id", "key", "parent_id", "status"}], "brackets":
        [{"parent", "parent_working", "key", "children"}], "cancel_error":
        string, "journal_error": string}  (each when it applies)
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
    cancels = {k: result[k] for k in ("already_engaged", "replaced_reason", "cancelled", "cancel_pending", "orders",
                                      "brackets") if k in result}
    if cli.json:
        cli.emit_json(render.to_jsonable({**switch, **problems, **cancels}))
    elif switch["engaged"]:
        cli.console.print(Text(f"kill switch ENGAGED ({switch['reason']}): new orders refused", style="bold red"))
        if "replaced_reason" in cancels:
            cli.console.print(f"reason replaced; it was: {cancels['replaced_reason']}", highlight=False)
        elif result.get("already_engaged"):
            cli.console.print(f"already engaged since {render.when(switch['since'])}; reason kept", highlight=False)
        for line in cancel_lines(problems, cancels):
            cli.console.print(line, highlight=False)
    else:
        cli.console.print(Text("kill switch released: orders are accepted again", style="green"))
    if "cancel_error" in problems:
        raise BrokerError(f"the kill switch is engaged, but IB's global cancel failed: {problems['cancel_error']}")
    if "journal_error" in problems:
        raise Unavailable(f"the kill switch holds in trader_service, but the journal did not take it (a restart "
                          f"would forget it): {problems['journal_error']}")
