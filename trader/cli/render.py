"""Rendering for the trading commands: rich tables for people, plain JSON values for ``--json``.

Tables take the domain objects trader_service returns (``Order``, ``Fill``,
``Position``, ``Contract``) and the plain dicts of quotes, statuses and
strategy_service's strategies, plugin errors and log lines; each table
declares its columns with a priority (trader.cli.layout), so at any terminal
width the least important go first and an order's essentials stay whole.
:func:`to_jsonable` (trader.cli.jsonout) turns any of them into JSON values:
a Decimal an exact JSON number, a datetime its ISO form, an enum its value,
a dataclass a mapping of its fields (a contract adds its ``key``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rich.table import Table
from rich.text import Text

from trader.cli.jsonout import to_jsonable  # noqa: F401 - the commands reach it as render.to_jsonable
from trader.cli.layout import Col, FitTable
from trader.domain import Contract, Fill, Order, OrderStatus, Position
from trader.domain.figures import MONEY_DECIMALS, Figures, price_decimals

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
# A strategy's states (trader.strategy.runner.StrategyState), in the order a listing counts them.
STRATEGY_STYLE = {
    "RUNNING": "green",
    "DEGRADED": "yellow",
    "WAITING_HISTORY": "cyan",
    "INSTALLED": "blue",
    "DISABLED": "dim",
    "ERROR": "bold red",
}
LEVEL_STYLE = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


# -- formatting ----------------------------------------------------------------------


def count(n: int, noun: str, plural: str = "") -> str:
    """Return ``n`` with ``noun`` agreeing: ``1 open order``, ``2 open orders``, ``0 strategies``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def num(value: Decimal | float | None) -> str:
    """Return a quantity or price as written (``10``, ``231.52``); ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float):  # market data: the shortest text that reads back the same
        if not math.isfinite(value):
            return "-"
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return format(value, "f")


def money(value: Decimal | None) -> Text:
    """Return an amount with two decimals and thousands separators, red when negative."""
    if value is None:
        return Text("-")
    return Text(f"{value:,.2f}", style="red" if value < 0 else "")


def price(value: Decimal | None, decimals: int) -> str:
    """Return a price (or an average cost) to the instrument's precision: ``decimals``, its tick's (ES 5921.05)."""
    if value is None:
        return "-"
    return format(value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP), "f")


def when(value: datetime | None, *, millis: bool = False) -> str:
    """Return a time in UTC, the zone named: ``2026-12-07 14:03:07 UTC`` (``.123`` with ``millis``)."""
    if value is None:
        return "-"
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{text[:-3] if millis else text[:-7]} UTC"


def clock(value: datetime | None, *, millis: bool = False, today: date | None = None) -> str:
    """Return a time of a table cell in UTC: ``14:03:07 UTC`` today, ``12-06 14:03 UTC`` another day."""
    if value is None:
        return "-"
    stamp = value.astimezone(UTC)
    if stamp.date() != (today or datetime.now(UTC).date()):
        return stamp.strftime("%m-%d %H:%M UTC")
    return stamp.strftime("%H:%M:%S.%f")[: 12 if millis else 8] + " UTC"


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
        text += " (prices off the tick grid go to the nearest tick)"
    return text


# -- tables ----------------------------------------------------------------------------


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


def orders_table(orders: Iterable[Order], title: str | None = None) -> FitTable:
    """Return a table of orders: id, time, instrument, side, prices, status, fills, strategy.

    Narrow, it keeps time, symbol, side, qty, type, prices and status whole, and
    leaves out strategy, tif, the fills, then the id (first cut in its middle).
    """
    rows = [
        [
            ("  " if order.parent_id is not None else "") + order.client_order_id,
            clock(order.created_at),
            order.contract.key,
            side_text(order.action),
            num(order.quantity),
            str(order.order_type),
            _prices(order),
            str(order.tif),
            status_text(order.status),
            num(order.filled_quantity),
            num(order.avg_fill_price),
            order.order_ref,
        ]
        for order in orders
    ]
    return FitTable(ORDER_COLUMNS, rows, title=title)


def fills_table(fills: list[Fill]) -> FitTable:
    """Return a table of fills with commissions and cash flow (buys negative), and a total line."""
    total_cash = Decimal(0)
    total_commission = Decimal(0)
    rows = []
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
            num(fill.price),
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


#: The money figures' columns (docs/ARCHITECTURE.md, "Money figures") after the owner and the symbol: header,
#: the attribute of ``Figures`` each shows, and its priority (trader.cli.layout: 0 always shown, the highest
#: number left out first: value and commissions are derived or informational, realized goes last).
FIGURE_COLUMNS = (("qty", "quantity", 0), ("avg cost", "avg_cost", 0), ("price", "market_price", 0),
                  ("value", "market_value", 7), ("unrealized", "unrealized", 0), ("realized", "realized", 3),
                  ("net pnl", "net", 0), ("comm", "commission", 6))
_PRICES = frozenset({"avg_cost", "market_price"})


def figures_table(rows: Iterable[tuple[str, str, Figures, int]], owner: str, *, commissions: bool) -> FitTable:
    """Return holdings as (owner, symbol, figures, price decimals) rows, with the money totals in the footer.

    The one table of the money figures: ``portfolio`` (owner: the account)
    and ``strategy list`` (owner: the strategy) show the same columns, the
    same way. Prices and average costs go to the instrument's precision,
    money to cents. ``commissions`` adds the commissions column (a broker's
    portfolio does not give them per position). Narrow, value, then
    commissions, then the owner if all rows have the same, then realized are
    left out rather than every cell cut short.
    """
    rows = list(rows)
    figures = [spec for spec in FIGURE_COLUMNS if commissions or spec[1] != "commission"]

    def cell(f: Figures, name: str, decimals: int) -> Text | str:
        value = getattr(f, name)
        if name == "quantity":
            return num(value)
        if name in _PRICES:
            return price(value, decimals) if f.quantity or name == "market_price" else "-"
        return money(value)

    def total(name: str) -> Text | str:
        if not rows or name in _PRICES or name == "quantity":
            return ""
        amounts = [getattr(f, name) for _, _, f, _ in rows]
        return money(None if None in amounts else sum(amounts, Decimal(0)))

    single = len({who for who, *_ in rows}) <= 1
    columns = [Col(owner, 4 if single else 1), Col("symbol")]
    columns += [Col(header, priority, justify="right", footer=total(name)) for header, name, priority in figures]
    cells = [[who, symbol, *(cell(f, name, decimals) for _, name, _ in figures)] for who, symbol, f, decimals in rows]
    return FitTable(columns, cells, show_footer=bool(rows), label="total" if rows else "")


def positions_table(positions: list[Position], *, market: bool) -> FitTable:
    """Return a table of positions; with ``market``, the money figures (prices, values, PnL) with totals."""
    if market:
        return figures_table(((p.account, p.contract.key, Figures.of_position(p), price_decimals(p.contract))
                              for p in positions), "account", commissions=False)
    columns = [Col("account", 4), Col("symbol"), Col("qty", justify="right"), Col("avg cost", justify="right")]
    rows = [[p.account, p.contract.key, num(p.quantity), price(p.avg_cost, price_decimals(p.contract))]
            for p in positions]
    return FitTable(columns, rows)


def contracts_table(rows: list[Mapping[str, Any]]) -> FitTable:
    """Return a table of resolved contracts (``resolve``'s rows): what was typed, the key, local symbol,
    exchange, last trade date and description.

    Narrow, the least needed go first: the exchange, then the last trade
    date (shown only when a row has one), then the local symbol; the
    description is cut in its middle before it goes.
    """
    cells: list[list[str]] = []
    for row in rows:
        c: Contract = row["contract"]
        primary = c.primary_exchange and c.exchange == "SMART"
        cells.append([row["input"], row["key"], row["local_symbol"] or "-",
                      c.expiry.isoformat() if c.expiry else "-",
                      f"SMART/{c.primary_exchange}" if primary else c.exchange, row["description"] or "-"])
    columns = [Col("typed"), Col("key"), Col("local symbol", 3), Col("last trade", 4), Col("exchange", 5),
               Col("description", 2, min_width=12)]
    keep = [i for i in range(len(columns)) if i != 3 or any(r[3] != "-" for r in cells)]  # no dated contract
    return FitTable([columns[i] for i in keep], [[r[i] for i in keep] for r in cells])


QUOTE_COLUMNS = (
    Col("instrument"),
    Col("bid size", 3, justify="right"),
    Col("bid", justify="right"),
    Col("ask", justify="right"),
    Col("ask size", 3, justify="right"),
    Col("last", 1, justify="right"),
    Col("last size", 5, justify="right"),
    Col("volume", 4, justify="right"),
    Col("time", 2),
)


def quotes_table(ticks: Iterable[Mapping[str, Any]], title: str | None = None) -> FitTable:
    """Return a table of quotes (tick dicts): bid/ask with sizes, last, volume, time.

    Narrow, it keeps instrument, bid and ask whole, and leaves out the last
    size, the volume, the bid and ask sizes, the time, then the last.
    """
    rows = [
        [
            str(tick.get("instrument", "?")),
            num(tick.get("bid_size")),
            num(tick.get("bid")),
            num(tick.get("ask")),
            num(tick.get("ask_size")),
            num(tick.get("last")),
            num(tick.get("last_size")),
            num(tick.get("volume")),
            clock(tick["time"], millis=True) if isinstance(tick.get("time"), datetime) else "-",
        ]
        for tick in ticks
    ]
    return FitTable(QUOTE_COLUMNS, rows, title=title)


def account_table(
    account: str | None, values: Mapping[str, Mapping[str, str]], tags: Iterable[str]
) -> Table:
    """Return the account's values for ``tags`` (one row per tag and currency)."""
    table = Table(title=f"account {account or '?'}", title_justify="left")
    table.add_column("value")
    table.add_column("amount", justify="right")
    table.add_column("currency")
    for tag in tags:
        for currency, text in sorted(values.get(tag, {}).items()):
            try:
                amount: Text | str = money(Decimal(text))
            except ArithmeticError:
                amount = text
            table.add_row(tag, amount, currency or "-")
    return table


def service_table(status: Mapping[str, Any]) -> Table:
    """Return trader_service's status: state, IB connection, kill switch, orders, subscriptions."""
    table = _status_table("trader_service", status)
    connected = bool(status.get("connected"))
    accounts = ", ".join(status.get("accounts") or []) or "-"
    error = f"; last error: {status['last_error']}" if status.get("last_error") else ""
    table.add_row(
        "IB",
        Text(
            f"{status.get('ib', '?')} client {status.get('client_id', '?')}: "
            f"{'connected' if connected else 'NOT connected'}, accounts {accounts}, "
            f"{status.get('connects', 0)} connects{error}",
            style="" if connected else "red",
        ),
    )
    if status.get("kill_switch"):
        table.add_row(
            "kill switch",
            Text(f"ENGAGED: {status.get('kill_switch_reason') or '-'}", style="bold red"),
        )
    else:
        table.add_row("kill switch", Text("off", style="green"))
    table.add_row(
        "orders",
        f"{status.get('open_orders', 0)} open of {status.get('orders', 0)}, "
        f"{count(status.get('fills', 0), 'fill')}, {count(status.get('differences', 0), 'reconcile difference')}",
    )
    table.add_row("subscriptions", ", ".join(status.get("subscriptions") or []) or "-")
    for key, error in sorted((status.get("subscriptions_failed") or {}).items()):
        table.add_row("not restored", Text(f"{key}: {error}", style="red"))
    table.add_row(
        "trading", Text("LIVE (real money)", style="bold red") if status.get("live") else "paper"
    )
    return table


def _status_table(service: str, status: Mapping[str, Any]) -> Table:
    """Return a two-column status table titled ``service``, its first row the service's state."""
    table = Table(title=service, title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("state")
    state = str(status.get("state", "?"))
    reason = f" ({status['reason']})" if status.get("reason") else ""
    table.add_row(
        "service",
        Text(
            f"{state}{reason}, pid {status.get('pid', '?')}",
            style="green" if state == "RUNNING" else "yellow",
        ),
    )
    return table


# -- strategies ----------------------------------------------------------------------------


def strategy_state(state: str) -> Text:
    """Return a strategy's state, coloured by how it stands."""
    return Text(state, style=STRATEGY_STYLE.get(state, ""))


def holdings(positions: Mapping[str, Decimal]) -> str:
    """Return a strategy's positions as ``AAPL.STK 10, EUR.USD.CASH -20000``, or ``flat``."""
    return ", ".join(f"{key} {num(qty)}" for key, qty in positions.items()) or "flat"


def strategies_table(strategies: Iterable[Mapping[str, Any]]) -> FitTable:
    """Return strategy_service's strategies: state, instruments, positions, PnL, orders, reason.

    Narrow, it keeps name, state, net PnL and the reason, and leaves out the
    commissions, the bar size and the order count first.
    """
    columns = [Col("name"), Col("state"), Col("instruments", 3, wrap=True), Col("bar", 6), Col("positions", 4, wrap=True),
               Col("realized", 5, justify="right"), Col("unrealized", 2, justify="right"),
               Col("net pnl", justify="right"), Col("comm", 7, justify="right"), Col("orders", 6, justify="right"),
               Col("reason", 1, wrap=True)]
    rows = [
        [
            info["name"],
            strategy_state(info["state"]),
            ", ".join(info["instruments"]),
            info["bar_size"],
            holdings(info["positions"]),
            money(info["realized_pnl"]),
            money(info["unrealized_pnl"]),
            money(info["pnl"]),
            money(info.get("commission")),
            str(info["orders"]),
            info["reason"] or "-",
        ]
        for info in strategies
    ]
    return FitTable(columns, rows)


def strategy_holdings_table(strategies: Iterable[Mapping[str, Any]]) -> FitTable | None:
    """Return the strategies' holdings with their money figures (as ``portfolio`` shows them), or None if none."""
    rows = []
    for info in strategies:
        for key, h in (info.get("holdings") or {}).items():
            f = Figures(h["quantity"], h["avg_cost"], h["market_price"], h["market_value"], h["realized_pnl"],
                        h["commission"], h["unrealized_pnl"], h["net_pnl"])
            rows.append((info["name"], key, f, int(h.get("price_decimals", MONEY_DECIMALS))))
    return figures_table(rows, "strategy", commissions=True) if rows else None


def strategy_summary(info: Mapping[str, Any]) -> Text:
    """Return one strategy in a line: ``name: STATE (reason); positions ...``."""
    text = Text(f"{info['name']}: ")
    text.append(strategy_state(info["state"]))
    if info["reason"]:
        text.append(f" ({info['reason']})")
    text.append(f"; positions {holdings(info['positions'])}")
    return text


def plugin_error(error: Mapping[str, Any]) -> Text:
    """Return a plugin that did not load as ``file:line: reason``, in red."""
    where = f"{error['file']}:{error['line']}" if error.get("line") else str(error["file"])
    return Text(f"{where}: {error['reason']}", style="red")


def log_line(line: Mapping[str, Any]) -> Text:
    """Return a strategy's log line as ``time level message``, the level coloured."""
    stamp = line.get("time")
    text = Text(when(stamp, millis=True) if isinstance(stamp, datetime) else str(stamp))
    level = str(line.get("level", "?"))
    text.append(f" {level:<7} ", style=LEVEL_STYLE.get(level, ""))
    text.append(str(line.get("message", "")))
    return text


def strategy_service_table(status: Mapping[str, Any]) -> Table:
    """Return strategy_service's status: strategies by state, plugin errors, trader_service."""
    table = _status_table("strategy_service", status)
    counts: Mapping[str, int] = status.get("strategies") or {}
    states = Text()
    known = [s for s in STRATEGY_STYLE if s in counts]
    for state in [*known, *sorted(set(counts) - set(known))]:
        if states:
            states.append(", ")
        states.append(f"{counts[state]} {state}", style=STRATEGY_STYLE.get(state, ""))
    table.add_row("strategies", states or Text("none loaded", style="dim"))
    errors = int(status.get("plugin_errors") or 0)
    table.add_row(
        "plugin errors",
        Text(f"{errors} (see `trader strategy list`)", style="red") if errors else "none",
    )
    trader = status.get("trader_service")
    table.add_row("trader_service", Text("up", style="green") if trader == "up" else
                  Text("waiting for its first heartbeat", style="yellow") if trader == "waiting" else
                  Text("down", style="bold red"))
    for name, why in sorted((status.get("starved") or {}).items()):
        table.add_row("no ticks", Text(f"{name}: {why}", style="yellow"))
    if status.get("bad_ticks"):
        table.add_row("bad ticks", Text(str(status["bad_ticks"]), style="yellow"))
    return table
