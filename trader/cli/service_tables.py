"""Service tables: what trader_service and strategy_service report (``status``), the strategies, their logs.

A strategy's net PnL is ``net_pnl`` (realized + unrealized), the name its
holdings and ``portfolio --json`` use; each holding's money figures are
shown by :func:`trader.cli.money_tables.strategy_holdings_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.table import Table
from rich.text import Text

from trader.cli.formats import count, money, num, when
from trader.cli.layout import Col, FitTable

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


def strategy_state(state: str) -> Text:
    """Return a strategy's state, coloured by how it stands."""
    return Text(state, style=STRATEGY_STYLE.get(state, ""))


def holdings(positions: Mapping[str, Decimal]) -> str:
    """Return a strategy's positions as ``AAPL.STK 10, EUR.USD.CASH -20000``, or ``flat``."""
    return ", ".join(f"{key} {num(qty)}" for key, qty in positions.items()) or "flat"


def strategies_table(strategies: Iterable[Mapping[str, Any]]) -> FitTable:
    """Return strategy_service's strategies: state, instruments, positions, PnL, orders, reason.

    Narrow, it keeps name, state, net PnL and the reason, and leaves out the
    commissions, the bar size, the order count and the last drift score first.
    """
    columns = [Col("name"), Col("state"), Col("instruments", 3, wrap=True), Col("bar", 6), Col("positions", 4, wrap=True),
               Col("realized", 5, justify="right"), Col("unrealized", 2, justify="right"),
               Col("net pnl", justify="right"), Col("comm", 7, justify="right"), Col("orders", 6, justify="right"),
               Col("drift", 6, justify="right"), Col("reason", 1, wrap=True)]
    rows = [
        [
            info["name"],
            strategy_state(info["state"]),
            ", ".join(info["instruments"]),
            info["bar_size"],
            holdings(info["positions"]),
            money(info["realized_pnl"]),
            money(info["unrealized_pnl"]),
            money(info["net_pnl"]),
            money(info.get("commission")),
            str(info["orders"]),
            drift_score(info.get("drift")),
            info["reason"] or "-",
        ]
        for info in strategies
    ]
    return FitTable(columns, rows)



def drift_score(record: Mapping[str, Any] | None) -> str:
    """Return a strategy's last drift score (``strategy drift --record``): ``12.5``, ``-`` if none or none computed."""
    score = (record or {}).get("score")
    return "-" if score is None else f"{score:g}"


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



def service_table(status: Mapping[str, Any]) -> Table:
    """Return trader_service's status: state, IB connection, kill switch, orders, subscriptions."""
    table = status_table("trader_service", status)
    connected = bool(status.get("connected"))
    names = list(status.get("accounts") or [])
    accounts = f"account{'s' * (len(names) != 1)} {', '.join(names)}" if names else "no account"
    error = f"; last error: {status['last_error']}" if status.get("last_error") else ""
    table.add_row(
        "IB",
        Text(
            f"{status.get('ib', '?')} client {status.get('client_id', '?')}: "
            f"{'connected' if connected else 'NOT connected'}, {accounts}, "
            f"{count(int(status.get('connects') or 0), 'connection')} made{error}",
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


def status_table(service: str, status: Mapping[str, Any]) -> Table:
    """Return a two-column status table titled ``service``, its first row the service's state."""
    table = Table(title=service, title_justify="default", show_header=False)
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



def strategy_service_table(status: Mapping[str, Any]) -> Table:
    """Return strategy_service's status: strategies by state, plugin errors, trader_service."""
    table = status_table("strategy_service", status)
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
