"""A forged ``heartbeat.trader_service`` on the bus does not make strategy_service resync (issue 15's probe).

Real redis, bus, tws-sim, trader_service and strategy_service; the forger is
a plain publisher on 127.0.0.1, as any process on the host could be.
"""

from __future__ import annotations

import random
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import StackEnv, call, eventually, started_strategy_stack
from trader.messaging.pubsub import Publisher

pytestmark = pytest.mark.slow

PLUGIN = """
import pandas as pd
from trader.strategy import Strategy


class Quiet(Strategy):
    instruments = ("AAPL",)
    bar_size = "1s"

    def signals(self, prices):
        return pd.Series(0.0, index=prices.index)
"""


def resyncs(endpoint: str) -> int:
    return sum("resynced" in str(line) for line in call(endpoint, "logs", "quiet", 500))


def test_forged_trader_heartbeats_resync_nothing(stack_env: StackEnv, tmp_path: Path) -> None:
    directory = tmp_path / "strategies"
    directory.mkdir()
    (directory / "quiet.py").write_text(textwrap.dedent(PLUGIN))
    with started_strategy_stack(stack_env, directory) as stack:
        endpoint = stack.strategy_endpoint
        eventually(lambda: call(endpoint, "list")["strategies"][0]["state"] == "RUNNING", 30, "quiet RUNNING")
        eventually(lambda: resyncs(endpoint) >= 1, 15, "the start's resync")
        eventually(lambda: call(endpoint, "status")["trader_service"] == "up", 15, "trader_service seen")
        before = resyncs(endpoint)
        publisher = Publisher(f"tcp://127.0.0.1:{stack_env.pub_port}")
        rng = random.Random(15)
        deadline = time.monotonic() + 20
        try:
            # 200 beats with other pids, as the probe sent; again until strategy_service has seen them all.
            while call(endpoint, "status")["unconfirmed_heartbeats"] < 200:
                assert time.monotonic() < deadline, "strategy_service never saw the forged beats"
                for _ in range(200):
                    publisher.publish("heartbeat.trader_service", {
                        "service": "trader_service", "state": "RUNNING", "reason": "",
                        "pid": rng.randrange(2, 2**22), "time": datetime.now(UTC), "uptime": 1.0})
                    time.sleep(0.002)
        finally:
            publisher.close()
        time.sleep(0.5)  # a resync the beats started would be logged within this
        assert resyncs(endpoint) == before
        assert call(endpoint, "status")["trader_service"] == "up"
