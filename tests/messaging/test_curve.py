"""CURVE on real sockets, forced on over 127.0.0.1: allowed clients call and subscribe, others get nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import zmq
from zmq.utils import z85

from tests.waiting import wait_until
from trader.errors import NotFound, Timeout
from trader.messaging.curve import ClientKeys, ServerKeys
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer
from trader.messaging.zmtp_limits import CLIENT_PING_INTERVAL, Timeouts
from trader.messaging.zmtp_sockets import Dealer

REFUSED_WAIT = 1.5  # seconds a refused client is given to get anything at all


def pair() -> tuple[bytes, bytes]:
    """A fresh key pair, raw (32 bytes each)."""
    public, secret = zmq.curve_keypair()
    return z85.decode(public), z85.decode(secret)


class Keys:
    """A server pair, an allowed client pair and a stranger's pair (valid, but not allowed)."""

    def __init__(self) -> None:
        server_public, server_secret = pair()
        client_public, client_secret = pair()
        stranger_public, stranger_secret = pair()
        self.server = ServerKeys(server_public, server_secret, frozenset({client_public}))
        self.client = ClientKeys(client_public, client_secret, server_public)
        self.stranger = ClientKeys(stranger_public, stranger_secret, server_public)
        other_server_public, _ = pair()
        # An allowed client key, but the wrong idea of the server's public key.
        self.misled = ClientKeys(client_public, client_secret, other_server_public)


def registry() -> MethodRegistry:
    reg = MethodRegistry()
    reg.register("add", lambda a, b: a + b)

    async def find(name: str) -> str:
        raise NotFound(f"no {name}")

    reg.register("find", find)
    return reg


def run(coro: Callable[[], object]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_repr_never_shows_a_secret_key() -> None:
    keys = Keys()
    for text in (repr(keys.server), repr(keys.client)):
        assert repr(keys.server.secret) not in text and repr(keys.client.secret) not in text
        assert "secret" not in text


def test_an_allowed_client_calls_and_gets_typed_errors() -> None:
    keys = Keys()

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", registry(), curve=keys.server)
        await server.start()
        client = RpcClient(server.endpoint, timeout=5, curve=keys.client)
        try:
            assert await client.call("add", 2, 3) == 5
            with pytest.raises(NotFound, match="no x"):
                await client.call("find", "x")
            calls = await asyncio.gather(*(client.call("add", i, i) for i in range(200)))
            assert calls == [2 * i for i in range(200)]
        finally:
            client.close()
            await server.close()

    run(scenario)


@pytest.mark.parametrize("who", ["stranger", "misled", "null"])
def test_a_refused_client_gets_nothing_and_the_others_are_served(who: str) -> None:
    """A key not in the allowed list, a wrong server key, or no CURVE at all: not one call gets through."""
    keys = Keys()

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", registry(), curve=keys.server)
        await server.start()
        good = RpcClient(server.endpoint, timeout=5, curve=keys.client)
        bad = RpcClient(server.endpoint, timeout=REFUSED_WAIT, curve=None if who == "null" else getattr(keys, who))
        try:
            assert await good.call("add", 1, 1) == 2
            with pytest.raises(Timeout):
                await bad.call("add", 1, 2)
            assert server.served == 1  # the refused call never reached a method
            assert await good.call("add", 2, 2) == 4
        finally:
            good.close()
            bad.close()
            await server.close()

    run(scenario)


def test_a_raw_null_dealer_is_never_answered() -> None:
    """Below the RPC client: a ZeroMQ DEALER without CURVE sends a valid request and receives no frame."""
    keys = Keys()

    async def scenario() -> None:
        server = RpcServer("tcp://127.0.0.1:0", registry(), curve=keys.server)
        await server.start()
        received: list[list[bytes]] = []
        from trader.messaging import codec

        dealer = Dealer(server.endpoint, received.append, max_message_bytes=1 << 20)
        dealer.start()
        dealer.send([codec.encode({"id": 1, "method": "add", "args": [1, 2], "kwargs": {}, "deadline": None})])
        await asyncio.sleep(REFUSED_WAIT)
        dealer.close()
        await server.close()
        assert received == [] and server.served == 0

    run(scenario)


def test_a_curve_client_waits_for_its_server_and_survives_a_restart(free_port: Callable[[], int]) -> None:
    keys = Keys()
    endpoint = f"tcp://127.0.0.1:{free_port()}"

    async def scenario() -> None:
        client = RpcClient(endpoint, timeout=5, curve=keys.client)
        pending = asyncio.ensure_future(client.call("add", 3, 4))  # no server yet: the call waits, queued
        await asyncio.sleep(0.3)
        assert not pending.done()
        server = RpcServer(endpoint, registry(), curve=keys.server)
        await server.start()
        try:
            assert await pending == 7
            await server.close()
            with pytest.raises(Timeout):
                await client.call("add", 1, 2, timeout=0.3)  # nobody there
            server = RpcServer(endpoint, registry(), curve=keys.server)
            await server.start()
            # The reconnected client works, and the reply to the timed-out call is never taken for these.
            for i in range(20):
                assert await client.call("add", i, 1, timeout=3) == i + 1
        finally:
            client.close()
            await server.close()

    run(scenario)


def test_an_allowed_subscriber_receives_and_refused_peers_neither_send_nor_receive() -> None:
    keys = Keys()

    async def scenario() -> None:
        proxy = BusProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", curve=keys.server)
        proxy.start()
        good_sub = Subscriber(proxy.sub_endpoint, curve=keys.client)
        bad_sub = Subscriber(proxy.sub_endpoint, curve=keys.stranger)
        null_sub = Subscriber(proxy.sub_endpoint)
        good_pub = Publisher(proxy.pub_endpoint, curve=keys.client)
        bad_pub = Publisher(proxy.pub_endpoint, curve=keys.stranger)
        good: list[Message] = []
        refused: list[Message] = []
        try:
            for sub, into in ((good_sub, good), (bad_sub, refused), (null_sub, refused)):
                sub.start()
                sub.observe("tick").subscribe(into.append)

            async def published() -> bool:
                good_pub.publish("tick.sim", {"from": "good"})
                bad_pub.publish("tick.sim", {"from": "stranger"})
                return bool(good)

            deadline = asyncio.get_running_loop().time() + 10
            while not await published():  # slow joiners: publish until the subscription has travelled up
                assert asyncio.get_running_loop().time() < deadline, "the allowed subscriber got nothing"
                await asyncio.sleep(0.05)
            for _ in range(20):
                good_pub.publish("tick.sim", {"from": "good"})
                bad_pub.publish("tick.sim", {"from": "stranger"})
                await asyncio.sleep(REFUSED_WAIT / 20)
            await wait_until(lambda: len(good) >= 20, timeout=5, what="the allowed subscriber's messages")
            assert {m.payload["from"] for m in good} == {"good"}  # the stranger's publisher never got through
            assert refused == []
        finally:
            for closing in (good_sub, bad_sub, null_sub, good_pub, bad_pub):
                closing.close()
            proxy.stop()

    run(scenario)


def test_the_rpc_timeouts_apply_to_the_curve_sockets() -> None:
    """The CURVE sockets once ignored the rpc_* settings: heartbeats were fixed at 5 s / 20 s."""
    keys = Keys()

    async def scenario() -> None:
        timeouts = Timeouts(heartbeat_ivl=2.0, heartbeat_timeout=7.0, idle_timeout=60.0)
        server = RpcServer("tcp://127.0.0.1:0", registry(), curve=keys.server, timeouts=timeouts,
                           max_frame_bytes=1000)
        await server.start()
        client = RpcClient(server.endpoint, timeout=5, curve=keys.client)
        try:
            assert await client.call("add", 1, 2) == 3
            sock = server._router._sock
            assert sock is not None
            assert (sock.getsockopt(zmq.HEARTBEAT_IVL), sock.getsockopt(zmq.HEARTBEAT_TIMEOUT),
                    sock.getsockopt(zmq.HEARTBEAT_TTL)) == (2000, 7000, 7000)
            assert sock.getsockopt(zmq.HANDSHAKE_IVL) == 10_000 and sock.getsockopt(zmq.MAXMSGSIZE) == 4000
            dealer = client._dealer
            assert dealer is not None and dealer._sock is not None  # the client pings as a ZMTP client does
            assert dealer._sock.getsockopt(zmq.HEARTBEAT_IVL) == CLIENT_PING_INTERVAL * 1000
        finally:
            client.close()
            await server.close()

    run(scenario)
