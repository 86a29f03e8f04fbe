"""``trader strategy drift`` end to end: fills from a real trader_service on tws-sim against the backtest.

Three plugins on daily AAPL bars (no live bar closes during the test, so the
only orders are the test's): the test places each strategy's orders through
trader_service under the client order ids the strategy service would give
them, then stores the bars, their opens at the prices the orders filled at,
so the backtest of ``steady`` trades exactly what it did live.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.cli.invoke import refused, trader
from tests.conftest import (
    StackEnv,
    TradingStack,
    call,
    eventually,
    started_strategy_stack,
    write_plugins,
)
from trader.config import load_settings
from trader.data import open_store
from trader.messaging.pubsub import Message, Subscriber
from trader.strategy.sizing import client_order_id

pytestmark = pytest.mark.slow

PLUGIN = """
import pandas as pd
from trader.strategy import Strategy


class {cls}(Strategy):
    instruments = ("AAPL",)
    bar_size = "1d"

    def signals(self, prices):
        return (prices["volume"] > 500).astype(float)  # long on a busy day, flat on a quiet one
"""
PLUGINS = {f"{name}.py": PLUGIN.format(cls=name.title()) for name in ("steady", "wobbly", "quiet")}
PLUGINS.update({f"{name}.yaml": "sizing: {kind: quantity, value: 10}\n" for name in ("steady", "wobbly", "quiet")})
KEY = "AAPL.STK"
VOLUMES = [100, 100, 1000, 1000, 100, 1000, 1000, 1000]  # targets 0 0 1 1 0 1 1 1: BUY at 2, SELL at 4, BUY at 5
TODAY = pd.Timestamp(datetime.now(UTC).date(), tz="UTC")
DAYS = [TODAY - pd.Timedelta(days=len(VOLUMES) - i) for i in range(len(VOLUMES))]


@pytest.fixture
def stack(stack_env: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TradingStack]:
    strategies = write_plugins(tmp_path / "strategies", PLUGINS)
    monkeypatch.setenv("TRADER_STRATEGIES__DIRECTORY", str(strategies))  # the CLI, in this process, loads them too
    with started_strategy_stack(stack_env, strategies) as running:
        yield running


def place(stack: TradingStack, name: str, day: int, action: str) -> Decimal:
    """Place ``name``'s order of bar ``day`` as the strategy service would; return its fill price."""
    coid = client_order_id(name, KEY, DAYS[day].value)
    call(stack.trader_endpoint, "place_order", symbol="AAPL", action=action, quantity=10, strategy=name,
         client_order_id=coid)

    def filled() -> Any:
        fills = call(stack.trader_endpoint, "trades", client_order_id=coid)
        return fills if fills and all(f.commission is not None for f in fills) else None

    fills = eventually(filled, what=f"{coid} filled with its commission")
    return sum((f.price * f.quantity for f in fills), Decimal(0)) / sum((f.quantity for f in fills), Decimal(0))


def store_bars(opens: dict[int, Decimal]) -> None:
    """Store the daily bars: each bar's open the given fill price (else 200), closes a step above."""
    rows = []
    for i, volume in enumerate(VOLUMES):
        open_ = float(opens.get(i, Decimal(200)))
        close = open_ + 1.0
        rows.append({"open": open_, "high": close + 1, "low": open_ - 1, "close": close, "volume": float(volume)})
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex(DAYS, name="time"))
    open_store(load_settings()).write_bars(KEY, "1d", frame, start=DAYS[0].to_pydatetime(),
                                           end=TODAY.to_pydatetime())


def drift_json(*args: str) -> dict[str, Any]:
    result = trader("--json", "strategy", "drift", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout, parse_float=Decimal)


def test_drift_of_live_fills_against_the_backtest(stack: TradingStack) -> None:
    prices = {3: place(stack, "steady", 2, "BUY"), 5: place(stack, "steady", 4, "SELL"),
              6: place(stack, "steady", 5, "BUY")}
    place(stack, "wobbly", 2, "BUY")
    place(stack, "wobbly", 5, "BUY")  # its SELL of bar 4 never went out: missing
    place(stack, "wobbly", 6, "SELL")  # a trade the backtest does not make: extra
    store_bars(prices)

    steady = drift_json("steady")
    assert (steady["matched"], steady["missing"], steady["extra"]) == (3, 0, 0), steady
    assert steady["score"] == 0 and steady["pnl_diff"] == 0 and steady["pnl_live"] == steady["pnl_backtest"]
    assert [o["bar"][:10] for o in steady["orders"]] == [f"{DAYS[i]:%Y-%m-%d}" for i in (2, 4, 5)]

    wobbly = drift_json("wobbly")
    by_status = {o["status"]: o for o in wobbly["orders"] if o["status"] != "matched"}
    assert (by_status["missing"]["bar"][:10], by_status["missing"]["side_backtest"]) == (f"{DAYS[4]:%Y-%m-%d}", "SELL")
    assert (by_status["extra"]["bar"][:10], by_status["extra"]["side_live"]) == (f"{DAYS[6]:%Y-%m-%d}", "SELL")
    assert wobbly["components"]["trades"] == Decimal("0.5")  # two of four orders disagree
    assert wobbly["score"] >= 25  # and the PnL differs by what the sim's prices moved, if they did

    assert "no fills of strategy quiet" in refused(4, "strategy", "drift", "quiet")
    table = trader("strategy", "drift", "wobbly").stdout
    assert "missing" in table and "extra" in table and "wobbly: drift" in table

    got: list[Message] = []

    async def record_all() -> dict[str, Any]:
        subscriber = Subscriber(f"tcp://127.0.0.1:{stack.env.sub_port}")
        subscriber.start()
        handle = subscriber.observe("strategy.wobbly.drift").subscribe(got.append)
        try:
            await asyncio.sleep(0.3)  # the subscription reaches the bus before anything is published
            out = await asyncio.to_thread(drift_json, "--all", "--record")
            deadline = asyncio.get_running_loop().time() + 10
            while not got and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            return out
        finally:
            handle.dispose()
            subscriber.close()

    every = asyncio.run(record_all())
    assert {s["strategy"]: s["score"] for s in every["strategies"]} == {
        "quiet": None, "steady": 0, "wobbly": wobbly["score"]}
    assert got and got[0].payload["score"] == float(wobbly["score"]) and got[0].payload["missing"] == 1
    listed = {s["name"]: s["drift"] for s in drift_list()}
    assert listed["wobbly"]["score"] == wobbly["score"] and listed["steady"]["score"] == 0
    assert listed["quiet"]["score"] is None and "no fills" in listed["quiet"]["error"]
    # Kept in Redis: a restarted strategy_service shows the last scores still.
    stack.kill("strategy_service")
    stack.start("strategy_service")
    stack.wait_strategies_ready()
    assert {s["name"]: (s["drift"] or {}).get("score") for s in drift_list()}["wobbly"] == wobbly["score"]


def drift_list() -> list[dict[str, Any]]:
    result = trader("--json", "strategy", "list")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout, parse_float=Decimal)["strategies"]

