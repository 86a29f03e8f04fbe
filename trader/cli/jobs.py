"""pycron's jobs as a user sees them: ``trader status`` and ``trader pycron start|stop|restart JOB``.

Every command here asks the running pycron's control API (its token from
``<run_dir>/pycron.token`` or the environment). When nothing answers and no
pycron runs for this home, the user is told so in a sentence, not shown the
socket's errno. ``status`` also shows the services' own status, all asked
at once (:mod:`trader.cli.service_status`); no service's answer fails it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from pycron import runfiles
from pycron.client import PycronClient
from trader.cli.context import CliContext, job_fix, pass_cli
from trader.cli.layout import Col, FitTable
from trader.cli.service_status import (
    ALWAYS_SHOWN,
    SERVICE_TABLES,
    Answer,
    ask_services,
    show_services,
)
from trader.config import Settings
from trader.errors import Unavailable

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
# Jobs waiting as intended (a cron job between runs, a one-shot job done): health is not theirs to have.
NO_HEALTH = frozenset({"SCHEDULED", "COMPLETED"})

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
    """Return a job in a line: ``name: STATE pid N, healthy, restarts N`` (no health while it waits as intended)."""
    health = "" if job["state"] in NO_HEALTH else ", healthy" if job.get("healthy") else ", not healthy"
    return f"{job['name']}: {job['state']}{pid}{health}, restarts {job.get('restarts', 0)}"


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
      tick_recorder's service: {service, state, reason, pid, time, uptime,
        received, written (stored), discarded (lost), pending (not stored
        yet), open_batch, writing, batches, malformed, behind, last_error,
        last_write_ms, previous_lost, ...}
      history_service's service: {service, state, reason, pid, time, uptime,
        job (the id it runs or null), worker (its id in the job queue),
        queue: {running:
        Job or null, queued: integer, queued_capped: boolean (true: more may
        queue than were counted)} or null (unknown), queue_error: why the
        queue or its running job is unknown (only then), ...}
      A service that does not answer while its job is not RUNNING: its
        service_error names the job's state and the fix, e.g. "down: no
        answer at tcp://...; the history_service job is STOPPED: `trader
        pycron start history_service`".
    Exits: 7 pycron not running (the services that answer are shown first)
    """
    try:
        with _pycron(cli.settings()) as client:
            result = client.status()
    except Unavailable:
        if not cli.json:
            answers = asyncio.run(ask_services(cli, list(SERVICE_TABLES)))
            show_services(cli, answers, unanswered=False)
        raise
    names = {job.get("name") for job in result["jobs"]}
    answers = asyncio.run(ask_services(cli, [name for name in SERVICE_TABLES if name in names]))
    with_fixes(answers, result["jobs"])
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
    show_services(cli, answers, unanswered=True)


def health(job: Mapping[str, Any]) -> Text:
    """Return a job's health as ``yes``, ``no``, or ``-`` for a job waiting as intended (NO_HEALTH)."""
    if job["state"] in NO_HEALTH:
        return Text("-")
    return Text("yes", style="green") if job["healthy"] else Text("no", style="red")


def with_fixes(answers: dict[str, Answer], jobs: list[dict[str, Any]]) -> None:
    """Add to each service that did not answer, its job not RUNNING, the job's state and the command that fixes it."""
    states = {job.get("name"): job.get("state") for job in jobs}
    for name, answer in answers.items():
        if answer.status is None and answer.error.startswith("down") and states.get(name) != "RUNNING":
            answers[name] = Answer(None, f"{answer.error}; {job_fix(name, states.get(name))}")


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
            health(job),
            f"{beat['state']} {beat['age']:.1f}s ago" if beat else "-",
            "-" if job.get("last_exit") is None else str(job["last_exit"]),
        ])
    return FitTable(JOB_COLUMNS, rows, title=f"pycron pid {status['pid']}, profile {status['profile']}")


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
