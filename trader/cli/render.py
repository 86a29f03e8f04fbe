"""Rendering for the trading commands: rich tables for people, plain JSON values for ``--json``.

Tables take the domain objects trader_service returns (``Order``, ``Fill``,
``Position``, ``Contract``) and the plain dicts of quotes, statuses and
strategy_service's strategies, plugin errors and log lines.
:func:`to_jsonable` turns any of them into JSON values: a Decimal becomes its
exact text (``"231.52"``, never a rounded float), a datetime its ISO form, an
enum its value, a dataclass a mapping of its fields (a contract adds its
``key``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any

from rich.table import Table
from rich.text import Text

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
    "WAITING_HISTORY": "cyan",
    "INSTALLED": "blue",
    "DISABLED": "dim",
    "ERROR": "bold red",
}
LEVEL_STYLE = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


# -- JSON ----------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Return ``value`` in JSON types: Decimal -> exact text, datetime -> ISO, dataclass -> dict."""
    if value is None or (isinstance(value, (bool, int, str)) and not isinstance(value, Enum)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Contract):
            data["key"] = value.key
        return data
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


# -- formatting ----------------------------------------------------------------------


def num(value: Decimal | float | None) -> str:
    """Return a quantity or price as written (``10``, ``231.52``); ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float):  # market data: the shortest text that reads back the same
        if not math.isfinite(value):
            return "-"
        return str(int(value)) if value.is_integer() else repr(value)
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


def when(value: datetime | None) -> str:
    """Return a time in the local zone, ``YYYY-MM-DD HH:MM:SS``."""
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


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


def orders_table(orders: Iterable[Order], title: str | None = None) -> Table:
    """Return a table of orders: id, time, instrument, side, prices, status, fills, strategy."""
    table = Table(title=title, title_justify="left")
    for name in (
        "id",
        "time",
        "symbol",
        "side",
        "qty",
        "type",
        "limit/stop",
        "tif",
        "status",
        "filled",
        "avg price",
        "strategy",
    ):
        right = name in ("qty", "filled", "avg price")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "limit/stop")
    for order in orders:
        child = order.parent_id is not None
        table.add_row(
            ("  " if child else "") + order.client_order_id,
            when(order.created_at),
            order.contract.key,
            Text(str(order.action), style="green" if order.action == "BUY" else "red"),
            num(order.quantity),
            str(order.order_type),
            _prices(order),
            str(order.tif),
            status_text(order.status),
            num(order.filled_quantity),
            num(order.avg_fill_price),
            order.order_ref,
        )
    return table


def fills_table(fills: list[Fill]) -> Table:
    """Return a table of fills with commissions and cash flow (buys negative), and a total line."""
    table = Table(title=f"{len(fills)} fills", title_justify="left", show_footer=bool(fills))
    for name in (
        "time",
        "order",
        "symbol",
        "side",
        "qty",
        "price",
        "cash",
        "commission",
        "exec id",
    ):
        right = name in ("qty", "price", "cash", "commission")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    total_cash = Decimal(0)
    total_commission = Decimal(0)
    for fill in fills:
        multiplier = fill.contract.multiplier or Decimal(1)
        cash = fill.quantity * fill.price * multiplier * (-fill.action.sign)
        total_cash += cash
        total_commission += fill.commission or Decimal(0)
        table.add_row(
            when(fill.time),
            fill.client_order_id or "-",
            fill.contract.key,
            Text(str(fill.action), style="green" if fill.action == "BUY" else "red"),
            num(fill.quantity),
            num(fill.price),
            money(cash),
            money(fill.commission),
            fill.exec_id,
        )
    if fills:
        table.columns[0].footer = "total"
        table.columns[6].footer = money(total_cash)
        table.columns[7].footer = money(total_commission)
    return table


#: The money figures' columns (docs/ARCHITECTURE.md, "Money figures") after the owner and the symbol, with the
#: attribute of ``Figures`` each shows.
FIGURE_COLUMNS = (("qty", "quantity"), ("avg cost", "avg_cost"), ("price", "market_price"), ("value", "market_value"),
                  ("unrealized", "unrealized"), ("realized", "realized"), ("net pnl", "net"), ("comm", "commission"))
_PRICES = frozenset({"avg_cost", "market_price"})
#: What goes first when the table is too wide for the terminal: value and commissions are derived or informational,
#: the owner says nothing when there is one ("owner"), and realized last.
_DROP_FIRST = ("market_value", "commission", "owner", "realized")


def figures_table(rows: Iterable[tuple[str, str, Figures, int]], owner: str, *, commissions: bool,
                  width: int | None = None) -> Table:
    """Return holdings as (owner, symbol, figures, price decimals) rows, with the money totals in the footer.

    The one table of the money figures: ``portfolio`` (owner: the account)
    and ``strategy list`` (owner: the strategy) show the same columns, the
    same way. Prices and average costs go to the instrument's precision,
    money to cents. ``commissions`` adds the commissions column (a broker's
    portfolio does not give them per position). Within ``width`` columns
    (the terminal's), value, then commissions, then the owner if all rows
    have the same, then realized are left out rather than every cell cut short.
    """
    rows = list(rows)
    names = [name for _, name in FIGURE_COLUMNS if commissions or name != "commission"]

    def cell(f: Figures, name: str, decimals: int) -> Text | str:
        value = getattr(f, name)
        if name == "quantity":
            return num(value)
        if name in _PRICES:
            return price(value, decimals) if f.quantity or name == "market_price" else "-"
        return money(value)

    cells = [[who, symbol, *(cell(f, n, decimals) for n in names)] for who, symbol, f, decimals in rows]
    totals: dict[str, Decimal | None] = {}
    for name in names:
        if name not in _PRICES and name != "quantity":
            amounts = [getattr(f, name) for _, _, f, _ in rows]
            totals[name] = None if None in amounts else sum(amounts, Decimal(0))  # type: ignore[arg-type]
    headers = [owner, "symbol", *(h for h, n in FIGURE_COLUMNS if n in names)]
    keep = list(range(len(headers)))
    if width is not None:
        def wide(i: int) -> int:  # a column's width: its widest cell or footer, and a border and padding
            texts = [headers[i], *(str(c[i]) for c in cells)]
            if i >= 2 and names[i - 2] in totals:
                texts.append(money(totals[names[i - 2]]).plain)
            return max(len(t) for t in texts) + 3

        single = len({who for who, *_ in rows}) <= 1
        for name in _DROP_FIRST:
            if sum(wide(i) for i in keep) + 1 <= width:
                break
            if name == "owner" and single:
                keep.remove(0)
            elif name in names:
                keep.remove(names.index(name) + 2)
    table = Table(show_footer=bool(rows))
    for i in keep:
        table.add_column(headers[i], justify="left" if i < 2 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    if rows:
        table.columns[0].footer = "total"  # under the owner, or the symbol if the owner is left out
        for column, i in enumerate(keep):
            if i >= 2 and names[i - 2] in totals:
                table.columns[column].footer = money(totals[names[i - 2]])
    return table


def positions_table(positions: list[Position], *, market: bool, width: int | None = None) -> Table:
    """Return a table of positions; with ``market``, the money figures (prices, values, PnL) with totals."""
    if market:
        return figures_table(((p.account, p.contract.key, Figures.of_position(p), price_decimals(p.contract))
                              for p in positions), "account", commissions=False, width=width)
    table = Table()
    for name in ("account", "symbol", "qty", "avg cost"):
        table.add_column(
            name, justify="left" if name in ("account", "symbol") else "right", no_wrap=True
        )
    for p in positions:
        table.add_row(p.account, p.contract.key, num(p.quantity), price(p.avg_cost, price_decimals(p.contract)))
    return table


def contracts_table(rows: list[Mapping[str, Any]], width: int | None = None) -> Table:
    """Return a table of resolved contracts (``resolve``'s rows): what was typed, the key, local symbol,
    exchange, last trade date and description.

    Within ``width`` columns, the least needed go first: the exchange, then
    the last trade date (shown only when a row has one), then the local
    symbol; the description is cut to fit.
    """
    cells: dict[str, list[str]] = {"typed": [], "key": [], "local symbol": [], "exchange": [], "last trade": []}
    for row in rows:
        c: Contract = row["contract"]
        cells["typed"].append(row["input"])
        cells["key"].append(row["key"])
        cells["local symbol"].append(row["local_symbol"] or "-")
        primary = c.primary_exchange and c.exchange == "SMART"
        cells["exchange"].append(f"SMART/{c.primary_exchange}" if primary else c.exchange)
        cells["last trade"].append(c.expiry.isoformat() if c.expiry else "-")
    size = {name: max(len(name), *map(len, values)) for name, values in cells.items()}
    shown = ["typed", "key"]
    used = size["typed"] + size["key"] + 3 * 3 + 1  # each column adds 3 (padding, rule), the edge 1
    room = 12  # the description's least width
    for name in ("local symbol", "last trade", "exchange"):
        if set(cells[name]) == {"-"}:
            continue  # no row has one (no future or option: no last trade)
        if width is None or used + room + size[name] + 3 <= width:
            shown.append(name)
            used += size[name] + 3
    table = Table()
    for name in shown:
        table.add_column(name, no_wrap=True)
    table.add_column("description", overflow="ellipsis", no_wrap=True, min_width=room,
                     max_width=None if width is None else max(room, width - used))
    for index, row in enumerate(rows):
        table.add_row(*(cells[name][index] for name in shown), row["description"] or "-")
    return table


def quotes_table(ticks: Iterable[Mapping[str, Any]], title: str | None = None) -> Table:
    """Return a table of quotes (tick dicts): bid/ask with sizes, last, volume, time."""
    table = Table(title=title, title_justify="left")
    for name in (
        "instrument",
        "bid size",
        "bid",
        "ask",
        "ask size",
        "last",
        "last size",
        "volume",
        "time",
    ):
        table.add_column(
            name, no_wrap=True, justify="left" if name in ("instrument", "time") else "right"
        )
    for tick in ticks:
        stamp = tick.get("time")
        table.add_row(
            str(tick.get("instrument", "?")),
            num(tick.get("bid_size")),
            num(tick.get("bid")),
            num(tick.get("ask")),
            num(tick.get("ask_size")),
            num(tick.get("last")),
            num(tick.get("last_size")),
            num(tick.get("volume")),
            stamp.astimezone().strftime("%H:%M:%S.%f")[:-3] if isinstance(stamp, datetime) else "-",
        )
    return table


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
        f"{status.get('fills', 0)} fills, {status.get('differences', 0)} reconcile differences",
    )
    table.add_row("subscriptions", ", ".join(status.get("subscriptions") or []) or "-")
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


def strategies_table(strategies: Iterable[Mapping[str, Any]]) -> Table:
    """Return strategy_service's strategies: state, instruments, positions, PnL, orders, reason."""
    table = Table()
    for name in (
        "name",
        "state",
        "instruments",
        "bar",
        "positions",
        "realized",
        "unrealized",
        "net pnl",
        "comm",
        "orders",
        "reason",
    ):
        right = name in ("realized", "unrealized", "net pnl", "comm", "orders")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "reason")
    for info in strategies:
        table.add_row(
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
        )
    return table


def strategy_holdings_table(strategies: Iterable[Mapping[str, Any]], width: int | None = None) -> Table | None:
    """Return the strategies' holdings with their money figures (as ``portfolio`` shows them), or None if none."""
    rows = []
    for info in strategies:
        for key, h in (info.get("holdings") or {}).items():
            f = Figures(h["quantity"], h["avg_cost"], h["market_price"], h["market_value"], h["realized_pnl"],
                        h["commission"], h["unrealized_pnl"], h["net_pnl"])
            rows.append((info["name"], key, f, int(h.get("price_decimals", MONEY_DECIMALS))))
    return figures_table(rows, "strategy", commissions=True, width=width) if rows else None


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
    text = Text(
        stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if isinstance(stamp, datetime)
        else str(stamp)
    )
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
    if status.get("bad_ticks"):
        table.add_row("bad ticks", Text(str(status["bad_ticks"]), style="yellow"))
    return table
