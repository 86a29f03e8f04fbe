"""Placing orders: ``trade buy|sell`` with the order's type inferred from its prices, and an order's result.

Each order is one ``place_order`` RPC call to trader_service (``what_if`` with
--what-if) and a table of the order and its bracket legs, or with ``--json``
the same data as JSON. A refusal by the service (unknown symbol, invalid
order, risk limit, a price off the tick grid) arrives as its typed error and
ends the command with that error's exit code.
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from trader.cli import order_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import hints, order_options
from trader.cli.order_report import sent_prices, show_what_if
from trader.errors import BrokerError, Unavailable
from trader.trading.requests import infer_order_type, new_client_order_id

PLACE_TIMEOUT = 20.0  # resolve + a quote (2 s) + the broker's acknowledgement (5 s), with room
PRICES = ("limit_price", "stop_price", "trail_amount", "trail_percent")
BRACKET = ("stop_loss", "stop_loss_percent", "take_profit", "take_profit_percent")


def register(group: click.Group) -> None:
    """Add ``trade`` to the ``trader`` group."""
    group.add_command(trade)


def show_result(cli: CliContext, result: dict[str, Any], title: str) -> None:
    """Print an order with its bracket children and the broker's reason; exit 8 if it or a child was refused."""
    order = result["order"]
    reason = result.get("reason") or ""
    if cli.json:
        cli.emit_json(result)
    else:
        cli.console.print(order_tables.orders_table([order, *result["children"]], title=title))
        for line in sent_prices(result):
            cli.console.print(line, highlight=False)
        if reason:
            cli.console.print(Text(f"reason: {reason}", style="yellow"))
    failed = [o for o in (order, *result["children"]) if o.status in order_tables.FAILED]  # a bracket leg too
    if failed:
        why = reason or "no reason given"
        raise BrokerError(f"order {failed[0].client_order_id} is {failed[0].status}: {why}")
    if order.status in order_tables.ENDED_WITHOUT_FILL and not order.filled_quantity:
        cli.err.print(
            f"order {order.client_order_id} ended {order.status} unfilled", style="yellow"
        )


def build_request(action: str, symbol: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return the place_order arguments for the options, the order type inferred from the prices."""
    if (options["quantity"] is None) == (options["amount"] is None):
        raise click.UsageError("give exactly one of --quantity and --amount")
    for first, second in zip(("trail_amount", *BRACKET[::2]), ("trail_percent", *BRACKET[1::2]), strict=True):
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
    cli.confirm_if_live(f"{order_tables.describe(request)}. Send?", yes=options["yes"])
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

    --what-if sends nothing: it shows the orders as they would go (no id: they
    will never exist), IB's commission and margin changes and the risk gate's
    verdict; it exits 5 when the risk gate would refuse them.

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

