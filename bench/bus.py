"""Bus and RPC benchmark: the platform's messaging against raw ZeroMQ, measured in one run.

Run: ``.venv/bin/python -m bench.bus`` (``--quick`` for a short smoke run).

1. Ticks/s from a publisher process through the bus proxy (a process of its
   own, as in production) into a subscriber's Rx stream, against a raw
   single-hop PUB -> SUB doing the same job by hand: plain msgpack ``packb``
   per tick and ``send``; blocking ``recv`` and ``unpackb`` in a tight loop.
   The same raw link moving the pre-encoded bytes without decoding them is
   printed too, for information: it is the machine's ceiling for opaque
   bytes, not a way of delivering ticks to code.
2. RPC round trip p50/p99 (RpcClient -> RpcServer, sequential calls) against a
   raw DEALER -> ROUTER echo of the same bytes. The raw echo runs both ways:
   blocking sockets (the floor of the machine) and pyzmq's asyncio sockets
   (the floor for any service, since every service runs one asyncio loop).
   The target is taken against the asyncio echo; both are printed.

Rounds alternate between the two sides and the median is kept, because the
machine is shared and noisy. The output ends with one line per target.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from typing import Any

import msgpack
import zmq
import zmq.asyncio
from rich.console import Console
from rich.table import Table

from bench.measure import free_port, p50_p99_us, rpc_round_trips, serve_rpc, server_process
from trader.messaging import codec
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.messaging.rpc import MethodRegistry

TOPIC = "tick.sim.AAPL"
TICK = {"s": "AAPL", "b": 189.12, "a": 189.14, "bs": 300.0, "as": 200.0, "l": 189.13, "t": 1_763_000_000_000_000_000}
FRAME = TOPIC.encode() + b"\x00" + codec.encode(TICK)
RPC_PAYLOAD = {"symbol": "AAPL", "qty": 100, "side": "BUY"}
END = "bench.end"

console = Console(stderr=True)


# -- child processes -------------------------------------------------------------
def _raw_publisher(endpoint: str, count: int, ready: Any, encode: bool) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    ready.wait()
    time.sleep(0.3)  # let the subscription reach the publisher
    prefix = TOPIC.encode() + b"\x00"
    if encode:
        for _ in range(count):
            sock.send(prefix + msgpack.packb(TICK))
    else:
        for _ in range(count):
            sock.send(FRAME)
    sock.send(END.encode() + b"\x00" + codec.encode(None))
    sock.close(linger=5000)


def _bus_publisher(endpoint: str, count: int, ready: Any) -> None:
    pub = Publisher(endpoint)
    ready.wait()
    time.sleep(0.3)
    for _ in range(count):
        pub.publish(TOPIC, TICK)
    pub.publish(END, None)
    pub.close()


def run_proxy(pub_port: int, sub_port: int, stop: Any) -> None:
    """Run a bus proxy on the two ports until ``stop`` is set (a process target; bench/store_recorder.py and bench/strategy_service.py use it too)."""
    proxy = BusProxy(f"tcp://127.0.0.1:{pub_port}", f"tcp://127.0.0.1:{sub_port}")
    proxy.start()
    stop.wait()
    proxy.stop()


def _raw_echo(endpoint: str, stop: Any) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if poller.poll(100):
            sock.send_multipart(sock.recv_multipart())
    sock.close(linger=0)


def _rpc_server(endpoint: str, stop: Any) -> None:
    registry = MethodRegistry()
    registry.register("echo", lambda payload: payload)
    asyncio.run(serve_rpc(endpoint, registry, stop))


# -- measurements -------------------------------------------------------------
def raw_ticks(count: int, decode: bool) -> tuple[float, int]:
    """Return (messages/s, received) for a raw PUB -> SUB, blocking recv (and msgpack if ``decode``)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ready = mp.Event()
    proc = mp.Process(target=_raw_publisher, args=(endpoint, count, ready, decode))
    proc.start()
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    ready.set()
    received, start = 0, 0.0
    end_prefix = END.encode()
    try:
        while True:
            data = sock.recv()
            if data.startswith(end_prefix):
                break
            if decode:
                msgpack.unpackb(data[data.find(b"\x00") + 1:])
            if received == 0:
                start = time.perf_counter()
            received += 1
    finally:
        elapsed = time.perf_counter() - start
        sock.close(linger=0)
        proc.join(10)
    return received / elapsed, received


def bus_ticks(count: int) -> tuple[float, int]:
    """Return (messages/s, received) from a publisher through the proxy into an Rx stream."""
    pub_port, sub_port = free_port(), free_port()
    stop, ready = mp.Event(), mp.Event()
    proxy = mp.Process(target=run_proxy, args=(pub_port, sub_port, stop))
    proxy.start()
    publisher = mp.Process(target=_bus_publisher, args=(f"tcp://127.0.0.1:{pub_port}", count, ready))
    publisher.start()

    async def receive() -> tuple[float, int]:
        sub = Subscriber(f"tcp://127.0.0.1:{sub_port}")
        sub.start()
        done = asyncio.get_running_loop().create_future()
        state = {"n": 0, "start": 0.0, "end": 0.0}

        def on_tick(message: Message) -> None:
            if state["n"] == 0:
                state["start"] = time.perf_counter()
            state["n"] += 1

        def on_end(message: Message) -> None:
            state["end"] = time.perf_counter()
            if not done.done():
                done.set_result(None)

        sub.observe("tick").subscribe(on_tick)
        sub.observe(END).subscribe(on_end)
        await asyncio.sleep(0.2)
        ready.set()
        await asyncio.wait_for(done, 60)
        sub.close()
        return state["n"] / (state["end"] - state["start"]), int(state["n"])

    try:
        return asyncio.run(receive())
    finally:
        stop.set()
        publisher.join(10)
        proxy.join(10)


def raw_rpc(calls: int, use_asyncio: bool) -> tuple[float, float]:
    """Return (p50, p99) microseconds of a raw DEALER -> ROUTER echo."""
    data = codec.encode({"id": 1, "method": "echo", "args": [RPC_PAYLOAD], "kwargs": {}, "deadline": None})
    samples: list[float] = []
    with server_process(_raw_echo) as endpoint:
        if use_asyncio:
            async def run() -> None:
                ctx = zmq.asyncio.Context()
                sock = ctx.socket(zmq.DEALER)
                sock.connect(endpoint)
                await sock.send(data)
                await sock.recv()
                for _ in range(calls):
                    t0 = time.perf_counter()
                    await sock.send(data)
                    await sock.recv()
                    samples.append(time.perf_counter() - t0)
                sock.close(linger=0)
                ctx.term()

            asyncio.run(run())
        else:
            sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
            sock.connect(endpoint)
            sock.send(data)
            sock.recv()
            for _ in range(calls):
                t0 = time.perf_counter()
                sock.send(data)
                sock.recv()
                samples.append(time.perf_counter() - t0)
            sock.close(linger=0)
    return p50_p99_us(samples)


def platform_rpc(calls: int) -> tuple[float, float]:
    """Return (p50, p99) microseconds of RpcClient.call against an RpcServer process."""
    with server_process(_rpc_server) as endpoint:
        samples = asyncio.run(rpc_round_trips(endpoint, RPC_PAYLOAD, calls))
    return p50_p99_us(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ticks, calls, rounds = (50_000, 1_000, 1) if args.quick else (400_000, 5_000, args.rounds)
    mp.set_start_method("spawn", force=True)

    raw_rates, bytes_rates, bus_rates, received = [], [], [], []
    rpc = {"raw_sync": [], "raw_asyncio": [], "platform": []}  # type: dict[str, list[tuple[float, float]]]
    with console.status("measuring") as status:
        for r in range(rounds):
            status.update(f"round {r + 1}/{rounds}: raw PUB->SUB")
            raw_rates.append(raw_ticks(ticks, decode=True)[0])
            bytes_rates.append(raw_ticks(ticks, decode=False)[0])
            status.update(f"round {r + 1}/{rounds}: bus -> Rx")
            rate, n = bus_ticks(ticks)
            bus_rates.append(rate)
            received.append(n)
            status.update(f"round {r + 1}/{rounds}: RPC")
            rpc["raw_sync"].append(raw_rpc(calls, use_asyncio=False))
            rpc["raw_asyncio"].append(raw_rpc(calls, use_asyncio=True))
            rpc["platform"].append(platform_rpc(calls))

    raw_rate, bus_rate = statistics.median(raw_rates), statistics.median(bus_rates)
    med = {k: (statistics.median(p for p, _ in v), statistics.median(q for _, q in v)) for k, v in rpc.items()}
    table = Table(title=f"bus and RPC ({rounds} round(s), medians)")
    table.add_column("path")
    table.add_column("result", justify="right")
    table.add_row("raw PUB->SUB, bytes only (ceiling)", f"{statistics.median(bytes_rates):,.0f} msg/s")
    table.add_row("raw PUB->SUB, msgpack each way", f"{raw_rate:,.0f} msg/s")
    table.add_row("publisher -> bus proxy -> Rx stream", f"{bus_rate:,.0f} msg/s")
    table.add_row("  received of sent (worst round)", f"{min(received):,} / {ticks:,}")
    for key, label in (("raw_sync", "raw DEALER/ROUTER echo, blocking"),
                       ("raw_asyncio", "raw DEALER/ROUTER echo, asyncio"),
                       ("platform", "RpcClient -> RpcServer")):
        p50, p99 = med[key]
        table.add_row(label, f"p50 {p50:.0f} us, p99 {p99:.0f} us")
    Console().print(table)
    print(f"bus_vs_raw_bytes: {bus_rate / statistics.median(bytes_rates):.2f} (informational)")
    print(f"rpc_p50_vs_raw_blocking: {med['platform'][0] / med['raw_sync'][0]:.2f} (informational)")
    print(f"bus_vs_raw: {bus_rate / raw_rate:.2f} (target >= 0.5)")
    print(f"rpc_p50_vs_raw: {med['platform'][0] / med['raw_asyncio'][0]:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
