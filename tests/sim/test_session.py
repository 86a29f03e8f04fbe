"""A Session on its own: the real one over a socket pair, answered by a SimWorld, with no server or listener."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tests.sim.simulator import RawClient, sim_config
from trader.sim.limits import BufferBudget, ConnectionLimits
from trader.sim.session import Session
from trader.sim.wire import frame
from trader.sim.world import SimWorld


@dataclass
class Pair:
    """A session serving one end of a socket pair, a raw client on the other."""

    world: SimWorld
    session: Session
    client: RawClient
    task: asyncio.Task[None]


@asynccontextmanager
async def session_pair(limits: ConnectionLimits | None = None, budget: BufferBudget | None = None,
                       world: SimWorld | None = None) -> AsyncIterator[Pair]:
    """Run a Session on one end of ``socket.socketpair()``; yield it with a RawClient on the other end."""
    world = world or SimWorld(sim_config())
    ours, theirs = socket.socketpair()
    s_reader, s_writer = await asyncio.open_connection(sock=ours)
    c_reader, c_writer = await asyncio.open_connection(sock=theirs)
    session = Session(world, s_reader, s_writer, limits, budget)
    task = asyncio.get_running_loop().create_task(session.run())
    client = RawClient(c_reader, c_writer)
    try:
        yield Pair(world, session, client, task)
    finally:
        client.close()
        session.close()
        await asyncio.wait_for(task, 5)


async def handshake(client: RawClient, client_id: int = 1, versions: str = "v157..178") -> None:
    """Greet, negotiate and send startApi, as every client does."""
    client.writer.write(b"API\0" + frame(versions.encode()))
    await client.wait_message(lambda m: len(m) == 2)
    client.send([71, 2, client_id, ""])
    await client.wait_message(lambda m: m[0] == "15")


def test_a_session_serves_a_client_with_no_server() -> None:
    async def scenario() -> None:
        async with session_pair() as pair:
            await handshake(pair.client, client_id=7)
            assert pair.session.version == 178 and pair.world.sessions == {7: pair.session}
            assert pair.client.messages[0] == ["178", pair.client.messages[0][1]]
            assert [m[0] for m in pair.client.messages[1:3]] == ["9", "15"]
            pair.client.send([49, 1])  # reqCurrentTime
            now = await pair.client.wait_message(lambda m: m[0] == "49")
            assert abs(int(now[2]) - pair.world.clock().timestamp()) < 5
            pair.client.send([999, 1])  # a bad request costs one error, not the session
            error = await pair.client.wait_message(lambda m: m[0] == "4" and m[3] == "320")
            assert "unknown message id" in error[4]
            pair.client.send([61, 1])  # reqPositions
            await pair.client.wait_message(lambda m: m[0] == "62")
            assert [r.message for r in pair.world.request_log] == [
                "START_API", "REQ_CURRENT_TIME", "UNKNOWN('999')", "REQ_POSITIONS"]
            pair.client.close()
            await asyncio.wait_for(pair.task, 5)
            assert pair.session.closed and pair.world.sessions == {}

    asyncio.run(scenario())


def test_a_session_that_never_sends_start_api_is_closed_after_the_handshake_timeout() -> None:
    async def scenario() -> None:
        limits = ConnectionLimits(handshake_timeout=0.3)
        for opening in (b"", b"AP", b"API\0", b"API\0" + frame(b"v157..178")):
            async with session_pair(limits) as pair:
                pair.client.writer.write(opening)
                await asyncio.wait_for(pair.task, 3)  # run() returns by itself
                assert pair.session.closed and await pair.client.closed_by_server(1)

    asyncio.run(scenario())


def test_a_frame_begun_and_not_finished_is_dropped_after_the_frame_timeout() -> None:
    async def scenario() -> None:
        limits = ConnectionLimits(frame_timeout=0.3)
        async with session_pair(limits) as pair:
            await handshake(pair.client)
            for _ in range(2):  # idle between frames is fine, longer than the frame timeout too
                await asyncio.sleep(0.5)
                pair.client.send([49, 1])
                await pair.client.wait_message(lambda m: m[0] == "49")
                pair.client.messages.clear()
            pair.client.writer.write(struct.pack(">I", 10) + b"49\0")  # 3 of 10 bytes, then silence
            await asyncio.wait_for(pair.task, 3)
            assert pair.session.closed and pair.world.sessions == {}

    asyncio.run(scenario())


def test_a_length_prefix_over_the_frame_limit_drops_the_connection() -> None:
    async def scenario() -> None:
        limits = ConnectionLimits(max_frame_bytes=4096)
        async with session_pair(limits) as pair:
            await handshake(pair.client)
            pair.client.send([49, 1, "x" * 3000])  # under the limit: an ordinary bad request
            await pair.client.wait_message(lambda m: m[0] == "4" and "trailing" in m[4])
            pair.client.writer.write(struct.pack(">I", 4097))
            error = await pair.client.wait_message(lambda m: m[0] == "4" and "4097 bytes" in m[4])
            assert error[3] == "320"
            await asyncio.wait_for(pair.task, 3)

    asyncio.run(scenario())


def test_the_buffer_budget_drops_the_largest_holder() -> None:
    budget = BufferBudget(100)
    a, b, c = object(), object(), object()
    assert budget.hold(a, 60) is None and budget.hold(b, 30) is None
    assert budget.hold(c, 20) is a and budget.used == 110  # over: the largest holder, not the newcomer
    budget.release(a)
    assert budget.used == 50 and budget.held(a) == 0
    assert budget.hold(b, 0) is None and budget.used == 20
    budget.release(c)
    assert budget.used == 0
