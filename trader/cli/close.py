"""Closing positions from the command line: ``trader close SYMBOL`` and ``trader close --all``.

The command asks trader_service for the plan first (the positions, the
closing orders, the working orders cancelled first), confirms it on a live
account, then has the service carry out *that* plan (``close_positions`` with
``confirmed``: the keys and quantities shown, and the account): should the
positions have changed meanwhile, the service refuses (Conflict) and nothing
is cancelled or sent. The service does the work, through its order desk, so
the risk gate, the kill switch and the journal apply (see
:mod:`trader.trading.closing`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click
from rich.text import Text

from trader.cli import formats, order_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import ACCOUNT_OPTION, YES_OPTION
from trader.errors import BrokerError, ConfigError, Conflict, Unavailable, error_from_wire

CLOSE_TIMEOUT = 20.0  # per position: cancels answered (5 s each at worst), a quote (2 s), the acknowledgement (5 s)
IDLE_STATES = frozenset({"DISABLED", "ERROR"})  # a strategy in any other state may trade again


def register(group: click.Group) -> None:
    """Add ``close`` to the ``trader`` group."""
    group.add_command(close)


def _plan_line(position: dict[str, Any]) -> str:
    cancels = len(position["cancel"])
    first = f", after cancelling {cancels} working order{'s' * (cancels != 1)}" if cancels else ""
    held = formats.num(position["held"])
    note = f" ({position['note']})" if position.get("note") else ""
    return (f"{position['key']}: held {held}, {position['action']} {formats.num(position['quantity'])} MKT{first}"
            f"{note}")


@click.command()
@click.argument("symbol", required=False)
@click.option("--all", "close_all", is_flag=True, help="Close every position.")
@click.option("--strategy", default=None, help="Close this strategy's position, not the account's.")
@ACCOUNT_OPTION
@YES_OPTION
@pass_cli
def close(cli: CliContext, symbol: str | None, close_all: bool, strategy: str | None, account: str | None,
          yes: bool) -> None:
    """Flatten the position in SYMBOL (or with --all every position) with a market order.

    By default the account's position is closed, whoever traded it; with
    --strategy NAME, the position that strategy's own orders built (the closing
    order is placed in its name; refused while strategy_service runs it, as it
    would trade it back: `trader strategy disable NAME --flatten` is for that). SYMBOL is a symbol (ES: every expiry held)
    or a contract key. The platform's working orders on the position (of that
    strategy with --strategy), bracket legs included, are cancelled first.
    A strategy's close is capped at the account's position on the same
    side (more would open a position; the plan says so). Every check that
    can refuse the closing order (the risk gate's included) runs before
    anything is cancelled; the order is sized from the position left once
    the cancels are answered (a take-profit that filled meanwhile counts).
    If it still fails after the cancels, the command says loudly that the
    position has lost its stops. The close carried out is the one shown: if
    the positions changed since, it is refused (9) and nothing is sent.
    Refused while the kill switch is engaged (nothing is cancelled then).
    Nothing to close is not an error: the command says so and exits 0. A
    position that could not be closed exits with its error's code. Closing
    the account's position that a running strategy holds leaves the
    strategy's ledger out of sync: the command warns (naming the strategy,
    its quantity and `trader strategy disable NAME --flatten`) and asks,
    even on paper, unless --yes.

    \b
    Examples:
      trader close AAPL
      trader close ES --yes
      trader close --all --strategy demo
      trader --json close --all --account DU7654321

    \b
    JSON:
      {"account": "DU1234567", "strategy": null,
       "positions": [{"key": "AAPL.STK", "held": 10, "action": "SELL",
                      "quantity": 10, "account": "DU1234567",
                      "account_held": 10, "note": "",
                      "cancel": ["a1b2c3d4e5f6"], "contract": {...}}],
       "cancelled": [<order as in `book`>...],
       "orders": [{"order": <order>, "children": [], "reason": ""}],
       "flat": [{"key": ..., "filled_while_cancelling": -10}],
       "unprotected": [{"key": ..., "cancelled": ["a1b2c3d4e5f6"]}],
       "errors": [{"key": "ES.FUT.202612", "error": {"type": ..., "code": ...,
                   "message": ..., "details": ...}}],
       "warnings": [{"strategy": "demo", "state": "RUNNING", "key": "AAPL.STK",
                     "quantity": -100, "message": string}]}
    """
    if symbol is not None and close_all:
        raise click.UsageError("give a SYMBOL or --all, not both")
    if symbol is None and not close_all:
        raise click.UsageError("give a SYMBOL or --all")
    if strategy is not None:
        _refuse_if_running(cli, strategy)
    args: dict[str, Any] = {"symbol": symbol, "strategy": strategy, "account": account}
    plan = cli.call_trader("close_positions", **args)
    positions = plan["positions"]
    whose = f"strategy {strategy}" if strategy else f"account {plan['account'] or '(default)'}"
    if not positions:
        if cli.json:
            cli.emit_json({**plan, "cancelled": [], "orders": [], "flat": [], "unprotected": [], "errors": [],
                           "warnings": []})
        else:
            cli.console.print(f"nothing to close: {whose} holds no {symbol or 'position'}", highlight=False)
        return
    lines = "; ".join(_plan_line(p) for p in positions)
    warnings = [] if strategy is not None else _running_holders(cli, [p["key"] for p in positions])
    for warning in warnings if not cli.json else ():
        cli.err.print(Text(f"WARNING: {warning['message']}", style="bold yellow"))
    if warnings and not yes:  # asked on paper too: the strategy's ledger is at stake, not only money
        click.confirm(f"close for {whose} although a running strategy holds it: {lines}. Send?", abort=True,
                      err=True)
    else:
        cli.confirm_if_live(f"close for {whose}: {lines}. Send?", yes=yes)
    confirmed = {p["key"]: str(p["quantity"]) for p in positions}  # this plan, and no other, is carried out
    result = cli.call_trader("close_positions", **{**args, "account": plan["account"]}, execute=True,
                             confirmed=confirmed, timeout=CLOSE_TIMEOUT * max(1, len(positions)))
    if cli.json:
        cli.emit_json({**result, "warnings": warnings})
    else:
        _show(cli, result, whose)
    errors, count = result["errors"], len(positions)
    if errors:
        first = errors[0]["error"]
        raise error_from_wire({**first, "message": f"{errors[0]['key']} not closed: {first['message']} "
                                                   f"({len(errors)} of {count} positions not closed)"})
    failed = [item["order"] for item in result["orders"] if item["order"].status in order_tables.FAILED]
    if failed:
        raise BrokerError(f"{failed[0].contract.key} not closed: order {failed[0].client_order_id} is "
                          f"{failed[0].status} ({len(failed)} of {count} positions not closed)")


def _refuse_if_running(cli: CliContext, strategy: str) -> None:
    """Raise Conflict if strategy_service runs ``strategy``: it would trade the position it holds back.

    A strategy trades its target against the position it keeps; an order placed
    from outside does not enter that position until it is resynced, so it would
    keep trading as if still held. ``strategy disable NAME --flatten`` is the
    way to close a running strategy's positions. No strategy_service: none runs.
    """
    try:
        listing = cli.call_service("strategy_service", "list", timeout=5.0)
    except (Unavailable, ConfigError):
        return
    for info in listing.get("strategies", []):
        if info.get("name") == strategy and info.get("state") not in IDLE_STATES:
            raise Conflict(f"strategy {strategy} is {info.get('state')}: it would trade its position back; "
                           f"`trader strategy disable {strategy} --flatten` stops it and closes its positions, "
                           f"or disable it first", strategy=strategy)


def _running_holders(cli: CliContext, keys: list[str]) -> list[dict[str, Any]]:
    """Return a warning for each running strategy that holds one of ``keys``: closing it desyncs its ledger.

    The account's close is not the strategy's: it keeps counting the position
    it built (and may trade against the account's change). No strategy_service:
    no warning.
    """
    try:
        listing = cli.call_service("strategy_service", "list", timeout=5.0)
    except (Unavailable, ConfigError):
        return []
    warnings = []
    for info in listing.get("strategies", []):
        if info.get("state") in IDLE_STATES:
            continue
        for key, quantity in (info.get("positions") or {}).items():
            held = formats.num(Decimal(str(quantity)))
            if key in keys and Decimal(str(quantity)):
                name = info.get("name")
                warnings.append({
                    "strategy": name, "state": info.get("state"), "key": key, "quantity": quantity,
                    "message": f"strategy {name} is {info.get('state')} and holds {held} {key}: closing the "
                               f"account's position leaves its ledger out of sync (it still counts {held}); "
                               f"`trader strategy disable {name} --flatten` closes it in the strategy's name",
                })
    return warnings


def _show(cli: CliContext, result: dict[str, Any], whose: str) -> None:
    if result["cancelled"]:
        cli.console.print(order_tables.orders_table(result["cancelled"], title="cancelled first"))
    sent = [order for item in result["orders"] for order in (item["order"], *item["children"])]
    if sent:
        cli.console.print(order_tables.orders_table(sent, title=f"closing orders ({whose})"))
    for item in result["orders"]:
        order = item["order"]
        if order.status in order_tables.FAILED:
            cli.err.print(Text(f"{order.contract.key}: order {order.client_order_id} {order.status}: "
                               f"{item['reason'] or 'no reason given'}", style="red"))
    for flat in result.get("flat", []):
        cli.console.print(f"{flat['key']}: flat once its working orders were answered (they filled "
                          f"{formats.num(flat['filled_while_cancelling'])}): nothing sent", highlight=False)
    for failure in result["errors"]:
        cli.err.print(Text(f"{failure['key']}: not closed: {failure['error']['message']}", style="red"))
    for gone in result.get("unprotected", []):
        cli.err.print(Text(f"WARNING: {gone['key']} is still open and its stop/take-profit orders "
                           f"({', '.join(gone['cancelled'])}) were cancelled: it is UNPROTECTED. Place a new "
                           "stop or close it.", style="bold red"))
