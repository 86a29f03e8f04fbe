"""RPC transport benchmark: the hand-written ZMTP against pyzmq for the same RPC, measured in one run.

Run: ``.venv/bin/python -m bench.rpc`` (``--quick`` for a short smoke run).

Both sides make the same sequential calls, one at a time, of an ``echo``
method with a place_order-sized request, from an asyncio client to a server
process on loopback, both on the services' loop (uvloop unless ``--loop
asyncio``), with the same envelope (``{id, method, args, kwargs, deadline}``
-> ``{id, ok, result}``, msgpack through the platform codec) and the same
registry (its argument check included):

1. ``zmtp``: ``RpcClient`` -> ``RpcServer``, the platform's RPC, which speaks
   ZMTP 3.1 itself from ``asyncio.Protocol`` callbacks (heartbeats on);
2. ``pyzmq``: a ``zmq.asyncio`` DEALER -> ROUTER carrying that envelope, as
   the RPC would be if it went through libzmq (whose I/O threads every
   message crosses, on both ends).

Rounds alternate between the two and the medians are kept, because the
machine is shared and noisy. The output ends with these lines:

- ``zmtp_rpc_p50_us``, ``pyzmq_rpc_p50_us`` (and p99): the round trips;
- ``pyzmq_extra_p50_us``: what libzmq would add to every call, p50;
- ``zmtp_vs_pyzmq_p50: <ratio> (target <= 1.0)``: the hand-written
  transport is kept only while it is faster than libzmq's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from decimal import Decimal
from typing import Any

import zmq
import zmq.asyncio
from rich.console import Console
from rich.table import Table

from bench.measure import p50_p99_us, rpc_round_trips, serve_rpc, server_process
from trader.messaging import codec
from trader.messaging.rpc import MethodRegistry
from trader.service.base import loop_runner

REQUEST = {"symbol": "AAPL", "action": "BUY", "quantity": 100, "order_type": "LMT",
           "limit_price": Decimal("189.12"), "tif": "DAY", "client_order_id": "bench-rpc-000001"}
console = Console(stderr=True)


def echo(order: dict[str, Any]) -> dict[str, Any]:
    """Return the request: the work of the method is not what is measured."""
    return order


def _registry() -> MethodRegistry:
    registry = MethodRegistry()
    registry.register("echo", echo)
    return registry


# -- servers (child processes) ---------------------------------------------------------
def _zmtp_server(endpoint: str, loop: str, stop: Any) -> None:
    loop_runner(loop)(serve_rpc(endpoint, _registry(), stop))


def _pyzmq_server(endpoint: str, loop: str, stop: Any) -> None:
    async def serve() -> None:
        registry = _registry()
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.bind(endpoint)

        async def handle() -> None:
            while True:
                *route, payload = await sock.recv_multipart()
                request = codec.decode(payload)
                fn, _, _, check = registry.resolve(request["method"])
                if check is not None:
                    check(request["method"], request["args"], request["kwargs"])
                result = fn(*request["args"], **request["kwargs"])
                reply = codec.encode({"id": request["id"], "ok": True, "result": result})
                await sock.send_multipart([*route, reply])

        task = asyncio.get_running_loop().create_task(handle())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        task.cancel()
        sock.close(linger=0)
        ctx.term()

    loop_runner(loop)(serve())


# -- clients ---------------------------------------------------------------------------------
async def _zmtp_calls(endpoint: str, calls: int) -> list[float]:
    return await rpc_round_trips(endpoint, REQUEST, calls)


async def _pyzmq_calls(endpoint: str, calls: int) -> list[float]:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    samples = []
    for i in range(calls + 1):
        t0 = time.perf_counter()
        rid = f"bench-{i}"
        request = {"id": rid, "method": "echo", "args": [REQUEST], "kwargs": {}, "deadline": time.time() + 10}
        async with asyncio.timeout(10):  # as RpcClient.call: no task per call
            await sock.send(codec.encode(request))
            reply = codec.decode(await sock.recv())
        assert reply["id"] == rid and reply["ok"] and reply["result"] == REQUEST
        if i:  # the first call connects
            samples.append(time.perf_counter() - t0)
    sock.close(linger=0)
    ctx.term()
    return samples


def measure(side: str, calls: int, loop: str) -> tuple[float, float]:
    """Return (p50, p99) microseconds of ``calls`` sequential round trips on ``side`` ("zmtp" or "pyzmq")."""
    target = _zmtp_server if side == "zmtp" else _pyzmq_server
    with server_process(target, loop) as endpoint:
        time.sleep(0.3)  # the server binds
        run = _zmtp_calls if side == "zmtp" else _pyzmq_calls
        samples = loop_runner(loop)(run(endpoint, calls))
    return p50_p99_us(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    calls, rounds = (500, 1) if args.quick else (3000, args.rounds)
    mp.set_start_method("spawn", force=True)
    results: dict[str, list[tuple[float, float]]] = {"zmtp": [], "pyzmq": []}
    with console.status("measuring") as status:
        for r in range(rounds):
            for side in ("zmtp", "pyzmq") if r % 2 == 0 else ("pyzmq", "zmtp"):
                status.update(f"round {r + 1}/{rounds}: {side}")
                results[side].append(measure(side, calls, args.loop))
                console.print(f"round {r + 1}/{rounds} {side:6}: p50 {results[side][-1][0]:.0f} us, "
                              f"p99 {results[side][-1][1]:.0f} us")
    med = {k: (statistics.median(p for p, _ in v), statistics.median(q for _, q in v)) for k, v in results.items()}
    table = Table(title=f"RPC round trip, {calls} sequential calls ({rounds} round(s), medians, {args.loop})")
    table.add_column("transport")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for side, label in (("zmtp", "hand-written ZMTP (RpcClient -> RpcServer)"), ("pyzmq", "pyzmq DEALER -> ROUTER")):
        table.add_row(label, f"{med[side][0]:.0f} us", f"{med[side][1]:.0f} us")
    Console().print(table)
    for side in ("zmtp", "pyzmq"):
        print(f"{side}_rpc_p50_us: {med[side][0]:.0f}")
        print(f"{side}_rpc_p99_us: {med[side][1]:.0f}")
    print(f"pyzmq_extra_p50_us: {med['pyzmq'][0] - med['zmtp'][0]:.0f}")
    print(f"zmtp_vs_pyzmq_p50: {med['zmtp'][0] / med['pyzmq'][0]:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
