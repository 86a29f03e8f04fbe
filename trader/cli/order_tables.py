"""Order tables: the orders of the book and the fills, as ``trade``, ``book`` and ``close`` show them.

Each table declares its columns with a priority (trader.cli.layout), so at
any terminal width the least important go first and an order's time,
symbol, side, quantity, type, prices and status stay whole. An average fill
price and a fill's price show to the instrument's precision; a limit or
stop price as it was sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from trader.cli.formats import clock, count, money, num, price
from trader.cli.layout import Col, FitTable
from trader.domain import Fill, Order, OrderStatus
from trader.domain.figures import price_decimals

STATUS_STYLE = {
    OrderStatus.PENDING_SUBMIT: "cyan",
    OrderStatus.PRE_SUBMITTED: "cyan",
    OrderStatus.SUBMITTED: "green",
    OrderStatus.PARTIALLY_FILLED: "yellow",
    OrderStatus.PENDING_CANCEL: "yellow",
    OrderStatus.API_CANCELLED: "dim",
    OrderStatus.CANCELLED: "dim",
    OrderStatus.FILLED: "bold blue",
    OrderStatus.INACTIVE: "red",
    OrderStatus.REJECTED: "bold red",
}
FAILED = frozenset({OrderStatus.REJECTED, OrderStatus.INACTIVE})
ENDED_WITHOUT_FILL = frozenset({OrderStatus.CANCELLED, OrderStatus.API_CANCELLED})


def status_text(status: OrderStatus) -> Text:
    """Return an order status, coloured by how it stands."""
    return Text(str(status), style=STATUS_STYLE.get(status, ""))


def _prices(order: Order) -> str:
    parts = []
    if order.limit_price is not None:
        parts.append(f"lmt {num(order.limit_price)}")
    if order.stop_price is not None:
        parts.append(f"stp {num(order.stop_price)}")
    if order.trail_amount is not None:
        parts.append(f"trail {num(order.trail_amount)}")
    if order.trail_percent is not None:
        parts.append(f"trail {num(order.trail_percent)}%")
    return " ".join(parts) or "-"


def describe(request: Mapping[str, Any]) -> str:
    """Return a place_order request in one line, as a trader would say it, numbers as typed (never 1E+3)."""
    size = num(request["quantity"]) if "quantity" in request else f"${num(request['amount'])} of"
    instrument = " ".join([request["symbol"], *(str(request[k]) for k in ("sec_type", "expiry", "exchange", "currency")
                                                if request.get(k))])
    words = [request["action"], size, instrument, request["order_type"]]
    for name, label in (
        ("limit_price", "limit"),
        ("stop_price", "stop"),
        ("trail_amount", "trail"),
        ("trail_percent", "trail"),
        ("stop_loss", "stop loss"),
        ("stop_loss_percent", "stop loss"),
        ("take_profit", "take profit"),
        ("take_profit_percent", "take profit"),
    ):
        if name in request:
            words.append(f"{label} {num(request[name])}{'%' if name.endswith('percent') else ''}")
    words += [request["tif"], *(["outside RTH"] if request.get("outside_rth") else []),
              f"id {request['client_order_id']}"]
    text = " ".join(words)
    if request.get("round_prices") and any(name in request for name in ("limit_price", "stop_price",
                                                                         "trail_amount", "stop_loss", "take_profit")):
        text += " (prices off the tick grid go to the cautious tick: a limit toward the passive side, a stop away from the market)"
    return text


def side_text(action: Any) -> Text:
    """Return BUY in green, SELL in red."""
    return Text(str(action), style="green" if str(action) == "BUY" else "red")


ORDER_COLUMNS = (
    Col("id", 5, min_width=9),
    Col("time", wrap=True),
    Col("symbol"),
    Col("side"),
    Col("qty", justify="right"),
    Col("type"),
    Col("price", wrap=True),
    Col("tif", 8),
    Col("status"),
    Col("filled", 6, justify="right"),
    Col("avg price", 7, justify="right"),
    Col("strategy", 9),
)


def orders_table(orders: Iterable[Order], title: str | None = None, *, sent: bool = True) -> FitTable:
    """Return a table of orders: id, time, instrument, side, prices, status, fills, strategy.

    Narrow, it keeps time, symbol, side, qty, type, prices and status whole, and
    leaves out strategy, tif, the fills, then the id (first cut in its middle).
    ``sent`` False (a what-if's orders, which will never exist): no id, and
    "not sent" for a status.
    """
    rows: list[list[RenderableType]] = [
        [
            ("  " if order.parent_id is not None else "") + (order.client_order_id if sent else "-"),
            clock(order.created_at),
            order.contract.key,
            side_text(order.action),
            num(order.quantity),
            str(order.order_type),
            _prices(order),
            str(order.tif),
            status_text(order.status) if sent else Text("not sent", style="dim"),
            num(order.filled_quantity),
            price(order.avg_fill_price, price_decimals(order.contract)),
            order.order_ref,
        ]
        for order in orders
    ]
    return FitTable(ORDER_COLUMNS, rows, title=title)


def fills_table(fills: list[Fill]) -> FitTable:
    """Return a table of fills with commissions and cash flow (buys negative), and a total line."""
    total_cash = Decimal(0)
    total_commission = Decimal(0)
    rows: list[list[RenderableType]] = []
    for fill in fills:
        multiplier = fill.contract.multiplier or Decimal(1)
        cash = fill.quantity * fill.price * multiplier * (-fill.action.sign)
        total_cash += cash
        total_commission += fill.commission or Decimal(0)
        rows.append([
            clock(fill.time),
            fill.client_order_id or "-",
            fill.contract.key,
            side_text(fill.action),
            num(fill.quantity),
            price(fill.price, price_decimals(fill.contract)),
            money(cash),
            money(fill.commission),
            fill.exec_id,
        ])
    columns = (
        Col("time"),
        Col("order", 4, min_width=9),
        Col("symbol"),
        Col("side"),
        Col("qty", justify="right"),
        Col("price", justify="right"),
        Col("cash", 2, justify="right", footer=money(total_cash) if fills else ""),
        Col("commission", 1, justify="right", footer=money(total_commission) if fills else ""),
        Col("exec id", 5, min_width=9),
    )
    return FitTable(columns, rows, title=count(len(fills), "fill"), show_footer=bool(fills),
                    label="total")

