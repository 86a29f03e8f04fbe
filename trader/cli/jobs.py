"""pycron's jobs as a user sees them: ``trader status`` and ``trader pycron start|stop|restart JOB``.

Every command here asks the running pycron's control API (its token from
``<run_dir>/pycron.token`` or the environment). When nothing answers and no
pycron runs for this home, the user is told so in a sentence, not shown the
socket's errno. ``status`` also asks the services for their own status, all at
once: trader_service, strategy_service, and the data layer's tick_recorder
(its counts) and history_service (its queue, from its ``jobs``). Each call
waits at most STATUS_TIMEOUT; history_service's ``status`` and ``jobs`` go
together, then ``job`` when its running job is not listed (two timeouts at
worst). One that does not answer, has no RPC port, or answers something
that cannot be shown is shown as such; it never fails the command.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from pycron import runfiles
from pycron.client import PycronClient
from trader.cli import data_tables, service_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.config import Settings
from trader.errors import ConfigError, TraderError, Unavailable

log = logging.getLogger(__name__)

STATUS_TIMEOUT = 2.0  # a service's status, shown when it answers
TAIL_LINES = 20
STATE_STYLE = {
    "RUNNING": "green",
    "STARTING": "cyan",
    "PENDING": "cyan",
    "BACKOFF": "yellow",
    "FAILED": "bold red",
    "STOPPING": "yellow",
    "STOPPED": "dim",
    "SCHEDULED": "blue",
    "COMPLETED": "blue",
}
# `trader status`'s jobs: name, state and health always; the rest as the width allows.
JOB_COLUMNS = (
    Col("job"),
    Col("state"),
    Col("pid", 3, justify="right"),
    Col("uptime", 2, justify="right"),
    Col("restarts", 4, justify="right"),
    Col("healthy"),
    Col("heartbeat", 1),
    Col("last exit", 5),
)
# The services whose own status `trader status` shows, each as its table.
SERVICE_TABLES: dict[str, Callable[[Mapping[str, Any]], Table]] = {
    "trader_service": service_tables.service_table,
    "strategy_service": service_tables.strategy_service_table,
    "history_service": data_tables.history_table,
    "tick_recorder": data_tables.recorder_table,
}
# Shown even when not run by the profile: the data layer, whose absence an operator should see.
ALWAYS_SHOWN = ("history_service", "tick_recorder")


@dataclass(frozen=True)
class Answer:
    """A service's ``status``, or why there is none (``down: ...``, ``not configured: ...``)."""

    status: dict[str, Any] | None
    error: str = ""


def register(group: click.Group) -> None:
    """Add ``status`` and the ``pycron`` commands to the ``trader`` group."""
    for command in (status, pycron_group):
        group.add_command(command)


# -- helpers -----------------------------------------------------------------------


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """Return the last ``lines`` lines of a text file ([] if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def show_tail(title: str, path: Path) -> None:
    # Plain echo, not rich: log lines must reach the terminal unwrapped and unstyled.
    click.echo(f"--- {title}: last lines of {path}", err=True)
    for line in tail(path) or ["(empty)"]:
        click.echo(line, err=True)


def running_client(settings: Settings, *, timeout: float = 5.0) -> PycronClient:
    """Return a client for the running pycron (``timeout`` seconds per answer); Unavailable if there is evidently none."""
    token = runfiles.read_token(settings)
    if not token:
        raise Unavailable(
            f"pycron is not running for {settings.home} (no control token; start it with `trader up`)"
        )
    return PycronClient.with_token(settings, token, timeout=timeout)


def job_names(settings: Settings, timeout: float) -> list[str]:
    """Return the names of the running pycron's jobs (Unavailable if no pycron answers)."""
    with running_client(settings, timeout=timeout) as client:
        return [job["name"] for job in client.jobs()]


@contextmanager
def _pycron(settings: Settings) -> Iterator[PycronClient]:
    """Yield a client for the running pycron; a refusal with no pycron alive here says just that.

    The control API's own refusal names the socket error (``[Errno 111]``);
    when this home has no live pycron, the user is told so in a sentence.
    """
    with running_client(settings) as client:
        try:
            yield client
        except Unavailable:
            if runfiles.running_pid(settings) is not None:
                raise
            raise Unavailable(
                f"pycron is not running for {settings.home} (nothing answers at {client.base_url}); "
                "start the stack with `trader up`"
            ) from None


def format_duration(seconds: float | None) -> str:
    """Return ``42s``, ``3m05s``, ``2h07m`` or ``4d03h``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def job_line(job: dict[str, Any]) -> str:
    pid = f" pid {job['pid']}" if job.get("pid") else ""
    health = "healthy" if job.get("healthy") else "not healthy"
    return f"{job['name']}: {job['state']}{pid}, {health}, restarts {job.get('restarts', 0)}"


# -- status ------------------------------------------------------------------------------


@click.command()
@pass_cli
def status(cli: CliContext) -> None:
    """Show every job (state, pid, uptime, restarts, health, heartbeat) and the services.

    Under the jobs, each service's own status: trader_service (IB, kill
    switch, orders), strategy_service (strategies by state), tick_recorder
    (ticks received, stored and lost, batches, ticks not stored yet) and
    history_service (the job it runs and its progress, jobs queued). The
    services are asked at once, each call within 2 s (history_service's
    status and jobs together, then its running job if not listed: 4 s at
    worst). A service that does not answer is shown as down, with why; one
    whose answer cannot be shown, as an error: neither fails the command.

    \b
    Examples:
      trader status
      trader status --json
    JSON:
      [Job + {"service": the service's status, or "service_error": why there
        is none}]  (the service jobs only: trader_service, strategy_service,
        tick_recorder, history_service), then for tick_recorder and
        history_service when the profile does not run them: {"name",
        "service_error": "not run by profile P"} (no Job fields)
      tick_recorder's service: {state, reason, pid, uptime, received,
        written, discarded (lost), pending (not stored yet), open_batch,
        writing, batches, malformed, behind, last_error, last_write_ms,
        previous_lost, ...}
      history_service's service: {state, reason, pid, uptime, job (the id it
        runs or null), queue: {running: Job or null, queued: integer,
        queued_capped: boolean (true: more may queue than were counted)} or
        null (unknown), queue_error: why the queue or its running job is
        unknown (only then)}
    Exits: 7 pycron not running (the services that answer are shown first)
    """
    try:
        with _pycron(cli.settings()) as client:
            result = client.status()
    except Unavailable:
        if not cli.json:
            answers = asyncio.run(_ask_services(cli, list(SERVICE_TABLES)))
            _show_services(cli, answers, unanswered=False)
        raise
    names = {job.get("name") for job in result["jobs"]}
    answers = asyncio.run(_ask_services(cli, [name for name in SERVICE_TABLES if name in names]))
    not_run = [name for name in ALWAYS_SHOWN if name not in names]
    for name in not_run:
        answers[name] = Answer(None, f"not run by profile {result['profile']}")
    if cli.json:
        for job in result["jobs"]:
            answer = answers.get(job.get("name"))
            if answer is not None and answer.status is not None:
                job["service"] = answer.status
            elif answer is not None:
                job["service_error"] = answer.error
        cli.emit_json([*result["jobs"], *({"name": name, "service_error": answers[name].error} for name in not_run)])
        return
    cli.console.print(jobs_table(result))
    _show_services(cli, answers, unanswered=True)


def jobs_table(status: Mapping[str, Any]) -> FitTable:
    """Return pycron's jobs (its ``status``) as a table that fits the terminal."""
    rows = []
    for job in status["jobs"]:
        beat = job.get("heartbeat")
        rows.append([
            job["name"],
            Text(job["state"], style=STATE_STYLE.get(job["state"], "")),
            str(job["pid"] or "-"),
            format_duration(job.get("uptime")),
            str(job["restarts"]),
            Text("yes", style="green") if job["healthy"] else Text("no", style="red"),
            f"{beat['state']} {beat['age']:.1f}s ago" if beat else "-",
            "-" if job.get("last_exit") is None else str(job["last_exit"]),
        ])
    return FitTable(JOB_COLUMNS, rows, title=f"pycron pid {status['pid']}, profile {status['profile']}")


def _show_services(cli: CliContext, answers: Mapping[str, Answer], *, unanswered: bool) -> None:
    """Print each service's status table, in SERVICE_TABLES's order; with ``unanswered``, also why one has none.

    A status its table cannot show is shown as that service's error: the
    other tables still follow.
    """
    for name, table in SERVICE_TABLES.items():
        answer = answers.get(name)
        if answer is not None and answer.status is not None:
            try:
                cli.console.print(table(answer.status))
            except Exception as exc:
                log.debug("cannot show the status of %s", name, exc_info=True)
                cli.console.print(data_tables.unanswered_table(name, f"error: cannot show its status ({exc!r})"))
        elif answer is not None and unanswered:
            cli.console.print(data_tables.unanswered_table(name, answer.error, down=answer.error.startswith("down")))


async def _ask_services(cli: CliContext, names: list[str]) -> dict[str, Answer]:
    """Ask every service of ``names`` for its status at once; return each one's answer."""
    answers = await asyncio.gather(*(_ask(cli, name) for name in names))
    return dict(zip(names, answers, strict=True))


async def _ask(cli: CliContext, name: str) -> Answer:
    """Return service ``name``'s status (history_service's with its queue), or why it has none.

    Never raises an Exception: whatever one service answers (or fails with)
    becomes its Answer, so it cannot fail ``trader status``.
    """
    try:
        endpoint = cli.endpoint(name)
    except ConfigError:
        return Answer(None, f"not configured: no services.{name}.rpc_port")
    try:
        if name == "history_service":
            return Answer(await _history_status(cli, name))
        return Answer(_mapping("status", await cli.call_service_async(name, "status", timeout=STATUS_TIMEOUT)))
    except Unavailable:
        return Answer(None, f"down: no answer at {endpoint}")
    except TraderError as exc:
        return Answer(None, f"error: {exc}")
    except Exception as exc:  # a malformed answer, or a failure of the client: this service's error only
        log.debug("status of %s failed", name, exc_info=True)
        return Answer(None, f"error: {exc!r}")


async def _history_status(cli: CliContext, name: str) -> dict[str, Any]:
    """Return history_service's ``status`` with its ``queue`` (asked at once), and the running job if not listed.

    Once ``status`` answered, the service is up: a ``jobs`` or ``job`` call
    that fails (a malformed answer, the running job pruned) leaves what is
    not known of the queue None (``queue``, or its ``running``) and says why
    in ``queue_error``.
    """
    answers: list[Any] = list(await asyncio.gather(
        cli.call_service_async(name, "status", timeout=STATUS_TIMEOUT),
        cli.call_service_async(name, "jobs", limit=data_tables.QUEUE_LIMIT, timeout=STATUS_TIMEOUT),
        return_exceptions=True))
    told, listed = answers
    for answer in (told, listed):
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancelled: not the service's doing
    if isinstance(told, BaseException):
        raise told
    found = _mapping("status", told)
    found["queue"] = None
    try:
        if isinstance(listed, BaseException):
            raise listed
        queue = data_tables.queue_summary(listed, found.get("job"))
    except Exception as exc:
        found["queue_error"] = f"jobs: {_why(exc)}"
        return found
    found["queue"] = queue
    if found.get("job") and queue["running"] is None:  # older than the newest jobs listed
        try:
            job = _mapping("job", await cli.call_service_async(name, "job", found["job"], timeout=STATUS_TIMEOUT))
            queue["running"] = {k: v for k, v in job.items() if k != "instruments"}
        except Exception as exc:
            found["queue_error"] = f"job {found['job']}: {_why(exc)}"
    return found


def _mapping(method: str, answer: Any) -> dict[str, Any]:
    """Return ``answer`` as a dict, or raise TypeError if ``method`` answered something else."""
    if not isinstance(answer, Mapping):
        raise TypeError(f"{method} answered a {type(answer).__name__}, not a mapping")
    return dict(answer)


def _why(exc: Exception) -> str:
    """Return ``exc`` as ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


# -- pycron start|stop|restart JOB ---------------------------------------------------------


@click.group("pycron")
def pycron_group() -> None:
    """Control one job of the running pycron.

    \b
    Examples:
      trader pycron restart trader_service
    """


def _control(cli: CliContext, action: str, name: str) -> None:
    with _pycron(cli.settings()) as client:
        operations = {"start": client.start, "stop": client.stop, "restart": client.restart}
        job = operations[action](name)
    cli.show(job, job_line)
    if action != "stop" and not job["ready"]:
        show_tail(f"job {name}", Path(job["log"]))
        raise Unavailable(f"job {name} is {job['state']} after the {action} (log: {job['log']})")


@pycron_group.command("start")
@click.argument("job")
@pass_cli
def start_job(cli: CliContext, job: str) -> None:
    """Start JOB (a stopped or failed job; a scheduled job runs now).

    \b
    Examples:
      trader pycron start tws
    JSON:
      Job
    Exits: 4 unknown job, 7 the job is not ready after the start
    """
    _control(cli, "start", job)


@pycron_group.command("stop")
@click.argument("job")
@pass_cli
def stop_job(cli: CliContext, job: str) -> None:
    """Stop JOB; it stays stopped until started again.

    \b
    Examples:
      trader pycron stop strategy_service
    JSON:
      Job
    Exits: 4 unknown job, 7 pycron not running
    """
    _control(cli, "stop", job)


@pycron_group.command("restart")
@click.argument("job")
@pass_cli
def restart_job(cli: CliContext, job: str) -> None:
    """Stop JOB if it runs, then start it.

    \b
    Examples:
      trader pycron restart trader_service
    JSON:
      Job
    Exits: 4 unknown job, 7 the job is not ready after the restart
    """
    _control(cli, "restart", job)
