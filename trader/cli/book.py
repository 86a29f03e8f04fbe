"""The book: ``book`` lists the orders (filtered in trader_service), ``book trades`` the fills, cancel and modify.

Each command is one RPC call to trader_service and a table, or with
``--json`` the same data as JSON; cancel and modify show the order as
``trade`` does (:func:`trader.cli.orders.show_result`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import click

from trader.cli import formats, order_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import DECIMAL, ROUND_OPTION, YES_OPTION
from trader.cli.orders import show_result


def register(group: click.Group) -> None:
    """Add ``book`` to the ``trader`` group."""
    group.add_command(book)


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

    An order id (cancel, modify) may be given whole, by its first
    characters (at least 4, naming one order), or as a narrow table
    shows it abbreviated (96ca…0d3c, or 96ca...0d3c); several matches are
    refused (3) with the candidates.

    \b
    Examples:
      trader book --open
      trader book --symbol ES --strategy demo -n 5
      trader book cancel a1b2c3d4e5f6
      trader book cancel a1b2
      trader book cancel "a1b2…e5f6"
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
    title = formats.count(len(orders), what)
    if strategy:
        title += f" of {strategy}"
    cli.show(orders, lambda items: order_tables.orders_table(items, title=title))


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
    cli.show(fills, order_tables.fills_table)


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
    Exits: 4 unknown order id, 3 an id prefix naming several orders, 9 the
      order is not working, 8 refused by the broker
    """
    if (client_order_id is None) == (not all_orders):
        raise click.UsageError("give an order id or --all")
    if everything and not all_orders:
        raise click.UsageError("--everything goes with --all")
    if all_orders:
        count = cli.call_trader("cancel_all", everything=everything)
        cli.show({"cancelled": count}, lambda r: f"cancel sent for {formats.count(r['cancelled'], 'open order')}")
        return
    result = cli.call_trader("cancel_order", client_order_id=client_order_id, abbreviated=True)
    show_result(cli, result, f"cancel {result['order'].client_order_id}")


@book.command("modify")
@click.argument("client_order_id")
@click.option("--quantity", "-q", type=DECIMAL, help="New total quantity.")
@click.option("--limit", "limit_price", type=DECIMAL, help="New limit price.")
@click.option("--stop", "stop_price", type=DECIMAL, help="New stop price.")
@click.option("--trail-amount", type=DECIMAL, help="New trailing distance in price.")
@click.option("--trail-percent", type=DECIMAL, help="New trailing distance in percent.")
@ROUND_OPTION
@YES_OPTION
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
    Exits: 3 invalid change, a price off the tick grid or an ambiguous id
      prefix, 4 unknown order id,
      9 the order is not working, 8 refused by the broker, 1 declined on a
      live account
    """
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("nothing to change: give --quantity, --limit, --stop or a trail")
    what = ", ".join(f"{name.replace('_', ' ')} {formats.num(value)}" for name, value in given.items())
    if round_prices:
        what += " (rounded to the cautious tick)"
    cli.confirm_if_live(f"modify {client_order_id}: {what}. Send?", yes=yes)
    rounding = {"round_prices": True} if round_prices else {}
    result = cli.call_trader("modify_order", client_order_id, abbreviated=True, **given, **rounding)
    show_result(cli, result, f"modified {result['order'].client_order_id}")

