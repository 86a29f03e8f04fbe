"""What an RPC server holds for its peers, on 127.0.0.1: back-pressure on replies, budgets across connections.

A client that does not read its replies has its requests held back, not
answered without end; one that reads a large reply slowly is served whole;
past a budget the peer holding the most goes, not the newcomer.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.messaging.test_rpc_fuzz import Switch, _handshake
from tests.waiting import wait_until
from trader.errors import Timeout
from trader.messaging import codec
from trader.messaging.rpc import RpcClient, RpcServer
from trader.messaging.zmtp_limits import Timeouts
from trader.service.base import loop_runner

T = 30.0
KIB = 1024


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_large_reply_and_a_small_one_on_one_connection_both_arrive(event_loop: str) -> None:
    """Once a 16 MiB unread-reply rule aborted this connection: both calls timed out."""

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry())
        await server.start()
        client = RpcClient(server.endpoint, timeout=T)
        try:
            big, small = await asyncio.gather(client.call("blob", 40_000_000), client.call("blob", 3))
            assert len(big) == 40_000_000 and small == b"xxx"
            assert await client.call("trades", limit=1) == [9]  # the connection carries on
        finally:
            client.close()
            await server.close()

    loop_runner(event_loop)(scenario())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_clients_that_never_read_are_held_back_bounded_in_total_and_dropped_once_stalled(event_loop: str) -> None:
    high, budget, peers = 256 * KIB, 3 * 2**20, 10
    reply = 256 * KIB

    async def scenario() -> tuple[int, int]:
        server = RpcServer("tcp://127.0.0.1:0", Switch().registry(), write_high_water=high,
                           max_outbound_bytes=budget,
                           timeouts=Timeouts(heartbeat_ivl=None, heartbeat_timeout=None, write_timeout=1.0))
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        router = server._router
        requests = b"".join(bytes((0, len(r))) + r for r in
                            (codec.encode({"id": i, "method": "blob", "args": [reply]}) for i in range(200)))
        most_total = most_one = 0
        sampling = True

        async def sample() -> None:
            nonlocal most_total, most_one
            while sampling:
                most_total = max(most_total, router.outbound)
                most_one = max([most_one, *(p.write_buffered for p in router._all)])
                await asyncio.sleep(0.005)

        def flood() -> socket.socket:
            sock = _handshake(port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KIB)
            sock.sendall(requests)  # 50 MiB of replies asked for; none will be read
            return sock

        sampler = asyncio.create_task(sample())
        socks = await asyncio.gather(*(asyncio.to_thread(flood) for _ in range(peers)))
        try:
            client = RpcClient(server.endpoint, timeout=10)  # a reading client is served meanwhile
            assert await client.call("blob", 3) == b"xxx"
            await wait_until(lambda: len(router._all) == 1, 15, "every client that does not read dropped")
            assert await client.call("blob", 3) == b"xxx"
            client.close()
        finally:
            sampling = False
            await sampler
            for sock in socks:
                sock.close()
            await server.close()
        return most_total, most_one

    most_total, most_one = loop_runner(event_loop)(scenario())
    print(f"\n{peers} clients not reading, 50 MiB of replies asked each: at most {most_total / 2**20:.1f} MiB held "
          f"in all, {most_one / KIB:.0f} KiB by one (high-water mark {high // KIB} KiB, budget "
          f"{budget // 2**20} MiB)")
    assert most_total <= budget
    assert most_one <= high + reply + 4 * KIB  # a rule of 16 MiB per connection let each hold 16 MiB


def test_past_the_inbound_budget_the_largest_holder_goes_not_the_newcomer() -> None:
    budget = 8 * 2**20
    half = 3 * 2**20 + 896 * KIB  # each hog holds 3.875 MiB of an unfinished 4 MiB frame: 7.75 of 8 MiB in all

    async def scenario() -> None:
        switch = Switch()
        server = RpcServer("tcp://127.0.0.1:0", switch.registry(), max_frame_bytes=2**20 + 4096,
                           max_buffered_bytes=budget)
        await server.start()
        port = int(server.endpoint.rsplit(":", 1)[1])
        router = server._router

        def hog() -> socket.socket:
            sock = _handshake(port)
            sock.sendall(b"\x02" + (4 * 2**20).to_bytes(8, "big") + b"x" * half)
            return sock

        hogs = [await asyncio.to_thread(hog) for _ in range(2)]
        try:
            await wait_until(lambda: router.buffered >= 2 * half, T, "both hogs holding their half-frames")
            client = RpcClient(server.endpoint, timeout=10)
            reason = "r" * 2**20  # a 1 MiB request, read in many chunks: it would take the budget past 8 MiB
            try:
                reply = await client.call("kill_switch", True, reason=reason)
            except Timeout:
                raise AssertionError("the newcomer's request was refused, not a hog") from None
            assert reply == {"kill_switch": True, "reason": reason}
            await wait_until(lambda: len(router._all) == 2, T, "one hog dropped; the client stays")
            assert router.buffered == half + 9  # the other hog: its frame header and body
            client.close()
        finally:
            for sock in hogs:
                sock.close()
            await server.close()

    asyncio.run(scenario())
