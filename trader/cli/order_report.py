"""What the order commands report beyond their tables: the prices sent and a what-if answer.

Plain lines, readable at 80 columns, printed after an order table (whose
price column may be the first to go on a narrow terminal): the price each
order went out with, and how a rounded one came about.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from trader.cli import formats, order_tables
from trader.cli.context import CliContext
from trader.domain.figures import price_decimals
from trader.errors import RiskLimitExceeded

__all__ = ["sent_prices", "show_what_if"]


def sent_prices(result: dict[str, Any], *, verb: str = "sent", by_id: bool = True) -> list[str]:
    """Return one line per order with a price: the prices sent to the broker, and how each rounded one came about.

    ``verb`` starts each line; ``by_id`` False names an order by its side and
    type (a what-if's orders have no id that will ever exist).
    """
    rounded = {(r["client_order_id"], r["field"]): r for r in result.get("rounded") or ()}
    lines = []
    for order in (result["order"], *result["children"]):
        parts = []
        for name, label in (("limit_price", "limit"), ("stop_price", "stop"), ("trail_amount", "trail")):
            price = getattr(order, name)
            if price is None:
                continue
            text = f"{label} {formats.num(price)}"
            why = rounded.get((order.client_order_id, name))
            if why is not None:
                text += f" (from {formats.num(why['asked'])}: {why['how']})"
            parts.append(text)
        if parts:
            name = order.client_order_id if by_id else f"{order.action} {order.order_type}"
            lines.append(f"{verb} {name}: " + ", ".join(parts))
    return lines


def show_what_if(cli: CliContext, result: dict[str, Any]) -> None:
    """Print a what-if answer: the orders as they would go, the broker's costs, the risk gate's verdict.

    Raise the risk gate's refusal (RiskLimitExceeded, exit 5) after the
    answer, so a script knows the order would not go.
    """
    if cli.json:
        cli.emit_json(result)
    else:
        _print_what_if(cli, result)
    risk = result["risk"]
    if not risk["passed"]:
        raise RiskLimitExceeded(f"the risk gate would refuse it: {risk['message']}",
                                **({"limit": risk["limit"]} if risk.get("limit") else {}))


def _print_what_if(cli: CliContext, result: dict[str, Any]) -> None:
    order = result["order"]
    cli.console.print(order_tables.orders_table([order, *result["children"]], sent=False,
                                                title=f"what if: {order.action} {order.contract.key} (not sent)"))
    for line in sent_prices(result, verb="would send", by_id=False):
        cli.console.print(line, highlight=False)
    decimals = price_decimals(order.contract)
    cli.console.print(f"market {formats.price(result.get('market'), decimals)}, a market order would pay about "
                      f"{formats.price(result.get('reference_price'), decimals)}", highlight=False)
    preview = result["broker"]
    currency = f" {preview['commission_currency']}" if preview["commission_currency"] else ""
    if preview["commission"] is not None:
        commission = formats.num(preview["commission"])
    elif preview["min_commission"] is not None or preview["max_commission"] is not None:
        commission = f"{formats.num(preview['min_commission'])} to {formats.num(preview['max_commission'])}"
    else:
        commission = "not given"
    cli.console.print(f"commission: {commission}{currency}", highlight=False)
    cli.console.print(f"margin change: initial {formats.num(preview['init_margin_change'])}, maintenance "
                      f"{formats.num(preview['maint_margin_change'])}", highlight=False)
    cli.console.print(f"equity with loan change: {formats.num(preview['equity_with_loan_change'])}", highlight=False)
    if preview["warning"]:
        cli.console.print(Text(f"broker warning: {preview['warning']}", style="yellow"))
    risk = result["risk"]
    if risk["passed"]:
        cli.console.print(Text("risk gate: passes", style="green"))
    else:
        cli.console.print(Text(f"risk gate: refuses: {risk['message']}", style="bold red"))
    cli.console.print("nothing was sent", style="dim")
