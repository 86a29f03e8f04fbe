"""The data layer in ``trader status``: tick_recorder's counts and history_service's queue, each as a table.

Both come from the services' ``status`` RPC (history_service's also from its
``jobs``, see :func:`queue_summary`; what of its queue could not be read is
shown as unknown, with ``queue_error``); a service that cannot be asked is
shown by :func:`unanswered_table`, with why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from trader.cli import history_tables
from trader.cli.formats import count
from trader.cli.service_tables import status_table

QUEUE_LIMIT = 100  # the newest jobs history_service is asked for, to count the queued ones


def queue_summary(jobs: Iterable[Mapping[str, Any]], running: str | None) -> dict[str, Any]:
    """Return history_service's queue from its newest jobs (``jobs`` RPC) and the id of the job it runs.

    ``{"running": Job | null, "queued": int, "queued_capped": bool}``:
    ``queued_capped`` when the jobs asked for were all listed (QUEUE_LIMIT),
    so more may wait than were counted.
    """
    listed = list(jobs)
    run = next((job for job in listed if job["id"] == running), None) if running else None
    queued = sum(job["state"] == "QUEUED" for job in listed)
    return {"running": dict(run) if run is not None else None, "queued": queued,
            "queued_capped": len(listed) >= QUEUE_LIMIT}


def recorder_table(status: Mapping[str, Any]) -> Table:
    """Return tick_recorder's status: ticks received, stored and lost, its batches, what is unstored, its errors."""
    table = status_table("tick_recorder", status)
    lost = int(status.get("discarded") or 0)
    malformed = int(status.get("malformed") or 0)
    ticks = Text(f"{int(status.get('received') or 0):,} received, {int(status.get('written') or 0):,} stored, ")
    ticks.append(f"{lost:,} lost", style="red" if lost else "")
    if malformed:
        ticks.append(f", {malformed:,} malformed", style="yellow")
    table.add_row("ticks", ticks)
    batches = int(status.get("batches") or 0)
    took = status.get("last_write_ms")
    table.add_row("batches", count(batches, "batch", "batches") + " written"
                  + (f", the last in {took:g} ms" if batches and took is not None else ""))
    pending = int(status.get("pending") or 0)
    unstored = f"{pending:,} (open batch {int(status.get('open_batch') or 0):,}"
    unstored += ", one being written)" if status.get("writing") else ")"
    if status.get("behind"):
        table.add_row("unstored", Text(f"{unstored}: the writer is behind, the bus waits", style="yellow"))
    else:
        table.add_row("unstored", unstored)
    if status.get("previous_lost"):
        table.add_row("last run", Text(f"lost {int(status['previous_lost']):,} ticks (killed before they "
                                       "were written)", style="yellow"))
    if status.get("last_error"):
        table.add_row("store", Text(f"refuses writes: {status['last_error']}", style="bold red"))
    return table


def history_table(status: Mapping[str, Any]) -> Table:
    """Return history_service's status: the job it runs (its progress, what it waits on) and how many queue."""
    table = status_table("history_service", status)
    queue: Mapping[str, Any] = status.get("queue") or {}
    running = queue.get("running")
    if running is not None:
        job = history_tables.summary(running)
        waits = history_tables.waiting(running)
        if waits:
            job.append(f"\n{waits}", style="cyan")
        table.add_row("running", job)
    else:
        table.add_row("running", Text("no job" if not status.get("job") else f"job {status['job']}", style="dim"))
    if "queued" in queue:
        queued = int(queue["queued"])
        more = "+" if queue.get("queued_capped") and queued else ""
        table.add_row("queued", f"{queued}{more} job{'s' * (queued != 1)}" if queued else "none")
    elif "queue" in status:  # asked, but not known (see queue_error)
        table.add_row("queued", Text("unknown", style="yellow"))
    if status.get("queue_error"):
        table.add_row("not read", Text(str(status["queue_error"]), style="yellow"))
    return table


def unanswered_table(service: str, why: str, *, down: bool = True) -> Table:
    """Return a service that did not answer ``status`` (``down``) or is not asked (not run, not configured)."""
    table = Table(title=service, title_justify="default", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("state")
    table.add_row("service", Text(why, style="red" if down else "dim"))
    return table
