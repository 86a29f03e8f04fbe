"""The kill switch and the IB link: ``kill-switch [on|off]`` and ``reconnect``.

Engaging the kill switch cancels every open order (IB's global cancel) and
refuses new ones until it is released; the command reports how many orders
IB confirmed cancelled and names the bracket legs it cancelled.
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from trader.cli import formats
from trader.cli.context import CliContext, pass_cli
from trader.errors import BrokerError, Unavailable

RECONNECT_TIMEOUT = 25.0


def register(group: click.Group) -> None:
    """Add ``kill-switch`` and ``reconnect`` to the ``trader`` group."""
    for command in (kill_switch, reconnect):
        group.add_command(command)


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
        cli.emit_json(status)
    if not status.get("connected"):
        raise Unavailable(
            f"not connected to IB at {status.get('ib')} after the reconnect: "
            f"{status.get('last_error') or 'no error reported'}"
        )
    if not cli.json:
        done = f"reconnected to IB at {status['ib']} (connection #{status['connects']}, "
        cli.console.print(f"{done}{formats.count(status['open_orders'], 'open order')})", highlight=False)


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
        cli.show({"engaged": engaged, "reason": why},
                 lambda s: Text(f"kill switch ENGAGED: {s['reason']}", style="bold red") if s["engaged"]
                 else Text("kill switch off", style="green"))
        return
    result = cli.call_trader("kill_switch", on=state.lower() == "on", reason=reason)
    switch = result["kill_switch"]
    problems = {k: result[k] for k in ("cancel_sent", "cancel_error", "journal_error") if k in result}
    cancels = {k: result[k] for k in ("already_engaged", "replaced_reason", "cancelled", "cancel_pending", "orders",
                                      "brackets") if k in result}
    if cli.json:
        cli.emit_json({**switch, **problems, **cancels})
    elif switch["engaged"]:
        cli.console.print(Text(f"kill switch ENGAGED ({switch['reason']}): new orders refused", style="bold red"))
        if "replaced_reason" in cancels:
            cli.console.print(f"reason replaced; it was: {cancels['replaced_reason']}", highlight=False)
        elif result.get("already_engaged"):
            cli.console.print(f"already engaged since {formats.when(switch['since'])}; reason kept", highlight=False)
        for line in cancel_lines(problems, cancels):
            cli.console.print(line, highlight=False)
    else:
        cli.console.print(Text("kill switch released: orders are accepted again", style="green"))
    if "cancel_error" in problems:
        raise BrokerError(f"the kill switch is engaged, but IB's global cancel failed: {problems['cancel_error']}")
    if "journal_error" in problems:
        raise Unavailable(f"the kill switch holds in trader_service, but the journal did not take it (a restart "
                          f"would forget it): {problems['journal_error']}")


def cancel_lines(problems: dict[str, Any], cancels: dict[str, Any]) -> list[str]:
    """Return what the kill switch's cancel did: how many orders, which bracket legs."""
    if not problems.get("cancel_sent", True):
        return ["no cancel sent yet (not connected to IB): it goes out when the connection is back"]
    orders = cancels.get("orders") or []
    pending = f", {cancels['cancel_pending']} not confirmed yet" if cancels.get("cancel_pending") else ""
    of = formats.count(len(orders), "open order")
    lines = [f"cancelled {cancels.get('cancelled', 0)} of the platform's {of}{pending}",
             "(IB's global cancel: orders placed elsewhere on the account go too)"]
    for bracket in cancels.get("brackets") or []:
        parent = bracket["parent"] + ("" if bracket.get("parent_working", True) else " (filled)")
        lines.append(f"bracket {bracket['key']}: parent {parent}, children {', '.join(bracket['children'])}")
    return lines
