"""pycron's entry point: ``python -m pycron [--profile NAME]`` runs the supervisor until told to stop.

Loads the settings and the jobs file, refuses to start without a control
token, writes ``<run_dir>/pycron.pid``, serves the control API and supervises
the profile's jobs. SIGTERM, SIGINT or ``POST /shutdown`` stop every job in
reverse dependency order, then the process exits 0. A bad config exits with
the ConfigError's exit code and its message on stderr, before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys

from pycron import runfiles
from pycron.api import ControlServer
from pycron.config import PycronConfig, load_jobs
from pycron.supervisor import Supervisor
from trader.config import Settings, load_settings
from trader.errors import ConfigError, Conflict, TraderError
from trader.logsetup import setup_logging
from trader.messaging.curve import CurveKeys
from trader.messaging.loopback import require_protected_host
from trader.service.fds import raise_fd_limit

log = logging.getLogger("pycron")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pycron", description="Supervise the platform's processes."
    )
    parser.add_argument(
        "--profile", default=None, help="settings profile (default: TRADER_PROFILE or 'default')"
    )
    parser.add_argument(
        "--detached",
        action="store_true",
        help="log to logs/pycron.log only (rotated), not also to stderr, which `trader up -d` "
        "appends to logs/pycron.out and nothing rotates",
    )
    return parser.parse_args(argv)


async def serve(settings: Settings, config: PycronConfig, token: str) -> int:
    """Run the supervisor and its control API until a signal or ``POST /shutdown``; return the exit code.

    Raise Unavailable, before any job starts, if the control address is taken.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor = Supervisor(config, settings, trader_env=settings.locator_env())
    server = ControlServer(supervisor, token, stop.set)
    await server.start(settings.pycron.host, settings.pycron.port, tls_context(settings))
    runfiles.write_pid(settings)
    try:
        await supervisor.start()
        await stop.wait()
        log.info("stop requested")
    finally:
        await supervisor.shutdown()
        await server.close()
        runfiles.remove_pid(settings)
    log.info("pycron exits")
    return 0


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Return the control API's server TLS context from ``security.tls`` (None: plain HTTP, loopback only).

    Beyond loopback the API must be HTTPS: its bearer token would otherwise
    cross the network in clear, for anyone on the path to read and replay.
    """
    tls = settings.security.tls
    if tls.cert_file is None and tls.key_file is None:
        return None
    if tls.cert_file is None or tls.key_file is None:
        raise ConfigError("security.tls needs both cert_file and key_file (PEM)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = settings.path(tls.cert_file), settings.path(tls.key_file)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"security.tls: cannot load {cert} with {key}: {exc}") from None
    return context


def prepare(profile: str | None) -> tuple[Settings, PycronConfig, str]:
    """Load and check everything pycron needs before it starts anything; raise TraderError if unfit."""
    settings = load_settings(profile)
    if not settings.home.is_dir():
        raise ConfigError(f"the platform home {settings.home} is not a directory (TRADER_HOME)")
    token = runfiles.read_token(settings)
    if not token:
        raise ConfigError(
            "no control token: set TRADER_PYCRON__TOKEN or start pycron with `trader up` (which creates one)"
        )
    config = load_jobs(settings)
    # Off loopback: HTTPS for the API, CURVE keys for the bus pycron reads heartbeats from.
    require_protected_host(settings.pycron.host, settings.pycron.port, "pycron's control API binding",
                           protected=tls_context(settings) is not None)
    CurveKeys.from_settings(settings)
    other = runfiles.running_pid(settings)
    if other is not None and other != os.getpid():
        raise Conflict(f"pycron is already running for {settings.home} (pid {other})")
    return settings, config, token


def main(argv: list[str] | None = None) -> int:
    """Run pycron; return the process exit code."""
    args = _parse_args(argv)
    setup_logging("pycron")
    try:
        settings, config, token = prepare(args.profile)
    except TraderError as exc:
        print(f"pycron: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    # A daemon keeps no caller's directory busy; jobs get their own cwd anyway.
    os.chdir(settings.home)
    setup_logging(
        "pycron",
        settings.path(settings.storage.logs_dir),
        settings.log_level,
        secrets=[*settings.secrets(), token],
        max_bytes=settings.logging.max_bytes,
        backups=settings.logging.backups,
        stderr=not args.detached,
    )
    log.info(
        "pycron starting (pid %d, profile %s, home %s)",
        os.getpid(),
        settings.profile,
        settings.home,
    )
    # pycron holds a pipe per job's output, the bus socket, its logs and the API's connections: at its
    # limit it could neither fork nor restart a job. The jobs inherit the raised limit.
    raise_fd_limit()
    try:
        return asyncio.run(serve(settings, config, token))
    except TraderError as exc:
        log.error("%s", exc)
        print(f"pycron: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
