"""RPC over real DEALER/ROUTER sockets: results, typed errors, timeouts, garbage, restarts."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from decimal import Decimal

import pytest
import zmq

from tests.waiting import wait_until
from trader.errors import (
    InternalError,
    MethodNotFound,
    NotFound,
    Overloaded,
    ProtocolError,
    Timeout,
    TraderError,
    ValidationError,
)
from trader.messaging import codec
from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer
from trader.service.base import loop_runner


class Calculator:
    """A tiny service surface: sync, async, slow and failing methods."""

    def __init__(self) -> None:
        self.slow_calls = 0
        self.gate = asyncio.Event()

    def add(self, a: Decimal | int, b: Decimal | int) -> Decimal | int:
        return a + b

    async def slow(self, seconds: float) -> str:
        self.slow_calls += 1
        await asyncio.sleep(seconds)
        return "done"

    async def wait_gate(self) -> str:
        await self.gate.wait()
        return "open"

    def lookup(self, symbol: str) -> str:
        raise NotFound(f"unknown symbol {symbol!r}", symbol=symbol)

    def crash(self) -> None:
        raise ZeroDivisionError("boom")

    def unencodable(self) -> object:
        return object()

    def registry(self) -> MethodRegistry:
        registry = MethodRegistry()
        for name in ("add", "slow", "wait_gate", "lookup", "crash", "unencodable"):
            registry.register(name, getattr(self, name))
        return registry


async def _serve(calc: Calculator, endpoint: str = "tcp://127.0.0.1:0", **kw: int) -> RpcServer:
    server = RpcServer(endpoint, calc.registry(), **kw)
    await server.start()
    return server


def test_registry_refuses_duplicates_and_lists_names() -> None:
    registry = Calculator().registry()
    with pytest.raises(ValueError):
        registry.register("add", lambda: None)
    assert registry.names() == ["add", "crash", "lookup", "slow", "unencodable", "wait_gate"]


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_results_and_typed_errors_cross_the_wire(event_loop: str) -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc)
        client = RpcClient(server.endpoint, timeout=3)
        assert await client.call("add", Decimal("0.1"), Decimal("0.2")) == Decimal("0.3")
        assert await client.call("add", a=Decimal(1), b=Decimal(2)) == Decimal(3)
        with pytest.raises(NotFound, match="unknown symbol 'ZZZ'") as info:
            await client.call("lookup", "ZZZ")
        assert info.value.details == {"symbol": "ZZZ"}
        with pytest.raises(MethodNotFound, match="__init__"):
            await client.call("__init__")
        with pytest.raises(ValidationError, match="bad arguments for 'add'"):
            await client.call("add", 1)
        with pytest.raises(ValidationError, match="bad arguments for 'slow'.*unexpected keyword"):
            await client.call("slow", 0.01, minutes=1)  # an async method's arguments too
        with pytest.raises(InternalError, match="ZeroDivisionError: boom"):
            await client.call("crash")
        with pytest.raises(InternalError, match="not encodable"):
            await client.call("unencodable")
        # The server kept serving through all of that.
        assert await client.call("add", Decimal(2), Decimal(2)) == Decimal(4)
        client.close()
        await server.close()

    loop_runner(event_loop)(scenario())


def test_concurrent_calls_from_one_client_complete_out_of_order() -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc)
        client = RpcClient(server.endpoint, timeout=5)
        slow = asyncio.ensure_future(client.call("slow", 0.3))
        fast = [client.call("add", Decimal(i), Decimal(i)) for i in range(200)]
        results = await asyncio.gather(*fast)
        assert not slow.done()
        assert results == [Decimal(2 * i) for i in range(200)]
        assert await slow == "done"
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_timeout_and_late_reply_is_not_delivered_to_a_later_call() -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc)
        client = RpcClient(server.endpoint, timeout=5)
        with pytest.raises(Timeout, match="no reply"):
            await client.call("slow", 0.3, timeout=0.05)
        # The late "done" reply arrives while this call waits; it must not be taken for ours.
        assert await client.call("add", Decimal(1), Decimal(1)) == Decimal(2)
        await wait_until(lambda: client.stale_replies == 1)
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_a_call_the_full_send_queue_cannot_take_fails_at_once_and_leaves_nothing_pending(
        free_port: Callable[[], int]) -> None:
    async def scenario() -> None:
        client = RpcClient(f"tcp://127.0.0.1:{free_port()}", timeout=5)  # no server: calls queue
        client._connect()._hwm = 2
        queued = [asyncio.create_task(client.call("add", 1, 2)) for _ in range(2)]
        await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        with pytest.raises(Timeout, match="send queue .* is full"):
            await client.call("add", 1, 2)
        assert asyncio.get_running_loop().time() - started < 1  # not after its 5 s timeout
        assert len(client._pending) == 2 and not any(task.done() for task in queued)
        client.close()
        await asyncio.gather(*queued, return_exceptions=True)

    asyncio.run(scenario())


def test_expired_requests_are_not_executed_and_inflight_is_bounded() -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc, max_inflight=4)
        client = RpcClient(server.endpoint, timeout=5)
        waiting = [asyncio.ensure_future(client.call("wait_gate")) for _ in range(4)]
        await wait_until(lambda: len(server._tasks) == 4)
        with pytest.raises(Overloaded):
            await client.call("wait_gate")
        calc.gate.set()
        assert await asyncio.gather(*waiting) == ["open"] * 4

        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.connect(server.endpoint)
        raw.send(codec.encode({"id": 1, "method": "slow", "args": [0], "kwargs": {}, "deadline": 1.0}))
        reply = codec.decode(await asyncio.to_thread(raw.recv))
        assert reply["ok"] is False and reply["error"]["code"] == "timeout"
        assert calc.slow_calls == 0
        raw.close(linger=0)
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_garbage_frames_get_typed_errors_and_the_server_keeps_serving() -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc, max_frame_bytes=64 * 1024)
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.RCVTIMEO, 5000)
        raw.connect(server.endpoint)
        rng = random.Random(11)
        valid = codec.encode({"id": 5, "method": "add", "args": [1, 2], "kwargs": {}, "deadline": None})
        frames = []
        for i in range(2000):
            kind = i % 5
            if kind == 0:
                frames.append(os.urandom(rng.randrange(1, 100)))
            elif kind == 1:
                frames.append(valid[: rng.randrange(1, len(valid))])
            elif kind == 2:
                frames.append(codec.encode(rng.choice([[1, 2], "x", {"id": True}, {"id": 1, "method": 3},
                                                       {"id": 1, "method": "add", "args": {}},
                                                       {"id": 1, "method": "add", "kwargs": {1: 2}}])))
            elif kind == 3:
                frames.append(codec.encode({"id": i, "method": "no_such_method"}))
            else:
                frames.append(b"\x00" * (65 * 1024))
        def send_all() -> None:  # from a thread: the server reads on this loop
            for frame in frames:
                raw.send(frame)

        await asyncio.to_thread(send_all)
        codes = []
        for _ in frames:
            reply = codec.decode(await asyncio.to_thread(raw.recv))
            assert reply["ok"] is False
            codes.append(reply["error"]["code"])
        assert set(codes) <= {"protocol", "unknown_method", "frame_too_large", "invalid"}
        assert {"protocol", "unknown_method", "frame_too_large"} <= set(codes)
        client = RpcClient(server.endpoint, timeout=3)
        assert await client.call("add", Decimal(2), Decimal(3)) == 5
        raw.close(linger=0)
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_client_survives_a_server_restart_without_stale_replies() -> None:
    async def scenario() -> None:
        calc = Calculator()
        server = await _serve(calc)
        endpoint = server.endpoint
        client = RpcClient(endpoint, timeout=5)
        assert await client.call("add", 1, 1) == 2
        in_flight = asyncio.ensure_future(client.call("slow", 5, timeout=0.5))
        await wait_until(lambda: calc.slow_calls == 1)
        await server.close()
        with pytest.raises(Timeout):
            await in_flight
        with pytest.raises(TraderError):
            await client.call("add", 1, 2, timeout=0.2)  # nobody there
        server = await _serve(calc, endpoint=endpoint)
        # The reconnected client works, and no earlier reply is mistaken for this one.
        for i in range(20):
            assert await client.call("add", i, 1, timeout=3) == i + 1
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_remote_errors_keep_their_type_for_the_whole_hierarchy() -> None:
    # Every code on the wire maps back to the class that produced it.
    from trader.errors import _BY_CODE, error_from_wire

    for code, cls in _BY_CODE.items():
        err = error_from_wire(cls("msg", n=1).to_wire())
        assert type(err) is cls and err.code == code and str(err) == "msg" and err.details == {"n": 1}
    assert isinstance(error_from_wire("nonsense"), ProtocolError)
    assert isinstance(error_from_wire({"code": "weird", "message": "m"}), InternalError)
