"""IB download benchmark: a universe's 1-minute bars through the history IB source vs ib_async called directly.

Run: ``.venv/bin/python -m bench.store_download`` (``--quick`` for a short smoke
run); ``bench/store.py`` imports :func:`measure` and prints its line after its own.

tws-sim runs as its own process started with ``--no-pacing`` (the issue's "pacing
off": IB's limits would make both sides wait the same ten minutes per 60
requests, which measures IB, not the code). A universe of ``--instruments``
(20) of its instruments (stocks, then indices, FX and front futures) is
downloaded over ``--days`` (5) days of 1-minute bars: one request per
instrument and day, IB's longest for that size.

- The source side is :class:`~trader.data.sources.ib.IbSource`, the code
  history_service runs: the broker seam (IbAdapter), its one Pacer (disabled, as
  ``history.pacing: false`` says), the conversion to Bar records, the window
  frames clipped to each window.
- The direct side is ib_async's ``reqHistoricalDataAsync`` with the same
  contracts, end times, durations and bar size, counting the BarData it returns.

Both download one request at a time, after a warm-up that connects and resolves
every contract (not timed). Each round asks a range a minute earlier than the
last, so no request repeats one made within IB's 15 s (the adapter would
answer it from the first one's answer, without a request). Rounds alternate between the sides and the median
bars/s of each is kept; ``ib_download_vs_direct`` = source / direct (target >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime

import pandas as pd
from ib_async import IB, Contract
from rich.console import Console
from rich.table import Table

from bench.tws_sim import tws_sim
from trader.config import HistorySettings, IbSettings, Settings
from trader.data.sources.ib import IbSource, ib_requests
from trader.domain import SecType
from trader.sim.catalogue import Catalogue, SimInstrument, load_sim_config

console = Console(stderr=True)
TARGET = 0.8
_ORDER = {SecType.STK: 0, SecType.IND: 1, SecType.CASH: 2, SecType.FUT: 3}


def universe(count: int) -> list[SimInstrument]:
    """Return ``count`` instruments of tws-sim's catalogue: stocks first, then indices, FX, front futures."""
    catalogue = Catalogue.from_config(load_sim_config(), datetime.now(UTC).date())
    fronts = {catalogue.front(i.contract.symbol).conid for i in catalogue if i.contract.sec_type is SecType.FUT}
    chosen = [i for i in catalogue if i.contract.sec_type in _ORDER and
              (i.contract.sec_type is not SecType.FUT or i.conid in fronts)]
    chosen.sort(key=lambda i: (_ORDER[i.contract.sec_type], i.contract.key))
    return chosen[:count]


def what_to_show(inst: SimInstrument) -> str:
    return "MIDPOINT" if inst.contract.sec_type is SecType.CASH else "TRADES"


async def via_source(source: IbSource, keys: list[str], start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, float]:
    """Return (bars, seconds) of downloading ``keys`` through the IB source, one window at a time."""
    began, bars = time.perf_counter(), 0
    for key in keys:
        async for window in source.windows(key, "1m", start, end):
            bars += len(window.frame)
    return bars, time.perf_counter() - began


async def direct(ib: IB, instruments: list[SimInstrument], start: pd.Timestamp,
                 end: pd.Timestamp) -> tuple[int, float]:
    """Return (bars, seconds) of the same requests made with ib_async's reqHistoricalDataAsync."""
    contracts = [Contract(conId=i.conid, exchange=i.contract.exchange or "SMART") for i in instruments]
    began, bars = time.perf_counter(), 0
    for inst, contract in zip(instruments, contracts, strict=True):
        for _, window_end, duration in ib_requests(start, end, 60):
            got = await ib.reqHistoricalDataAsync(contract, window_end.strftime("%Y%m%d-%H:%M:%S"), duration,
                                                  "1 min", what_to_show(inst), False, formatDate=2)
            bars += len(got)
    return bars, time.perf_counter() - began


async def run(instruments: int, days: int, rounds: int) -> dict[str, float]:
    """Measure both sides over ``rounds`` alternating rounds; return the medians and the ratio."""
    chosen = universe(instruments)
    keys = [i.contract.key for i in chosen]
    end = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=days)
    async with tws_sim(4.0, "--no-pacing") as port:
        settings = Settings(ib=IbSettings(port=port), history=HistorySettings(client_id=11, pacing=False))
        source = IbSource(settings)
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=12, timeout=10)
        try:
            for key in keys:  # warm-up: connect, resolve every contract
                async for _ in source.windows(key, "1m", end - pd.Timedelta(minutes=5), end):
                    pass
            source_rates, direct_rates = [], []
            for r in range(rounds):
                # Each round a minute earlier: an identical request within IB's 15 s is answered from the
                # first one's answer by the adapter (no request at all), which would measure nothing.
                shift = pd.Timedelta(minutes=r)
                bars_s, secs_s = await via_source(source, keys, start - shift, end - shift)
                bars_d, secs_d = await direct(ib, chosen, start - shift, end - shift)
                if bars_s != bars_d:
                    raise RuntimeError(f"the source downloaded {bars_s} bars, ib_async {bars_d}")
                source_rates.append(bars_s / secs_s)
                direct_rates.append(bars_d / secs_d)
        finally:
            ib.disconnect()
            await source.close()
    source_rate, direct_rate = statistics.median(source_rates), statistics.median(direct_rates)
    return {"bars": float(bars_s), "requests": float(len(keys) * len(list(ib_requests(start, end, 60)))),
            "source_bars_per_s": source_rate, "direct_bars_per_s": direct_rate, "ratio": source_rate / direct_rate}


def measure(instruments: int = 20, days: int = 5, rounds: int = 3) -> list[tuple[str, float, str]]:
    """Return ``[("ib_download_vs_direct", ratio, ">= 0.8")]`` for bench/store.py."""
    figures = asyncio.run(run(instruments, days, rounds))
    return [("ib_download_vs_direct", round(figures["ratio"], 3), f">= {TARGET}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_download", description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=20, help="instruments in the universe (default 20)")
    parser.add_argument("--days", type=int, default=5, help="days of 1-minute bars per instrument (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 instruments, 1 day, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.instruments, args.days, args.rounds = 3, 1, 1
    figures = asyncio.run(run(args.instruments, args.days, args.rounds))
    table = Table(title=f"IB download: {args.instruments} instruments x {args.days} days of 1-minute bars, "
                        f"tws-sim --no-pacing ({int(figures['requests'])} requests, {int(figures['bars'])} bars)")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    table.add_row("IbSource (history_service's code), bars/s", f"{figures['source_bars_per_s']:,.0f}", "")
    table.add_row("ib_async reqHistoricalDataAsync, bars/s", f"{figures['direct_bars_per_s']:,.0f}", "")
    ok = figures["ratio"] >= TARGET
    table.add_row("ib_download_vs_direct", f"{figures['ratio']:.3f}", f">= {TARGET} {'ok' if ok else 'MISSED'}")
    Console().print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
