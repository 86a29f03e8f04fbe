"""The live side of the parity test: stored bars replayed by tws-sim into the real strategy and trader services.

:func:`replay_live` writes one instrument's bars into a market store, starts
redis, the bus, tws-sim (``--replay store:KEY`` at ``speed = data bar / live
bar``, ``--align`` on the live bar, ``--paused``), trader_service and
strategy_service running one example strategy with ``warmup: 0`` (its window
covers the whole replay, so its input is exactly the stored bars, as the
backtest's is), resumes the market and returns what happened: the live bars
(the bus's ticks bucketed as the strategy service buckets them), the fills of
the strategy's orders, each mapped back to the data bar whose close decided
it (the client order id is fixed by the live bar's start, and the replay's
anchor maps a live bar's start to a data time), and the order latencies.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tests.conftest import REPO, StackEnv, TradingStack, call, eventually, started_trading_stack
from trader.data.arctic import ArcticStore
from trader.messaging.pubsub import Subscriber
from trader.strategy.sizing import client_order_id

KEY = "AAPL.STK"


@dataclass
class LiveFill:
    """One filled order of the strategy as trader_service booked it, with the data bars that decided and filled it."""

    bar: pd.Timestamp  # the data bar whose close decided the order (a bracket child: its parent's)
    fill_bar: pd.Timestamp  # the data bar playing when the fill reached the bus
    reason: str  # signal, stop_loss or take_profit (a bracket child)
    side: str
    quantity: Decimal
    price: Decimal  # the average fill price
    commission: Decimal
    latency: float  # seconds from the live bar's end to the (last) fill's message on the bus


@dataclass
class LiveRun:
    """What the replay through the live services produced."""

    bars: pd.DataFrame  # the live bars, re-indexed on the data bars they map to
    fills: list[LiveFill]
    strategy: dict[str, Any]  # the strategy's line in `strategy list` at the end
    anchor: tuple[datetime, datetime]  # (clock, data): the replay's mapping
    speed: float
    ticks: int
    seconds: float = 0.0
    tick_delays: list[float] = field(default_factory=list)  # seconds from each print's clock time to its tick
    unmapped: list[str] = field(default_factory=list)  # client order ids that match no data bar


def write_store(path: Path, bars: pd.DataFrame) -> str:
    """Write ``bars`` (1m, UTC index) as KEY's bars in a new market store at ``path``; return its URI."""
    store = ArcticStore(f"lmdb://{path}")
    day = bars.index[0].floor("D")
    store.write_bars(KEY, "1m", bars, start=day, end=bars.index[-1].floor("D") + pd.Timedelta(days=1))
    return store.uri


def strategy_dir(directory: Path, stem: str, config: dict[str, Any]) -> Path:
    """Copy the example ``stem``'s module unchanged beside ``config`` (the test's YAML) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "strategies" / f"{stem}.py", directory / f"{stem}.py")
    (directory / f"{stem}.yaml").write_text(yaml.safe_dump(config))
    return directory


@contextmanager
def replay_stack(stack_env: StackEnv, strategies: Path, store_uri: str, bars: pd.DataFrame,
                 live_seconds: int) -> Iterator[TradingStack]:
    """The trading stack with tws-sim paused on a replay of ``bars`` that puts each in one live bar."""
    data_seconds = int((bars.index[1] - bars.index[0]).total_seconds())
    tws = ["--replay", f"store:{KEY}", "--bar-size", "1m", "--store", store_uri,
           "--start", bars.index[0].isoformat(), "--end", (bars.index[-1] + pd.Timedelta(minutes=1)).isoformat(),
           "--speed", str(data_seconds // live_seconds), "--align", str(live_seconds), "--paused"]
    with started_trading_stack(stack_env, args={"tws": tws}, TRADER_STRATEGIES__DIRECTORY=str(strategies)) as stack:
        yield stack


def _live_bars(ticks: list[dict[str, Any]], seconds: int) -> pd.DataFrame:
    """Bucket the bus's ticks on the epoch as the strategy service does (trader.strategy.bars)."""
    rows: dict[pd.Timestamp, list[float]] = {}
    for tick in ticks:
        last, bid, ask = tick.get("last"), tick.get("bid"), tick.get("ask")
        price = last if last is not None else (bid + ask) / 2 if bid and ask else None
        if price is None:
            continue
        start = pd.Timestamp(tick["time"]).floor(f"{seconds}s")
        bar = rows.get(start)
        if bar is None:
            rows[start] = [price, price, price, price]
        else:
            bar[1], bar[2], bar[3] = max(bar[1], price), min(bar[2], price), price
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["open", "high", "low", "close"])
    return frame.sort_index()


def _tick_delays(ticks: list[dict[str, Any]], bars: pd.DataFrame, wall: Any) -> list[float]:
    """Return, for each print, the seconds from when the replay was due to play it to its tick on the bus.

    Every bar has the same volume, shared by its four prints, so the session
    volume a tick carries names the print: the first tick with that volume is it.
    """
    share = float(bars["volume"].iloc[0]) / 4
    step = (bars.index[1] - bars.index[0]) / 4
    delays, seen = [], set()
    for tick in ticks:
        volume = tick.get("volume")
        if not volume or volume in seen:
            continue
        seen.add(volume)
        j = round(volume / share) - 1
        due = wall(bars.index[j // 4] + (j % 4) * step)
        delays.append((pd.Timestamp(tick["time"]) - due).total_seconds())
    return delays


async def _watch(stack: TradingStack, ticks: list[dict[str, Any]], arrived: dict[str, datetime],
                 until: Any) -> None:
    """Record the ticks and when each fill reached the bus, from resuming the market until ``until`` returns."""
    sub = Subscriber(f"tcp://127.0.0.1:{stack.env.sub_port}")
    sub.start()
    handle = sub.observe(f"tick.ib.{KEY}").subscribe(lambda m: ticks.append(m.payload))
    fills = sub.observe("fill").subscribe(
        lambda m: arrived.__setitem__(str(getattr(m.payload, "client_order_id", "")), datetime.now(UTC)))
    try:
        await asyncio.sleep(0.5)  # ZeroMQ's slow joiner: the subscription reaches the bus before the replay plays
        await asyncio.to_thread(call, stack.tws_endpoint, "resume_market")
        await asyncio.to_thread(until)
    finally:
        handle.dispose()
        fills.dispose()
        sub.close()


def replay_live(stack: TradingStack, name: str, bars: pd.DataFrame, live_seconds: int) -> LiveRun:
    """Run ``name`` (already in the stack's strategies directory) live over the replay of ``bars``."""
    started = time.monotonic()
    call(stack.trader_endpoint, "subscribe", "AAPL")  # the paused quote's snapshot goes out before any strategy listens
    stack.start("strategy_service")
    stack.wait_strategies_ready()

    def listed() -> dict[str, Any]:
        return {s["name"]: s for s in call(stack.strategy_endpoint, "list")["strategies"]}[name]

    eventually(lambda: listed()["state"] == "RUNNING", 30, f"{name} RUNNING")
    assert listed()["bars"] == {KEY: 0}, "the strategy saw a bar before the replay began"
    ticks: list[dict[str, Any]] = []
    budget = len(bars) * live_seconds + 30

    def finished() -> None:
        eventually(lambda: listed()["bars"].get(KEY) == len(bars), budget, "every replayed bar closed live")
        def done(order: Any) -> bool:  # a bracket child may still work at the end of the data
            child = order.client_order_id.endswith((".sl", ".tp"))
            return (child or order.status.value in ("FILLED", "CANCELLED", "REJECTED")) and (
                order.filled_quantity == 0 or order.client_order_id in arrived)

        eventually(lambda: all(done(o) for o in call(stack.trader_endpoint, "orders") if o.order_ref == name),
                   15, "every order of the strategy done, its fill on the bus")

    arrived: dict[str, datetime] = {}
    asyncio.run(_watch(stack, ticks, arrived, finished))
    replay = call(stack.tws_endpoint, "status")["replay"]
    assert replay["done"], replay
    anchor = (replay["anchor"]["clock"], replay["anchor"]["data"])
    speed = float(replay["speed"])

    def wall(data_time: pd.Timestamp) -> pd.Timestamp:
        return pd.Timestamp(anchor[0]) + (data_time - pd.Timestamp(anchor[1])) / speed

    def data_bar(clock: datetime) -> pd.Timestamp:
        return (pd.Timestamp(anchor[1]) + (pd.Timestamp(clock) - pd.Timestamp(anchor[0])) * speed).floor(size)

    size = bars.index[1] - bars.index[0]
    live = _live_bars(ticks, live_seconds)
    by_wall = {wall(t): t for t in bars.index}
    live.index = pd.DatetimeIndex([by_wall.get(t, pd.NaT) for t in live.index], name="time")
    bar_of = {client_order_id(name, KEY, wall(t).value): t for t in bars.index}
    orders = [o for o in call(stack.trader_endpoint, "orders") if o.order_ref == name]
    fills = call(stack.trader_endpoint, "trades")
    run = LiveRun(live, [], listed(), anchor, speed, len(ticks), time.monotonic() - started,
                  _tick_delays(ticks, bars, wall))
    step = timedelta(seconds=live_seconds)
    for order in orders:
        coid = order.client_order_id
        root, _, tail = coid.rpartition(".") if coid.endswith((".sl", ".tp")) else (coid, "", "")
        bar = bar_of.get(root)
        mine = [f for f in fills if f.client_order_id == coid]
        if bar is None:
            run.unmapped.append(coid)
            continue
        if not mine and tail:
            continue  # the bracket child its sibling's fill cancelled
        quantity = sum((f.quantity for f in mine), Decimal(0))
        price = sum((f.price * f.quantity for f in mine), Decimal(0)) / quantity if quantity else Decimal(0)
        commission = sum((f.commission or Decimal(0) for f in mine), Decimal(0))
        last = arrived.get(coid)
        latency = (pd.Timestamp(last) - (wall(bar) + step)).total_seconds() if last is not None else float("nan")
        reason = {"sl": "stop_loss", "tp": "take_profit"}.get(tail, "signal")
        filled = data_bar(last) if last is not None else pd.NaT
        run.fills.append(LiveFill(bar, filled, reason, order.action.value, quantity, price, commission, latency))
    run.fills.sort(key=lambda f: (f.fill_bar, f.bar))
    return run


def live_config(params: dict[str, Any], live_seconds: int, slippage: str) -> dict[str, Any]:
    """The test's config of an example: its params, live bars of ``live_seconds``, no warm-up, a whole window."""
    return {"enabled": True, "instruments": ["AAPL"], "bar_size": f"{live_seconds}s", "warmup": 0, "window": 1000,
            "no_ticks_seconds": 0, "sizing": {"kind": "quantity", "value": 100}, "params": params,
            "backtest": {"slippage": slippage, "bar_size": "1m", "simulations": 0}}

