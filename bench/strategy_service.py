"""Strategy tick path benchmark: bus ticks into a running strategy, against a raw subscriber, in one run.

Run: ``.venv/bin/python -m bench.strategy_service`` (``--quick`` for a short smoke run).

One publisher process sends ticks as trader_service does (``tick.ib.<key>``,
the ticker's state as a dict, stamped now) through the bus proxy (a process
of its own). Two receivers take turns on the same bus:

- raw (the baseline): a ZeroMQ SUB socket in a tight blocking loop that
  decodes each frame with the platform codec and does nothing else;
- platform: the strategy service's own pieces on an asyncio loop: the
  Subscriber's Rx stream, the TickFeed (dict -> Tick, traded size from the
  session volume), the bar aggregator on 1-second bars with its timer on the
  loop, and a StrategyRunner running the repository's moving-average
  crossover (``signals`` on its worker thread at each closed bar). The
  runner's orders go to a recorder, not to a trader service: order
  placement is measured by bench.trader_service.

The number is ticks/s into the strategy's bar stream (every tick the
aggregator took, including those too late for a bar already closed by its
timer) against ticks/s decoded by the raw loop, both timed between the
publisher's start and end markers. Rounds alternate and medians are kept, because the
machine is shared and noisy. The output ends with one line per target.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import zmq
from reactivex.scheduler.eventloop import AsyncIOScheduler
from rich.console import Console
from rich.table import Table

from bench.bus import run_proxy
from bench.measure import free_port
from trader.messaging import codec
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.strategy.feed import TickFeed
from trader.strategy.plugins import load_plugin
from trader.strategy.runner import StrategyRunner

KEY = "AAPL.STK"
TOPIC = f"tick.ib.{KEY}"
MARK = "bench.mark"  # payload PROBE until the receiver answers, then START, the ticks, END
PROBE, START, END = 0, 1, 2
PLUGIN = Path(__file__).resolve().parent.parent / "strategies" / "ma_crossover.py"

console = Console(stderr=True)


def _publisher(endpoint: str, count: int, go: Any) -> None:
    pub = Publisher(endpoint)
    while not go.wait(0.05):  # until the receiver hears us: its subscription has crossed the proxy
        pub.publish(MARK, PROBE)
    price, volume = 190.0, 1_000_000.0
    pub.publish(MARK, START)
    for i in range(count):
        step = 0.01 if (i * 7919) % 13 < 6 else -0.01
        price = round(price + step, 2)
        volume += 100.0 if i % 3 == 0 else 0.0
        pub.publish(TOPIC, {"instrument": KEY, "time": datetime.now(UTC), "bid": price - 0.01, "ask": price + 0.01,
                            "last": price, "bid_size": 300.0, "ask_size": 200.0, "last_size": 100.0,
                            "volume": volume})
    pub.publish(MARK, END)
    pub.close()


def _start(count: int) -> tuple[int, Any, Any, Any, Any]:
    pub_port, sub_port = free_port(), free_port()
    stop, go = mp.Event(), mp.Event()
    proxy = mp.Process(target=run_proxy, args=(pub_port, sub_port, stop))
    proxy.start()
    publisher = mp.Process(target=_publisher, args=(f"tcp://127.0.0.1:{pub_port}", count, go))
    publisher.start()
    return sub_port, stop, go, proxy, publisher


def raw_ticks(count: int) -> tuple[float, int]:
    """Return (ticks/s, received) for a raw SUB socket decoding every frame."""
    sub_port, stop, go, proxy, publisher = _start(count)
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"tick")
    sock.setsockopt(zmq.SUBSCRIBE, MARK.encode())
    sock.connect(f"tcp://127.0.0.1:{sub_port}")
    received, start = 0, 0.0
    mark = MARK.encode()
    try:
        while True:
            data = sock.recv()
            payload = codec.decode(data[data.find(b"\x00") + 1:])
            if data.startswith(mark):
                if payload == PROBE:
                    go.set()
                elif payload == START:
                    start = time.perf_counter()
                else:
                    break
                continue
            received += 1
        return received / (time.perf_counter() - start), received
    finally:
        sock.close(linger=0)
        stop.set()
        publisher.join(10)
        proxy.join(10)


def strategy_ticks(count: int) -> tuple[float, int, int, int, int]:
    """Return (ticks/s, ticks into the strategy's bar stream, bars, orders, late ticks) through its pipeline."""
    sub_port, stop, go, proxy, publisher = _start(count)
    orders: list[dict[str, Any]] = []

    async def call(method: str, **kwargs: Any) -> dict[str, Any]:
        orders.append(kwargs)
        return {"status": "SUBMITTED"}

    async def no_equity() -> Decimal | None:
        return None

    async def receive() -> tuple[float, int, int, int, int]:
        loop = asyncio.get_running_loop()
        sub = Subscriber(f"tcp://127.0.0.1:{sub_port}")
        sub.start()
        feed = TickFeed(sub, scheduler=AsyncIOScheduler(loop))
        runner = StrategyRunner(load_plugin(PLUGIN), call, lambda topic, payload: None, equity=no_equity)
        runner.bar_seconds = 1
        runner.begin({"AAPL": KEY})
        feed.bars(KEY, 1).subscribe(runner.on_bar)  # as the service attaches a strategy without on_tick
        stats = feed.aggregators[(KEY, 1)].stats
        await runner.warm_up({})
        done = loop.create_future()
        clock = {"start": 0.0, "end": 0.0}

        def on_marker(message: Message) -> None:
            if message.payload == PROBE:
                go.set()
            elif message.payload == START:
                clock["start"] = time.perf_counter()
            else:
                clock["end"] = time.perf_counter()
                if not done.done():
                    done.set_result(None)

        sub.observe(MARK).subscribe(on_marker)
        await asyncio.wait_for(done, 120)
        await asyncio.sleep(1.5)  # the last bar closes by its timer
        bars = runner.bars_seen
        await runner.end()
        runner.close()
        sub.close()
        seen = stats["ticks"] + stats["late"]
        return seen / (clock["end"] - clock["start"]), seen, bars, len(orders), stats["late"]

    try:
        return asyncio.run(receive())
    finally:
        stop.set()
        publisher.join(10)
        proxy.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ticks, rounds = (30_000, 1) if args.quick else (200_000, args.rounds)
    mp.set_start_method("spawn", force=True)
    raw_rates, rates, seen, bars, orders, late = [], [], [], [], [], []
    with console.status("measuring") as status:
        for r in range(rounds):
            status.update(f"round {r + 1}/{rounds}: raw SUB")
            raw_rates.append(raw_ticks(ticks)[0])
            status.update(f"round {r + 1}/{rounds}: bus -> Rx -> bars -> strategy")
            rate, n, b, o, lt = strategy_ticks(ticks)
            rates.append(rate)
            late.append(lt)
            seen.append(n)
            bars.append(b)
            orders.append(o)
    raw, platform = statistics.median(raw_rates), statistics.median(rates)
    table = Table(title=f"ticks into a running strategy ({rounds} round(s) of {ticks:,} ticks, medians)")
    table.add_column("path")
    table.add_column("result", justify="right")
    table.add_row("publisher -> bus proxy -> raw SUB + decode (baseline)", f"{raw:,.0f} ticks/s")
    table.add_row("publisher -> bus proxy -> Rx -> 1s bars -> ma_crossover", f"{platform:,.0f} ticks/s")
    table.add_row("  ticks into the strategy's bar stream (worst round)", f"{min(seen):,} / {ticks:,}")
    table.add_row("  of which late for a bar already closed (median)", f"{statistics.median(late):,.0f}")
    table.add_row("  bars closed / orders decided (median)", f"{statistics.median(bars):.0f} / {statistics.median(orders):.0f}")
    Console().print(table)
    print(f"strategy_ticks_vs_raw: {platform / raw:.2f} (target >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
