"""history_service as a real process on a real Redis, bus and store: kill -9 mid-job, cancel, retry, failures.

The source is tests/data/csv_source.py's CsvSource, a real Source over a CSV
the test writes, slowed down per window (``delay``) so that a job runs long
enough to be killed in its middle; the service loads it through
``history.sources`` as it would a source of one's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import StackEnv, TradingStack
from tests.data.csv_source import CsvSource, write_csv
from tests.service.history_stack import started_history
from tests.waiting import wait_until
from trader.config import load_settings
from trader.data.arctic import ArcticStore
from trader.data.factory import open_store
from trader.data.universes import Member, Universes
from trader.errors import Conflict, NotFound, Timeout, ValidationError
from trader.messaging.pubsub import Message, Subscriber
from trader.messaging.rpc import RpcClient

START = datetime(2026, 3, 2, tzinfo=UTC)
END = datetime(2026, 3, 4, tzinfo=UTC)  # 2880 one-minute bars, 48 windows of an hour, per instrument
KEYS = ["AAPL.STK", "MSFT.STK", "IBM.STK"]


@pytest.fixture
def history(stack_env: StackEnv) -> Iterator[TradingStack]:
    """The history stack of :func:`started_history`."""
    with started_history(stack_env) as stack:
        yield stack


async def job_of(client: RpcClient, job_id: str) -> dict[str, Any]:
    return await client.call("job", job_id, timeout=5)


async def wait_job(client: RpcClient, job_id: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def poll() -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                job = await job_of(client, job_id)
            except Timeout:  # a service (re)starting on a loaded machine answers late: ask again till the deadline
                if asyncio.get_running_loop().time() > deadline:
                    raise
                continue
            if check(job):
                found.update(job)
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: not met within {timeout}s; job {job}")
            await asyncio.sleep(0.05)

    await poll()
    return found


def item(job: dict[str, Any], key: str) -> dict[str, Any]:
    return next(i for i in job["instruments"] if i["key"] == key)


def clean_download(csv: Path, keys: list[str], where: Path) -> dict[str, pd.DataFrame]:
    """Download ``keys`` from the CSV with nothing in the way, into a fresh store; return what it holds."""
    store = ArcticStore(f"lmdb://{where}")

    async def go() -> None:
        source = CsvSource(None, str(csv))
        for key in keys:
            async for window in source.windows(key, "1m", pd.Timestamp(START), pd.Timestamp(END)):
                store.write_bars(key, "1m", window.frame, start=window.start, end=window.end)

    asyncio.run(go())
    return {key: store.read_bars(key, "1m", START, END) for key in keys}


def stored(keys: list[str]) -> dict[str, pd.DataFrame]:
    store = open_store(load_settings())
    return {key: store.read_bars(key, "1m", START, END) for key in keys}


def test_a_job_killed_mid_way_resumes_and_stores_what_a_clean_download_does(
        history: TradingStack, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, KEYS, "2026-03-02", 2880)
    events: list[Message] = []

    async def scenario() -> dict[str, Any]:
        client = RpcClient(history.history_endpoint)
        sub = Subscriber(f"tcp://127.0.0.1:{history.env.sub_port}")
        sub.start()
        sub.observe("job").subscribe(events.append)
        try:
            job = await client.call("submit", "csv", "1 min", START, END, instruments=["aapl", "MSFT", "IBM.STK"],
                                    options={"path": str(csv), "delay": 0.08}, timeout=10)
            assert job["state"] == "QUEUED" and [i["key"] for i in job["instruments"]] == KEYS
            # Mid-way: AAPL done, MSFT some windows in.
            await wait_job(client, job["id"], lambda j: item(j, "MSFT.STK")["windows"] >= 5, 60, "MSFT half-way")
            history.kill("history_service")
            killed = await job_of_fresh(history, job["id"])
            assert killed["state"] == "RUNNING" and item(killed, "AAPL.STK")["state"] == "DONE"
            assert 5 <= item(killed, "MSFT.STK")["windows"] < 48
            history.start("history_service")
            done = await wait_job(client, job["id"], lambda j: j["state"] == "DONE", 90, "the job done after restart")
            await wait_until(lambda: any(m.topic.endswith(".done") for m in events), 10, "the done event")
            return {"killed": killed, "done": done}
        finally:
            sub.close()
            client.close()

    result = asyncio.run(scenario())
    done, killed = result["done"], result["killed"]
    assert done["runs"] == 2 and done["done"] == 3 and done["failed"] == 0
    resumed = item(done, "MSFT.STK")
    # It went on from its resume point: windows are counted once recorded, so a run from the start again
    # would count 48 more; the one in flight at the kill (maybe written, not recorded) is written again.
    assert resumed["windows"] == 48 and resumed["bars"] == 2880 and resumed["done_until"] == END
    assert item(done, "AAPL.STK")["windows"] == item(killed, "AAPL.STK")["windows"] == 48  # not downloaded again
    clean = clean_download(csv, KEYS, tmp_path / "clean")
    got = stored(KEYS)
    for key in KEYS:
        assert len(got[key]) == 2880 and got[key].index.is_unique
        pd.testing.assert_frame_equal(got[key], clean[key], check_freq=False)
    kinds = {m.topic.rsplit(".", 1)[1] for m in events}
    assert {"started", "window", "progress", "instrument", "done"} <= kinds
    last = [m.payload for m in events if m.topic.endswith(".done")][-1]
    assert last["instruments"] == last["total"] == 3 and last["state"] == "DONE"


async def job_of_fresh(history: TradingStack, job_id: str) -> dict[str, Any]:
    """Read a job while history_service is down: straight from Redis through the queue."""
    import redis.asyncio as aioredis

    from trader.data.jobs import JobQueue

    client = aioredis.Redis(port=history.env.redis_port, password=history.env.redis_password)
    try:
        return (await JobQueue(client, load_settings().history.jobs_key).get(job_id)).to_dict()
    finally:
        await client.aclose()


def test_a_failed_instrument_fails_alone_and_a_retry_finishes_it(history: TradingStack, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    good = write_csv(csv, KEYS[:2], "2026-03-02", 2880)
    bad = good.copy()
    row = bad.index[(bad["key"] == "MSFT.STK")][1500]  # in the 26th window
    bad.loc[row, "high"] = bad.loc[row, "low"] - 1.0
    bad.to_csv(csv, index=False)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = RpcClient(history.history_endpoint)
        try:
            job = await client.call("submit", "csv", "1m", START, END, instruments=[*KEYS[:2], "NFLX"],
                                    options={"path": str(csv)}, timeout=10)
            first = await wait_job(client, job["id"], lambda j: j["state"] not in ("QUEUED", "RUNNING"), 60,
                                   "the first run ended")
            write_csv(csv, [*KEYS[:2], "NFLX.STK"], "2026-03-02", 2880)  # the file fixed, and NFLX in it
            with pytest.raises(NotFound):
                await client.call("retry", job["id"], instruments=["IBM"], timeout=5)
            await client.call("retry", job["id"], instruments=["MSFT.STK"], timeout=5)
            second = await wait_job(client, job["id"], lambda j: j["state"] not in ("QUEUED", "RUNNING"), 60,
                                    "the retry ended")
            return first, second
        finally:
            client.close()

    first, second = asyncio.run(scenario())
    assert first["state"] == "PARTIAL" and (first["done"], first["failed"]) == (1, 2)
    msft, nflx = item(first, "MSFT.STK"), item(first, "NFLX.STK")
    assert msft["state"] == "FAILED" and "MSFT.STK" in msft["error"] and "high < low" in msft["error"]
    assert msft["windows"] == 25 and msft["done_until"] == pd.Timestamp("2026-03-03T01:00Z")
    assert nflx["state"] == "FAILED" and nflx["error"] == "NFLX.STK: not in bars.csv"
    assert item(first, "AAPL.STK")["state"] == "DONE"
    # The retry ran MSFT from its resume point; NFLX, in the file now, was not asked for and stays failed.
    assert second["state"] == "PARTIAL" and second["runs"] == 2
    assert item(second, "MSFT.STK")["state"] == "DONE" and item(second, "MSFT.STK")["windows"] == 48
    assert item(second, "NFLX.STK")["state"] == "FAILED"
    clean = clean_download(csv, KEYS[:2], tmp_path / "clean")
    got = stored(KEYS[:2])
    for key in KEYS[:2]:
        pd.testing.assert_frame_equal(got[key], clean[key], check_freq=False)


def test_cancel_stops_a_running_job_between_windows_and_a_queued_one_at_once(
        history: TradingStack, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, KEYS[:1], "2026-03-02", 2880)

    async def scenario() -> None:
        client = RpcClient(history.history_endpoint)
        try:
            slow = {"path": str(csv), "delay": 0.2}
            running = await client.call("submit", "csv", "1m", START, END, instruments=["AAPL"], options=slow)
            queued = await client.call("submit", "csv", "1m", START, END, instruments=["AAPL"], options=slow)
            assert (queued["queued_behind"], queued["ahead"]) == (running["id"], 1)  # one job at a time
            await wait_job(client, running["id"], lambda j: item(j, "AAPL.STK")["windows"] >= 1, 30, "a window")
            assert (await client.call("cancel", queued["id"]))["state"] == "CANCELLED"
            asked = await client.call("cancel", running["id"])
            assert asked["cancel"] is True
            ended = await wait_job(client, running["id"], lambda j: j["state"] == "CANCELLED", 10, "cancelled")
            windows = item(ended, "AAPL.STK")["windows"]
            assert windows < 48
            with pytest.raises(Conflict):
                await client.call("cancel", running["id"])
            await asyncio.sleep(1.0)  # nothing more is written, and the cancelled queued job never ran
            assert item(await job_of(client, running["id"]), "AAPL.STK")["windows"] == windows
            assert (await job_of(client, queued["id"]))["runs"] == 0
            listed = await client.call("jobs")
            assert [j["id"] for j in listed] == [queued["id"], running["id"]] and "instruments" not in listed[0]
            status = await client.call("status")
            assert status["job"] is None
        finally:
            client.close()

    asyncio.run(scenario())


def test_submit_checks_what_it_is_given_and_reads_a_universe(stack_env: StackEnv, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, KEYS, "2026-03-02", 60)
    store = open_store(load_settings())  # a universe as universes.py stores one, before the service opens the store
    Universes(store).create("tech", [Member(k, 1000 + i, k.split(".")[0], "STK", "SMART")
                                    for i, k in enumerate(KEYS)])
    del store
    with started_history(stack_env) as stack:
        async def scenario() -> dict[str, Any]:
            client = RpcClient(stack.history_endpoint)
            try:
                with pytest.raises(ValidationError, match="unknown source 'nope'"):
                    await client.call("submit", "nope", "1m", START, END, instruments=["AAPL"])
                with pytest.raises(ValidationError, match="bar size"):
                    await client.call("submit", "csv", "7 fortnights", START, END, instruments=["AAPL"])
                with pytest.raises(ValidationError, match="one of them"):
                    await client.call("submit", "csv", "1m", START, END)
                with pytest.raises(NotFound, match="no universe named energy"):
                    await client.call("submit", "csv", "1m", START, END, universe="energy")
                with pytest.raises(ValidationError):
                    await client.call("submit", "csv", "1m", "2026-03-02", END, instruments=["AAPL"])
                job = await client.call("submit", "csv", "1m", START, datetime(2026, 3, 2, 1, tzinfo=UTC),
                                        universe="tech", options={"path": str(csv)})
                assert job["universe"] == "tech" and [i["key"] for i in job["instruments"]] == KEYS
                return await wait_job(client, job["id"], lambda j: j["state"] == "DONE", 30, "done")
            finally:
                client.close()

        done = asyncio.run(scenario())
    assert done["bars"] == 180


def test_sigterm_gives_the_job_in_hand_back_to_the_queue_at_once(history: TradingStack, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, KEYS[:1], "2026-03-02", 2880)

    async def scenario() -> tuple[dict[str, Any], int]:
        client = RpcClient(history.history_endpoint)
        try:
            job = await client.call("submit", "csv", "1m", START, END, instruments=["AAPL"],
                                    options={"path": str(csv), "delay": 0.2})
            await wait_job(client, job["id"], lambda j: item(j, "AAPL.STK")["windows"] >= 1, 30, "a window")
            proc = history.procs.pop("history_service")
            proc.terminate()  # type: ignore[attr-defined]
            code = await asyncio.to_thread(proc.wait, 20)  # type: ignore[attr-defined]
            return await job_of_fresh(history, job["id"]), code
        finally:
            client.close()

    job, code = asyncio.run(scenario())
    assert code == 0
    assert job["state"] == "QUEUED" and job["runs"] == 1 and 1 <= item(job, "AAPL.STK")["windows"] < 48


def test_a_job_that_crashes_its_run_every_time_ends_failed_with_the_reason(
        history: TradingStack, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, KEYS[:1], "2026-03-02", 60)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = RpcClient(history.history_endpoint)
        try:
            # a delay that is not a number: the source's constructor raises a ValueError, an internal error
            job = await client.call("submit", "csv", "1m", START, END, instruments=[KEYS[0]],
                                    options={"path": str(csv), "delay": "slow"}, timeout=10)
            ended = await wait_job(client, job["id"], lambda j: j["state"] == "FAILED", 60, "the job failed")
            status = await client.call("status", timeout=5)
            return ended, status
        finally:
            client.close()

    ended, status = asyncio.run(scenario())
    assert ended["runs"] == 3 and "ValueError" in ended["error"] and "3 runs" in ended["error"]
    assert status["state"] == "DEGRADED" and "internal error" in status["reason"]
