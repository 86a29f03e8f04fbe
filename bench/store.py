"""Market store benchmark: the platform's ArcticStore against raw ArcticDB, writing and reading, in one run.

Run: ``.venv/bin/python -m bench.store`` (``--quick`` for a short smoke run).

1. Writes: 100 instruments x 100k one-minute bars, each instrument in ten
   windows of 10k bars, through ``ArcticStore.write_bars`` (the frame check,
   the symbol's writer lock, its metadata, ``update`` over the window with
   pruning) against raw ``arcticdb`` on another LMDB directory doing the
   same job by hand: ``lib.write`` of the first window, ``lib.update`` over
   each next one's date range. The two sides alternate instrument by
   instrument (which goes first alternates too), so the machine's noise
   falls on both; the ratio is of the summed times (bars/s).
2. Reads: one instrument's 1M one-minute bars read by a date range through
   ``ArcticStore.read_bars`` against raw ``lib.read(date_range=...)``,
   alternating, the median of the rounds kept.

3. Then it runs ``bench.store_recorder`` (the recorder vs a raw bus
   subscriber at the publisher's full rate) and ``bench.store_download``
   (IbSource vs ib_async direct from a tws-sim with ``--no-pacing``), each a
   ``measure()`` returning ``(name, value, "OP VALUE")``; ``--quick`` runs
   their smoke sizes too. One that fails prints its lines as ``failed``.

The output ends with one line per target of the issue, all four:
``store_write_vs_raw``, ``store_read_vs_raw``, ``recorder_vs_raw``,
``recorder_lost`` and ``ib_download_vs_direct``, each
``NAME: VALUE (target OP VALUE)``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import arcticdb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from trader.data.arctic import ArcticStore

console = Console(stderr=True)
START = pd.Timestamp("2020-01-01", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)
ONE_NS = pd.Timedelta(1, "ns")
# module -> (the lines its measure() returns, its quick-run arguments)
EXTRAS: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, int]]] = {
    "bench.store_recorder": ((("recorder_vs_raw", ">= 0.8"), ("recorder_lost", "<= 0")),
                             {"count": 20_000, "rounds": 1}),
    "bench.store_download": ((("ib_download_vs_direct", ">= 0.8"),), {"instruments": 3, "days": 1, "rounds": 1}),
}


def frame(seed: int, start: pd.Timestamp, count: int) -> pd.DataFrame:
    """Return ``count`` valid one-minute bars from ``start`` (a random walk, seeded)."""
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0, 0.05, count))
    close = np.maximum(close, 1.0)
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.03, count))
    index = pd.date_range(start, periods=count, freq=MINUTE, name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": rng.integers(0, 10_000, count).astype("float64"),
                         "wap": (open_ + close) / 2, "bar_count": rng.integers(1, 100, count)}, index=index)


def _timed(job: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    job()
    return time.perf_counter() - t0


def writes(root: Path, instruments: int, bars: int, windows: int) -> tuple[float, float]:
    """Return the seconds (store, raw) to write ``instruments`` x ``bars`` bars in ``windows`` windows each."""
    store = ArcticStore(f"lmdb://{root / 'store'}")
    store.library("bars.1m", create=True)  # both libraries made before the clock runs
    raw = arcticdb.Arctic(f"lmdb://{root / 'raw'}").get_library("bars.1m", create_if_missing=True)
    per = bars // windows
    spent = {"store": 0.0, "raw": 0.0}
    for n in range(-1, instruments):  # -1: a warm-up instrument on both sides, not counted
        key = f"SYM{n:03d}.STK" if n >= 0 else "WARMUP.STK"
        chunks = [frame((n + 1) * windows + w, START + w * per * MINUTE, per) for w in range(windows)]

        def through_store(key: str = key, chunks: list[pd.DataFrame] = chunks) -> None:
            for chunk in chunks:
                store.write_bars(key, "1m", chunk, start=chunk.index[0], end=chunk.index[-1] + MINUTE)

        def by_hand(key: str = key, chunks: list[pd.DataFrame] = chunks) -> None:
            raw.write(key, chunks[0])
            for chunk in chunks[1:]:
                raw.update(key, chunk, date_range=(chunk.index[0], chunk.index[-1] + MINUTE - ONE_NS))

        sides = [("store", through_store), ("raw", by_hand)]
        for name, job in sides if n % 2 == 0 else reversed(sides):
            seconds = _timed(job)
            spent[name] += seconds if n >= 0 else 0.0
    return spent["store"], spent["raw"]


def reads(root: Path, bars: int, rounds: int) -> tuple[float, float]:
    """Return the median seconds (store, raw) to read ``bars`` one-minute bars by a date range."""
    store = ArcticStore(f"lmdb://{root / 'read'}")
    data = frame(7, START, bars)
    end = data.index[-1] + MINUTE
    store.write_bars("BIG.STK", "1m", data, start=START, end=end)
    raw = store.library("bars.1m")
    lo, hi = START, end
    times: dict[str, list[float]] = {"store": [], "raw": []}
    for r in range(rounds):
        sides = [("store", lambda: store.read_bars("BIG.STK", "1m", lo, hi)),
                 ("raw", lambda: raw.read("BIG.STK", date_range=(lo, hi - ONE_NS)).data)]
        for name, job in sides if r % 2 == 0 else reversed(sides):
            times[name].append(_timed(job))
    assert len(store.read_bars("BIG.STK", "1m", lo, hi)) == bars
    return statistics.median(times["store"]), statistics.median(times["raw"])


def extra_lines(*, quick: bool = False) -> list[tuple[str, float | None, str]]:
    """Return the lines of the other store benchmarks (recorder, IB download); value None for one that failed."""
    lines: list[tuple[str, float | None, str]] = []
    for name, (names, small) in EXTRAS.items():
        console.print(f"running {name}{' --quick' if quick else ''}")
        try:
            lines += importlib.import_module(name).measure(**(small if quick else {}))
        except Exception as exc:  # noqa: BLE001 - one bench failing leaves the others' lines
            console.print(f"{name} failed: {type(exc).__name__}: {exc}")
            lines += [(line, None, target) for line, target in names]
    return lines


def target_lines(lines: list[tuple[str, float | None, str]]) -> list[str]:
    """Return one ``NAME: VALUE (target OP VALUE)`` text per line: ratios to 2 places, counts whole."""
    out = []
    for name, value, target in lines:
        target = target if target.startswith("target") else f"target {target}"
        figure = "failed" if value is None else f"{value:.2f}" if "_vs_" in name else f"{value:g}"
        out.append(f"{name}: {figure} ({target})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (5 x 100k bars written, 200k read)")
    parser.add_argument("--rounds", type=int, default=7, help="read rounds (the median is kept)")
    args = parser.parse_args(argv)
    instruments, bars, read_bars, rounds = (5, 100_000, 200_000, 3) if args.quick else (100, 100_000, 1_000_000,
                                                                                        args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        with console.status(f"writing {instruments} x {bars:,} bars, store and raw"):
            store_w, raw_w = writes(Path(tmp), instruments, bars, windows=10)
        with console.status(f"reading {read_bars:,} bars, {rounds} rounds"):
            store_r, raw_r = reads(Path(tmp), read_bars, rounds)
    total = instruments * bars
    table = Table(title=f"market store: {instruments} x {bars:,} bars written, {read_bars:,} read")
    table.add_column("path")
    table.add_column("result", justify="right")
    table.add_row("raw arcticdb write/update", f"{total / raw_w:,.0f} bars/s ({raw_w:.1f} s)")
    table.add_row("ArcticStore.write_bars", f"{total / store_w:,.0f} bars/s ({store_w:.1f} s)")
    table.add_row("raw arcticdb read(date_range)", f"{raw_r * 1000:,.1f} ms")
    table.add_row("ArcticStore.read_bars", f"{store_r * 1000:,.1f} ms")
    Console().print(table)
    lines: list[tuple[str, float | None, str]] = [
        ("store_write_vs_raw", raw_w / store_w, "target >= 0.8"),
        ("store_read_vs_raw", raw_r / store_r, "target >= 0.9"),
        *extra_lines(quick=args.quick),
    ]
    for text in target_lines(lines):
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
