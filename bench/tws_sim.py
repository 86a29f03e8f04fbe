"""tws-sim benchmark: ticks/s into an ib_async client and order acknowledgements/s, against a raw client.

Run: ``.venv/bin/python -m bench.tws_sim`` (``--quick`` for a short smoke run).

tws-sim runs as its own process (``python -m services.tws_sim``, as in
production), started afresh for every measurement; the clients run here.

1. Ticks/s: an ib_async ``IB`` subscribes with ``reqMktData`` to several
   instruments of a market stepped ``--tick-rate`` times a second (at most
   1000) and counts, over a fixed window after a warm-up, the tick messages
   (tickPrice, tickSize, tickString) its Wrapper applied to the Tickers. The
   baseline is a raw asyncio TCP client that sends the same reqMktData frames
   (ib_async's own encoding, captured once) and counts tick frames. Both are
   bounded by how fast the simulator produces ticks, so the ratio says whether
   ib_async keeps up; it is informational.
2. Order acks/s: N limit orders far below the market (they rest, never fill),
   sent at once, until each has its ``Submitted`` orderStatus; then M orders
   one at a time for the ack latency (placeOrder -> Submitted) p50/p99. The
   baseline ("protocol floor") is a raw asyncio TCP client writing the same
   placeOrder frames, pre-encoded before the clock starts from ib_async's own
   encoding, and reading orderStatus frames. ib_async paces requests to 45/s
   by default (IB's limit is 50/s); the comparison switches that off
   (``client.MaxRequests = 0``), and a burst at the default pacing is printed
   for information.

Rounds alternate between the two sides and the median is kept. The issue sets
no numeric target for tws-sim: every ``target`` line below is informational,
a floor chosen so that a regression stands out, not a requirement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

from ib_async import IB, Contract, LimitOrder, Stock
from ib_async.client import Client
from rich.console import Console
from rich.table import Table

from bench.measure import free_port, percentile
from trader.sim.catalogue import Catalogue, load_sim_config
from trader.sim.wire import FrameSplitter, frame

REPO = Path(__file__).resolve().parent.parent
VERSION = 178  # what tws-sim and ib_async 2.x negotiate
# AAPL, MSFT, NVDA, AMZN, TSLA, SPY, QQQ, EUR.USD, and the front ES and GC (rolling series: asked of the catalogue)
TICK_CONIDS = (265598, 272093, 4815747, 3691937, 76792991, 756733, 320227571, 12087792)
TICK_FUTURES = ("ES", "GC")
ORDER_CONTRACT = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ")
FAR_BELOW = 100.0  # AAPL starts at 231.50 and moves a few cents a minute: a BUY here rests
TICK_IDS = (b"1", b"2", b"46")  # tickPrice, tickSize, tickString
PACED_BURST = 90  # two seconds' worth at ib_async's default 45 requests/s

console = Console(stderr=True)


# -- tws-sim process ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def tws_sim(tick_rate: float, *extra: str) -> AsyncIterator[int]:
    """Run ``python -m services.tws_sim`` (with ``extra`` arguments) on a free port with its own home; yield the port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-tws-sim-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
        env.update(TRADER_HOME=home, TRADER_CONFIG=str(REPO / "configs" / "trader.yaml"),
                   TRADER_LOG_LEVEL="WARNING", TRADER_BUS__PUB_PORT=str(free_port()))
        errors = Path(home) / "tws_sim.err"  # a file, not a pipe: a full pipe would stall the server
        with errors.open("wb") as err_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.tws_sim", "--port", str(port), "--tick-rate", str(tick_rate), *extra,
                cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err_file)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"tws-sim exited with {proc.returncode}: {errors.read_text()[-2000:]}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("tws-sim did not listen within 30s") from None
                    await asyncio.sleep(0.05)
                    continue
                writer.close()  # a probe without the API greeting: tws-sim closes it
                break
            yield port
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


# -- ib_async's own encoding, captured without a socket ------------------------------
class _Capture:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def sendMsg(self, data: bytes) -> None:  # the name ib_async's Client calls
        self.frames.append(data)


def _subscribe(req_id: int, contract: Contract, client: Client) -> None:
    """Ask ``client`` for ``contract``'s streaming quotes as request ``req_id``."""
    client.reqMktData(req_id, contract, "", False, False, [])


def captured(call: Callable[[Client], Any]) -> bytes:
    """Return the payload (no length prefix) that ib_async's Client sends for ``call(client)``."""
    client = Client(object())  # no wrapper is called while encoding
    capture = _Capture()
    client.conn = capture
    client.connState = Client.CONNECTED
    client._serverVersion = VERSION
    client.MaxRequests = 0
    call(client)
    [data] = capture.frames
    return data[4:]


def tick_contracts() -> list[Contract]:
    """The instruments the tick benchmark watches (a conid decides alone in tws-sim)."""
    catalogue = Catalogue.from_config(load_sim_config())
    contracts = []
    for conid in (*TICK_CONIDS, *(catalogue.front(symbol).conid for symbol in TICK_FUTURES)):
        inst = catalogue.get(conid)
        assert inst is not None, f"conid {conid} is not in configs/sim.yaml"
        contracts.append(Contract(conId=conid, exchange=inst.contract.exchange))
    return contracts


def _order_payload(order_id: int) -> bytes:
    return captured(lambda c: c.placeOrder(order_id, ORDER_CONTRACT, LimitOrder("BUY", 1, FAR_BELOW)))


# -- raw client ---------------------------------------------------------------------
class RawClient:
    """The protocol floor: handshake, startApi, pre-encoded frames out, frames in, nothing decoded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = FrameSplitter()
        self.next_id = 0

    @classmethod
    async def connect(cls, port: int, client_id: int) -> RawClient:
        """Connect, negotiate, start the API and wait for nextValidId and managedAccounts."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        writer.write(b"API\0" + frame(f"v157..{VERSION}".encode()))
        async for batch in raw.frames():
            if any(payload.count(b"\0") == 2 for payload in batch):  # the version and the time
                break
        writer.write(frame(b"71\0" b"2\0" + str(client_id).encode() + b"\0\0"))  # startApi
        accounts = False
        async for batch in raw.frames():
            for payload in batch:
                if payload.startswith(b"9\0"):
                    raw.next_id = int(payload.split(b"\0")[2])
                accounts = accounts or payload.startswith(b"15\0")
            if raw.next_id and accounts:
                return raw
        raise AssertionError("unreachable: frames() raises when the connection ends")

    async def frames(self) -> AsyncIterator[list[bytes]]:
        """Yield the payloads that arrive, a read's worth at a time."""
        while True:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError("tws-sim closed the connection")
            yield self.splitter.feed(data)

    def close(self) -> None:
        self.writer.close()


async def raw_ticks(port: int, contracts: list[Contract], warmup: float, window: float) -> float:
    """Return tick frames/s received by a raw client subscribed to ``contracts``."""
    payloads = [captured(partial(_subscribe, i + 1, k)) for i, k in enumerate(contracts)]
    raw = await RawClient.connect(port, 2)
    raw.writer.write(b"".join(frame(p) for p in payloads))
    count, start, end = 0, time.perf_counter() + warmup, time.perf_counter() + warmup + window
    async for batch in raw.frames():
        now = time.perf_counter()
        if now >= start:
            count += sum(1 for p in batch if p[:p.find(b"\0")] in TICK_IDS)
        if now >= end:
            break
    raw.close()
    return count / window


async def raw_orders(port: int, burst: int, sequential: int) -> tuple[float, list[float]]:
    """Return (acks/s of a burst of ``burst`` orders, latencies of ``sequential`` orders one at a time)."""
    raw = await RawClient.connect(port, 2)
    template = _order_payload(raw.next_id)
    head = b"3\0" + str(raw.next_id).encode() + b"\0"
    assert template.startswith(head)
    tail = template[len(head):]
    ids = list(range(raw.next_id, raw.next_id + burst + sequential))
    frames = [frame(b"3\0" + str(i).encode() + b"\0" + tail) for i in ids]

    async def submitted(wanted: set[bytes]) -> None:
        async for batch in raw.frames():
            for p in batch:
                if p.startswith(b"3\0"):
                    fields = p.split(b"\0", 3)
                    if fields[2] == b"Submitted":
                        wanted.discard(fields[1])
            if not wanted:
                return

    t0 = time.perf_counter()
    raw.writer.write(b"".join(frames[:burst]))
    await submitted({str(i).encode() for i in ids[:burst]})
    rate = burst / (time.perf_counter() - t0)
    latencies = []
    for i, data in zip(ids[burst:], frames[burst:], strict=True):
        t0 = time.perf_counter()
        raw.writer.write(data)
        await submitted({str(i).encode()})
        latencies.append(time.perf_counter() - t0)
    raw.close()
    return rate, latencies


# -- ib_async client ------------------------------------------------------------------
async def _ib(port: int) -> IB:
    ib = IB()
    ib.RaiseRequestErrors = False
    await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=20)
    return ib


async def ib_ticks(port: int, contracts: list[Contract], warmup: float, window: float) -> tuple[float, float]:
    """Return (tick messages/s applied by ib_async's Wrapper, TickData/s delivered in pendingTickersEvent)."""
    ib = await _ib(port)
    counts = {"applied": 0, "delivered": 0, "on": False}
    wrapper = ib.wrapper
    for name in ("priceSizeTick", "tickSize", "tickString"):
        method = getattr(wrapper, name)

        def counted(*args: Any, _method: Callable[..., Any] = method) -> None:
            if counts["on"]:
                counts["applied"] += 1
            _method(*args)

        setattr(wrapper, name, counted)  # the decoder looks the method up on each message

    def on_pending(tickers: set[Any]) -> None:
        if counts["on"]:
            counts["delivered"] += sum(len(t.ticks) for t in tickers)

    ib.pendingTickersEvent += on_pending
    for k in contracts:
        ib.reqMktData(k, "", False, False)
    await asyncio.sleep(warmup)
    counts["on"] = True
    await asyncio.sleep(window)
    counts["on"] = False
    ib.disconnect()
    return counts["applied"] / window, counts["delivered"] / window


async def ib_orders(port: int, burst: int, sequential: int, paced: bool = False) -> tuple[float, list[float]]:
    """Return (acks/s of a burst of ``burst`` orders, latencies of ``sequential`` orders one at a time).

    ib_async paces its requests to 45 a second by default (IB's limit is 50);
    unless ``paced``, that throttle is switched off (``MaxRequests = 0``) so the
    figures are the client's and the simulator's, not the throttle's.
    """
    ib = await _ib(port)
    if not paced:
        ib.client.MaxRequests = 0
    waiting: dict[int, asyncio.Future[None]] = {}

    def on_status(trade: Any) -> None:
        future = waiting.get(trade.order.orderId)
        if future is not None and trade.orderStatus.status == "Submitted" and not future.done():
            future.set_result(None)

    ib.orderStatusEvent += on_status
    loop = asyncio.get_running_loop()

    def place() -> asyncio.Future[None]:
        trade = ib.placeOrder(ORDER_CONTRACT, LimitOrder("BUY", 1, FAR_BELOW))
        future = waiting[trade.order.orderId] = loop.create_future()
        return future

    t0 = time.perf_counter()
    await asyncio.gather(*[place() for _ in range(burst)])
    rate = burst / (time.perf_counter() - t0)
    latencies = []
    for _ in range(sequential):
        t0 = time.perf_counter()
        await place()
        latencies.append(time.perf_counter() - t0)
    ib.disconnect()
    return rate, latencies


# -- report -----------------------------------------------------------------------------
async def measure(args: argparse.Namespace, rounds: int, window: float, burst: int, sequential: int) -> dict[str, Any]:
    contracts = tick_contracts()
    results: dict[str, list[Any]] = {"ib_ticks": [], "ib_delivered": [], "raw_ticks": [], "ib_acks": [],
                                     "raw_acks": [], "paced_acks": [], "ib_lat": [], "raw_lat": []}
    warmup = 1.0
    with console.status("measuring") as status:
        for r in range(rounds):
            sides = ("ib", "raw") if r % 2 == 0 else ("raw", "ib")
            for side in sides:
                status.update(f"round {r + 1}/{rounds}: {side} ticks")
                async with tws_sim(args.tick_rate) as port:
                    if side == "ib":
                        applied, delivered = await ib_ticks(port, contracts, warmup, window)
                        results["ib_ticks"].append(applied)
                        results["ib_delivered"].append(delivered)
                    else:
                        results["raw_ticks"].append(await raw_ticks(port, contracts, warmup, window))
            for side in sides:
                status.update(f"round {r + 1}/{rounds}: {side} orders")
                async with tws_sim(1.0) as port:
                    run = ib_orders if side == "ib" else raw_orders
                    rate, latencies = await run(port, burst, sequential)
                    results[f"{side}_acks"].append(rate)
                    results[f"{side}_lat"].append(latencies)
            status.update(f"round {r + 1}/{rounds}: ib_async orders at its default pacing")
            async with tws_sim(1.0) as port:
                results["paced_acks"].append((await ib_orders(port, PACED_BURST, 0, paced=True))[0])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short window, few orders, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tick-rate", type=float, default=1000.0, help="tws-sim market steps/s (at most 1000)")
    args = parser.parse_args(argv)
    rounds, window, burst, sequential = (1, 2.0, 300, 100) if args.quick else (args.rounds, 5.0, 2000, 500)
    results = asyncio.run(measure(args, rounds, window, burst, sequential))

    med = {k: statistics.median(v) for k, v in results.items() if not k.endswith("_lat")}
    lat = {side: (statistics.median(percentile(s, 0.5) for s in results[f"{side}_lat"]) * 1e6,
                  statistics.median(percentile(s, 0.99) for s in results[f"{side}_lat"]) * 1e6)
           for side in ("ib", "raw")}
    contracts = len(tick_contracts())
    table = Table(title=f"tws-sim ({rounds} round(s), medians; market {args.tick_rate:g} steps/s, "
                        f"{contracts} instruments; {burst} orders burst, {sequential} one at a time)")
    table.add_column("path")
    table.add_column("result", justify="right")
    table.add_row("raw client: tick frames received", f"{med['raw_ticks']:,.0f} ticks/s")
    table.add_row("ib_async: tick messages applied to Tickers", f"{med['ib_ticks']:,.0f} ticks/s")
    table.add_row("ib_async: TickData in pendingTickersEvent", f"{med['ib_delivered']:,.0f} ticks/s")
    table.add_row("raw client: placeOrder -> Submitted, burst", f"{med['raw_acks']:,.0f} acks/s")
    table.add_row("ib_async: placeOrder -> Submitted, burst", f"{med['ib_acks']:,.0f} acks/s")
    table.add_row(f"  same, ib_async's default pacing ({PACED_BURST} orders)", f"{med['paced_acks']:,.0f} acks/s")
    table.add_row("raw client: ack latency, one at a time", f"p50 {lat['raw'][0]:.0f} us, p99 {lat['raw'][1]:.0f} us")
    table.add_row("ib_async: ack latency, one at a time", f"p50 {lat['ib'][0]:.0f} us, p99 {lat['ib'][1]:.0f} us")
    Console().print(table)
    print(f"ib_ticks_per_s: {med['ib_ticks']:.0f} (informational)")
    print(f"ib_acks_per_s: {med['ib_acks']:.0f} (informational)")
    print(f"ib_ack_p50_us: {lat['ib'][0]:.0f} (informational)")
    print(f"ib_ack_p99_us: {lat['ib'][1]:.0f} (informational)")
    print(f"ticks_vs_raw: {med['ib_ticks'] / med['raw_ticks']:.2f} (target >= 0.9, informational)")
    print(f"acks_vs_raw: {med['ib_acks'] / med['raw_acks']:.2f} (target >= 0.5, informational)")
    print(f"ack_p50_vs_raw: {lat['ib'][0] / lat['raw'][0]:.2f} (target <= 2.0, informational)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
