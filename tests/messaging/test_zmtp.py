"""ZMTP 3.1 on asyncio against libzmq (pyzmq) peers and hand-written raw TCP clients."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
import zmq
import zmq.asyncio

from tests.waiting import wait_until
from trader.messaging import zmtp
from trader.messaging.zmtp_sockets import Dealer, Peer, RouterServer
from trader.messaging.zmtp_wire import parse_endpoint
from trader.service.base import loop_runner

T = 5.0  # per-operation timeout: nothing may hang


def _greeting(mechanism: bytes = b"NULL") -> bytes:
    return b"\xff" + b"\x00" * 8 + b"\x7f\x03\x01" + mechanism.ljust(20, b"\x00") + b"\x00" * 32


def _command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes((len(name),)) + name + data
    return bytes((4, len(body))) + body


def _ready(socket_type: bytes) -> bytes:
    return _command(b"READY", b"\x0bSocket-Type" + len(socket_type).to_bytes(4, "big") + socket_type)


async def _raw(endpoint: str, payload: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*parse_endpoint(endpoint))
    writer.write(payload)
    return reader, writer


async def _raw_handshake(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect as a DEALER by hand; check the server's greeting and READY."""
    reader, writer = await _raw(endpoint, _greeting() + _ready(b"DEALER"))
    greeting = await asyncio.wait_for(reader.readexactly(64), T)
    assert greeting[0] == 0xFF and greeting[9] == 0x7F and greeting[10:12] == b"\x03\x01"
    assert greeting[12:32] == b"NULL".ljust(20, b"\x00") and greeting[32] == 0
    flags, size = await asyncio.wait_for(reader.readexactly(2), T)
    body = await asyncio.wait_for(reader.readexactly(size), T)
    assert flags == 4 and body.startswith(b"\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER")
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closes the stream (EOF or reset) within the timeout."""
    try:
        while await asyncio.wait_for(reader.read(65536), T):
            pass
    except ConnectionError:
        pass
    return True


async def _echo_server(
    max_message_bytes: int = 1_000_000, handshake_timeout: float = 10.0, max_connections: int = 1024
) -> tuple[RouterServer, list[tuple[Peer, list[bytes]]]]:
    seen: list[tuple[Peer, list[bytes]]] = []

    def on_message(peer: Peer, frames: list[bytes]) -> None:
        seen.append((peer, frames))
        if frames[-1] == b"boom":
            raise RuntimeError("handler failure")
        peer.send(frames)

    server = RouterServer("tcp://127.0.0.1:0", on_message, max_message_bytes=max_message_bytes,
                          handshake_timeout=handshake_timeout, max_connections=max_connections)
    await server.start()
    return server, seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_parse_endpoint() -> None:
    assert parse_endpoint("tcp://127.0.0.1:5560") == ("127.0.0.1", 5560)
    assert parse_endpoint("tcp://localhost:0") == ("localhost", 0)
    assert parse_endpoint("tcp://*:5555") == ("0.0.0.0", 5555)
    assert parse_endpoint("tcp://[::1]:7000") == ("::1", 7000)
    bad = ["ipc:///tmp/x", "inproc://x", "tcp://127.0.0.1", "tcp://:5", "tcp://h:x1", "tcp://h:70000",
           "tcp://h:-1", "127.0.0.1:5", "", "tcp://h:"]
    for endpoint in bad:
        with pytest.raises(ValueError, match="endpoint"):
            parse_endpoint(endpoint)


def test_router_server_with_libzmq_dealer(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, seen = await _echo_server()
        ctx = zmq.asyncio.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(server.endpoint)
        try:
            frames = [b"head", b"", b"a" * 255, b"b" * 256, b"c" * 70_000]
            await dealer.send_multipart(frames)
            assert await asyncio.wait_for(dealer.recv_multipart(), T) == frames
            assert server.connections == 1 and seen[0][0].socket_type == "DEALER"
            assert seen[0][1] == frames
            with caplog.at_level(logging.ERROR):  # a raising handler is logged, the link survives
                await dealer.send_multipart([b"boom"])
                await wait_until(lambda: len(seen) == 2, T, "boom delivered")
            assert "handler failure" in caplog.text
            for i in range(500):
                await dealer.send_multipart([b"seq", str(i).encode()])
            got = [await asyncio.wait_for(dealer.recv_multipart(), T) for _ in range(500)]
            assert got == [[b"seq", str(i).encode()] for i in range(500)]
            assert len({id(peer) for peer, _ in seen}) == 1
        finally:
            ctx.destroy(linger=0)
            await server.close()
            await server.close()
        assert server.connections == 0

    asyncio.run(scenario())


def test_router_server_with_libzmq_req() -> None:
    async def scenario() -> None:
        server, seen = await _echo_server()
        ctx = zmq.asyncio.Context()
        req = ctx.socket(zmq.REQ)
        req.connect(server.endpoint)
        try:
            for i in range(20):
                await req.send(b"question %d" % i)
                assert await asyncio.wait_for(req.recv(), T) == b"question %d" % i
            assert seen[0][1] == [b"", b"question 0"] and seen[0][0].socket_type == "REQ"
        finally:
            ctx.destroy(linger=0)
            await server.close()

    asyncio.run(scenario())


def test_dealer_with_libzmq_router_routes_by_identity() -> None:
    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        router = ctx.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        inbox: dict[str, list[list[bytes]]] = {"alice": [], "bob": [], "anon": []}
        dealers = {
            name: Dealer(f"tcp://127.0.0.1:{port}", inbox[name].append, max_message_bytes=1 << 20,
                         identity=b"" if name == "anon" else name.encode())
            for name in inbox
        }
        try:
            for name, dealer in dealers.items():
                dealer.start()
                assert dealer.send([b"from", name.encode(), b"x" * 300])
            identities = {}
            for _ in dealers:
                ident, *rest = await asyncio.wait_for(router.recv_multipart(), T)
                assert rest[0] == b"from" and rest[2] == b"x" * 300
                identities[rest[1].decode()] = ident
            assert identities["alice"] == b"alice" and identities["bob"] == b"bob"
            assert identities["anon"] not in (b"", b"alice", b"bob")
            for name, ident in identities.items():
                await router.send_multipart([ident, b"for", name.encode()])
            await wait_until(lambda: all(inbox.values()), T, "replies routed")
            assert inbox == {name: [[b"for", name.encode()]] for name in inbox}
            assert all(d.connected for d in dealers.values())
        finally:
            for dealer in dealers.values():
                dealer.close()
                dealer.close()
            ctx.destroy(linger=0)

    asyncio.run(scenario())


def test_dealer_with_router_server_many_concurrent_messages() -> None:
    async def scenario() -> None:
        server, _ = await _echo_server()
        inboxes: list[list[list[bytes]]] = [[] for _ in range(3)]
        dealers = [Dealer(server.endpoint, box.append, max_message_bytes=1 << 20) for box in inboxes]
        try:
            for d in dealers:
                d.start()
            for i in range(2000):
                for k, d in enumerate(dealers):
                    assert d.send([b"%d" % k, b"%d" % i])
            await wait_until(lambda: all(len(b) == 2000 for b in inboxes), T, "all echoes")
            for k, box in enumerate(inboxes):
                assert box == [[b"%d" % k, b"%d" % i] for i in range(2000)]
            assert server.connections == 3
        finally:
            for d in dealers:
                d.close()
            await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_connections_past_the_limit_evict_the_longest_idle_and_the_server_keeps_serving(
        event_loop: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, _ = await _echo_server(max_connections=2)
        inboxes: list[list[list[bytes]]] = [[], []]
        dealers = [Dealer(server.endpoint, box.append, max_message_bytes=1 << 20, reconnect_ivl=0.02)
                   for box in inboxes]
        for dealer, box in zip(dealers, inboxes, strict=True):
            dealer.start()
            assert dealer.send([b"hi"])
            await wait_until(lambda box=box: box == [[b"hi"]], T, "the echo")
        flooders = [await _raw(server.endpoint) for _ in range(5)]  # each newcomer evicts the longest idle
        for reader, _ in flooders:  # the dealers reconnect and evict the silent flooders in turn
            assert await _closed_by_server(reader)
        await wait_until(lambda: all(d.connected for d in dealers) and server.connections == 2, T, "reconnected")
        for dealer, box in zip(dealers, inboxes, strict=True):
            assert dealer.send([b"again"])
            await wait_until(lambda box=box: box[-1:] == [[b"again"]], T, "served again")
        assert server.evicted >= 7 and len(server._all) == 2
        assert len([r for r in caplog.records if "limit of 2 connections" in r.getMessage()]) == 1  # rate-limited
        for dealer in dealers:
            dealer.close()
        for _, writer in flooders:
            writer.close()
        await server.close()

    with caplog.at_level(logging.WARNING, logger="trader.messaging.zmtp_sockets"):
        loop_runner(event_loop)(scenario())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_both_ends_of_a_connection_keep_it_alive_over_tcp(event_loop: str) -> None:
    async def scenario() -> None:
        server, _ = await _echo_server()
        inbox: list[list[bytes]] = []
        dealer = Dealer(server.endpoint, inbox.append, max_message_bytes=1 << 20)
        try:
            dealer.start()
            assert dealer.send([b"hi"])
            await wait_until(lambda: inbox == [[b"hi"]], T, "the echo")
            [peer] = list(server._peers)
            for conn in (peer, dealer._conn):
                assert conn is not None and conn._transport is not None
                sock = conn._transport.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                if hasattr(socket, "TCP_KEEPIDLE"):
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == zmtp.KEEPALIVE["TCP_KEEPIDLE"]
        finally:
            dealer.close()
            await server.close()

    loop_runner(event_loop)(scenario())


def test_dealer_queues_while_down_and_reconnects_after_restart() -> None:
    async def scenario() -> None:
        port = _free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        inbox: list[list[bytes]] = []
        dealer = Dealer(endpoint, inbox.append, max_message_bytes=1 << 20, hwm=50,
                        reconnect_ivl=0.01, reconnect_ivl_max=0.1)
        dealer.start()
        sent = [[b"early", b"%d" % i] for i in range(50)]
        assert all(dealer.send(m) for m in sent)
        assert not dealer.send([b"over hwm"])
        await asyncio.sleep(0.2)  # a few refused connection attempts
        assert not dealer.connected
        server = RouterServer(endpoint, lambda p, f: p.send(f), max_message_bytes=1 << 20)
        await server.start()
        try:
            await wait_until(lambda: len(inbox) == 50, T, "queued messages delivered")
            assert inbox == sent
            await server.close()
            await wait_until(lambda: not dealer.connected, T, "dealer sees the loss")
            assert dealer.send([b"while restarting"])
            server = RouterServer(endpoint, lambda p, f: p.send(f), max_message_bytes=1 << 20)
            await server.start()
            await wait_until(lambda: len(inbox) == 51, T, "delivered after reconnect")
            assert inbox[-1] == [b"while restarting"] and dealer.connected
            assert dealer.send([b"live"])
            await wait_until(lambda: len(inbox) == 52, T, "live round trip")
        finally:
            dealer.close()
            await server.close()

    asyncio.run(scenario())


def test_oversize_and_too_many_frames_close_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, seen = await _echo_server(max_message_bytes=1000)
        ctx = zmq.asyncio.Context()
        good = ctx.socket(zmq.DEALER)
        good.connect(server.endpoint)
        try:
            await good.send_multipart([b"ok", b"x" * 900])
            assert await asyncio.wait_for(good.recv_multipart(), T) == [b"ok", b"x" * 900]
            reader, writer = await _raw_handshake(server.endpoint)
            writer.write(b"\x02" + (10**9).to_bytes(8, "big"))  # a 1 GB frame header, no body
            assert await _closed_by_server(reader)
            assert "1000000000" in caplog.text and "127.0.0.1:" in caplog.text
            reader, writer = await _raw_handshake(server.endpoint)
            writer.write(b"\x01\x02ab" * 64 + b"\x00\x00")  # 65 frames
            assert await _closed_by_server(reader)
            bad = ctx.socket(zmq.DEALER)
            bad.connect(server.endpoint)
            await bad.send_multipart([b"y" * 600, b"z" * 600])  # 1200 bytes over two frames
            await good.send_multipart([b"still", b"served"])
            assert await asyncio.wait_for(good.recv_multipart(), T) == [b"still", b"served"]
            await asyncio.sleep(0.1)
            assert all(len(b"".join(frames)) <= 1000 for _, frames in seen)
            assert [f for _, f in seen] == [[b"ok", b"x" * 900], [b"still", b"served"]]
        finally:
            ctx.destroy(linger=0)
            await server.close()

    asyncio.run(scenario())


def test_garbage_bad_mechanisms_and_silent_peers_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, seen = await _echo_server(handshake_timeout=0.5)
        try:
            for payload in (b"GET / HTTP/1.1\r\n\r\n", b"\xff" + b"\x00" * 8 + b"\x00" + b"\x00" * 54,
                            _greeting(b"PLAIN"), _greeting(b"CURVE"), _greeting(b"NULL")[:10] + b"\x02\x00"
                            + b"NULL".ljust(52, b"\x00")):
                reader, _ = await _raw(server.endpoint, payload)
                started = time.monotonic()
                assert await _closed_by_server(reader)
                assert time.monotonic() - started < 0.4, payload  # refused at once, not timed out
            assert "PLAIN" in caplog.text and zmtp._throttle.suppressed == 2  # the same kinds again within 5 s
            reader, _ = await _raw(server.endpoint)  # silent: dropped by the handshake timeout
            started = time.monotonic()
            assert await _closed_by_server(reader)
            assert 0.4 < time.monotonic() - started < 3
            reader, _ = await _raw(server.endpoint, _greeting())  # greeting but no READY
            assert await _closed_by_server(reader)
            reader, writer = await _raw_handshake(server.endpoint)  # the server still serves
            writer.write(b"\x00\x05hello")
            assert await asyncio.wait_for(reader.readexactly(7), T) == b"\x00\x05hello"
            assert server.connections == 1 and len(seen) == 1
        finally:
            await server.close()

    asyncio.run(scenario())


def test_socket_type_mismatch_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, seen = await _echo_server()
        ctx = zmq.asyncio.Context()
        try:
            sockets = [ctx.socket(kind) for kind in (zmq.PUB, zmq.SUB)]  # keep references
            for sock in sockets:
                sock.connect(server.endpoint)
            # both refused: one line, the other counted (rate-limited per kind)
            await wait_until(lambda: "cannot talk to ROUTER" in caplog.text and zmtp._throttle.suppressed >= 1, T,
                             "refused")
            assert len([r for r in caplog.records if "cannot talk to ROUTER" in r.getMessage()]) == 1
            reader, _ = await _raw(server.endpoint, _greeting() + _ready(b"PAIR"))
            assert await _closed_by_server(reader)
            assert server.connections == 0 and not seen
        finally:
            ctx.destroy(linger=0)
            await server.close()

    asyncio.run(scenario())


def test_ping_gets_pong_and_libzmq_heartbeats_keep_the_link() -> None:
    async def scenario() -> None:
        server, seen = await _echo_server()
        ctx = zmq.asyncio.Context()
        try:
            reader, writer = await _raw_handshake(server.endpoint)
            writer.write(_command(b"PING", b"\x00\x64" + b"ctx-1234") + _command(b"PONG") + _command(b"WHAT"))
            flags, size = await asyncio.wait_for(reader.readexactly(2), T)
            assert (flags, await reader.readexactly(size)) == (4, b"\x04PONGctx-1234")
            writer.write(b"\x00\x02hi")  # unknown commands and PONG were ignored, not fatal
            assert await asyncio.wait_for(reader.readexactly(4), T) == b"\x00\x02hi"
            writer.close()
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.HEARTBEAT_IVL, 50)
            dealer.setsockopt(zmq.HEARTBEAT_TIMEOUT, 200)
            dealer.connect(server.endpoint)
            await dealer.send(b"first")
            assert await asyncio.wait_for(dealer.recv(), T) == b"first"
            peer = seen[-1][0]
            await asyncio.sleep(1.0)  # five heartbeat timeouts: without PONGs libzmq would drop us
            assert not peer.closed and server.connections == 1
            await dealer.send(b"second")
            assert await asyncio.wait_for(dealer.recv(), T) == b"second"
            assert seen[-1][0] is peer
        finally:
            ctx.destroy(linger=0)
            await server.close()

    asyncio.run(scenario())
