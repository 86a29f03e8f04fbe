"""Stack commands: ``trader up``, ``down``, ``status`` and ``pycron start|stop|restart JOB``.

``up`` starts pycron (``python -m pycron``), which starts the profile's jobs.
The control token reaches pycron through its environment, never its command
line; so does Redis's password (``TRADER_REDIS__PASSWORD``, else generated
into ``<run_dir>/redis.password``, mode 0600), which every job inherits. ``--detach`` runs pycron in a session of its own, logging to
``<logs_dir>/pycron.out``, and returns once every job is ready, or fails with
the log tail of the job that is not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from pycron import runfiles
from pycron.client import PycronClient
from trader.cli import render
from trader.cli.context import CliContext, pass_cli
from trader.cli.layout import Col, FitTable
from trader.config import Settings
from trader.errors import (
    EXIT_CODES,
    Conflict,
    InternalError,
    Timeout,
    TraderError,
    Unavailable,
    error_from_wire,
)

POLL = 0.2
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
    "trader_service": render.service_table,
    "strategy_service": render.strategy_service_table,
}


def register(group: click.Group) -> None:
    """Add the stack commands to the ``trader`` group."""
    for command in (up, down, status, pycron_group):
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


def _show_tail(title: str, path: Path) -> None:
    # Plain echo, not rich: log lines must reach the terminal unwrapped and unstyled.
    click.echo(f"--- {title}: last lines of {path}", err=True)
    for line in tail(path) or ["(empty)"]:
        click.echo(line, err=True)


def _running_client(settings: Settings) -> PycronClient:
    """Return a client for the running pycron, or raise Unavailable if there is evidently none."""
    token = runfiles.read_token(settings)
    if not token:
        raise Unavailable(
            f"pycron is not running for {settings.home} (no control token; start it with `trader up`)"
        )
    return PycronClient.with_token(settings, token)


def job_names(settings: Settings, timeout: float) -> list[str]:
    """Return the names of the running pycron's jobs (Unavailable if no pycron answers)."""
    token = runfiles.read_token(settings)
    if not token:
        raise Unavailable("pycron is not running (no control token)")
    with PycronClient.with_token(settings, token, timeout=timeout) as client:
        return [job["name"] for job in client.jobs()]


@contextmanager
def _pycron(settings: Settings) -> Iterator[PycronClient]:
    """Yield a client for the running pycron; a refusal with no pycron alive here says just that.

    The control API's own refusal names the socket error (``[Errno 111]``);
    when this home has no live pycron, the user is told so in a sentence.
    """
    with _running_client(settings) as client:
        try:
            yield client
        except Unavailable:
            if runfiles.running_pid(settings) is not None:
                raise
            raise Unavailable(
                f"pycron is not running for {settings.home} (nothing answers at {client.base_url}); "
                "start the stack with `trader up`"
            ) from None


def _pycron_environment(settings: Settings, token: str, redis_password: str) -> dict[str, str]:
    return {**os.environ, **settings.locator_env(), runfiles.TOKEN_ENV: token,
            runfiles.REDIS_PASSWORD_ENV: redis_password}


def _error_for_exit(code: int, message: str) -> TraderError:
    """Return the error class pycron exited with (by exit code), carrying its message."""
    for name, exit_code in EXIT_CODES.items():
        if exit_code == code:
            return error_from_wire({"code": name, "message": message})
    return InternalError(message)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while runfiles.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


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


def _job_line(job: dict[str, Any]) -> str:
    pid = f" pid {job['pid']}" if job.get("pid") else ""
    health = "healthy" if job.get("healthy") else "not healthy"
    return f"{job['name']}: {job['state']}{pid}, {health}, restarts {job.get('restarts', 0)}"


# -- up ------------------------------------------------------------------------------


@click.command()
@click.option("--profile", default=None, help="Profile to run (default: the global --profile).")
@click.option(
    "--detach",
    "-d",
    is_flag=True,
    help="Run pycron in the background; return once every job is ready.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=float,
    help="With --detach: seconds to wait for the jobs.",
)
@pass_cli
def up(cli: CliContext, profile: str | None, detach: bool, timeout: float) -> None:
    """Start pycron and the profile's jobs.

    \b
    Examples:
      trader up --detach
      trader up --profile test --detach --timeout 120
      trader up  # in the foreground, until Ctrl-C
    JSON:
      {"pid": integer, "profile": string, "jobs": [Job]}  (with --detach)
    Exits: 9 pycron already running, 6 a job not ready in time, 7 a job FAILED,
      78 bad configuration
    """
    settings = cli.settings(profile)
    pid = runfiles.running_pid(settings)
    if pid is not None:
        raise Conflict(
            f"pycron is already running for {settings.home} (pid {pid}); `trader down` first"
        )
    token = runfiles.ensure_token(settings)
    argv = [sys.executable, "-m", "pycron", "--profile", settings.profile]
    env = _pycron_environment(settings, token, runfiles.ensure_redis_password(settings))
    if not detach:
        _run_foreground(argv, env, settings)
        return
    logs = settings.path(settings.storage.logs_dir)
    logs.mkdir(parents=True, exist_ok=True)
    out_path = logs / "pycron.out"
    # Detached, pycron logs to pycron.log alone (rotated): its stderr, pycron.out, keeps only
    # what comes before logging starts (a config error) and what Python prints on a crash.
    pid = spawn_detached([*argv, "--detached"], env, out_path)
    if not cli.json:
        cli.err.print(
            f"pycron started (pid {pid}, profile {settings.profile}); waiting for the jobs",
            highlight=False,
        )
    with PycronClient.with_token(settings, token) as client:
        jobs = _wait_ready(pid, client, timeout, out_path)
    if cli.json:
        cli.emit_json({"pid": pid, "profile": settings.profile, "jobs": jobs})
    else:
        for job in jobs:
            cli.console.print(_job_line(job), highlight=False)
        cli.console.print(f"up: {len(jobs)} jobs ready (pycron pid {pid})", highlight=False)


def spawn_detached(argv: list[str], env: dict[str, str], out_path: Path) -> int:
    """Start ``argv`` in a new session with stdout and stderr appended to ``out_path``; return its pid.

    A bare pid rather than a Popen: the child is meant to outlive this process.
    """
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
                (os.POSIX_SPAWN_CLOSE, fd),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)


def _exit_code(pid: int) -> int | None:
    """Return the exit code of our child ``pid`` if it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if runfiles.pid_alive(pid) else 1
    return os.waitstatus_to_exitcode(status) if done == pid else None


def _run_foreground(argv: list[str], env: dict[str, str], settings: Settings) -> None:
    proc = subprocess.Popen(argv, env=env, cwd=settings.home)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached pycron too; a signal sent to us alone did not: forward it.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait()
    if code != 0:
        raise click.exceptions.Exit(code)


def _wait_ready(
    pid: int, client: PycronClient, timeout: float, out_path: Path
) -> list[dict[str, Any]]:
    """Poll until every job is ready; raise with the log tail of what failed or is late."""
    deadline = time.monotonic() + timeout
    jobs: list[dict[str, Any]] = []
    while True:
        code = _exit_code(pid)
        if code is not None:
            lines = tail(out_path)
            errors = [line for line in lines if line.startswith("pycron: error:")]
            message = (
                errors[-1].removeprefix("pycron: error:").strip()
                if errors
                else f"pycron exited with code {code}"
            )
            if not errors:
                _show_tail("pycron", out_path)
            raise _error_for_exit(code, message)
        try:
            jobs, answered = client.jobs(), True
        except (Unavailable, Timeout):
            # Not listening yet, or someone else holds the port and pycron is about to exit.
            jobs, answered = [], False
        failed = [j for j in jobs if j["state"] == "FAILED"]
        if failed:
            for job in failed:
                _show_tail(f"job {job['name']}", Path(job["log"]))
            names = ", ".join(j["name"] for j in failed)
            raise Unavailable(
                f"job {names} FAILED (last exit {failed[0]['last_exit']}); pycron (pid {pid}) is still "
                "running: see `trader status`, stop it with `trader down`"
            )
        if answered and all(j["ready"] for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            waiting = [j for j in jobs if not j["ready"]]
            for job in waiting:
                _show_tail(f"job {job['name']} ({job['state']})", Path(job["log"]))
            names = (
                ", ".join(f"{j['name']} ({j['state']})" for j in waiting) or "pycron's control API"
            )
            raise Timeout(
                f"not ready within {timeout:g}s: {names}; pycron (pid {pid}) is still running: "
                "see `trader status`, stop it with `trader down`"
            )
        time.sleep(POLL)


# -- down ------------------------------------------------------------------------------


@click.command()
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds to wait for pycron to exit.",
)
@pass_cli
def down(cli: CliContext, timeout: float) -> None:
    """Stop every job in reverse dependency order, then pycron.

    \b
    Examples:
      trader down
      trader down --timeout 120
    JSON:
      {"pid": integer | null, "stopped": boolean}  (pid null: pycron was not
        running)
    Exits: 6 pycron still running after --timeout
    """
    settings = cli.settings()
    pid = runfiles.running_pid(settings)
    try:
        with _running_client(settings) as client:
            pid = client.status()["pid"]
            client.shutdown()
    except Unavailable:
        if pid is None:
            if cli.json:
                cli.emit_json({"pid": None, "stopped": False})
            cli.err.print("pycron is not running", highlight=False)
            return
        # The API does not answer but the process lives: fall back to a signal.
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        raise Timeout(f"pycron (pid {pid}) still running {timeout:g}s after the shutdown request")
    if cli.json:
        cli.emit_json({"pid": pid, "stopped": True})
    cli.err.print(f"pycron (pid {pid}) stopped", highlight=False)


# -- status ------------------------------------------------------------------------------


@click.command()
@pass_cli
def status(cli: CliContext) -> None:
    """Show every job (state, pid, uptime, restarts, health, heartbeat) and the services.

    With --json, the trader_service and strategy_service jobs carry the
    service's own status as ``service``.

    \b
    Examples:
      trader status
      trader status --json
    JSON:
      [Job + {"service": trader_service's or strategy_service's status}]
    Exits: 7 pycron not running (the services that answer are shown first)
    """
    services = {name: _service_status(cli, name) for name in SERVICE_TABLES}
    try:
        with _pycron(cli.settings()) as client:
            result = client.status()
    except Unavailable:
        if not cli.json:
            _show_services(cli, services)
        raise
    if cli.json:
        for job in result["jobs"]:
            service = services.get(job.get("name"))
            if service is not None:
                job["service"] = render.to_jsonable(service)
        cli.emit_json(result["jobs"])
        return
    table = jobs_table(result)
    cli.console.print(table)
    _show_services(cli, services)


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


def _show_services(cli: CliContext, services: dict[str, dict[str, Any] | None]) -> None:
    """Print the status table of each service that answered."""
    for name, service in services.items():
        if service is not None:
            cli.console.print(SERVICE_TABLES[name](service))


def _service_status(cli: CliContext, name: str) -> dict[str, Any] | None:
    """Return service ``name``'s status, or None if it does not answer at once."""
    try:
        return cli.call_service(name, "status", timeout=STATUS_TIMEOUT)
    except TraderError:
        return None


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
    if cli.json:
        cli.emit_json(job)
    else:
        cli.console.print(_job_line(job), highlight=False)
    if action != "stop" and not job["ready"]:
        _show_tail(f"job {name}", Path(job["log"]))
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
