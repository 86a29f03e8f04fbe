"""history_service downloading from tws-sim through the IB source: kill -9 mid-job, then the bars of a clean download.

tws-sim enforces IB's pacing: the job's 36 requests (three instruments,
twelve days of one-minute bars, a day per request) go at most five per
instrument in two seconds, so the job lasts long enough to be killed in its
middle. The clean download is made afterwards in this process through the
same source from the same tws-sim (whose history is the same for the same
minutes within one process), over the range shifted by half a day, so none
of its requests is identical to one of the job's (tws-sim, as IB, refuses an
identical request within 15 s); its sim config allows 200 requests in 10
minutes instead of 60, for both downloads to fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, StackEnv, TradingStack, wait_for_port
from trader.config import load_settings
from trader.data.factory import open_store
from trader.data.sources.ib import IbSource
from trader.errors import Timeout
from trader.messaging.rpc import RpcClient

pytestmark = pytest.mark.slow

START = datetime(2026, 11, 23, tzinfo=UTC)
END = datetime(2026, 12, 5, tzinfo=UTC)  # 12 days: 12 requests of a day's one-minute bars per instrument
KEYS = ["AAPL.STK", "MSFT.STK", "IBM.STK"]


async def poll(client: RpcClient, job_id: str, until: Any, timeout: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    job: dict[str, Any] = {}
    while True:
        with contextlib.suppress(Timeout):  # history_service restarting
            job = await client.call("job", job_id, timeout=2)
            if until(job):
                return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)


def windows(job: dict[str, Any], key: str) -> int:
    return next(i["windows"] for i in job["instruments"] if i["key"] == key)


def start_sim(stack: TradingStack, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "sim.yaml").read_text())
    config["pacing"]["max_requests"] = 200
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(config))
    (stack.env.home / "logs").mkdir(exist_ok=True)
    log = (stack.env.home / "logs" / "tws.out").open("ab")
    stack.procs["tws"] = subprocess.Popen(
        [sys.executable, "-m", "services.tws_sim", "--tick-rate", "20", "--sim-config", str(path)], cwd=REPO,
        env={**os.environ, **stack.env.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def clean_download() -> dict[str, pd.DataFrame]:
    """Download the keys over the range shifted by 12 hours, with nothing in the way; return [START, END)."""
    half = timedelta(hours=12)
    bars: dict[str, list[pd.DataFrame]] = {key: [] for key in KEYS}

    async def download() -> None:
        source = IbSource(load_settings())
        try:
            for key in KEYS:
                async for w in source.windows(key, "1m", pd.Timestamp(START - half), pd.Timestamp(END + half)):
                    bars[key].append(w.frame)
        finally:
            await source.close()

    asyncio.run(download())
    lo, hi = pd.Timestamp(START), pd.Timestamp(END)
    out = {}
    for key, frames in bars.items():
        frame = pd.concat(frames)
        out[key] = frame[(frame.index >= lo) & (frame.index < hi)]
    return out


def test_an_ib_download_killed_mid_way_resumes_and_equals_a_clean_download(
        stack_env: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = TradingStack(stack_env)
    try:
        stack.start("redis")
        stack.start("bus")
        start_sim(stack, tmp_path)
        wait_for_port(stack_env.redis_port, 15, "redis")
        wait_for_port(stack_env.ib_port, 15, "tws-sim")
        stack.start("history_service")
        stack.wait_ready(stack.history_endpoint, "history_service", 30)

        async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
            client = RpcClient(stack.history_endpoint)
            try:
                job = await client.call("submit", "ib", "1 min", START, END, instruments=["AAPL", "MSFT", "IBM"])
                killed = await poll(client, job["id"], lambda j: windows(j, "MSFT.STK") >= 3, 120)
                stack.kill("history_service")
                stack.start("history_service")
                done = await poll(client, job["id"], lambda j: j["state"] not in ("QUEUED", "RUNNING"), 180)
                return killed, done
            finally:
                client.close()

        killed, done = asyncio.run(scenario())
        assert windows(killed, "MSFT.STK") < 12 and windows(killed, "IBM.STK") == 0  # killed in its middle
        assert done["state"] == "DONE" and done["runs"] == 2 and done["failed"] == 0
        assert [windows(done, key) for key in KEYS] == [12, 12, 12]  # each window recorded once
        monkeypatch.setenv("TRADER_HISTORY__CLIENT_ID", "21")
        clean = clean_download()
    finally:
        for name in list(stack.procs):
            stack.kill(name)
    stored = open_store(load_settings())
    for key in KEYS:
        got = stored.read_bars(key, "1m")
        assert len(got) == 12 * 1440 and got.index.is_unique
        pd.testing.assert_frame_equal(got, clean[key].astype(got.dtypes.to_dict()), check_freq=False,
                                      check_names=False)
