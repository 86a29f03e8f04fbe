"""Download commands: ``history get|jobs|cancel|retry|update`` against history_service.

``get`` submits a download job and, waiting (the default on a terminal),
shows a progress bar fed by the job's ``job.<id>.<event>`` messages on the
bus (instruments done, bars written, rate, ETA), with the job's state read
back each second so a message lost on the bus loses nothing but a frame of
the bar. It exits with the source error's code (15) when instruments failed,
naming each with its reason; the job is kept and ``retry`` runs them again.
The ``history`` group is the one other data commands (read, export,
bar-sizes, summary) join.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from trader.cli import history_tables as tables
from trader.cli.context import CliContext, ensure_listening, pass_cli
from trader.cli.formats import count
from trader.cli.history_read import READ_COMMANDS
from trader.cli.history_summary import summary_command
from trader.cli.options import MOMENT
from trader.data.sources import check_options, options_help
from trader.errors import Conflict, SourceError
from trader.messaging.pubsub import Message, Subscriber

SERVICE = "history_service"
SUBMIT_TIMEOUT = 60.0  # a universe's members read, and an update's last stored bars, before the answer
POLL = 1.0  # seconds between reads of a followed job's state
LOOKBACK = {"1d": timedelta(days=365)}  # an update of an instrument never stored: from this far back
DEFAULT_LOOKBACK = timedelta(days=30)


def register(group: click.Group) -> None:
    """Add the ``history`` group, with the store's commands of the other history modules, to the ``trader`` group."""
    for command in (*READ_COMMANDS, summary_command):
        history.add_command(command)
    group.add_command(history)


@click.group()
def history() -> None:
    """Market data in the store: download it, follow the jobs, read, export, summarise.

    \b
    Examples:
      trader history get AAPL MSFT --bar-size 1m --start 2026-03-02
      trader history jobs
    """


WAIT_OPTION = click.option("--wait/--no-wait", default=None,
                           help="Follow the job to its end with a progress bar (default: on a terminal).")


def _options(path: Path | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    if path is not None and not path.is_file():
        raise click.BadParameter(f"no file {str(path)!r}", param_hint="--file")
    options: dict[str, Any] = {"path": str(path.resolve())} if path is not None else {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: give NAME=VALUE", param_hint="--option")
        try:
            options[name.strip()] = json.loads(text)
        except ValueError:
            options[name.strip()] = text
    return options


@history.command(epilog=f"""\b
Instruments are contract keys, or symbols read without a broker: AAPL is
AAPL.STK, ESZ6 ES.FUT.202612, EUR.USD EUR.CASH.USD.

Source options, -o NAME=VALUE (VALUE is read as JSON if it is: true, 5):

{options_help()}""")
@click.argument("symbols", nargs=-1)
@click.option("--universe", "-u", help="Every member of this universe instead of SYMBOLs.")
@click.option("--bar-size", "-b", default="1d", show_default=True, help="1m, 5m, 1h, 1d, or IB's '1 min'...")
@click.option("--start", type=MOMENT, required=True, help="First bar's date or time (UTC).")
@click.option("--end", type=MOMENT, default=None,
              help="End, excluded (UTC; default now; at most the start of the bar forming now).")
@click.option("--source", "-s", default="ib", show_default=True, help="ib, polygon, yahoo or file.")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV or Parquet file (source file).")
@click.option("--option", "-o", "pairs", multiple=True, metavar="NAME=VALUE", help="A source option (repeat; see the list below).")
@WAIT_OPTION
@pass_cli
def get(cli: CliContext, symbols: tuple[str, ...], universe: str | None, bar_size: str, start: datetime,
        end: datetime | None, source: str, path: Path | None, pairs: tuple[str, ...], wait: bool | None) -> None:
    """Download bars of SYMBOLs (or a universe's members) into the store.

    The job is durable: it survives a restart of history_service and resumes
    where it stopped. One instrument failing does not stop the others. A
    window the source answers empty writes nothing: bars stored there stay
    (the job counts those windows: "empty").

    Off a terminal, --wait writes a line to stderr each time where the job
    stands changes ("job 3f9a0c12 queued behind 2402f608 and 1 more",
    "job 3f9a0c12 waiting on IB pacing until 01:42:29 UTC", "job 3f9a0c12
    running 1/3").

    \b
    Examples:
      trader history get AAPL MSFT --bar-size 1m --start 2026-03-02
      trader history get -u tech -b 1d --start 2021-01-01 --source yahoo
      trader history get AAPL --source file --file aapl.csv --start 2026-01-01
      trader history get ES.FUT.202612 -b 1m --start 2026-12-01 -o use_rth=true
      trader history get ESZ6 -b 1m --start 2026-12-01 --no-wait --json
    JSON:
      Job: {"id", "state", "source", "bar_size", "start", "end", "universe",
        "options", "created", "updated", "runs", "cancel", "waiting": null
        or {"until", "reason", "key"} (a running job's window waits on IB
        pacing), "crashes": runs that ended with no outcome since the last
        retry, "error": why the last of them ended ("" if none),
        "queued_behind": null or the id of the job a queued one waits on,
        "ahead": jobs that run before it, "total", "done", "failed",
        "bars", "empty" (windows that came empty), "instruments": [{"key",
        "state", "start", "done_until", "bars", "windows", "empty",
        "error", "retryable"}]}
    Exits: 15 instruments failed (named), 3 a bad symbol, size, source or
      range (a start in the future), 4 unknown universe, 7 history_service
      not running, 9 cancelled
    """
    if bool(symbols) == bool(universe):
        raise click.UsageError("give SYMBOLs or --universe (one of them)")
    options = _options(path, pairs)
    check_options(source, options)
    kwargs = {"instruments": list(symbols) or None, "universe": universe, "options": options or None}
    _follow(cli, "submit", (source, bar_size, start, end), kwargs, _waits(cli, wait))


@history.command()
@click.argument("job_id", metavar="[ID]", required=False)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N jobs.")
@pass_cli
def jobs(cli: CliContext, job_id: str | None, limit: int) -> None:
    """List the download jobs, newest first; with ID, that job's instruments.

    A running job whose window waits on IB's pacing says until when (under
    its state); with ID, why too ("waiting on IB pacing until 19:21:05 UTC").
    One job runs at a time: a queued one says which job it is behind, and
    how many more (under its state); with ID, in a line ("queued behind
    3f9a0c12 and 1 more").

    \b
    Examples:
      trader history jobs
      trader history jobs 3f9a0c12
    JSON:
      [Job] without "instruments" (a job's as `history get`'s); with ID: Job
    Exits: 4 unknown job, 7 history_service not running
    """
    if job_id is None:
        cli.show(cli.call_service(SERVICE, "jobs", limit=limit), tables.jobs_table, "no jobs")
        return
    job = cli.call_service(SERVICE, "job", job_id)
    cli.show(job, tables.instruments_table)


@history.command()
@click.argument("job_id", metavar="ID")
@pass_cli
def cancel(cli: CliContext, job_id: str) -> None:
    """Cancel job ID: a queued one at once, a running one within a second or two.

    A running job stops even while it waits on IB's pacing; the window it was
    fetching is dropped, not written. What it wrote stays in the store;
    `history retry ID` goes on from there.

    \b
    Examples:
      trader history cancel 3f9a0c12
    JSON:
      Job (state CANCELLED, or RUNNING with "cancel": true until it stops)
    Exits: 4 unknown job, 9 the job has ended
    """
    job = cli.call_service(SERVICE, "cancel", job_id)
    if cli.json:
        cli.emit_json(job)
    elif job["state"] == "CANCELLED":
        cli.console.print(tables.summary(job))
    else:
        cli.console.print(f"job {job_id}: cancel requested; it stops within a second or two", highlight=False)


@history.command()
@click.argument("job_id", metavar="ID")
@click.argument("symbols", nargs=-1)
@WAIT_OPTION
@pass_cli
def retry(cli: CliContext, job_id: str, symbols: tuple[str, ...], wait: bool | None) -> None:
    """Run job ID again for its failed and unfinished instruments (or SYMBOLs).

    Each goes on from the end of its last window written.

    \b
    Examples:
      trader history retry 3f9a0c12
      trader history retry 3f9a0c12 MSFT --no-wait
    JSON:
      Job (as `history get`'s)
    Exits: 15 instruments failed again, 4 unknown job or symbol not in it,
      9 the job is queued or running, or has nothing to retry
    """
    _follow(cli, "retry", (job_id,), {"instruments": list(symbols) or None}, _waits(cli, wait))


@history.command(epilog="""\b
pycron's history_nightly job runs `history update --all` on weekdays
(configs/pycron.yaml, default profile).""")
@click.option("--all", "every", is_flag=True, help="Every universe in the store.")
@click.option("--universe", "-u", "names", multiple=True, help="This universe (repeat).")
@click.option("--bar-size", "-b", "sizes", multiple=True, help="Bar size (repeat; default: history.nightly_bar_sizes).")
@click.option("--source", "-s", default="ib", show_default=True, help="ib, polygon, yahoo.")
@click.option("--since", type=MOMENT, default=None,
              help="Start of instruments not stored yet (default: 1 year back for 1d, else 30 days).")
@click.option("--option", "-o", "pairs", multiple=True, metavar="NAME=VALUE", help="A source option (repeat; see the list below).")
@click.option("--wait/--no-wait", default=False, help="Follow each job to its end.")
@pass_cli
def update(cli: CliContext, every: bool, names: tuple[str, ...], sizes: tuple[str, ...], source: str,
           since: datetime | None, pairs: tuple[str, ...], wait: bool) -> None:
    """Bring universes' bars up to date: from each member's last stored bar to now.

    One job per bar size over the members of the universes (each instrument
    once); an instrument not stored yet starts at --since.

    \b
    Examples:
      trader history update --all
      trader history update -u tech -b 1m --since 2026-11-01 --wait
    JSON:
      [Job] (one per bar size)
    Exits: 4 unknown universe, 7 history_service not running, 15 instruments
      failed (with --wait)
    """
    from trader.data.factory import open_store
    from trader.data.requests import job_bar_size, universe_keys
    from trader.data.universes import Universes

    if every == bool(names):
        raise click.UsageError("give --all or --universe (one of them)")
    store = open_store(cli.settings())
    universes = Universes(store).names() if every else list(names)
    keys = list(dict.fromkeys(key for name in universes for key in universe_keys(store, name)))
    if not keys:
        cli.err.print("no universes in the store: nothing to update", style="dim", highlight=False)
        if cli.json:
            cli.emit_json([])
        return
    now = datetime.now(UTC)
    submitted = []
    for size in sizes or cli.settings().history.nightly_bar_sizes:
        start = since or now - LOOKBACK.get(job_bar_size(size), DEFAULT_LOOKBACK)
        kwargs = {"instruments": keys, "from_stored": True, "options": _options(None, pairs) or None}
        submitted.append(_follow(cli, "submit", (source, size, start, now), kwargs, wait, emit=False))
    if cli.json:
        cli.emit_json(submitted)


def _waits(cli: CliContext, wait: bool | None) -> bool:
    return cli.console.is_terminal if wait is None else wait


def _follow(cli: CliContext, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], wait: bool,
            *, emit: bool = True) -> dict[str, Any]:
    """Call ``method`` (submit, retry), follow the job if ``wait``, show it; raise if instruments failed."""
    try:
        job = asyncio.run(_call_and_watch(cli, method, args, kwargs, wait))
    except KeyboardInterrupt:
        cli.err.print("stopped following; the job goes on (`trader history jobs`)", style="dim", highlight=False)
        raise
    if emit and cli.json:
        cli.emit_json(job)
    elif not cli.json:
        cli.console.print(tables.summary(job))
        for line in tables.failures(job):
            cli.console.print(f"  {line}", style="red", highlight=False, soft_wrap=True)
        if tables.queued(job):  # what it waits behind
            cli.console.print(f"  {tables.queued(job)}", highlight=False)
        if job["state"] not in tables.ENDED:
            cli.console.print(f"follow it with `trader history jobs {job['id']}`", style="dim", highlight=False)
    items = [item for item in job.get("instruments", ()) if item["state"] == "FAILED"]
    failed = [item["key"] for item in items]
    if job["state"] == "CANCELLED" and wait:
        raise Conflict(f"job {job['id']} was cancelled", job=job["id"])
    if failed and job["state"] in tables.ENDED:
        raise SourceError(f"{count(len(failed), 'instrument')} failed in job {job['id']}: {', '.join(failed)}; "
                          + _next_step(job["id"], items), job=job["id"], failed=failed)
    return job


def _next_step(job_id: str, failed: list[dict[str, Any]]) -> str:
    """Return what to do about the failed instruments: retry those whose failure may pass, fix the others."""
    passing = [item["key"] for item in failed if item.get("retryable")]
    if not passing:
        return "a retry as things are fails the same way: fix what the errors say first"
    if len(passing) == len(failed):
        return f"`trader history retry {job_id}` runs them again"
    return f"`trader history retry {job_id} {' '.join(passing)}` runs those that may pass again"


async def _call_and_watch(cli: CliContext, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                          wait: bool) -> dict[str, Any]:
    events: asyncio.Queue[Message] = asyncio.Queue()
    subscriber = None
    if wait:  # listening before the job exists: no event of it is missed
        endpoint = cli.settings().bus.sub_endpoint
        ensure_listening(endpoint, "the bus")
        subscriber = Subscriber(endpoint, curve=cli.curve_client())
        subscriber.start()
        subscriber.observe("job").subscribe(events.put_nowait)
    try:
        job = await cli.call_service_async(SERVICE, method, *args, timeout=SUBMIT_TIMEOUT, **kwargs)
        return await _watch(cli, job, events) if wait else job
    finally:
        if subscriber is not None:
            subscriber.close()


async def _watch(cli: CliContext, job: dict[str, Any], events: asyncio.Queue[Message]) -> dict[str, Any]:
    """Follow ``job`` to its end: the bar from the bus's events, the state read back each second."""
    prefix = f"job.{job['id']}."
    shown = cli.console.is_terminal and not cli.json
    bar, task = tables.progress_bar(job, cli.console) if shown else (None, None)
    told = None if cli.console.is_terminal else ""  # off a terminal: each change of where the job stands, a line

    def tell(now: dict[str, Any]) -> None:
        nonlocal told
        if told is not None and (line := tables.stands(now)) != told:
            cli.err.print(f"job {job['id']} {line}", highlight=False, soft_wrap=True)
            told = line

    polled = time.monotonic()
    with bar if bar is not None else contextlib.nullcontext():
        tell(job)
        while job["state"] not in tables.ENDED:
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(events.get(), POLL)
                ours = message.topic.startswith(prefix)
                ended = ours and message.topic[len(prefix):].upper() in tables.ENDED
                if ours and bar is not None and task is not None and "instruments" in message.payload:
                    tables.advance(bar, task, message.payload)
                if ours and not ended and "instruments" in message.payload:  # it runs: where its event says
                    tell({"state": "RUNNING", "done": message.payload["instruments"], "failed": 0,
                          "total": message.payload["total"], "waiting": message.payload.get("waiting")})
                if not ended and time.monotonic() - polled < POLL:
                    continue
            job = await cli.call_service_async(SERVICE, "job", job["id"])
            polled = time.monotonic()
            if job["state"] not in tables.ENDED:
                tell(job)
            if bar is not None and task is not None:
                bar.update(task, queued=tables.queued(job))
        if bar is not None and task is not None and job["state"] != "CANCELLED":
            bar.update(task, completed=1.0, instruments=job["done"] + job["failed"], bars=job["bars"], eta=0)
    return job
