"""A/B of two checkouts' trader_service: place_order -> broker ack, both in one run, against one tws-sim.

Run: ``.venv/bin/python -m bench.trader_ab OTHER_CHECKOUT`` (``--rounds``, ``--count``), for example::

    git worktree add /tmp/base HEAD~1 && .venv/bin/python -m bench.trader_ab /tmp/base

The place_order benchmark (``bench.trader_service``) moves by about 3% from
one run to the next on a shared machine, so a change worth 3% cannot be seen by
comparing two of its runs. Here this checkout's trader_service, the other
checkout's and a direct ib_async client take turns order by order, as in that
benchmark, so all three meet the same machine; the p50s are compared within
the run. Each trader_service has its own redis-server and TRADER_HOME (IB
client ids 1 and 7); the bus, tws-sim and the client process (this
checkout's RpcClient) are shared. Orders the host stalled are set aside, as
there. An A/A run (this checkout given as the other) reads
``this_vs_other_p50`` 0.99-1.00, its rounds 0.97-1.03: a difference under 2%
is not shown. The target line says this checkout is no slower than the other
beyond that.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from ib_async import IB
from rich.console import Console
from rich.table import Table

from bench.measure import free_port, percentile
from bench.trader_service import (
    DIRECT_CLIENT_ID,
    WARMUP,
    Direct,
    Platform,
    Processes,
    Stack,
    limit_price,
    taking_turns,
    wait_ready,
)
from trader.messaging.rpc import RpcClient

OTHER_CLIENT_ID = 7
console = Console(stderr=True)


class OtherService(Processes):
    """The other checkout's trader_service, with its own redis-server and home, on the stack's bus and tws-sim."""

    def __init__(self, stack: Stack, checkout: Path, home: Path) -> None:
        self.redis_port, self.rpc_port, tws_rpc = free_port(), free_port(), free_port()
        # Its own checkout's configs: the two may differ in the keys they know.
        super().__init__(home, dict(stack.env, TRADER_HOME=str(home), TRADER_REDIS__PORT=str(self.redis_port),
                                    TRADER_CONFIG=str(checkout / "configs" / "trader.yaml"),
                                    TRADER_IB__CLIENT_ID=str(OTHER_CLIENT_ID),
                                    TRADER_SERVICES__TRADER_SERVICE__RPC_PORT=str(self.rpc_port),
                                    TRADER_SERVICES__TWS_SIM__RPC_PORT=str(tws_rpc)), cwd=checkout)

    def start(self) -> None:
        self._spawn_redis(self.redis_port)
        self._wait_port("redis", self.redis_port)
        # `python -m` puts the working directory first on sys.path: the other checkout's package is imported.
        self._spawn("trader_service", [sys.executable, "-m", "services.trader_service"])


async def measure(stack: Stack, other: OtherService, rounds: int, count: int) -> dict[str, list[float]]:
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)  # not one line per cancelled order (202)
    this_client = RpcClient(f"tcp://127.0.0.1:{stack.rpc_port}", timeout=30)
    other_client = RpcClient(f"tcp://127.0.0.1:{other.rpc_port}", timeout=30)
    ib = IB()
    try:
        await wait_ready(this_client, stack)
        await wait_ready(other_client, other)
        await ib.connectAsync("127.0.0.1", stack.ib_port, clientId=DIRECT_CLIENT_ID, timeout=20)
        sides = {"this": Platform(this_client).place, "other": Platform(other_client).place,
                 "direct": Direct(ib).place}
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        price = await limit_price(this_client)
        for place in sides.values():
            await taking_turns({"warm-up": place}, price, WARMUP)
        names = list(sides)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # each side leads a round in turn
            got = await taking_turns({side: sides[side] for side in order}, price, count)
            ib.reqGlobalCancel()  # both trader_services' orders too: IB's global cancel is the account's
            await asyncio.sleep(2)
            p50 = {side: percentile(got[side].kept, 0.5) * 1e6 for side in names}
            console.print(f"round {r + 1}/{rounds}: " + ", ".join(f"{s} {p50[s]:,.0f} us" for s in names)
                          + f"; this/other {p50['this'] / p50['other']:.3f}")
            for side in names:
                latencies[side] += got[side].kept
        return latencies
    finally:
        ib.disconnect()
        this_client.close()
        other_client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree, say)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=200, help="orders a side per round")
    args = parser.parse_args(argv)
    other_checkout = args.other.resolve()
    if not (other_checkout / "services" / "trader_service.py").exists():
        parser.error(f"{other_checkout} is not a checkout of this project")

    with tempfile.TemporaryDirectory(prefix="bench-ab-") as home, \
            tempfile.TemporaryDirectory(prefix="bench-ab-other-") as other_home:
        stack = Stack(Path(home))
        other = OtherService(stack, other_checkout, Path(other_home))
        try:
            console.print(f"starting the stack in {home}, the other trader_service ({other_checkout}) "
                          f"in {other_home}")
            stack.start()
            other.start()
            latencies = asyncio.run(measure(stack, other, args.rounds, args.count))
        finally:
            other.stop()
            stack.stop()

    p50 = {side: percentile(values, 0.5) * 1e6 for side, values in latencies.items()}
    p99 = {side: percentile(values, 0.99) * 1e6 for side, values in latencies.items()}
    table = Table(title=f"place_order -> broker ack, {args.rounds} round(s) of {args.count} orders a side")
    for column in ("side", "ack p50", "ack p99", "p50 / direct"):
        table.add_column(column, justify="left" if column == "side" else "right")
    for side in latencies:
        table.add_row(side if side != "other" else f"other ({other_checkout.name})", f"{p50[side]:,.0f} us",
                      f"{p99[side]:,.0f} us", f"{p50[side] / p50['direct']:.3f}")
    Console().print(table)
    print(f"this_vs_direct_p50: {p50['this'] / p50['direct']:.3f} (target <= 1.5)")
    print(f"this_vs_other_p50: {p50['this'] / p50['other']:.3f} (target <= 1.02)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
