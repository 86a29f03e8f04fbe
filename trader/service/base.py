"""The service base: one asyncio loop, a lifecycle, heartbeats, an RPC endpoint, graceful stop.

A service subclasses ``Service``, sets ``name``, registers its RPC methods in
``register_methods`` and does its work in ``on_start``/``on_stop``. ``main()``
owns the loop (uvloop unless ``event_loop: asyncio``): it loads the settings, sets up logging and runs the service
until SIGTERM or SIGINT, then stops it in order and exits 0 (if the service failed,
the exit code of its TraderError, such as 78 for a bad config or a port in use, else 1).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from trader.config import Settings, load_settings
from trader.errors import ConfigError, TraderError
from trader.logsetup import setup_logging, supervised_stderr
from trader.messaging.curve import CurveKeys
from trader.messaging.pubsub import Publisher
from trader.messaging.rpc import MethodRegistry, RpcServer
from trader.messaging.zmtp_limits import Timeouts
from trader.service.fds import connection_cap, raise_fd_limit, throttle_accept_errors
from trader.service.lifecycle import Lifecycle, ServiceState

log = logging.getLogger(__name__)
_T = TypeVar("_T")  # what a loop_runner's coroutine answers

STARTUP_BEATS = (0.1, 0.2, 0.4)  # seconds between the first beats, then heartbeat_interval


class Service:
    """Base class of every platform process; see the module docstring."""

    name: ClassVar[str] = "service"
    rpc_port_option: ClassVar[str] = ""  # a command-line option that sets the RPC port, named when it is in use

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.service(self.name)
        # The CURVE keys every socket of the service binds or connects with (none: loopback only).
        self.curve = CurveKeys.from_settings(settings, need_server=self.config.rpc_endpoint is not None)
        self.lifecycle = Lifecycle(self.name, self._on_state_change)
        self.registry = MethodRegistry()
        self.publisher: Publisher | None = None
        self.rpc: RpcServer | None = None
        self._started = time.monotonic()
        self._stop_requested: asyncio.Event | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.registry.register("status", self.status)
        self.register_methods(self.registry)

    # -- for subclasses ------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this service's own command-line options (``--profile`` is already there)."""

    @classmethod
    def from_args(cls, settings: Settings, args: argparse.Namespace) -> Service:
        """Build the service from its settings and parsed options; a ConfigError fails the start."""
        return cls(settings)

    def register_methods(self, registry: MethodRegistry) -> None:
        """Register this service's RPC methods (``status`` is already there)."""

    async def on_start(self) -> None:
        """Acquire resources and start work; raising here fails the start."""

    async def on_stop(self) -> None:
        """Release resources; called once, also after a failed start."""

    def status_info(self) -> dict[str, Any]:
        """Extra fields for ``status`` and the heartbeat."""
        return {}

    # -- state ---------------------------------------------------------------
    @property
    def state(self) -> ServiceState:
        return self.lifecycle.state

    def set_degraded(self, reason: str) -> None:
        """Report that the service runs but cannot do all its work (e.g. broker disconnected).

        Already DEGRADED, a new reason replaces the old one (and is beaten at once).
        """
        if self.state is ServiceState.DEGRADED:
            if reason != self.lifecycle.reason:
                self.lifecycle.reason = reason
                self._beat()
            return
        if self.lifecycle.can_move(ServiceState.DEGRADED):
            self.lifecycle.move(ServiceState.DEGRADED, reason)

    def set_running(self, reason: str = "") -> None:
        """Report that the service is fully working again."""
        if self.lifecycle.can_move(ServiceState.RUNNING):
            self.lifecycle.move(ServiceState.RUNNING, reason)

    def status(self) -> dict[str, Any]:
        """Return the service's state for RPC callers and the heartbeat."""
        return {
            "service": self.name,
            "state": self.state.value,
            "reason": self.lifecycle.reason,
            "pid": os.getpid(),
            "time": datetime.now(UTC),
            "uptime": round(time.monotonic() - self._started, 3),
            **self.status_info(),
        }

    def _on_state_change(self, state: ServiceState, reason: str) -> None:
        # Publish at once so watchers need not wait for the next beat.
        self._beat()

    def _beat(self) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(f"heartbeat.{self.name}", self.status())
        except TraderError:
            log.exception("%s: heartbeat could not be published", self.name)

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval
        # The first beats come sooner: a beat published before the bus has passed its subscribers'
        # subscriptions on is dropped (ZeroMQ's slow joiner), and pycron counts a restarted service
        # healthy from the first RUNNING beat it hears (a restarted bus: ~1 s sooner).
        for pause in STARTUP_BEATS:
            self._beat()
            await asyncio.sleep(min(pause, interval))
        while True:
            self._beat()
            await asyncio.sleep(interval)

    # -- run -----------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the service to stop; safe to call twice and from a signal handler."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self, *, freeze_heap: bool = False) -> int:
        """Start, serve until a stop is requested, stop; return the process exit code.

        ``freeze_heap`` (the process's own service, from ``main``) takes what start-up built out of
        the garbage collector's later passes; see ``freeze_startup_heap``.
        """
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        code = 0
        try:
            self.publisher = Publisher(self.settings.bus.pub_endpoint, curve=self.curve.client)
            self._heartbeat_task = loop.create_task(self._heartbeat_loop())
            endpoint = self.config.rpc_endpoint
            if endpoint is not None:
                throttle_accept_errors(loop)
                self.rpc = RpcServer(
                    endpoint,
                    self.registry,
                    max_inflight=self.config.max_inflight,
                    max_frame_bytes=self.settings.bus.max_frame_bytes,
                    max_connections=connection_cap(self.config.max_connections),
                    curve=self.curve.server,
                    max_buffered_bytes=self.config.rpc_max_buffered_bytes,
                    timeouts=Timeouts(self.config.rpc_heartbeat_interval, self.config.rpc_heartbeat_timeout,
                                      self.config.rpc_idle_timeout, self.config.rpc_read_timeout,
                                      self.config.rpc_write_timeout),
                    max_outbound_bytes=self.config.rpc_max_outbound_bytes,
                    write_high_water=self.config.rpc_write_high_water,
                )
                try:
                    await self.rpc.start()
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    raise ConfigError(self._rpc_port_in_use(endpoint)) from None
            await self.on_start()
            if freeze_heap:
                freeze_startup_heap()
            self.set_running("started")
            await self._stop_requested.wait()
        except ConfigError as exc:  # a bad file found while starting: the message says it all
            log.error("%s: %s", self.name, exc)
            code = exc.exit_code
        except TraderError as exc:
            log.exception("%s failed", self.name)
            code = exc.exit_code
        except Exception:
            log.exception("%s failed", self.name)
            code = 1
        finally:
            await self._shutdown()
        return code

    def _rpc_port_in_use(self, endpoint: str) -> str:
        option = f" or {self.rpc_port_option}" if self.rpc_port_option else ""
        return (f"control port {endpoint.rsplit(':', 1)[-1]} is in use (another {self.name}?): set "
                f"TRADER_SERVICES__{self.name.upper()}__RPC_PORT{option}")

    async def _shutdown(self) -> None:
        if self.lifecycle.can_move(ServiceState.STOPPING):
            self.lifecycle.move(ServiceState.STOPPING, "stop requested")
        try:
            await self.on_stop()
        except Exception:
            log.exception("%s: error while stopping", self.name)
        if self.rpc is not None:
            await self.rpc.close()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        if self.lifecycle.can_move(ServiceState.STOPPED):
            self.lifecycle.move(ServiceState.STOPPED)
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None


def main(service_cls: type[Service], argv: list[str] | None = None) -> int:
    """Run ``service_cls`` as a process: parse its options, load settings, log, serve."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service_cls.name}")
    parser.add_argument("--profile", default=None, help="settings profile (default: TRADER_PROFILE or 'default')")
    service_cls.add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(service_cls.name)
    try:
        settings = load_settings(args.profile)
        service = service_cls.from_args(settings, args)
    except TraderError as exc:
        log.error("%s: %s", service_cls.name, exc)
        return exc.exit_code
    setup_logging(
        service_cls.name,
        settings.path(settings.storage.logs_dir),
        settings.service(service_cls.name).log_level or settings.log_level,
        secrets=settings.secrets(),
        max_bytes=settings.logging.max_bytes,
        backups=settings.logging.backups,
        stderr=supervised_stderr(),  # under pycron: errors only, logs/<service>.log has every line
    )
    try:
        run = loop_runner(settings.event_loop)
    except ConfigError as exc:
        log.error("%s: %s", service_cls.name, exc)
        return exc.exit_code
    log.info("%s starting (pid %d, profile %s, %s loop)", service_cls.name, os.getpid(), settings.profile,
             settings.event_loop)
    raise_fd_limit()  # before any socket: RPC connections are kept under it (see Service.run)
    return run(service.run(freeze_heap=True))


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive (modules, classes, caches, connections) out of later collections.

    A full collection otherwise walks all of it each time: in trader_service,
    about 66,000 objects and some 30 ms on top of walking what the session
    built since, a pause any order arriving meanwhile waits out. What start-up
    built lives as long as the process, so nothing is lost but the rare cycle
    among those objects that dies later.
    """
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen: %d objects left out of later garbage collections", gc.get_freeze_count())


def loop_runner(event_loop: str) -> Callable[[Coroutine[Any, Any, _T]], _T]:
    """Return what runs a service's main coroutine on a new loop of the kind ``event_loop`` names.

    uvloop (libuv's loop, in C) wakes on a socket for about half of what the
    standard loop costs, which is most of an RPC hop's cost on a busy machine;
    ``asyncio`` is there for debugging and for platforms without uvloop.
    """
    if event_loop == "asyncio":
        return asyncio.run
    if event_loop != "uvloop":
        raise ConfigError(f"event_loop must be uvloop or asyncio, not {event_loop!r}")
    try:
        import uvloop
    except ImportError:
        raise ConfigError("event_loop is uvloop, which is not installed: pip install uvloop, "
                          "or set event_loop: asyncio (TRADER_EVENT_LOOP=asyncio)") from None
    return uvloop.run

