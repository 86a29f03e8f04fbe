"""The tws-sim process: a simulated TWS on a TCP port, with heartbeats and an RPC control interface.

``python -m services.tws_sim --port 7497`` listens on 127.0.0.1 (``--host`` to
change; without ``--port``, on the settings' ``ib.port``, 7497 by default) and simulates the account, market and catalogue of configs/sim.yaml
(``--sim-config`` for another file; ``--tick-rate`` to move the market
faster, as the benchmark does; ``--paused`` to start with the market paused; ``--no-pacing`` to serve every historical request,
whatever IB's pacing rules say; ``--replay FILE --speed N [--loop]`` to drive the
instruments a CSV or Parquet file names from that file, N seconds of data a second
(``--align S``: starting on the clock's next multiple of S seconds);
``--replay store:AAPL.STK,MSFT.STK --bar-size 1m --start 2026-03-02 [--end ...]``
to replay the market store's bars of those keys, ``store-ticks:KEYS`` its
recorded ticks, from the settings' ``storage.arctic_uri`` or
``--store URI``; their history requests are then answered from the store as of
the replay's data time). Like every service it beats as
``heartbeat.tws_sim`` on the bus; with ``services.tws_sim.rpc_port`` set it
also serves the control methods below (drop connections, delay responses,
refuse orders, pause the market, read the request log), on that port or ``--rpc-port``;
a simulator on a ``--port`` other than ``ib.port`` (a replay beside a running
stack) takes an ephemeral control port instead, unless ``--rpc-port`` or
``TRADER_SERVICES__TWS_SIM__RPC_PORT`` sets it. A port in use is one line, exit 78. Each control method
checks its arguments (type, finite, bounded) in :class:`~trader.sim.world.SimWorld`
and refuses a bad one with a ValidationError naming it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from trader.config import Settings, validate
from trader.errors import ConfigError, Unavailable
from trader.messaging.loopback import require_protected_host
from trader.messaging.rpc import MethodRegistry
from trader.service.base import Service, main
from trader.sim.catalogue import MarketConfig, ReplayConfig, SimConfig, load_sim_config
from trader.sim.server import TwsSimServer
from trader.strategy.bars import parse_bar_size

log = logging.getLogger(__name__)

DEFAULT_PORT = 7497
RPC_PORT_ENV = "TRADER_SERVICES__TWS_SIM__RPC_PORT"


def port_number(text: str) -> int:
    """Read a TCP port, 0 (any free port) to 65535."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 (any free port) to 65535")
    return int(text)


def replay_source(text: str) -> str:
    """Check ``--replay``: a file, or ``store:KEYS`` / ``store-ticks:KEYS`` with at least one key."""
    kind, sep, keys = text.partition(":")
    if sep and kind in ("store", "store-ticks") and not any(k.strip() for k in keys.split(",")):
        raise argparse.ArgumentTypeError(f"{text!r} names no instrument: give its keys, such as {kind}:AAPL.STK")
    return text


def bar_size(text: str) -> str:
    """Check ``--bar-size`` against IB's bar sizes."""
    try:
        parse_bar_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def data_time(text: str) -> datetime:
    """Read ``--start``/``--end``: an ISO date or date and time (naive means UTC)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time: give 2026-03-02 or 2026-03-02T14:30 (UTC)") from None


def control_port(settings: Settings, args: argparse.Namespace) -> int | None:
    """Return the control RPC port: ``--rpc-port``, else the settings', else 0 beside a running stack.

    A simulator on a ``--port`` other than ``ib.port`` (a replay next to the stack's own ``tws`` job)
    would clash with that job's control port: it takes an ephemeral one instead, unless the port was
    set explicitly (``--rpc-port`` or the environment).
    """
    configured = settings.service(TwsSimService.name).rpc_port
    if args.rpc_port is not None:
        return int(args.rpc_port)
    if configured is None or RPC_PORT_ENV in os.environ or args.port is None or args.port == settings.ib.port:
        return configured
    return 0


class TwsSimService(Service):
    """Run a :class:`TwsSimServer` as a platform service."""

    name = "tws_sim"
    rpc_port_option = "--rpc-port"

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        sim_config: SimConfig | None = None,
    ) -> None:
        # IB's API has no authentication (a real TWS keeps a list of trusted IPs): the simulated
        # account is for this host only.
        require_protected_host(host, port, "tws-sim's TWS API listener", protected=False,
                               why="without authentication (anyone on the network could trade on the simulated account)",
                               how="keep --host 127.0.0.1; a remote client reaches it through an SSH tunnel")
        self.host = host
        self.port = port
        self.sim_config = sim_config
        self.sim: TwsSimServer | None = None
        super().__init__(settings)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--port", type=port_number, default=None,
                            help="TCP port to listen on (default: the settings' ib.port, 7497; 0: any free port)")
        parser.add_argument("--rpc-port", type=port_number, default=None, metavar="PORT",
                            help="the control RPC's port (default: services.tws_sim.rpc_port, 5561; an ephemeral "
                                 "one when --port is not ib.port, beside a running stack; 0: any free port)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--sim-config", type=Path, default=None, help="simulator config (default: sim.yaml beside trader.yaml)")
        parser.add_argument("--tick-rate", type=float, default=None,
                            help="market steps per second, overriding the config's market.tick_rate (at most 1000)")
        parser.add_argument("--sessions", action=argparse.BooleanOptionalAction, default=None,
                            help="follow the exchange calendars' sessions (overrides the config's market.sessions)")

        parser.add_argument("--replay", type=replay_source, default=None, metavar="FILE|store:KEYS|store-ticks:KEYS",
                            help="replay bars or ticks from a CSV or Parquet file (overrides the config's replay), "
                                 "or the market store's bars (store:AAPL.STK,MSFT.STK) or recorded ticks "
                                 "(store-ticks:AAPL.STK)")
        parser.add_argument("--bar-size", type=bar_size, default=None, help="the stored bars' size to replay (default 1m)")
        parser.add_argument("--start", type=data_time, default=None, help="replay from this time (UTC; a date: its midnight)")
        parser.add_argument("--end", type=data_time, default=None, help="a store replay's end (default: now)")
        parser.add_argument("--store", default=None, metavar="URI",
                            help="the market store to replay from (default: the settings' storage.arctic_uri)")
        parser.add_argument("--speed", type=float, default=None,
                            help="replay speed: seconds of data per second (default: the config's, else 1)")
        parser.add_argument("--loop", action="store_true", default=None, help="replay the file again at its end")
        parser.add_argument("--align", type=int, default=None, metavar="SECONDS",
                            help="start the replay (and resume it after a pause) on the clock's next multiple of "
                                 "SECONDS, so 1m bars at --speed 12 each fill one 5-second live bar (--align 5)")
        parser.add_argument("--paused", action="store_true",
                            help="start with the market paused: the control RPC resume_market starts it "
                                 "(and the replay, on its next aligned second)")
        parser.add_argument("--no-pacing", action="store_true",
                            help="serve every historical request: IB's pacing rules off (overrides sim.yaml's pacing.enabled)")

    @classmethod
    def from_args(cls, settings: Settings, args: argparse.Namespace) -> TwsSimService:
        sim_config = load_sim_config(args.sim_config or settings.config_path("sim.yaml"))
        if args.tick_rate is not None:
            market = validate(MarketConfig, {**sim_config.market.model_dump(), "tick_rate": args.tick_rate},
                              "--tick-rate")
            sim_config = sim_config.model_copy(update={"market": market})
        if args.paused:
            market = validate(MarketConfig, {**sim_config.market.model_dump(), "paused": True}, "--paused")
            sim_config = sim_config.model_copy(update={"market": market})
        if args.sessions is not None:
            market = validate(MarketConfig, {**sim_config.market.model_dump(), "sessions": args.sessions}, "--sessions")
            sim_config = sim_config.model_copy(update={"market": market})
        replay = sim_config.replay.model_dump(exclude_unset=True) if sim_config.replay is not None else {}
        if args.replay is not None:
            kind, _, keys = args.replay.partition(":")
            if kind in ("store", "store-ticks"):
                replay.pop("file", None)
                replay["store"] = [k.strip() for k in keys.split(",") if k.strip()]
                replay["ticks"] = kind == "store-ticks"  # the one spelling of a tick replay on the command line
            else:
                replay.pop("store", None)
                replay["file"] = Path(args.replay).resolve()
        for flag, name in (("speed", "speed"), ("loop", "loop"), ("bar_size", "bar_size"), ("start", "start"),
                           ("end", "end"), ("store", "store_uri"), ("align", "align")):
            if getattr(args, flag) is not None:
                replay[name] = getattr(args, flag)
        if replay:
            if "file" not in replay and "store" not in replay:
                raise ConfigError("--speed, --loop and the store options need a replay file or store keys "
                                  "(--replay FILE | store:KEYS, or replay in sim.yaml)")
            sim_config = sim_config.model_copy(update={"replay": validate(ReplayConfig, replay, "--replay")})
        if args.no_pacing:
            sim_config = sim_config.model_copy(
                update={"pacing": sim_config.pacing.model_copy(update={"enabled": False})})
        port = settings.ib.port if args.port is None else args.port
        rpc_port = control_port(settings, args)
        if rpc_port != settings.service(cls.name).rpc_port:
            service = settings.service(cls.name).model_copy(update={"rpc_port": rpc_port})
            settings = settings.model_copy(update={"services": {**settings.services, cls.name: service}})
        return cls(settings, host=args.host, port=port, sim_config=sim_config)

    def register_methods(self, registry: MethodRegistry) -> None:
        registry.register("drop_connections", self.drop_connections)
        registry.register("set_delay", self.set_delay)
        registry.register("reject_next_orders", self.reject_next_orders)
        registry.register("pause_market", self.pause_market)
        registry.register("resume_market", self.resume_market)
        registry.register("requests", self.requests)

    async def on_start(self) -> None:
        config = self.sim_config or load_sim_config()
        self.sim = TwsSimServer(config, host=self.host, port=self.port)
        try:
            await self.sim.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(f"port {self.port} is in use (a TWS or another tws-sim?): choose another "
                              "with --port (0: any free port)") from None
        if self.rpc is not None:
            log.info("tws_sim: control RPC on %s%s", self.rpc.endpoint,
                     " (ephemeral: --rpc-port to choose one)" if self.config.rpc_port == 0 else "")

    async def on_stop(self) -> None:
        if self.sim is not None:
            await self.sim.stop()

    def status_info(self) -> dict[str, Any]:
        return self.sim.status() if self.sim is not None else {"port": self.port}

    def _server(self) -> TwsSimServer:
        if self.sim is None:
            raise Unavailable("tws-sim is not listening yet")
        return self.sim

    # -- control methods (RPC) ---------------------------------------------------
    def drop_connections(self) -> int:
        """Close every client connection, as a TWS restart would; return how many were closed."""
        return self._server().drop_all_connections()

    def set_delay(self, seconds: float) -> float:
        """Delay every response by ``seconds`` from now on (0 to stop, at most 60); return the delay."""
        return self._server().set_response_delay(seconds)

    def reject_next_orders(self, count: int) -> int:
        """Refuse the next ``count`` new orders with IB's error 201; return the count."""
        return self._server().reject_next_orders(count)

    def pause_market(self) -> bool:
        """Freeze the market: quotes stop moving and resting orders stop filling."""
        return self._server().pause_market(True)

    def resume_market(self) -> bool:
        """Let the market move again."""
        return self._server().pause_market(False)

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the last ``limit`` requests received from clients, oldest first."""
        return self._server().recent_requests(limit)

if __name__ == "__main__":
    sys.exit(main(TwsSimService))
