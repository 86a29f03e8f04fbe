"""Stack commands: ``trader up`` and ``trader down`` (``status`` and ``pycron``: trader.cli.jobs).

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
from pathlib import Path
from typing import Any

import click

from pycron import runfiles
from pycron.client import PycronClient
from trader.cli.context import CliContext, pass_cli
from trader.cli.formats import count
from trader.cli.jobs import job_line, running_client, show_tail, tail
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


def register(group: click.Group) -> None:
    """Add the stack commands to the ``trader`` group."""
    for command in (up, down):
        group.add_command(command)


# -- helpers -----------------------------------------------------------------------


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
    cli.show({"pid": pid, "profile": settings.profile, "jobs": jobs},
             lambda up: "\n".join([*map(job_line, up["jobs"]),
                                    f"up: {count(len(up['jobs']), 'job')} ready (pycron pid {up['pid']})"]))


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
                show_tail("pycron", out_path)
            raise _error_for_exit(code, message)
        try:
            jobs, answered = client.jobs(), True
        except (Unavailable, Timeout):
            # Not listening yet, or someone else holds the port and pycron is about to exit.
            jobs, answered = [], False
        failed = [j for j in jobs if j["state"] == "FAILED"]
        if failed:
            for job in failed:
                show_tail(f"job {job['name']}", Path(job["log"]))
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
                show_tail(f"job {job['name']} ({job['state']})", Path(job["log"]))
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
        with running_client(settings) as client:
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
