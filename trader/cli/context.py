"""The state every CLI command shares: global options, the settings (loaded once) and output helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console

from pycron import runfiles
from pycron.client import PycronClient
from trader.cli.jsonout import dumps
from trader.config import Settings, load_settings
from trader.errors import ConfigError, TraderError, Unavailable
from trader.messaging.curve import ClientKeys, CurveKeys
from trader.messaging.rpc import RpcClient

RPC_TIMEOUT = 10.0
# The server may still pick up a request a little after the caller stopped waiting;
# its deadline is this much later than ours, so a retry finds the first call in flight.
SERVER_GRACE = 5.0
PYCRON_TIMEOUT = 2.0  # asking pycron why a service does not answer
# A job in these states has no process: starting it is the fix.
NOT_STARTED = frozenset({"STOPPED", "FAILED", "COMPLETED", "SCHEDULED"})


def ensure_listening(endpoint: str, what: str) -> None:
    """Raise Unavailable at once if nothing accepts TCP connections on ``endpoint`` (tcp:// only).

    ZeroMQ connects lazily and never reports a refused connection, so without
    this a call to a stopped service would wait for its whole timeout.
    """
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp" or parts.hostname is None or parts.port is None:
        return
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
            pass
    except OSError:
        raise Unavailable(
            f"{what} is not listening on {endpoint}; start the stack with `trader up`"
        ) from None


def job_fix(job: str, state: str | None) -> str:
    """Return why service ``job`` does not answer, knowing its pycron ``state`` (None: no such job), and the fix.

    ``the history_service job is STOPPED: `trader pycron start history_service```.
    """
    if state is None:
        return f"the running pycron has no {job} job (not in its profile)"
    if state in NOT_STARTED:
        return f"the {job} job is {state}: `trader pycron start {job}`"
    if state in ("PENDING", "STARTING"):
        return f"the {job} job is {state}: try again once it is RUNNING (`trader status`)"
    return f"the {job} job is {state}: `trader pycron restart {job}`"


def pycron_job_fix(settings: Settings, job: str) -> str | None:
    """Return :func:`job_fix`'s advice from the running pycron's state of ``job``; None if pycron does not answer.

    Never raises: pycron down, slow or answering badly only means no advice.
    """
    token = runfiles.read_token(settings)
    if not token:
        return None
    try:
        with PycronClient.with_token(settings, token, timeout=PYCRON_TIMEOUT) as client:
            jobs = client.jobs()
        states = {str(found["name"]): str(found["state"]) for found in jobs}
    except (TraderError, KeyError, TypeError, ValueError):
        return None
    return job_fix(job, states.get(job))


async def _call(
    endpoint: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float,
    curve: ClientKeys | None = None,
) -> Any:
    client = RpcClient(endpoint, curve=curve)
    try:
        return await asyncio.wait_for(
            client.call(method, *args, timeout=timeout + SERVER_GRACE, **kwargs), timeout
        )
    finally:
        client.close()


@dataclass
class CliContext:
    """Global options and lazily loaded settings; reach it with ``@pass_cli``."""

    profile: str | None = None
    json: bool = False
    console: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    _settings: dict[str | None, Settings] = field(default_factory=dict)

    def settings(self, profile: str | None = None) -> Settings:
        """Return the settings of ``profile`` (default: the global ``--profile``), loading them once."""
        name = profile or self.profile
        if name not in self._settings:
            self._settings[name] = load_settings(name)
        return self._settings[name]

    def curve_client(self) -> ClientKeys | None:
        """Return the CURVE keys this CLI connects with (None: ``security.mode`` is none)."""
        return CurveKeys.from_settings(self.settings()).client

    def client(self, profile: str | None = None, *, timeout: float = 5.0) -> PycronClient:
        """Return a control API client for the pycron of these settings."""
        return PycronClient.from_settings(self.settings(profile), timeout=timeout)

    def endpoint(self, service: str) -> str:
        """Return ``service``'s RPC endpoint from the settings, or raise ConfigError."""
        endpoint = self.settings().service(service).rpc_endpoint
        if endpoint is None:
            raise ConfigError(f"no RPC port for {service} (set services.{service}.rpc_port)")
        return endpoint

    def call_service(self, service: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on ``service`` and return its result; remote errors arrive typed.

        Takes ``timeout`` and ``retries`` as :meth:`call_service_async` does.
        """
        return asyncio.run(self.call_service_async(service, method, *args, **kwargs))

    async def call_service_async(
        self,
        service: str,
        method: str,
        /,
        *args: Any,
        timeout: float = RPC_TIMEOUT,
        retries: int = 0,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` on ``service`` from a running loop (a command that also reads the bus).

        A service not listening raises Unavailable at once, naming its job's
        pycron state and the command that fixes it when pycron answers (else
        "start the stack"). A call that gets no reply within ``timeout``
        seconds is sent again up to ``retries`` times (only for idempotent
        calls), then raises Unavailable naming the endpoint
        (``details["sent"]``: the request went out, it may have run).
        """
        endpoint = self.endpoint(service)
        try:
            await asyncio.to_thread(ensure_listening, endpoint, service)  # blocks up to 1 s: not on the loop
        except Unavailable:
            fix = await asyncio.to_thread(pycron_job_fix, self.settings(), service)
            if fix is None:  # no pycron answers: the stack is down
                raise
            raise Unavailable(f"{service} is not listening on {endpoint}; {fix}", endpoint=endpoint) from None
        curve = self.curve_client()
        for attempt in range(retries + 1):
            try:
                return await _call(endpoint, method, args, kwargs, timeout, curve)
            except TimeoutError:
                if attempt < retries:
                    self.err.print(
                        f"no reply to {method} within {timeout:g}s; retrying", highlight=False
                    )
        tries = f" ({retries + 1} tries)" if retries else ""
        raise Unavailable(
            f"{service} at {endpoint} did not answer {method} within {timeout:g}s{tries}; "
            "is the stack up? (`trader status`, `trader up`)",
            endpoint=endpoint,
            sent=True,
        )

    def confirm_if_live(self, question: str, *, yes: bool) -> None:
        """Ask ``question`` (abort on no) unless ``yes``, when the account is live.

        Live if this CLI's profile says so, or the trader_service running says
        so: a stack started with ``--profile live`` is live whatever profile
        this command was given. A service that cannot be asked is not asked
        again: the call that follows reports why.
        """
        if yes:
            return
        live = self.settings().trading.live
        if not live:
            try:
                live = bool(self.call_trader("status").get("live", True))
            except TraderError:
                return
        if live:
            click.confirm(f"LIVE account: {question}", abort=True, err=True)

    def call_trader(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on trader_service: :meth:`call_service` with its name."""
        return self.call_service("trader_service", method, *args, **kwargs)

    def show(self, data: Any, table: Callable[[Any], Any], empty: str = "") -> None:
        """Print ``data``: as JSON with ``--json``; else the table ``table`` builds from it, or ``empty`` if none."""
        if self.json:
            self.emit_json(data)
        elif empty and not data:
            self.console.print(empty, style="dim")
        else:
            self.console.print(table(data), highlight=False)

    def emit_json(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout (``--json``): quantities and prices as exact JSON numbers."""
        click.echo(dumps(data))

    def emit_json_line(self, data: Any) -> None:
        """Print ``data`` as one compact JSON line on stdout (a stream: one object per tick or log line)."""
        click.echo(dumps(data, indent=None))


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
