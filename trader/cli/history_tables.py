"""What the ``history`` job commands show: the jobs, one job's instruments, a run's end, the progress bar."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from trader.cli.formats import clock, count
from trader.cli.layout import Col, FitTable

JOB_STYLE = {"QUEUED": "cyan", "RUNNING": "blue", "DONE": "green", "PARTIAL": "yellow", "FAILED": "bold red",
             "CANCELLED": "dim", "PENDING": "cyan"}
ENDED = frozenset({"DONE", "PARTIAL", "FAILED", "CANCELLED"})


def state(text: str) -> Text:
    """Return a job's or an instrument's state, coloured by how it stands."""
    return Text(text, style=JOB_STYLE.get(text, ""))


def span(start: datetime, end: datetime) -> str:
    """Return a range as its dates (``2026-03-02..03-04``), with times when they are not midnight."""
    def part(moment: datetime, fmt: str) -> str:
        return moment.strftime(fmt if (moment.hour, moment.minute) == (0, 0) else fmt + " %H:%M")

    return f"{part(start, '%Y-%m-%d')}..{part(end, '%m-%d' if end.year == start.year else '%Y-%m-%d')}"


def waiting(job: Mapping[str, Any]) -> str:
    """Return why and until when a running job stands still (``waiting on IB pacing until 19:21:05 UTC``), or ""."""
    wait = job.get("waiting")
    if not wait or job.get("state") != "RUNNING":
        return ""
    return f"waiting on {wait['reason']} until {clock(wait['until'])}"


def queued(job: Mapping[str, Any]) -> str:
    """Return what a queued job waits on (``queued behind 3f9a0c12 and 2 more``), or ""."""
    if job.get("state") != "QUEUED":
        return ""
    behind, ahead = job.get("queued_behind"), int(job.get("ahead") or 0)
    if not behind:
        return "queued: next to run"
    return f"queued behind {behind}" + (f" and {ahead - 1} more" if ahead > 1 else "")


def stands(job: Mapping[str, Any]) -> str:
    """Return where a job not ended stands: queued behind whom, waiting on what, or running k/n instruments."""
    if job.get("state") == "RUNNING" and not waiting(job):
        return f"running {job['done'] + job['failed']}/{job['total']}"
    return queued(job) or waiting(job) or job["state"]


def _state_of(job: Mapping[str, Any]) -> Text:
    text = state(job["state"])
    if waiting(job):
        text.append(f"\nwaits {job['waiting']['until'].astimezone(UTC):%H:%M:%S}", style="dim")  # why: `jobs ID`
    elif job["state"] == "QUEUED":
        behind, ahead = job.get("queued_behind"), int(job.get("ahead") or 0)
        text.append(f"\nbehind {behind}" if behind else "\nnext", style="dim")
        if behind and ahead > 1:  # its full place, as `jobs ID` says it
            text.append(f"\nand {ahead - 1} more", style="dim")
    return text


def _bars(job: Mapping[str, Any]) -> Text:
    text = Text(f"{job['bars']:,}")
    if job.get("empty"):
        text.append(f"\n{job['empty']:,} empty", style="yellow")
    return text


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> FitTable:
    """Return the jobs: id, state, source, bar size, instruments done/total, failed, bars, range, created."""
    columns = [Col("id"), Col("state"), Col("source", 3), Col("bar", 4), Col("done", justify="right"),
               Col("failed", 2, justify="right"), Col("bars", 1, justify="right"), Col("range", 5),
               Col("created", 6)]
    rows = [[job["id"], _state_of(job), job["source"], job["bar_size"], f"{job['done']}/{job['total']}",
             str(job["failed"]), _bars(job), span(job["start"], job["end"]), clock(job["created"])]
            for job in jobs]
    return FitTable(columns, rows)


def instruments_table(job: Mapping[str, Any]) -> FitTable:
    """Return one job's instruments: key, state, bars, windows (those empty), written up to, error."""
    columns = [Col("instrument"), Col("state"), Col("bars", 1, justify="right"), Col("windows", 3, justify="right"),
               Col("written to", 2), Col("error", 1, wrap=True)]
    rows = [[item["key"], state(item["state"]), f"{item['bars']:,}", _windows(item),
             clock(item["done_until"]) if item["done_until"] else "-", item["error"] or "-"]
            for item in job["instruments"]]
    waits = waiting(job) or queued(job)
    return FitTable(columns, rows, title=f"job {job['id']} {job['state']}: {job['source']} {job['bar_size']} "
                                         f"{span(job['start'], job['end'])}" + (f"\n{waits}" if waits else ""))


def summary(job: Mapping[str, Any]) -> Text:
    """Return a job in a line: ``job 3f9a0c12 DONE: 3/3 instruments, 8,640 bars``."""
    text = Text(f"job {job['id']} ")
    text.append_text(state(job["state"]))
    text.append(f": {job['done']}/{count(job['total'], 'instrument')}, {job['bars']:,} bars")
    if job.get("empty"):  # nothing written for those windows, and what was stored there kept
        text.append(f", {count(job['empty'], 'empty window')} (stored bars kept)", style="yellow")
    if job["failed"]:
        text.append(f", {job['failed']} failed", style="red")
    return text


def _windows(item: Mapping[str, Any]) -> str:
    empty = item.get("empty") or 0
    return f"{item['windows']} ({empty} empty)" if empty else str(item["windows"])


def failures(job: Mapping[str, Any]) -> list[str]:
    """Return each failed instrument's error (it names the instrument)."""
    return [item["error"] or f"{item['key']}: failed" for item in job.get("instruments", ())
            if item["state"] == "FAILED"]


def _compact(n: float) -> str:
    """Return a count short enough for the bar's line: ``98,765``, ``1.23M``."""
    return f"{n:,.0f}" if n < 1_000_000 else f"{n / 1_000_000:,.2f}M"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Figures(ProgressColumn):
    """The job's figures after the bar: instruments, bars, rate, ETA (from the service's progress events)."""

    def render(self, task: Task) -> Text:
        f = task.fields
        if f.get("queued"):  # not started: say what it waits on
            return Text(f"{f['instruments']}/{f['count']}  {f['queued']}", no_wrap=True, overflow="ellipsis")
        if f.get("waiting"):  # the window in hand waits on pacing: say why the figures stand still
            wait = f["waiting"]
            return Text(f"{f['instruments']}/{f['count']}  waiting on {wait['reason']} until "
                        f"{wait['until'].astimezone(UTC):%H:%M:%S}", no_wrap=True, overflow="ellipsis")
        return Text(f"{f['instruments']}/{f['count']} instr  {_compact(f['bars'])} bars  {_compact(f['rate'])}/s  "
                    f"ETA {_duration(f['eta'])}", no_wrap=True, overflow="ellipsis")


def progress_bar(job: Mapping[str, Any], console: Console) -> tuple[Progress, TaskID]:
    """Return a progress display for ``job`` on ``console`` (at most 80 columns) and its task id."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=14), _Figures(), console=console)
    task = bar.add_task(job["id"], total=1.0, completed=0, instruments=job["done"] + job["failed"],
                        count=job["total"], bars=job["bars"], rate=0.0, eta=None,
                        waiting=job.get("waiting"), queued=queued(job))
    return bar, task


def advance(bar: Progress, task: TaskID, figures: Mapping[str, Any]) -> None:
    """Show the figures of a progress event on the bar (the job runs: no longer queued)."""
    bar.update(task, completed=float(figures.get("share", 0.0)), instruments=figures["instruments"],
               bars=figures["bars"], rate=float(figures.get("rate") or 0.0), eta=figures.get("eta"),
               waiting=figures.get("waiting"), queued="")
