"""Helpers for integration tests: tws-sim in-process on an ephemeral port, ib_async clients, polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

from ib_async import IB

from trader.sim.catalogue import MarketConfig, SimConfig, SimInstrument, load_sim_config
from trader.sim.pacing import PacingConfig
from trader.sim.server import TwsSimServer
from trader.sim.wire import FrameSplitter, decode_fields, encode_message, frame
from trader.sim.world import SimWorld


def sim_config(tick_rate: float = 20.0, seed: int = 7, account_update_interval: float = 3.0,
               pacing: PacingConfig | None = None) -> SimConfig:
    """The repository's catalogue with a faster market for tests (IB's history pacing off unless given)."""
    base = load_sim_config()
    market = MarketConfig(seed=seed, tick_rate=tick_rate, account_update_interval=account_update_interval)
    return base.model_copy(update={"market": market, "pacing": pacing or PacingConfig(enabled=False)})


@contextlib.asynccontextmanager
async def running_sim(config: SimConfig | None = None,
                      clock: Callable[[], datetime] | None = None) -> AsyncIterator[TwsSimServer]:
    """Run a tws-sim on 127.0.0.1 and a free port for the duration of the block (on ``clock``, default wall time)."""
    server = TwsSimServer(config or sim_config(), port=0, **({"clock": clock} if clock else {}))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def connect(server: TwsSimServer | int, client_id: int, timeout: float = 5) -> IB:
    """Return an unmodified ib_async client connected to ``server`` (or to a port)."""
    ib = IB()
    ib.RaiseRequestErrors = False
    port = server if isinstance(server, int) else server.port
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=timeout)
    return ib


async def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.01)


class RawClient:
    """A hand-driven TWS API client for sending what ib_async never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = FrameSplitter()
        self.messages: list[list[str]] = []

    @classmethod
    async def open(cls, port: int, versions: str = "v157..178", client_id: int | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        writer.write(b"API\0" + frame(versions.encode()))
        await client.wait_message(lambda m: len(m) == 2)
        if client_id is not None:
            client.send([71, 2, client_id, ""])
            await client.wait_message(lambda m: m[0] == "15")
        return client

    def send(self, fields: list[Any]) -> None:
        self.writer.write(encode_message(fields))

    async def wait_message(self, match: Callable[[list[str]], bool], timeout: float = 5.0) -> list[str]:
        """Return the first message (received so far or later) that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if match(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {timeout}s; got {self.messages[-5:]}")
            try:
                data = await asyncio.wait_for(self.reader.read(65536), remaining)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError(f"server closed the connection; got {self.messages[-5:]}")
            self.messages += [decode_fields(p) for p in self.splitter.feed(data)]

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Return True once the server has closed the connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            except TimeoutError:
                return False
            if not data:
                return True
            self.messages += [decode_fields(p) for p in self.splitter.feed(data)]
        return False

    def close(self) -> None:
        self.writer.close()


def shifted_clock(day: date) -> Callable[[], datetime]:
    """Return a running clock moved to ``day`` (time still passes): a sim that lists its series as of ``day``."""
    offset = datetime.combine(day, datetime.now(UTC).timetz()) - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def listed(server: SimWorld, symbol: str, sec_type: str = "FUT") -> list[SimInstrument]:
    """Return the contracts of ``symbol`` the running sim lists today, nearest expiry first (rolling series)."""
    found = [i for i in server.catalogue if i.contract.symbol == symbol and str(i.contract.sec_type) == sec_type]
    return sorted(found, key=lambda i: (i.contract.expiry, i.conid))
