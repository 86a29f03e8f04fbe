"""ZMTP liveness: heartbeats (RFC 37 PING/PONG) both ways, dead-peer, idle and read timeouts, with libzmq too."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq
import zmq.asyncio

from tests.messaging.test_zmtp import _closed_by_server, _command, _greeting, _raw_handshake, _ready
from tests.waiting import wait_until
from trader.config import load_settings
from trader.errors import ConfigError
from trader.messaging.zmtp_limits import Timeouts
from trader.messaging.zmtp_sockets import Dealer, Peer, RouterServer
from trader.service.base import loop_runner

T = 5.0
FAST = Timeouts(heartbeat_ivl=0.1, heartbeat_timeout=0.4)


async def _server(timeouts: Timeouts) -> tuple[RouterServer, list[tuple[Peer, list[bytes]]]]:
    seen: list[tuple[Peer, list[bytes]]] = []

    def on_message(peer: Peer, frames: list[bytes]) -> None:
        seen.append((peer, frames))
        peer.send(frames)

    server = RouterServer("tcp://127.0.0.1:0", on_message, max_message_bytes=1 << 20, timeouts=timeouts)
    await server.start()
    return server, seen


async def _read_command(reader: asyncio.StreamReader) -> bytes:
    flags, size = await asyncio.wait_for(reader.readexactly(2), T)
    assert flags == 4
    return await reader.readexactly(size)


def test_timeouts_are_checked() -> None:
    assert Timeouts(1.0, 3.0, 10.0, 4.0).tick == 1.0
    assert Timeouts(None, None, 10.0, None).tick == 5.0
    assert Timeouts(None, None).tick is None
    for bad in ({"heartbeat_ivl": 0}, {"read_timeout": -1.0}):
        with pytest.raises(ValueError, match="> 0"):
            Timeouts(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shorter than heartbeat_timeout"):
        Timeouts(heartbeat_ivl=30.0, heartbeat_timeout=10.0)
    with pytest.raises(ConfigError, match="rpc_heartbeat_interval .* must be shorter"):
        load_settings(env={"TRADER_SERVICES__X__RPC_HEARTBEAT_INTERVAL": "60"})


def test_the_server_heartbeat_timeout_leaves_room_for_the_clients_ping() -> None:
    """A timeout under the clients' 10 s ping drops every idle client whenever a ping is late (a stalled loop)."""
    env = {"TRADER_SERVICES__X__RPC_HEARTBEAT_INTERVAL": "2", "TRADER_SERVICES__X__RPC_HEARTBEAT_TIMEOUT": "12"}
    with pytest.raises(ConfigError, match=r"rpc_heartbeat_timeout \(12 s\) must be at least 1.5 times the RPC "
                                          r"clients' fixed ping interval \(10 s\)"):
        load_settings(env=env)
    assert load_settings(env={**env, "TRADER_SERVICES__X__RPC_HEARTBEAT_TIMEOUT": "15"}).service("x")


def test_the_read_timeout_runs_from_each_message_not_from_the_first_unfinished_one() -> None:
    """A busy client whose reads keep ending mid-message was dropped after the read timeout."""

    async def scenario() -> None:
        server, seen = await _server(Timeouts(heartbeat_ivl=None, heartbeat_timeout=None, read_timeout=0.6))
        try:
            _, writer = await _raw_handshake(server.endpoint)
            message = b"\x02" + (1000).to_bytes(8, "big") + b"m" * 1000
            stream = message * 20
            started = time.monotonic()
            for at in range(0, len(stream), 1500):  # every chunk ends inside a message, none is late
                writer.write(stream[at : at + 1500])
                await asyncio.sleep(0.15)
            await wait_until(lambda: len(seen) == 20, T, "all 20 messages delivered")
            assert time.monotonic() - started > 2 * 0.6  # longer than the read timeout, twice over
            assert server.connections == 1 and server.buffered == 0
        finally:
            await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_server_pings_and_drops_a_peer_that_handshook_then_went_silent(event_loop: str) -> None:
    async def scenario() -> None:
        server, _ = await _server(FAST)
        try:
            silent, _ = await _raw_handshake(server.endpoint)
            answering, writer = await _raw_handshake(server.endpoint)
            started = time.monotonic()
            # PING carries the TTL (our heartbeat timeout, 4 deciseconds) and an empty context
            assert await _read_command(silent) == b"\x04PING\x00\x04"
            for _ in range(8):  # the other peer answers every PING: it is alive, though it sends no message
                assert (await _read_command(answering)).startswith(b"\x04PING")
                writer.write(_command(b"PONG"))
            assert await _closed_by_server(silent)
            assert 0.3 < time.monotonic() - started < 3
            assert server.connections == 1  # only the silent one went
            writer.write(b"\x00\x02hi")
            while (header := await asyncio.wait_for(answering.readexactly(2), T))[0] == 4:  # PINGs, then the echo
                await answering.readexactly(header[1])
            assert header == b"\x00\x02" and await answering.readexactly(2) == b"hi"
        finally:
            await server.close()

    loop_runner(event_loop)(scenario())


def test_dealer_drops_a_silent_server_and_reconnects() -> None:
    async def scenario() -> None:
        accepted: list[bytes] = []

        async def silent_router(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(_greeting() + _ready(b"ROUTER"))  # a full handshake, then nothing ever again
            data = b""
            try:
                while chunk := await reader.read(4096):
                    data += chunk
            except ConnectionError:
                pass
            accepted.append(data)
            writer.close()

        listener = await asyncio.start_server(silent_router, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        dealer = Dealer(f"tcp://127.0.0.1:{port}", lambda frames: None, max_message_bytes=1 << 20,
                        reconnect_ivl=0.05, timeouts=FAST)
        try:
            dealer.start()
            await wait_until(lambda: dealer.connected, T, "handshake")
            started = time.monotonic()
            await wait_until(lambda: len(accepted) == 1, T, "the silent server dropped")
            assert 0.3 < time.monotonic() - started < 3
            assert b"\x04PING\x00\x04" in accepted[0]  # it was pinged first
            await wait_until(lambda: dealer.connected, T, "reconnected")
        finally:
            dealer.close()
            listener.close()
            await listener.wait_closed()

    asyncio.run(scenario())


@pytest.mark.parametrize("pinger", ["libzmq", "ours"])
def test_heartbeats_interoperate_with_libzmq_both_ways(pinger: str) -> None:
    # Only one side pings, so the link lives only if the other side answers: libzmq's PINGs get our PONGs,
    # ours get libzmq's. Both socket pairs: our Dealer -> a libzmq ROUTER, a libzmq DEALER -> our RouterServer.
    ours_timeouts = Timeouts(heartbeat_ivl=0.1, heartbeat_timeout=0.5) if pinger == "ours" else Timeouts(None, None)

    def libzmq_socket(ctx: zmq.asyncio.Context, kind: int) -> zmq.asyncio.Socket:
        sock = ctx.socket(kind)
        if pinger == "libzmq":
            sock.setsockopt(zmq.HEARTBEAT_IVL, 100)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 500)
        return sock

    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        server, seen = await _server(ours_timeouts)
        router = libzmq_socket(ctx, zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        inbox: list[list[bytes]] = []
        ours = Dealer(f"tcp://127.0.0.1:{port}", inbox.append, max_message_bytes=1 << 20, identity=b"ours",
                      timeouts=ours_timeouts)
        theirs = libzmq_socket(ctx, zmq.DEALER)
        theirs.connect(server.endpoint)
        try:
            ours.start()
            assert ours.send([b"hello"])
            assert await asyncio.wait_for(router.recv_multipart(), T) == [b"ours", b"hello"]
            await theirs.send(b"hello")
            assert await asyncio.wait_for(theirs.recv(), T) == b"hello"
            first_conn, first_peer = ours._conn, seen[-1][0]
            await asyncio.sleep(2.0)  # four heartbeat timeouts without a message either way on either link
            assert ours._conn is first_conn and not first_peer.closed and server.connections == 1
            await router.send_multipart([b"ours", b"still there"])
            await wait_until(lambda: inbox == [[b"still there"]], T, "routed to the same dealer")
            await theirs.send(b"again")
            assert await asyncio.wait_for(theirs.recv(), T) == b"again"
            assert seen[-1][0] is first_peer
        finally:
            ours.close()
            ctx.destroy(linger=0)
            await server.close()

    asyncio.run(scenario())


def test_idle_connections_are_closed_and_busy_ones_kept() -> None:
    async def scenario() -> None:
        server, seen = await _server(Timeouts(heartbeat_ivl=0.1, heartbeat_timeout=5.0, idle_timeout=0.8))
        idle_inbox: list[list[bytes]] = []
        busy_inbox: list[list[bytes]] = []
        idle = Dealer(server.endpoint, idle_inbox.append, max_message_bytes=1 << 20, reconnect_ivl=5.0)
        busy = Dealer(server.endpoint, busy_inbox.append, max_message_bytes=1 << 20)
        try:
            for dealer, inbox in ((idle, idle_inbox), (busy, busy_inbox)):
                dealer.start()
                assert dealer.send([b"hi"])
                await wait_until(lambda inbox=inbox: inbox == [[b"hi"]], T, "served")
            idle_peer, busy_peer = seen[0][0], seen[1][0]
            started = time.monotonic()
            while time.monotonic() - started < 2.0:  # over two idle timeouts; the busy one sends every 0.1 s
                assert busy.send([b"tick"])
                await asyncio.sleep(0.1)
            assert idle_peer.closed and not idle.connected  # though it answered every PING (it reconnects later)
            assert not busy_peer.closed and busy.connected and server.connections == 1
        finally:
            idle.close()
            busy.close()
            await server.close()

    asyncio.run(scenario())


def test_a_message_not_completed_within_the_read_timeout_is_dropped() -> None:
    async def scenario() -> None:
        server, seen = await _server(Timeouts(heartbeat_ivl=None, heartbeat_timeout=None, read_timeout=0.3))
        try:
            reader, writer = await _raw_handshake(server.endpoint)
            writer.write(b"\x02" + (1000).to_bytes(8, "big") + b"x" * 10)  # a 1000-byte frame, 10 bytes sent
            await wait_until(lambda: server.buffered == 19, T, "header and 10 bytes held")
            started = time.monotonic()
            assert await _closed_by_server(reader)
            assert 0.2 < time.monotonic() - started < 3
            assert server.buffered == 0 and server.connections == 0 and not seen
            reader, writer = await _raw_handshake(server.endpoint)  # a whole frame, slowly but in time: served
            writer.write(b"\x00\x05he")
            await asyncio.sleep(0.1)
            writer.write(b"llo")
            assert await asyncio.wait_for(reader.readexactly(7), T) == b"\x00\x05hello"
        finally:
            await server.close()

    asyncio.run(scenario())
