"""``trader strategy drift``: a strategy's live fills against its backtest over the period it traded, and the daily job.

The command reads the strategy's orders and fills from trader_service
(``orders``, ``trades``), its plugin from the strategies directory, its bars
from the market store (or recorded ticks), and runs
:func:`trader.backtest.live_period.drift`. ``--all --record`` is what the
pycron job ``strategy_drift`` runs after the US close: every enabled strategy
(not DISABLED in strategy_service's ``list``), each record handed to
strategy_service's ``record_drift``, which publishes it as
``strategy.<name>.drift`` and shows it in ``strategy list``. The backtest
runs in this process, not in strategy_service, whose loop trades.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click
from rich.text import Text

from trader.cli import formats
from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.cli.options import MOMENT
from trader.errors import NotFound, Unavailable, ValidationError

SERVICE = "strategy_service"
FETCH_TIMEOUT = 30.0  # the book's every fill, in one reply
STATUS_STYLE = {"matched": "green", "missing": "yellow", "extra": "red"}


def _live_keys(cli: CliContext) -> dict[str, dict[str, Any]]:
    """Return strategy_service's strategies by name (empty when it is not running: the keys are read then)."""
    try:
        return {info["name"]: info for info in cli.call_service(SERVICE, "list")["strategies"]}
    except Unavailable:
        return {}


def _report(cli: CliContext, name: str, keys: Mapping[str, str] | None, start: datetime | None,
            end: datetime | None, fills: list[Any] | None = None) -> Any:
    """Return strategy ``name``'s DriftReport (``fills``: the book's, if already fetched)."""
    from trader.backtest.job import find_plugin, strategies_directory
    from trader.backtest.live_period import drift
    from trader.data import open_store

    plugin = find_plugin(name, strategies_directory(cli.settings()))
    try:
        orders = cli.call_trader("orders", strategy=name, timeout=FETCH_TIMEOUT)
        if fills is None:
            fills = cli.call_trader("trades", timeout=FETCH_TIMEOUT)
        return drift(plugin.strategy, orders, fills, open_store(cli.settings()), start=start, end=end, keys=keys)
    finally:
        plugin.unload()


@click.command("drift", epilog="""\b
The score (0..100, 0 = the same trades at the same prices) is the mean of
two parts, each 0..1: trades, the share of orders on either side that
disagree (missing or extra: 1, a matched one its quantity difference over
its quantity); pnl, the PnL gap g over the traded notional N as
g / (g + 1 % of N): a gap of 1 % of N scores 0.5 (trader/backtest/drift.py).
Orders match by client order id: strategy, contract key and the bar whose
close decided them. PnL: realized + unrealized at the last bar's close,
commissions in, on both sides.""")
@click.argument("name", required=False)
@click.option("--start", type=MOMENT, help="Compare from this bar, both sides flat there (default: the first "
              "live order's bar).")
@click.option("--end", type=MOMENT, help="Compare up to this time (default: the last stored bar).")
@click.option("--all", "every", is_flag=True, help="Every enabled strategy (strategy_service's list); pycron's "
              "daily job strategy_drift runs --all --record.")
@click.option("--record", is_flag=True, help="Hand each result to strategy_service: published, shown in `list`.")
@pass_cli
def drift(cli: CliContext, name: str | None, start: datetime | None, end: datetime | None, every: bool,
          record: bool) -> None:
    """Compare strategy NAME's live fills with its backtest over the period it traded.

    Runs the plugin's backtest over the bars (stored, or built from recorded
    ticks) of the period its fills cover and lists each order on either
    side: matched, missing (backtest only) or extra (live only), with the
    quantity and price differences, then the PnL of both and the drift score.

    \b
    Examples:
      trader strategy drift ma_crossover
      trader strategy drift ma_crossover --start 2026-03-02 --json
      trader strategy drift --all --record
    JSON:
      {"strategy": string, "start": time, "end": time, "score": number,
       "matched": integer, "missing": integer, "extra": integer,
       "pnl_live": number, "pnl_backtest": number, "pnl_diff": number,
       "notional": number, "components": {"trades": number, "pnl": number},
       "orders": [{"bar": time, "instrument": string, "kind": string,
         "client_order_id": string, "status": string, "side_backtest":
         string | null, "side_live": string | null, "qty_backtest": number |
         null, "qty_live": number | null, "price_backtest": number | null,
         "price_live": number | null, "qty_diff": number | null,
         "price_diff": number | null}], "notes": [string]}
      with --all: {"strategies": [that without orders and notes, or
        {"strategy": string, "score": null, "error": string}]}
    Exits: 4 no such strategy, no fills or no bars; 7 trader_service not running
    """
    if every == (name is not None):
        raise click.UsageError("give a strategy NAME or --all")
    listed = _live_keys(cli)
    if name is not None:
        report = _report(cli, name, (listed.get(name) or {}).get("keys"), start, end)
        if record:
            cli.call_service(SERVICE, "record_drift", name, _record(report.summary()))
        if cli.json:
            cli.emit_json(report.to_dict())
        else:
            _show(cli, report)
        return
    if not listed:
        raise Unavailable("strategy_service is not running: --all drifts the strategies it runs")
    results = []
    fills = cli.call_trader("trades", timeout=FETCH_TIMEOUT)  # once for every strategy
    for strategy, info in sorted(listed.items()):
        if info["state"] == "DISABLED":
            continue
        try:
            report = _report(cli, strategy, info.get("keys"), start, end, fills)
        except (NotFound, ValidationError) as exc:
            summary: dict[str, Any] = {"strategy": strategy, "score": None, "error": str(exc)}
            cli.err.print(f"{strategy}: {exc}", style="yellow", highlight=False)
        else:
            summary = report.summary()
            if not cli.json:
                _show(cli, report)
        if record:
            cli.call_service(SERVICE, "record_drift", strategy, _record(summary))
        results.append(summary)
    if cli.json:
        cli.emit_json({"strategies": results})


def _record(summary: dict[str, Any]) -> dict[str, Any]:
    return {**summary, "time": datetime.now(UTC)}


def _show(cli: CliContext, report: Any) -> None:
    rows = report.rows
    if len(rows):
        cli.console.print(drift_table(rows.to_dict("records")))
    cli.console.print(drift_line(report.summary()), highlight=False)
    for note in report.notes:
        cli.console.print(note, style="dim", highlight=False)


def drift_table(rows: list[dict[str, Any]]) -> FitTable:
    """Return the comparison's orders: bar, instrument, kind, status, side, quantities, prices, differences."""
    columns = [Col("bar"), Col("instrument", 1), Col("kind", 6), Col("status"), Col("side"),
               Col("qty bt", justify="right"), Col("qty live", justify="right"),
               Col("price bt", 3, justify="right"), Col("price live", 3, justify="right"),
               Col("Δ price", 2, justify="right")]
    out = []
    for row in rows:
        out.append([formats.clock(row["bar"].to_pydatetime() if hasattr(row["bar"], "to_pydatetime") else row["bar"]),
                    row["instrument"], row["kind"], Text(row["status"], style=STATUS_STYLE.get(row["status"], "")),
                    row["side_backtest"] or row["side_live"] or "-", formats.num(_abs(row["qty_backtest"])),
                    formats.num(_abs(row["qty_live"])), formats.num(row["price_backtest"]),
                    formats.num(row["price_live"]), formats.num(row["price_diff"])])
    return FitTable(columns, out)


def _abs(value: Any) -> Any:
    return abs(value) if isinstance(value, Decimal) else None


def drift_line(summary: Mapping[str, Any]) -> Text:
    """Return a drift summary in a line: score, counts, both PnLs and their difference."""
    text = Text(f"{summary['strategy']}: drift ")
    text.append(f"{summary['score']:g}", style="bold")
    text.append(f" / 100 over {formats.when(summary['start'])} .. {formats.when(summary['end'])}; "
                f"{summary['matched']} matched, {summary['missing']} missing, {summary['extra']} extra; pnl live ")
    text.append(formats.money(summary["pnl_live"]))
    text.append(", backtest ")
    text.append(formats.money(summary["pnl_backtest"]))
    text.append(", diff ")
    text.append(formats.money(summary["pnl_diff"]))
    return text
