"""Download jobs from a real tws-sim, in-process (real Redis, real ArcticDB): cancel while paced, up to now."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer
from tests.data.bars import bars as bar_frame
from tests.sim.simulator import running_sim, sim_config
from trader.cli.history_tables import waiting
from trader.config import HistorySettings, IbSettings, Settings
from trader.data.arctic import ArcticStore
from trader.data.download import run_job
from trader.data.job import JobState
from trader.data.jobs import JobQueue
from trader.data.requests import job_end
from trader.data.sources.base import Window
from trader.data.sources.ib import IbSource
from trader.sim.pacing import PacingConfig

#: Two requests a minute: the third waits (in the source's pacer, or backed off after the sim's 162).
TWO_A_MINUTE = {"max_requests": 2, "window": 60.0}
DAY = pd.Timedelta(days=1)


def settings_for(port: int, pacing: bool) -> Settings:
    return Settings(ib=IbSettings(port=port), history=HistorySettings(client_id=11, pacing=pacing))


@pytest.mark.parametrize(("who", "reason"), [("pacer", "IB pacing"), ("sim", "IB pacing back-off")])
def test_a_job_cancelled_while_it_waits_on_pacing_ends_cancelled_at_once_and_said_why_it_waited(
        redis_server: RedisServer, tmp_path: Path, who: str, reason: str) -> None:
    """The third window waits (the pacer's 60 s, or the back-off after 162s); a cancel ends the job within 2 s."""
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=8)
    end = start + 5 * DAY
    sim_pacing = PacingConfig(**TWO_A_MINUTE) if who == "sim" else None
    options: dict[str, Any] = {"rules": TWO_A_MINUTE} if who == "pacer" else {}
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    events: list[tuple[str, dict[str, Any]]] = []

    async def scenario() -> tuple[Any, Any, float]:
        async with running_sim(sim_config(pacing=sim_pacing)) as server:
            client = aioredis.Redis(port=redis_server.port)
            try:
                queue = JobQueue(client, "t:jobs")
                await queue.submit(source="ib", bar_size="1m", start=start.to_pydatetime(),
                                   end=end.to_pydatetime(), keys=["AAPL.STK"], options=options)
                job = await queue.claim()
                assert job is not None
                settings = settings_for(server.port, pacing=who == "pacer")
                run = asyncio.create_task(run_job(job, queue, store, settings, lambda t, p: events.append((t, p))))
                deadline = time.monotonic() + 30
                while (seen := await queue.get(job.id)).waiting is None:
                    assert not run.done() and time.monotonic() < deadline, "the job never said it waits"
                    await asyncio.sleep(0.1)
                await queue.cancel(job.id)
                asked = time.monotonic()
                state = await asyncio.wait_for(run, 10)
                return seen, (state, await queue.get(job.id)), time.monotonic() - asked
            finally:
                await client.aclose()

    seen, (state, ended), took = asyncio.run(scenario())
    assert seen.waiting.reason == reason and seen.waiting.key == "AAPL.STK"
    assert seen.waiting.until > datetime.now(UTC) - timedelta(seconds=30)
    shown = waiting(seen.to_dict())
    assert shown == f"waiting on {reason} until {seen.waiting.until:%H:%M:%S} UTC"
    assert state is JobState.CANCELLED and ended.state is JobState.CANCELLED and ended.waiting is None
    assert took < 2.0, f"the cancel took {took:.1f} s"
    told = [p for t, p in events if t == f"job.{seen.id}.waiting" and p["waiting"]]
    assert told and told[0]["waiting"]["reason"] == reason and told[0]["total"] == 1
    assert ended.items[0].windows == 2  # the two windows before the wait, whole; nothing of the third
    bars = store.read_bars("AAPL.STK", "1m")
    assert bars.index[-1] < start + 2 * DAY


def in_session_now() -> datetime:
    """Return a moment 5 s into a minute of last week's Wednesday 16:00 UTC (AAPL trading since 09:00 UTC)."""
    today = datetime.now(UTC).replace(hour=16, minute=0, second=5, microsecond=0)
    return today - timedelta(days=7 + (today.weekday() - 2) % 7)


def test_a_download_up_to_now_has_every_bar_of_its_last_window_and_none_still_forming(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A window ending mid-minute keeps its first bar; a job up to now ends at the bar forming now, excluded."""
    offset = in_session_now() - datetime.now(UTC)

    def now() -> datetime:
        return datetime.now(UTC) + offset

    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")

    async def scenario() -> tuple[list[Window], pd.Timestamp, pd.Timestamp, Any]:
        async with running_sim(sim_config(), clock=now) as server:
            settings = settings_for(server.port, pacing=False)
            minute = pd.Timestamp(now()).floor("min")
            start = minute - pd.Timedelta(hours=2)
            source = IbSource(settings)
            try:  # the source alone, asked up to the sim's now (mid-minute)
                windows = [w async for w in source.windows("AAPL.STK", "1m", start, pd.Timestamp(now()))]
            finally:
                await source.close()
            client = aioredis.Redis(port=redis_server.port)
            try:  # a job up to now, its end as history_service's submit makes it
                queue = JobQueue(client, "t:jobs")
                end = job_end("1m", None, now())
                await queue.submit(source="ib", bar_size="1m", start=start.to_pydatetime(), end=end,
                                   keys=["AAPL.STK"])
                job = await queue.claim()
                assert job is not None
                state = await run_job(job, queue, store, settings, lambda *_: None)
                assert state is JobState.DONE
            finally:
                await client.aclose()
            return windows, start, minute, pd.Timestamp(end)

    windows, start, minute, end = asyncio.run(scenario())
    got = pd.concat([w.frame for w in windows])
    assert got.index[0] == start  # the last (here the only) window's first bar is there
    assert list(got.index) == list(pd.date_range(start, got.index[-1], freq="min"))
    assert end == minute  # up to now: the end is the start of the minute forming
    bars = store.read_bars("AAPL.STK", "1m")
    assert list(bars.index) == list(pd.date_range(start, end, freq="min", inclusive="left"))  # none from `end` on


def test_a_job_s_end_is_at_most_the_start_of_the_bar_forming_now() -> None:
    now = datetime(2026, 12, 7, 19, 18, 30, tzinfo=UTC)
    assert job_end("1m", None, now) == datetime(2026, 12, 7, 19, 18, tzinfo=UTC)
    assert job_end("5m", datetime(2026, 12, 8, tzinfo=UTC), now) == datetime(2026, 12, 7, 19, 15, tzinfo=UTC)
    assert job_end("1d", None, now) == datetime(2026, 12, 7, tzinfo=UTC)  # today's daily bar is still forming
    assert job_end("1m", datetime(2026, 12, 5, 10, 0, 30, tzinfo=UTC), now) == datetime(2026, 12, 5, 10, 0, 30,
                                                                                           tzinfo=UTC)  # past: kept


def test_ib_s_no_data_answer_keeps_the_stored_bars_and_the_job_counts_the_empty_window(
        redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """tws-sim answers "HMDS query returned no data" before 2000-01-03: the bars stored there stay."""
    monday = pd.Timestamp("1999-12-20", tz="UTC")
    week = bar_frame(monday, 5, step=DAY)
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    store.write_bars("AAPL.STK", "1d", week, start=monday, end=monday + 5 * DAY)

    async def scenario() -> Any:
        async with running_sim(sim_config()) as server:
            client = aioredis.Redis(port=redis_server.port)
            try:
                queue = JobQueue(client, "t:jobs")
                await queue.submit(source="ib", bar_size="1d", start=monday.to_pydatetime(),
                                   end=(monday + 7 * DAY).to_pydatetime(), keys=["AAPL.STK"])
                job = await queue.claim()
                assert job is not None
                state = await run_job(job, queue, store, settings_for(server.port, pacing=False), lambda *_: None)
                return state, await queue.get(job.id)
            finally:
                await client.aclose()

    with caplog.at_level("WARNING", logger="trader.data.arctic"):
        state, job = asyncio.run(scenario())
    assert state is JobState.DONE, [item.error for item in job.items]
    item = job.items[0]
    assert item.windows >= 1 and item.empty == item.windows and item.bars == 0
    pd.testing.assert_frame_equal(store.read_bars("AAPL.STK", "1d"), week, check_freq=False)
    assert any(r.getMessage().startswith("AAPL.STK: the 1d window 1999-12-20T00:00:00+00:00 .. ")
               and r.getMessage().endswith("came empty; its 5 stored bars are kept") for r in caplog.records)
