"""What the research commands print: the backtest summary, the sweep's best rows, the walk-forward windows.

Every table fits 80 columns (:class:`trader.cli.layout.FitTable`, the
least important columns left out first on a narrower terminal). Metrics
are formatted by their unit in ``trader.backtest.metrics.UNITS``: fractions as
percents (``total_return`` 0.123 -> ``12.30 %``), money to cents, counts
whole, durations in days (hours or minutes under a day), ratios with three
decimals; a trade's float prices to at most six decimals (no float noise).
:func:`stage` shows what a long command is doing on stderr (a spinner on a
terminal, nothing in a pipe or with ``--json``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console, RenderableType
from rich.text import Text

from trader.cli import formats
from trader.cli.context import CliContext
from trader.cli.layout import Col, FitTable

if TYPE_CHECKING:
    from trader.backtest.result import BacktestResult, SweepResult, WalkForwardResult

__all__ = ["backtest_dict", "metric_text", "monte_carlo", "show_backtest", "show_sweep", "show_walkforward", "stage", "sweep_dict",
           "walkforward_dict"]

# The headline metrics of the summary, in order (every one is in --json).
HEADLINE = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
            "max_drawdown_days", "trades", "win_rate", "profit_factor", "expectancy", "exposure",
            "fees", "best_trade", "worst_trade")
TRADES_SHOWN = 10
ROWS_SHOWN = 10


@contextmanager
def stage(cli: CliContext, what: str) -> Iterator[Callable[[str], None]]:
    """Show ``what: <step>`` on stderr while the block runs (not with --json); yield the step setter."""
    if cli.json or not cli.err.is_terminal:
        yield lambda _step: None
        return
    with cli.err.status(what) as status:
        yield lambda step: status.update(f"{what}: {step}")


def metric_text(name: str, value: Any) -> str:
    """Return a metric's value as the summary shows it, by the kind its name says."""
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return "-"
    from trader.backtest.metrics import UNITS

    number = float(value)
    unit = UNITS.get(name, "ratio")
    if unit == "fraction":
        return f"{number * 100:,.2f} %"
    if unit == "count":
        return f"{number:,.0f}"
    if unit == "currency":
        return f"{number:,.2f}"
    if unit == "days":
        return _duration(number)
    if unit == "flag":
        return "yes" if number else "no"
    return f"{number:,.3f}" if abs(number) < 10 else f"{number:,.2f}"


def _duration(days: float) -> str:
    """Return a duration in days as it reads best: ``3.2 d``, under a day ``5.5 h``, under an hour ``12.0 min``."""
    if abs(days) >= 1 or days == 0:
        return f"{days:,.1f} d"
    if abs(days) >= 1 / 24:
        return f"{days * 24:.1f} h"
    return f"{days * 24 * 60:.1f} min"


def _price(value: Any) -> str:
    """Return a trade's price: a Decimal as written, a float to at most six decimals (93.7214, not 93.72139999999999)."""
    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, Decimal):
        return formats.num(value)
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


_LONG_FLOAT = re.compile(r"-?\d+\.\d{5,}(?:e-?\d+)?")


def _readable(note: str) -> str:
    """Return ``note`` with its long floats to four significant digits (-1.4415196126223224 -> -1.442)."""
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group()):.4g}", note)


def _significant(value: Any, digits: int = 10) -> Any:
    """Return a float to ``digits`` significant digits (its float noise gone); anything else as it is."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def _headline(stats: dict[str, Any]) -> list[str]:
    names = [n for n in HEADLINE if n in stats]
    return names or list(stats)[: len(HEADLINE)]


def _range_text(index: pd.Index) -> str:
    if len(index) == 0:
        return "no bars"
    return f"{_stamp(index[0])} -> {_stamp(index[-1])} UTC"


def monte_carlo(result: BacktestResult) -> dict[str, Any]:
    """Return the run's Monte Carlo risk (block bootstrap, ``settings.simulations`` paths), or why there is none."""
    from trader.errors import ValidationError

    settings = result.settings
    if settings.simulations == 0:
        return {"note": "off (backtest setting simulations: 0)"}
    try:
        found = result.monte_carlo()
    except ValidationError as exc:  # too little to resample, or a return below -100 %
        return {"note": _readable(str(exc))}
    return {"method": found.method, "paths": found.paths, "horizon_days": found.horizon_days, "seed": found.seed,
            "risk": {k: _plain(v) for k, v in found.risk.items()}}


def _monte_carlo_line(risk: dict[str, Any]) -> str:
    if "note" in risk:
        return f"Monte Carlo: {risk['note']}"
    figures = risk["risk"]
    pct = {k: metric_text("var_95", figures.get(k)) for k in ("var_95", "cvar_95", "var_99", "max_drawdown_95")}
    return (f"Monte Carlo, {risk['method']} bootstrap, {risk['paths']:,} paths of {risk['horizon_days']} days "
            f"(losses):\n  VaR 95 {pct['var_95']}  CVaR 95 {pct['cvar_95']}  VaR 99 {pct['var_99']}  "
            f"max drawdown 95th pct {pct['max_drawdown_95']}")


def show_backtest(console: Console, result: BacktestResult, report: Path | None,
                  risk: dict[str, Any] | None = None) -> None:
    """Print a backtest: what ran, the headline metrics two by two, the last trades, what was skipped."""
    params = " ".join(f"{k}={_value(v)}" for k, v in result.params.items()) or "none"
    instruments = ", ".join(result.prices) or "-"
    console.print(Text.assemble((result.strategy, "bold"), f"  {instruments}  {result.bar_size}  ",
                                _range_text(result.equity.index)), highlight=False)
    console.print(f"params: {params}", highlight=False)
    still_open = int(result.trades["exit_time"].isna().sum()) if len(result.trades) else 0
    closed = len(result.trades) - still_open
    opened = f" + {still_open:,} open" if still_open else ""
    console.print(f"{len(result.equity):,} bars, {_many(len(result.orders), 'order')}, "
                  f"{closed:,} closed trade{'' if closed == 1 else 's'}{opened} in {result.elapsed:.2f} s",
                  highlight=False)
    stats = result.stats
    names = _headline(stats)
    half = (len(names) + 1) // 2
    left, right = names[:half], names[half:]
    rows = []
    for i, first in enumerate(left):
        second = right[i] if i < len(right) else None
        rows.append([first, metric_text(first, stats[first]), second or "",
                     metric_text(second, stats[second]) if second else ""])
    console.print(FitTable([Col("metric"), Col("value", justify="right"), Col("metric"),
                            Col("value", justify="right")], rows, title="metrics"))
    if len(result.trades):
        console.print(_trades_table(result.trades.tail(TRADES_SHOWN), len(result.trades)))
    else:
        console.print("no trades", style="dim")
    if risk is not None:
        console.print(_monte_carlo_line(risk), highlight=False)
    if result.skipped:
        console.print(f"skipped {formats.count(len(result.skipped), 'item')}:", style="yellow")
        for line in result.skipped[:5]:
            console.print(f"  {line}", highlight=False)
        if len(result.skipped) > 5:
            console.print(f"  ... {len(result.skipped) - 5} more (--json lists them all)", style="dim")
    if report is not None:
        console.print(f"report: {report}", highlight=False, soft_wrap=True)


def _many(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _trades_table(trades: pd.DataFrame, total: int) -> FitTable:
    cols = [Col("instrument"), Col("dir"), Col("entry (UTC)"), Col("exit (UTC)", 2), Col("qty", justify="right"),
            Col("entry", 3, justify="right"), Col("exit", 3, justify="right"), Col("pnl", justify="right"),
            Col("bars", 6, justify="right")]
    rows: list[list[RenderableType]] = []
    for row in trades.itertuples(index=False):
        values = row._asdict()
        rows.append([str(values["instrument"]), str(values["direction"]), _stamp(values["entry_time"]),
                     _stamp(values["exit_time"]), formats.num(values["quantity"]), _price(values["entry_price"]),
                     _price(values["exit_price"]),
                     formats.money(values["pnl"]), str(values["bars"])])
    title = f"last {len(rows)} of {_many(total, 'trade')} (open ones too)" if total > len(rows) else "trades"
    return FitTable(cols, rows, title=title)


def _stamp(value: Any) -> str:
    if value is None or pd.isna(value):  # NaT: still open
        return "open"
    return value.strftime("%Y-%m-%d %H:%M")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "item"):
        value = value.item()
    return formats.num(value) if isinstance(value, (int, float)) else str(value)


def backtest_dict(result: BacktestResult) -> dict[str, Any]:
    """Return a backtest as the JSON of ``trader backtest --json``: ``result.to_dict()``, exact numbers as numbers.

    The result's own JSON writes an order's Decimals as text (for any JSON
    reader); the CLI writes every number as a JSON number with its exact
    digits (trader.cli.jsonout), so they are turned back into Decimals here:
    an order's quantity, price and commission are exact. The trades' and the
    final equity's floats (sums of float products) are rounded to ten
    significant digits, their float noise dropped (-2.98, not
    -2.9799999999995634).
    """
    doc = result.to_dict()
    doc["trades"] = [{k: _significant(v) for k, v in trade.items()} for trade in doc["trades"]]
    doc["final_equity"] = _significant(doc.get("final_equity"))
    for order in doc["orders"]:
        for key in ("quantity", "price", "commission"):
            if isinstance(order.get(key), str):
                order[key] = Decimal(order[key])
    if isinstance(doc.get("initial_cash"), str):
        doc["initial_cash"] = Decimal(doc["initial_cash"])
    doc["settings"] = result.settings.model_dump()
    return doc


def sweep_dict(result: SweepResult) -> dict[str, Any]:
    """Return a sweep as the JSON of ``trader sweep --json``.

    Every row of the stored table is listed, the refused combinations too
    (``refused`` true, ``objective`` null, ``note`` the reason); ``scored``
    counts the others. ``note`` is null on a row without one.
    """
    table = result.table
    refused = _refused(table)
    rows = []
    for record, no in zip(table.to_dict("records"), refused, strict=True):
        row = {k: _plain(v) for k, v in record.items()}
        row["note"] = row.get("note") or None
        row["refused"] = bool(no)
        rows.append(row)
    return {"strategy": result.strategy, "method": result.method, "objective": result.objective,
            "space": {k: [_plain(v) for v in values] for k, values in result.space.items()},
            "best": {k: _plain(v) for k, v in result.best.items()} if len(table) else None,
            "combinations": len(table), "scored": int((~refused).sum()), "refused": int(refused.sum()),
            "trials": result.trials or None, "rows": rows, "path": str(result.path) if result.path else None,
            "chunks": result.chunks, "chunks_retried": result.chunks_retried, "dropped": result.dropped,
            "constraints": list(result.constraints), "elapsed": result.elapsed}


def _refused(table: pd.DataFrame) -> Any:
    """Return a boolean array: the rows whose combination the strategy's Params refused."""
    if "note" not in table:
        return pd.Series(False, index=table.index).to_numpy()
    return table["note"].fillna("").astype(str).str.startswith("invalid").to_numpy()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def show_sweep(console: Console, result: SweepResult, report: Path | None) -> None:
    """Print a sweep: the best scored rows (parameters, objective, headline metrics), what was refused, where stored."""
    table = result.table
    refused = _refused(table)
    scored = table[~refused]
    params = list(result.space)
    shown = [m for m in ("objective", "sharpe", "cagr", "max_drawdown", "trades")
             if m in table.columns and m != result.objective]  # the objective's own column says it once
    cols = [Col(p) for p in params] + [Col(m, 0 if m == "objective" else 3, justify="right") for m in shown]
    rows = [[_value(r[p]) for p in params] + [metric_text(result.objective if m == "objective" else m, r[m])
                                              for m in shown]
            for r in scored.head(ROWS_SHOWN).to_dict("records")]
    refusals = f", {int(refused.sum()):,} refused by the parameters" if refused.any() else ""
    console.print(Text.assemble((result.strategy, "bold"), f" by {result.objective} ({result.method}): best "
                                f"{len(rows)} of {len(scored):,} scored{refusals}"), highlight=False)
    console.print(FitTable(cols, rows))
    shortfall = _shortfall(result)
    if shortfall:
        console.print(shortfall, highlight=False)
    retried = f", {result.chunks_retried} retried" if result.chunks_retried else ""
    console.print(f"{_many(result.chunks, 'chunk')}{retried}, {result.elapsed:.1f} s", highlight=False)
    if result.path is not None:
        console.print(f"stored: {result.path}", highlight=False, soft_wrap=True)
    if report is not None:
        console.print(f"report: {report}", highlight=False, soft_wrap=True)


def _shortfall(result: SweepResult) -> str:
    """Return why a random or genetic sweep has fewer rows than the trials asked for, or ''."""
    if result.method == "grid" or not result.trials or len(result.table) >= result.trials:
        return ""
    size = math.prod(len(values) for values in result.space.values())
    if len(result.table) >= size:
        return f"{result.trials:,} trials asked: the space has only {size:,} combinations, each tried once"
    return (f"{result.trials:,} trials asked: the {result.method} sampler kept proposing combinations it had "
            f"tried, stopped at {len(result.table):,} distinct")


def show_sweep_list(console: Console, entries: list[dict[str, Any]], directory: Path) -> None:
    """Print the stored sweeps, newest first."""
    if not entries:
        console.print(f"no stored sweeps in {directory}", highlight=False, soft_wrap=True)
        return
    cols = [Col("id", wrap=True), Col("method"), Col("objective"), Col("rows", justify="right"),
            Col("best", justify="right")]
    rows = [[e["id"], e["method"], e["objective"], str(e["rows"]), metric_text(e["objective"], e["best"])]
            for e in entries]
    console.print(FitTable(cols, rows, title=f"{formats.count(len(entries), 'stored sweep')}"))


def walkforward_dict(result: WalkForwardResult) -> dict[str, Any]:
    """Return a walk-forward as the JSON of ``trader walkforward --json``."""
    windows = [{k: ({pk: _plain(pv) for pk, pv in v.items()} if isinstance(v, dict) else _plain(v))
                for k, v in record.items()} for record in result.windows.to_dict("records")]
    equity = result.equity
    total = float(equity.iloc[-1] / equity.iloc[0] - 1) if len(equity) > 1 else None
    return {"strategy": result.strategy, "objective": result.objective, "windows": windows,
            "total_return": total,
            "equity": [{"time": t.isoformat(), "equity": _plain(v)} for t, v in equity.items()],
            "elapsed": result.elapsed}


def show_walkforward(console: Console, result: WalkForwardResult, report: Path | None) -> None:
    """Print a walk-forward: per window its out-of-sample range, chosen parameters and both scores."""
    cols = [Col("out-of-sample (UTC)"), Col("params", wrap=True), Col("in-sample", justify="right"),
            Col("out", justify="right")]
    rows = []
    for record in result.windows.to_dict("records"):
        chosen = record.get("params") or {}
        rows.append([f"{_stamp(record['oos_start'])} -> {_stamp(record['oos_end'])}",
                     " ".join(f"{k}={_value(v)}" for k, v in chosen.items()),
                     metric_text(result.objective, record.get("is_objective")),
                     metric_text(result.objective, record.get("oos_objective"))])
    console.print(FitTable(cols, rows, title=f"{result.strategy}: walk-forward by {result.objective}"))
    total = walkforward_dict(result)["total_return"]
    console.print(f"stitched out-of-sample return: {metric_text('total_return', total)}, "
                  f"{result.elapsed:.1f} s", highlight=False)
    if report is not None:
        console.print(f"report: {report}", highlight=False, soft_wrap=True)
