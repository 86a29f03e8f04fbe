"""Fuzz and flood tws-sim on 127.0.0.1, each finding of the probe in turn, then trade through it with ib_async.

Each test sends what no TWS client would (malformed frames, an oversized
length prefix, half-sent frames, idle connections beyond the limit, garbage
handshakes), bounded in count and time, checks that the offender alone pays
for it and that memory and logs stay bounded, and ends with a real ib_async
client connecting and getting an order filled. The limits are set small (and
the timeouts short) so that each bound is reached within a second or two.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import pytest
from ib_async import MarketOrder, Stock

from tests.sim.simulator import RawClient, connect, running_sim, sim_config, wait_for
from trader.sim.catalogue import SimConfig
from trader.sim.limits import ConnectionLimits
from trader.sim.server import TwsSimServer
from trader.sim.wire import frame
from trader.sim.world import MAX_LOGGED_FIELD

KIB = 1024
LIMITS = ConnectionLimits(max_connections=8, handshake_timeout=1.0, frame_timeout=1.0,
                          max_frame_bytes=64 * KIB, max_buffered_bytes=256 * KIB)


def flood_config() -> SimConfig:
    return sim_config().model_copy(update={"connections": LIMITS})


async def still_trades(server: TwsSimServer, client_id: int = 1) -> None:
    """Connect an unmodified ib_async client and get a market order filled."""
    ib = await connect(server, client_id)
    try:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 1))
        await wait_for(trade.isDone, what="the order done")
        assert trade.orderStatus.status == "Filled"
    finally:
        ib.disconnect()


async def opened(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Return True if the server closes the connection within ``timeout`` (whatever it sent first)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def logged_chars(caplog: pytest.LogCaptureFixture) -> int:
    records = [r for r in caplog.records if r.name.startswith("trader.sim")]
    return sum(len(r.getMessage()) + len(r.exc_text or "") for r in records)


def random_fields(rng: random.Random) -> bytes:
    """One frame payload of random fields: real and unknown message ids, junk numbers, bad UTF-8, huge fields."""
    msg_id = rng.choice([*range(0, 110), 999, -1, "", "x", "1e9", "9" * 50])
    fields = [str(msg_id).encode()]
    for _ in range(rng.randrange(0, 40)):
        kind = rng.random()
        if kind < 0.3:
            fields.append(str(rng.randrange(-2**40, 2**40)).encode())
        elif kind < 0.5:
            fields.append(rng.choice([b"", b"nan", b"inf", b"-0", b"1.7976931348623157E308", b"Infinite"]))
        elif kind < 0.8:
            fields.append(rng.randbytes(rng.randrange(1, 30)).replace(b"\0", b"?"))
        else:
            fields.append(b"7" * rng.randrange(1_000, 20_000))
    payload = b"\0".join(fields) + (b"\0" if rng.random() < 0.9 else b"")
    return payload[:LIMITS.max_frame_bytes]  # malformed, not oversized: that is the next test


def test_malformed_frames_cost_one_error_each_and_log_little(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trader.sim")

    async def scenario() -> None:
        async with running_sim(flood_config()) as server:
            rng = random.Random(15)
            raw = await RawClient.open(server.port, client_id=2)
            sent = 0
            for _ in range(20):
                batch = [random_fields(rng) for _ in range(50)]
                raw.writer.write(b"".join(frame(p) for p in batch))
                sent += sum(len(p) for p in batch)
                raw.send([49, 1])  # the session answers in between, so it never lags far behind
                await raw.wait_message(lambda m: m[0] == "49")
                raw.messages.clear()
            assert sent > 2_000_000
            assert server.sessions.keys() == {2}, "a malformed frame ended the session"
            assert logged_chars(caplog) < 1_000 * 400, "the log quotes what clients send"
            assert max(len(f) for r in server.request_log for f in r.fields) <= MAX_LOGGED_FIELD + 40
            await still_trades(server)
            raw.close()

    asyncio.run(scenario())


def test_an_oversized_length_prefix_drops_that_connection_only() -> None:
    async def scenario() -> None:
        async with running_sim(flood_config()) as server:
            bystander = await connect(server, 1)
            for prefix in (LIMITS.max_frame_bytes + 1, 2 * 1024 * 1024, 2**31 - 1, 2**32 - 1):
                started = await RawClient.open(server.port, client_id=2)
                started.writer.write(struct.pack(">I", prefix) + b"71\0")
                assert await started.closed_by_server(1)
                reader, writer = await opened(server.port, b"API\0" + struct.pack(">I", prefix))
                assert await closed_by_server(reader, 1)
                writer.close()
            assert server.budget.used == 0 and bystander.isConnected()
            bystander.disconnect()
            await still_trades(server)

    asyncio.run(scenario())


def test_half_sent_frames_are_bounded_in_total_and_dropped_when_stalled() -> None:
    async def scenario() -> None:
        async with running_sim(flood_config()) as server:
            bystander = await connect(server, 1)
            stalled = [await RawClient.open(server.port, client_id=10 + i) for i in range(6)]
            for raw in stalled:  # 60 KiB of a 64 KiB frame each, then nothing: 360 KiB against a 256 KiB budget
                raw.writer.write(struct.pack(">I", 64 * KIB - 8) + b"4" * (60 * KIB))
                await asyncio.sleep(0.05)
                assert server.budget.used <= LIMITS.max_buffered_bytes
            await wait_for(lambda: server.budget.used > 0, what="buffered bytes counted")
            assert len(server.sessions) < 7, "the budget dropped nobody"
            await wait_for(lambda: server.sessions.keys() == {1}, timeout=LIMITS.frame_timeout + 3,
                           what="every stalled connection dropped")
            assert server.budget.used == 0
            for raw in stalled:
                assert await raw.closed_by_server(1)
            assert bystander.isConnected() and await bystander.reqCurrentTimeAsync()
            bystander.disconnect()
            await still_trades(server)

    asyncio.run(scenario())


def test_idle_connections_beyond_the_limit_lock_nobody_out() -> None:
    async def scenario() -> None:
        async with running_sim(flood_config()) as server:
            peak = 0

            def watch() -> None:
                nonlocal peak
                peak = max(peak, len(server.connections))

            idle = []
            for i in range(5 * LIMITS.max_connections):
                idle.append(await opened(server.port, b"API\0" if i % 2 else b""))
                watch()
            assert peak <= LIMITS.max_connections
            await still_trades(server)  # at once: it displaces an idle connection instead of being refused
            watch()
            displaced = [await closed_by_server(reader, 0.05) for reader, _ in idle]
            assert sum(displaced) >= 4 * LIMITS.max_connections
            await wait_for(lambda: not server.connections, timeout=LIMITS.handshake_timeout + 3,
                           what="the idle connections closed by the handshake timeout")
            for _, writer in idle:
                writer.close()

            clients = [await RawClient.open(server.port, client_id=20 + i) for i in range(LIMITS.max_connections)]
            reader, writer = await opened(server.port)  # every slot holds a started client: refused at once
            assert await closed_by_server(reader, 1) and server.refused >= 1
            writer.close()
            clients.pop().close()
            await wait_for(lambda: len(server.connections) < LIMITS.max_connections, what="a slot free")
            await still_trades(server, client_id=2)
            assert peak <= LIMITS.max_connections
            for raw in clients:
                raw.close()

    asyncio.run(scenario())


GARBAGE: list[bytes] = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"API\0" + frame(b"garbage"),
    b"API\0" + frame(b"v0..0"),
    b"API\0" + frame(b"v158..158"),  # never 158
    b"API\0" + frame(b"v200..100"),
    b"API\0" + frame(b"v" + b"9" * 50_000),
    b"API\0" + frame(b"\xff\xfe" * 100),
    b"API\0" + struct.pack(">I", 40),  # a version frame begun, never finished
    b"AP",
    b"API\0",
]


@pytest.mark.parametrize("seed", [1, 2])
def test_garbage_handshakes_are_closed_promptly(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trader.sim")
    rng = random.Random(seed)
    openings = GARBAGE + [rng.randbytes(rng.randrange(1, 64)) for _ in range(60)]

    async def scenario() -> None:
        async with running_sim(flood_config()) as server:
            batch: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
            for data in openings:
                batch.append(await opened(server.port, data))
                if len(batch) == LIMITS.max_connections:
                    await check(batch)
            await check(batch)
            assert server.sessions == {} and logged_chars(caplog) < len(openings) * 400
            await still_trades(server)

    async def check(batch: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
        timeout = LIMITS.handshake_timeout + 2
        assert all(await asyncio.gather(*(closed_by_server(reader, timeout) for reader, _ in batch)))
        for _, writer in batch:
            writer.close()
        batch.clear()

    asyncio.run(scenario())
