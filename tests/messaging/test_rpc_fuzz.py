"""Fuzz and flood the RPC endpoint (127.0.0.1 only, bounded in count and time): each finding of the probe, reproduced.

Huge method names must not fill the log; idle connections must not lock out the
kill switch; half-sent frames must not exhaust memory; ``kill_switch("false")``
must not engage the switch. The last test does it all against a real
trader_service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio

from tests.conftest import StackEnv, call, started_trading_stack
from tests.messaging.test_zmtp import _greeting, _ready
from tests.waiting import wait_until
from trader.config import Settings
from trader.errors import Overloaded, ValidationError
from trader.messaging import codec
from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer
from trader.messaging.zmtp_limits import Timeouts

T = 10.0
HUGE = 8_000_000  # characters: the probe's 8 MB method name, under the 8 MiB frame limit


class Switch:
    """The kill switch's RPC surface, and a listing with a limit, as trader_service declares them."""

    def __init__(self) -> None:
        self.engaged: list[bool] = []

    def kill_switch(self, on: bool, reason: str = "") -> dict[str, Any]:
        self.engaged.append(bool(on))
        return {"kill_switch": bool(on), "reason": reason}

    def trades(self, client_order_id: str | None = None, limit: int | None = None) -> list[int]:
        return list(range(10))[-limit:] if limit else list(range(10))

    def blob(self, size: int) -> bytes:
        return b"x" * size

    def registry(self) -> MethodRegistry:
        registry = MethodRegistry()
        for name in ("kill_switch", "trades", "blob"):
            registry.register(name, getattr(self, name))
        return registry


def _rss() -> int:
    """This process's resident set size, bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def _handshake(port: int) -> socket.socket:
    """A blocking raw socket that completed the ZMTP handshake as a DEALER (server greeting and READY read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=T)
    sock.sendall(_greeting() + _ready(b"DEALER"))
    got = b""
    while len(got) < 64 + 2 or len(got) < 66 + got[65]:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        got += chunk
    return sock


def test_huge_method_names_and_ids_write_a_few_kb_of_log(tmp_path: Path) -> None:
    log_file = tmp_path / "svc.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry())
        await server.start()
        ctx = zmq.asyncio.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(server.endpoint)
        try:
            huge = "m" * HUGE
            requests = [{"id": i, "method": huge} for i in range(10)]  # MethodNotFound
            requests += [{"id": huge, "method": "trades"} for _ in range(5)]  # an id too long to echo
            requests += [{"id": i, "method": "trades", "kwargs": {huge: 1}} for i in range(5)]  # bad keyword
            for request in requests:
                await dealer.send(codec.encode(request))
            replies = [await asyncio.wait_for(dealer.recv(), T) for _ in requests]
            assert all(len(reply) < 2000 for reply in replies)  # nor is the name echoed back whole
            codes = [codec.decode(reply)["error"]["code"] for reply in replies]
            assert codes == ["unknown_method"] * 10 + ["protocol"] * 5 + ["invalid"] * 5
        finally:
            ctx.destroy(linger=0)
            await server.close()

    try:
        asyncio.run(scenario())
    finally:
        root.removeHandler(handler)
        handler.close()
    size = log_file.stat().st_size
    assert 0 < size < 4096, size  # 20 x 8 MB quoted in full was 160 MB; now three lines
    assert "...+" in log_file.read_text()


@pytest.mark.parametrize("limit", [40, 96])  # 96: three evicted at a time
def test_idle_connections_at_max_connections_do_not_lock_out_the_kill_switch(limit: int) -> None:
    async def scenario() -> None:
        switch = Switch()
        server = RpcServer("tcp://127.0.0.1:0", switch.registry(), max_connections=limit)
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        flood = await asyncio.gather(*(asyncio.to_thread(_handshake, port) for _ in range(limit)))
        flood += [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # no handshake either
        try:
            for attempt in range(3):  # the flood stays; each new client still gets through
                client = RpcClient(server.endpoint, timeout=T)
                reply = await client.call("kill_switch", True, reason=f"flooded {attempt}")
                assert reply == {"kill_switch": True, "reason": f"flooded {attempt}"}
                client.close()
            assert switch.engaged == [True] * 3
            assert server._router.evicted >= 21 and len(server._router._all) <= limit  # 20 + 1 over at once
        finally:
            for sock in flood:
                sock.close()
            await server.close()

    asyncio.run(scenario())


def test_calls_holding_every_slot_in_flight_do_not_lock_out_an_urgent_method() -> None:
    """At max_inflight, trader_service's async kill_switch was Overloaded like any other call."""

    async def scenario() -> None:
        release = asyncio.Event()
        engaged: list[bool] = []

        async def hang() -> None:
            await release.wait()

        async def kill_switch(on: bool) -> bool:
            engaged.append(on)
            return on

        registry = MethodRegistry()
        registry.register("hang", hang)
        registry.register("kill_switch", kill_switch, urgent=True)
        server = RpcServer("tcp://127.0.0.1:0", registry, max_inflight=4)
        await server.start()
        hog, operator = RpcClient(server.endpoint, timeout=T), RpcClient(server.endpoint, timeout=T)
        try:
            held = [asyncio.ensure_future(hog.call("hang")) for _ in range(4)]
            await wait_until(lambda: len(server._tasks) == 4, T, "every slot taken")
            with pytest.raises(Overloaded):
                await hog.call("hang")
            assert await operator.call("kill_switch", True) is True and engaged == [True]
            release.set()
            assert await asyncio.gather(*held) == [None] * 4
        finally:
            hog.close()
            operator.close()
            await server.close()

    asyncio.run(scenario())


def test_half_sent_frames_are_bounded_per_connection_and_in_total() -> None:
    budget = 8 * 2**20
    frame = 4 * 2**20 - 64  # each connection announces a frame just under its limit (4 x 1 MiB) ...
    body = b"x" * (frame - 512 * 1024)  # ... and sends all of it but the last 512 KiB

    async def scenario() -> tuple[int, int]:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry(), max_frame_bytes=2**20,
                           max_buffered_bytes=budget)
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        router = server._router
        socks: list[socket.socket] = []
        before = _rss()

        def half_send() -> None:
            sock = _handshake(port)
            socks.append(sock)
            try:
                sock.sendall(b"\x02" + frame.to_bytes(8, "big") + body)
            except OSError:  # dropped for going over the budget
                pass

        try:
            for _ in range(30):
                await asyncio.to_thread(half_send)
                assert router.buffered <= budget
            await asyncio.sleep(0.2)
            growth = _rss() - before
            held = router.buffered
            assert held <= budget and len(router._all) <= budget // len(body) + 1
            client = RpcClient(server.endpoint, timeout=T)  # and the endpoint still serves
            assert await client.call("trades", limit=2) == [8, 9]
            client.close()
        finally:
            for sock in socks:
                sock.close()
            await server.close()
        await wait_until(lambda: router.buffered == 0, T, "buffers released")
        return growth, held

    growth, held = asyncio.run(scenario())
    print(f"\n30 connections x {len(body) / 2**20:.1f} MiB of half-sent frames: RSS +{growth / 2**20:.1f} MiB, "
          f"{held / 2**20:.1f} MiB held (budget {budget / 2**20:.0f} MiB; unbounded: +{30 * len(body) / 2**20:.0f})")
    assert growth < 3 * budget, growth  # unbounded it was 30 x 3.5 MiB = 105 MiB held


def test_a_client_that_never_reads_its_replies_is_dropped_once_stalled() -> None:
    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry(), timeouts=Timeouts(write_timeout=1.0))
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        sock = await asyncio.to_thread(_handshake, port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = [codec.encode({"id": i, "method": "blob", "args": [256 * 1024]}) for i in range(200)]
        try:  # 50 MiB of replies asked for, none read: the server stops reading us, and drops us once stalled
            await asyncio.to_thread(sock.sendall, b"".join(bytes((0, len(r))) + r for r in request))
            await wait_until(lambda: not server._router._all, T, "the peer that does not read dropped")
            client = RpcClient(server.endpoint, timeout=T)
            assert await client.call("blob", 3) == b"xxx"  # others are served
            client.close()
        finally:
            sock.close()
            await server.close()

    asyncio.run(scenario())


def test_argument_types_are_checked_strictly_against_the_declared_hints() -> None:
    from services.trader_service import TraderService

    registry = TraderService(Settings()).registry  # the real service's registry, not started
    assert registry.urgent == {"kill_switch"}  # runs even with every slot in flight taken
    with pytest.raises(ValidationError, match="'on' for 'kill_switch': Input should be a valid boolean") as info:
        registry.check("kill_switch", "false")
    assert info.value.details == {"argument": "on"}
    with pytest.raises(ValidationError, match="'limit' for 'trades': Input should be a valid integer"):
        registry.check("trades", limit="x")
    for name, args, kwargs in (("kill_switch", (1,), {}), ("kill_switch", (True,), {"reason": 5}),
                               ("orders", (), {"open_only": "yes"}), ("cancel_all", ("false",), {}),
                               ("cancel_order", (7,), {}), ("history", ("AAPL",), {"use_rth": "0"})):
        with pytest.raises(ValidationError, match="bad argument"):
            registry.check(name, *args, **kwargs)
    registry.check("kill_switch", False, reason="x")
    registry.check("trades", limit=None)
    registry.check("place_order", symbol="AAPL", quantity="ten")  # place_order validates its request itself

    async def over_the_wire() -> None:
        switch = Switch()
        server = RpcServer("tcp://127.0.0.1:0", switch.registry())
        await server.start()
        client = RpcClient(server.endpoint, timeout=T)
        try:
            with pytest.raises(ValidationError, match="'on' for 'kill_switch'"):
                await client.call("kill_switch", "false")
            with pytest.raises(ValidationError, match="'limit' for 'trades'"):
                await client.call("trades", limit="x")
            assert switch.engaged == []  # the body never ran
            assert await client.call("trades", limit=3) == [7, 8, 9]
        finally:
            client.close()
            await server.close()

    asyncio.run(over_the_wire())


def test_fuzzed_bytes_after_the_handshake_leave_the_server_serving_and_nothing_held() -> None:
    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry(), max_frame_bytes=64 * 1024)
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        rng = random.Random(15)
        valid = codec.encode({"id": 1, "method": "trades", "kwargs": {"limit": 1}})
        started = time.monotonic()
        for i in range(150):
            if time.monotonic() - started > 20:
                break
            sock = await asyncio.to_thread(_handshake, port)
            kind = i % 5
            if kind == 0:
                payload = os.urandom(rng.randrange(1, 4096))
            elif kind == 1:  # frames with random flags and sizes
                payload = bytes((rng.choice([0, 1, 2, 3, 4, 6, 8, 255]),)) + os.urandom(rng.randrange(1, 40))
            elif kind == 2:  # a valid request cut anywhere, then silence
                payload = b"\x00" + bytes((len(valid),)) + valid[: rng.randrange(len(valid))]
            elif kind == 3:  # commands: a PING with a huge context, READY again, an unknown one
                payload = rng.choice([b"\x04\xff\x04PING" + b"c" * 250, b"\x04\x06\x05READY", b"\x04\x03\x02ZZ"])
            else:  # a long frame header claiming an exabyte
                payload = b"\x02" + os.urandom(8)
            await asyncio.to_thread(sock.sendall, payload)
            sock.close()
        client = RpcClient(server.endpoint, timeout=T)
        assert await client.call("trades", limit=1) == [9]
        client.close()
        await wait_until(lambda: server._router.buffered == 0 and not server._router._all, T, "all released")
        await server.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_the_real_trader_service_under_the_probe(stack_env: StackEnv) -> None:
    with started_trading_stack(stack_env, TRADER_SERVICES__TRADER_SERVICE__MAX_CONNECTIONS="40") as stack:
        ep = stack.trader_endpoint
        with pytest.raises(ValidationError, match="'on' for 'kill_switch'"):
            call(ep, "kill_switch", "false")
        assert not call(ep, "status")["kill_switch"]
        with pytest.raises(ValidationError, match="'limit' for 'trades'"):
            call(ep, "trades", limit="x")
        logs = [stack_env.home / "logs" / f"trader_service.{ext}" for ext in ("log", "out")]
        sizes = [p.stat().st_size if p.exists() else 0 for p in logs]
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVTIMEO, int(T * 1000))
        dealer.connect(ep)
        for i in range(20):
            dealer.send(codec.encode({"id": i, "method": "m" * HUGE}))
        assert all(codec.decode(dealer.recv())["error"]["code"] == "unknown_method" for _ in range(20))
        ctx.destroy(linger=0)
        grown = sum((p.stat().st_size if p.exists() else 0) - s for p, s in zip(logs, sizes, strict=True))
        assert grown < 8192, grown  # was 537 MB for these 20 requests
        port = int(ep.rsplit(":", 1)[1])
        flood = [_handshake(port) for _ in range(40)]
        try:
            switch = call(ep, "kill_switch", True, reason="flooded")["kill_switch"]
            assert switch["engaged"] and switch["reason"] == "flooded"
            assert not call(ep, "kill_switch", False)["kill_switch"]["engaged"]
        finally:
            for sock in flood:
                sock.close()
