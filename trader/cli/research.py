"""Research commands: ``trader backtest``, ``trader sweep`` and ``trader walkforward`` of a strategy plugin.

Each runs in this process, over the market store (``storage``, no service
has to run) or a CSV/Parquet file, by calling :mod:`trader.research` (the
functions a notebook calls): the plugin by its strategy name in
``strategies.directory``, its config's ``backtest:`` section, the options
on top. ``--set KEY=VALUE`` is a strategy parameter when its ``Params``
declares KEY, else a backtest setting (``slippage``,
``commission.stock_min``...); ``params.KEY`` / ``backtest.KEY`` say which.
The result is a summary table (80 columns), or with ``--json`` the data;
``--report FILE`` writes the self-contained HTML tear sheet. Heavy imports
(vectorbt, numba, plotly, dask) happen inside the commands, never when
``trader`` starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trader.cli.context import CliContext, pass_cli
from trader.cli.options import MOMENT
from trader.errors import ValidationError

if TYPE_CHECKING:
    from trader.backtest.result import SweepResult

__all__ = ["register"]

METHODS = ("grid", "random", "genetic")
# Loggers whose warnings --json keeps off stderr: with no handler configured, Python's last-resort handler
# prints them as bare text lines. The engine's "vectorbt booked N of M orders" is one; the JSON's "skipped"
# lists what it refused.
QUIET_WITH_JSON = ("trader.backtest.engine",)


def register(group: click.Group) -> None:
    """Add ``backtest``, ``sweep``, ``sweeps`` and ``walkforward`` to the ``trader`` group."""
    for command in (backtest, sweep, sweeps, walkforward):
        group.add_command(command)


def _run_options(fn: Callable[..., Any]) -> Any:
    """Add the options every research command shares: data, range, instruments, --set, --report."""
    for option in (
        click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the self-contained HTML report (charts, metrics) to FILE."),
        click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                     help="Override a strategy parameter (fast=5) or a backtest setting (slippage=0.0005, "
                          "initial_cash=50000, commission.stock_min=1); repeatable."),
        click.option("--instruments", "-i", multiple=True, metavar="SYMBOL[,SYMBOL]",
                     help="Instruments to run (default: the config's backtest.instruments, else the "
                          "strategy's); repeatable or comma-separated."),
        click.option("--end", type=MOMENT, help="End of the range, exclusive (default: the last bar)."),
        click.option("--start", type=MOMENT, help="First bar (default: the first stored)."),
        click.option("--data", "data_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="A CSV or Parquet file of bars instead of the market store (--start/--end "
                          "still cut it)."),
        click.argument("name"),
    ):
        fn = option(fn)
    return fn


def _search_options(fn: Callable[..., Any]) -> Any:
    """Add the options of a parameter search: the space, the method, the objective, the workers."""
    for option in (
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of random and genetic."),
        click.option("--scheduler", metavar="ADDR",
                     help="A Dask scheduler's address (tcp://HOST:PORT) instead of a LocalCluster."),
        click.option("--workers", "-w", type=click.IntRange(min=1),
                     help="Worker processes of the LocalCluster (default: the cores)."),
        click.option("--trials", type=click.IntRange(min=1),
                     help="Distinct combinations random and genetic evaluate (default: 100, or the "
                          "space's size if smaller)."),
        click.option("--constraint", "constraints", multiple=True, metavar="EXPR",
                     help="Keep combinations whose metrics satisfy EXPR ('max_drawdown < 0.2', "
                          "'trades >= 10'); repeatable."),
        click.option("--objective", default="sharpe", show_default=True,
                     help="Metric to maximise: sharpe, sortino, cagr, calmar, total_return..."),
        click.option("--method", type=click.Choice(METHODS), default="grid", show_default=True,
                     help="grid: every combination; random: --trials of them; genetic: NSGA-II."),
        click.option("--param", "space", multiple=True, required=True, metavar="NAME=RANGE",
                     help="A parameter's values: LO:HI (integers, HI included), LO:HI:STEP, or A,B,C; "
                          "repeatable."),
    ):
        fn = option(fn)
    return fn


def _instruments(values: tuple[str, ...]) -> list[str] | None:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return names or None


@contextlib.contextmanager
def _quiet(cli: CliContext) -> Iterator[None]:
    """With --json, keep :data:`QUIET_WITH_JSON`'s log lines off stderr while the block runs."""
    if not cli.json:
        yield
        return
    loggers = [logging.getLogger(name) for name in QUIET_WITH_JSON]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _common(cli: CliContext, name: str, data_file: Path | None, start: datetime | None, end: datetime | None,
            instruments: tuple[str, ...], assignments: tuple[str, ...]) -> dict[str, Any]:
    from trader.backtest.job import parse_assignments

    return {"start": start, "end": end, "instruments": _instruments(instruments), "data": data_file,
            "platform": cli.settings(), "sets": parse_assignments(assignments)}


@click.command()
@_run_options
@pass_cli
def backtest(cli: CliContext, name: str, data_file: Path | None, start: datetime | None, end: datetime | None,
             instruments: tuple[str, ...], assignments: tuple[str, ...], report_file: Path | None) -> None:
    """Backtest strategy NAME over stored bars (or --data FILE) and show its metrics and trades.

    The strategy runs unchanged: signals over the whole history, sized as
    live, traded at the next bar's open with tws-sim's commissions and the
    configured slippage. What the run left out (gaps, NaN targets) is listed,
    with the Monte Carlo risk of the daily returns (block bootstrap of
    backtest.simulations paths over horizon_days: VaR, CVaR, drawdown).

    \b
    Examples:
      trader backtest ma_crossover --start 2026-01-02 --end 2026-03-01
      trader backtest ma_crossover --data bars.csv --set fast=5 --set slow=20
      trader backtest ma_crossover -i AAPL,MSFT --set slippage=0.0005
      trader backtest ma_crossover --start 2026-01-02 --report ma.html
      trader backtest ma_crossover --json
    JSON:
      {"strategy": string, "params": {name: value}, "bar_size": string,
       "instruments": [string], "start": time, "end": time, "bars": integer,
       "settings": {key: value}, "initial_cash": number, "final_equity":
       number,
       "orders": [{"time": time, "fill_time": time, "instrument": string,
         "side": "BUY" | "SELL", "quantity": number, "price": number,
         "commission": number, "reason": "signal" | "stop_loss" |
         "take_profit"}],
       "trades": [{"instrument": string, "direction": "long" | "short",
         "entry_time": time, "exit_time": time | null, "quantity": number,
         "entry_price": number, "exit_price": number | null, "pnl": number,
         "return": number, "commission": number, "bars": integer}],
       "metrics": {name: number | null}, "skipped": [string],
       "monte_carlo": {"method": string, "paths": integer, "horizon_days":
         integer, "seed": integer, "risk": {name: number | null}} | {"note":
         string},
       "elapsed": number, "report": string | null}
      (time: the bar whose close decided the order; fill_time: the bar at
      whose open it filled)
    Exits: 3 bad --set or signals, 4 unknown strategy or no bars in the range,
      14 store unusable
    """
    from trader import research
    from trader.cli import research_tables

    options = _common(cli, name, data_file, start, end, instruments, assignments)
    with _quiet(cli), research_tables.stage(cli, f"backtest of {name}") as step:
        result = research.backtest(name, progress=step, **options)
        step("Monte Carlo")
        risk = research_tables.monte_carlo(result)
        if report_file is not None:
            step("writing the report")
            result.report(report_file)
    if cli.json:
        cli.emit_json({**research_tables.backtest_dict(result), "monte_carlo": risk,
                       "report": str(report_file) if report_file else None})
        return
    research_tables.show_backtest(cli.console, result, report_file, risk)


@click.command()
@_search_options
@_run_options
@pass_cli
def sweep(cli: CliContext, name: str, data_file: Path | None, start: datetime | None, end: datetime | None,
          instruments: tuple[str, ...], assignments: tuple[str, ...], report_file: Path | None,
          space: tuple[str, ...], method: str, objective: str, constraints: tuple[str, ...],
          trials: int | None, workers: int | None, scheduler: str | None, seed: int) -> None:
    """Search strategy NAME's parameters for the best objective, on Dask.

    The combinations are cut into chunks of columns run on a LocalCluster
    (or --scheduler), so memory stays bounded; a worker that dies costs only
    its chunks, which run again. The table is stored (Parquet under
    data/research/sweeps) and shown best first.

    \b
    Examples:
      trader sweep ma_crossover --param fast=2:20 --param slow=10:100:5
      trader sweep ma_crossover --param fast=2:20 --method genetic --trials 200
      trader sweep ma_crossover --param allow_short=true,false -w 2
      trader sweep ma_crossover --param fast=2:10 --constraint 'trades >= 10'
      trader sweep ma_crossover --param fast=2:20 --report sweep.html
      trader sweep ma_crossover --param fast=2:20 --scheduler tcp://10.0.0.5:8786
    JSON:
      {"strategy": string, "method": string, "objective": string,
       "space": {name: [value]}, "best": {name: value},
       "combinations": integer, "scored": integer, "refused": integer,
       "trials": integer | null,
       "rows": [{name: value, "objective": number | null, metric: number |
         null, "note": string | null, "refused": boolean}]  (best first),
       "path": string | null, "chunks": integer, "chunks_retried": integer,
       "dropped": integer, "constraints": [string], "elapsed": number,
       "report": string | null}
      (combinations = scored + refused rows; refused (= dropped): the
      strategy's Params refused the combination, the note says why;
      trials: asked for, random and genetic ask until that many distinct
      combinations or the space is exhausted)
    Exits: 3 unknown parameter, empty range, objective, or every
      combination refused, 4 unknown strategy or no bars, 7 scheduler not
      answering
    """
    from trader import research

    options = _common(cli, name, data_file, start, end, instruments, assignments)
    with _quiet(cli):
        result = research.sweep(name, list(space), method=method, objective=objective, constraints=constraints,
                                trials=trials, workers=workers, scheduler=scheduler, seed=seed,
                                progress=not cli.json, **options)
    _show_sweep(cli, result, report_file)


def _show_sweep(cli: CliContext, result: SweepResult, report_file: Path | None) -> None:
    """Write the sweep's report if asked, then print it: its JSON, or the table of its best rows."""
    from trader.cli import research_tables

    if report_file is not None:
        result.report(report_file)
    if cli.json:
        cli.emit_json({**research_tables.sweep_dict(result), "report": str(report_file) if report_file else None})
        return
    research_tables.show_sweep(cli.console, result, report_file)


@click.command()
@click.argument("sweep_id", metavar="[ID]", required=False)
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the stored sweep's HTML report to FILE (nothing is recomputed).")
@pass_cli
def sweeps(cli: CliContext, sweep_id: str | None, report_file: Path | None) -> None:
    """List the stored sweeps, or show stored sweep ID again (its table, --report FILE).

    Every `trader sweep` stores its table under data/research/sweeps; this
    reads it back without recomputing anything. ID is the file's stem (as
    listed) or a path to the Parquet file.

    \b
    Examples:
      trader sweeps
      trader sweeps ma_crossover-20261207T224500-3f2a --report sweep.html
    JSON:
      without ID: [{"id": string, "strategy": string, "method": string,
        "objective": string, "rows": integer, "best": number | null,
        "created": string, "path": string}]  (newest first)
      with ID: as `trader sweep --json`
    Exits: 3 --report without ID, 4 no stored sweep ID
    """
    from trader.backtest import sweep_store
    from trader.cli import research_tables

    home = cli.settings().home
    if sweep_id is None:
        if report_file is not None:
            raise ValidationError("--report needs the ID of a stored sweep (trader sweeps lists them)")
        entries = sweep_store.listing(home=home)
        if cli.json:
            cli.emit_json(entries)
            return
        research_tables.show_sweep_list(cli.console, entries, sweep_store.sweeps_dir(home))
        return
    result = sweep_store.load(sweep_id, home=home)
    _show_sweep(cli, result, report_file)


@click.command()
@click.option("--unit", type=click.Choice(["days", "bars"]), default="days", show_default=True,
              help="What --in-sample and --out-of-sample count: trading days or bars.")
@click.option("--out-of-sample", "--oos", "out_of_sample", type=click.IntRange(min=1), required=True,
              help="Length tested with each window's winner; the next window starts this much later.")
@click.option("--in-sample", "--is", "in_sample", type=click.IntRange(min=1), required=True,
              help="Length each window optimises on.")
@_search_options
@_run_options
@pass_cli
def walkforward(cli: CliContext, name: str, data_file: Path | None, start: datetime | None, end: datetime | None,
                instruments: tuple[str, ...], assignments: tuple[str, ...], report_file: Path | None,
                space: tuple[str, ...], method: str, objective: str, constraints: tuple[str, ...],
                trials: int | None, workers: int | None, scheduler: str | None, seed: int, in_sample: int,
                out_of_sample: int, unit: str) -> None:
    """Walk strategy NAME forward: optimise in-sample, test out-of-sample, roll.

    Each window's best parameters (a sweep of its in-sample days) trade the
    out-of-sample days after it; the next window starts that much later. The
    out-of-sample runs are stitched into one account's equity, the honest
    estimate of the optimised strategy. A last out-of-sample window shorter
    than half of --out-of-sample is dropped, not scored.

    \b
    Examples:
      trader walkforward ma_crossover --param fast=2:20 --is 60 --oos 20
      trader walkforward ma_crossover --param slow=10:60:5 --in-sample 40 --oos 10
      trader walkforward ma_crossover --param fast=2:9 --unit bars --is 90 --oos 9
    JSON:
      {"strategy": string, "objective": string, "windows": [{"is_start":
         time, "is_end": time, "oos_start": time, "oos_end": time, "params":
         {name: value}, "is_objective": number | null, "oos_objective":
         number | null}], "total_return": number | null,
       "equity": [{"time": time, "equity": number}], "elapsed": number,
       "report": string | null}
    Exits: 3 unknown parameter, empty range or too few bars, 4 unknown
      strategy or no bars, 7 scheduler not answering
    """
    from trader import research
    from trader.cli import research_tables

    options = _common(cli, name, data_file, start, end, instruments, assignments)
    with _quiet(cli):
        result = research.walkforward(name, list(space), in_sample=in_sample, out_of_sample=out_of_sample,
                                      unit=unit, method=method, objective=objective, constraints=constraints,
                                      trials=trials, workers=workers, scheduler=scheduler, seed=seed,
                                      progress=not cli.json, **options)
    if report_file is not None:
        result.report(report_file)
    if cli.json:
        cli.emit_json({**research_tables.walkforward_dict(result),
                       "report": str(report_file) if report_file else None})
        return
    research_tables.show_walkforward(cli.console, result, report_file)
