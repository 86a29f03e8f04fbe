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
from decimal import Decimal
from enum import Enum
from typing import Any

from rich.table import Table
from rich.text import Text

from trader.domain import Contract, Fill, Order, OrderStatus, Position

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
    if any(name in request for name in ("limit_price", "stop_price", "stop_loss", "take_profit")):
        text += " (prices go onto the tick grid, a buy's limit down and a sell's up)"
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


def positions_table(positions: list[Position], *, market: bool) -> Table:
    """Return a table of positions; with ``market``, prices, values and PnL with totals."""
    table = Table(show_footer=market and bool(positions))
    names = ["account", "symbol", "qty", "avg cost"]
    if market:
        names += ["price", "market value", "unrealized", "realized"]
    for name in names:
        table.add_column(
            name, justify="left" if name in ("account", "symbol") else "right", no_wrap=True
        )
    totals = [Decimal(0)] * 3
    for p in positions:
        row: list[Any] = [p.account, p.contract.key, num(p.quantity), num(p.avg_cost)]
        if market:
            row += [
                num(p.market_price),
                money(p.market_value),
                money(p.unrealized_pnl),
                money(p.realized_pnl),
            ]
            for i, value in enumerate((p.market_value, p.unrealized_pnl, p.realized_pnl)):
                totals[i] += value or Decimal(0)
        table.add_row(*row)
    if market and positions:
        table.columns[0].footer = "total"
        for i, total in enumerate(totals):
            table.columns[5 + i].footer = money(total)
    return table


def contracts_table(contracts: list[Contract]) -> Table:
    """Return a table of contracts: key, kind, exchanges, currency, expiry, multiplier, conid."""
    table = Table()
    for name in (
        "key",
        "type",
        "exchange",
        "primary",
        "currency",
        "expiry",
        "multiplier",
        "local symbol",
        "conid",
    ):
        table.add_column(name, no_wrap=True, justify="right" if name == "conid" else "left")
    for c in contracts:
        table.add_row(
            c.key,
            str(c.sec_type),
            c.exchange,
            c.primary_exchange or "-",
            c.currency,
            c.expiry.isoformat() if c.expiry else "-",
            num(c.multiplier),
            c.local_symbol or "-",
            str(c.conid or "-"),
        )
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
        "orders",
        "reason",
    ):
        right = name in ("realized", "unrealized", "net pnl", "orders")
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
            str(info["orders"]),
            info["reason"] or "-",
        )
    return table


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
    for name, why in sorted((status.get("starved") or {}).items()):
        table.add_row("no ticks", Text(f"{name}: {why}", style="yellow"))
    if status.get("bad_ticks"):
        table.add_row("bad ticks", Text(str(status["bad_ticks"]), style="yellow"))
    return table
