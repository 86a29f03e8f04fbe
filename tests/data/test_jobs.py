"""The durable job queue against a real redis-server: submit, claim under a lease, recover, cancel, retry."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer
from trader.cli.history_tables import queued
from trader.data.job import Item, ItemState, Job, JobState
from trader.data.jobs import JobQueue
from trader.data.progress import JobProgress
from trader.data.requests import job_bar_size, job_key
from trader.errors import Conflict, NotFound, Unavailable, ValidationError

START = datetime(2026, 3, 2, tzinfo=UTC)
END = datetime(2026, 3, 4, tzinfo=UTC)


def run(redis_server: RedisServer, scenario: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        client = aioredis.Redis(port=redis_server.port)
        try:
            return await scenario(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


async def claimed(queue: JobQueue) -> Job:
    """Claim the next job, there being one."""
    job = await queue.claim()
    assert job is not None
    return job


async def submit(queue: JobQueue, keys: tuple[str, ...] = ("AAPL.STK", "MSFT.STK"), **kw: Any):
    return await queue.submit(source="csv", bar_size="1m", start=START, end=END, keys=keys, **kw)


def test_jobs_are_kept_and_claimed_in_order_under_a_lease(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        first = await submit(queue, options={"path": "/x.csv"})
        second = await submit(queue, ("ES.FUT.202612",), universe="futures")
        assert len(first.id) == 8 and int(first.id, 16) >= 0 and first.id != second.id
        again = await queue.get(first.id)
        assert again.state is JobState.QUEUED and again.options == {"path": "/x.csv"}
        assert [i.key for i in again.items] == ["AAPL.STK", "MSFT.STK"]
        assert all(i.state is ItemState.PENDING and i.resume == START for i in again.items)
        assert [j.id for j in await queue.jobs()] == [second.id, first.id]  # newest first
        claimed = await queue.claim()
        assert claimed is not None and claimed.id == first.id  # oldest first
        assert claimed.state is JobState.RUNNING and claimed.runs == 1 and claimed.worker == "w1"
        assert 0 < await r.pttl(f"t:jobs:lease:{first.id}") <= queue.lease_ms
        nxt = await queue.claim()
        assert nxt is not None and nxt.id == second.id and nxt.universe == "futures"
        assert await queue.claim() is None
        with pytest.raises(NotFound):
            await queue.get("deadbeef")

    run(redis_server, scenario)


def test_a_queued_job_says_what_it_waits_on_and_how_many_run_before_it(redis_server: RedisServer) -> None:
    """One job runs at a time: a queued job names the running one (else the one just ahead) and counts those ahead."""
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        first, second, third = [await submit(queue) for _ in range(3)]
        assert [(j.queued_behind, j.ahead) for j in (first, second, third)] == [("", 0), (first.id, 1), (second.id, 2)]
        ahead = {j.id: (j.queued_behind, j.ahead) for j in await queue.jobs()}
        assert ahead == {first.id: ("", 0), second.id: (first.id, 1), third.id: (second.id, 2)}
        await queue.claim()  # the first runs
        ahead = {j.id: (j.queued_behind, j.ahead) for j in await queue.jobs()}
        assert ahead == {first.id: ("", 0), second.id: (first.id, 1), third.id: (first.id, 2)}
        shown = (await queue.get(third.id)).to_dict(items=False)
        assert (shown["queued_behind"], shown["ahead"]) == (first.id, 2)
        assert queued(shown) == f"queued behind {first.id} and 1 more"
        assert queued((await queue.get(first.id)).to_dict()) == ""  # running: not queued
        await queue.cancel(second.id)
        third_now = await queue.get(third.id)
        assert (third_now.queued_behind, third_now.ahead) == (first.id, 1)
        assert queued(third_now.to_dict()) == f"queued behind {first.id}"
        await queue.finish(first.id, JobState.DONE)
        assert queued((await queue.get(third.id)).to_dict()) == "queued: next to run"

    run(redis_server, scenario)


def test_a_job_stands_in_line_where_it_is_claimed_and_only_while_it_is_queued(redis_server: RedisServer) -> None:
    """An id twice in the queue list counts at its first claim; a running job's stale copy is no place in line."""
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        first, second = await submit(queue), await submit(queue)
        await r.lpush("t:jobs:queue", first.id)  # a second copy of the first, behind the second
        places = {j.id: (j.queued_behind, j.ahead) for j in await queue.jobs()}
        assert places == {first.id: ("", 0), second.id: (first.id, 1)}
        assert (await claimed(queue)).id == first.id  # claimed at its first copy
        for job in (await queue.get(first.id), *[j for j in await queue.jobs() if j.id == first.id]):
            assert job.state is JobState.RUNNING and (job.queued_behind, job.ahead) == ("", 0)
            assert job.to_dict()["queued_behind"] is None
        assert ((await queue.get(second.id)).queued_behind, (await queue.get(second.id)).ahead) == (first.id, 1)
        await queue.finish(first.id, JobState.DONE)  # ended, its stale copy still in the list: no place in line
        for job in (await queue.get(first.id), *[j for j in await queue.jobs() if j.id == first.id]):
            assert job.state is JobState.DONE and (job.queued_behind, job.ahead) == ("", 0)
        assert (await claimed(queue)).id == second.id
        assert await queue.claim() is None  # the stale copy is dropped, not run twice

    run(redis_server, scenario)


def test_the_job_list_reads_the_line_and_the_jobs_in_one_transaction(redis_server: RedisServer) -> None:
    """A claim cannot fall between reading the queue and reading the jobs' states (get() reads so too)."""
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        jobs = [await submit(queue) for _ in range(2)]
        async with r.monitor() as monitor:
            listed = await queue.jobs()
            await r.echo("listed")
            seen: list[str] = []
            while "ECHO listed" not in seen:
                seen.append((await asyncio.wait_for(monitor.next_command(), 5))["command"])
        assert [j.id for j in listed] == [j.id for j in reversed(jobs)]
        reads = [n for n, c in enumerate(seen) if c.split()[0] in ("LRANGE", "SMEMBERS", "HGETALL")]
        assert len(reads) == 2 + 2 * len(jobs), seen
        multi, exec_ = seen.index("MULTI"), seen.index("EXEC")
        assert multi < reads[0] and reads[-1] < exec_, seen

    run(redis_server, scenario)


def test_a_job_needs_instruments_and_a_range(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs")
        with pytest.raises(ValidationError, match="at least one"):
            await submit(queue, ())
        with pytest.raises(ValidationError, match="empty"):
            await queue.submit(source="csv", bar_size="1m", start=END, end=START, keys=["AAPL.STK"])
        job = await submit(queue, ("AAPL.STK", "AAPL.STK", "MSFT.STK"),
                           starts={"MSFT.STK": START + timedelta(hours=5)})
        assert [(i.key, i.resume) for i in job.items] == [("AAPL.STK", START),
                                                         ("MSFT.STK", START + timedelta(hours=5))]

    run(redis_server, scenario)


def test_only_the_lease_holder_records_progress_and_ends_the_job(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        mine, other = JobQueue(r, "t:jobs", worker="w1"), JobQueue(r, "t:jobs", worker="w2")
        job = await submit(mine)
        assert (await claimed(mine)).id == job.id
        item = replace(job.items[0], state=ItemState.RUNNING, done_until=START + timedelta(hours=1), bars=60,
                       windows=1)
        assert await mine.save(job.id, item) and await mine.renew(job.id)
        assert not await other.save(job.id, replace(item, bars=1)) and not await other.renew(job.id)
        assert not await other.finish(job.id, JobState.DONE)
        stored = (await mine.get(job.id)).item("AAPL.STK")
        assert stored == item and stored.resume == START + timedelta(hours=1)
        assert await mine.finish(job.id, JobState.PARTIAL)
        ended = await mine.get(job.id)
        assert ended.state is JobState.PARTIAL and not await r.exists(f"t:jobs:lease:{job.id}")
        assert not await mine.save(job.id, item)  # no lease any more

    run(redis_server, scenario)


def test_recover_queues_again_the_jobs_of_dead_workers_only(redis_server: RedisServer) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()

    async def scenario(r: aioredis.Redis) -> None:
        killed = JobQueue(r, "t:jobs", worker=f"{host}:{dead.pid}:abc123")  # a process of this host, gone
        lapsed = JobQueue(r, "t:jobs", worker="elsewhere:1:abc", lease_seconds=0.2)  # another host, silent
        alive = JobQueue(r, "t:jobs", worker="elsewhere:2:abc")  # another host, lease still held
        ids = []
        for queue in (killed, lapsed, alive):
            ids.append((await submit(queue)).id)
            assert (await claimed(queue)).id == ids[-1]
        await asyncio.sleep(0.3)
        new = JobQueue(r, "t:jobs", worker="w-new")
        assert sorted(await new.recover()) == sorted(ids[:2])
        assert (await new.get(ids[2])).state is JobState.RUNNING
        again = [await new.claim(), await new.claim()]
        assert {j.id for j in again if j} == set(ids[:2]) and all(j.runs == 2 for j in again if j)
        assert await new.claim() is None
        assert not await killed.save(ids[0], (await new.get(ids[0])).items[0])  # the dead worker's lease is gone

    run(redis_server, scenario)


def test_release_gives_the_job_back_at_once(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        job = await submit(queue)
        await queue.claim()
        assert await queue.release(job.id)
        assert (await queue.get(job.id)).state is JobState.QUEUED
        assert (await claimed(JobQueue(r, "t:jobs", worker="w2"))).id == job.id

    run(redis_server, scenario)


def test_cancel_a_queued_job_at_once_a_running_one_by_its_flag(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        running, queued = await submit(queue), await submit(queue)
        await queue.claim()
        cancelled = await queue.cancel(queued.id)
        assert cancelled.state is JobState.CANCELLED and cancelled.cancel
        assert await queue.claim() is None  # no longer in the queue
        flagged = await queue.cancel(running.id)
        assert flagged.state is JobState.RUNNING and await queue.cancel_requested(running.id)
        assert replace(flagged, items=tuple(replace(i, state=ItemState.DONE) for i in flagged.items)).outcome() \
            is JobState.CANCELLED
        with pytest.raises(Conflict, match="ended"):
            await queue.cancel(queued.id)
        with pytest.raises(NotFound):
            await queue.cancel("00000000")

    run(redis_server, scenario)


def test_retry_runs_again_the_failed_and_unfinished_instruments_only(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        job = await submit(queue, ("AAPL.STK", "MSFT.STK", "IBM.STK"))
        with pytest.raises(Conflict, match="QUEUED"):
            await queue.retry(job.id)
        await queue.claim()
        half = START + timedelta(hours=7)
        await queue.save(job.id, replace(job.items[0], state=ItemState.DONE, done_until=END, bars=10, empty=2))
        await queue.save(job.id, replace(job.items[1], state=ItemState.FAILED, done_until=half, bars=5,
                                         error="MSFT.STK: the bar at ... has high < low"))
        ran = await queue.get(job.id)
        assert ran.outcome() is JobState.PARTIAL and ran.counts() == {"total": 3, "done": 1, "failed": 1, "bars": 15,
                                                                                "empty": 2}
        await queue.finish(job.id, ran.outcome())
        with pytest.raises(NotFound):
            await queue.retry(job.id, ["NFLX.STK"])
        again = await queue.retry(job.id)
        assert again.state is JobState.QUEUED
        states = {i.key: (i.state, i.resume, i.error) for i in again.items}
        assert states == {"AAPL.STK": (ItemState.DONE, END, ""), "MSFT.STK": (ItemState.PENDING, half, ""),
                          "IBM.STK": (ItemState.PENDING, START, "")}
        claimed = await queue.claim()
        assert claimed is not None and claimed.id == job.id and claimed.runs == 2
        for item in claimed.items:
            await queue.save(job.id, replace(item, state=ItemState.DONE, done_until=END))
        await queue.finish(job.id, JobState.DONE)
        with pytest.raises(Conflict, match="nothing to retry"):
            await queue.retry(job.id)

    run(redis_server, scenario)


def test_prune_forgets_the_oldest_ended_jobs_only(redis_server: RedisServer) -> None:
    async def scenario(r: aioredis.Redis) -> None:
        queue = JobQueue(r, "t:jobs", worker="w1")
        ids = [(await submit(queue)).id for _ in range(5)]
        for _ in range(2):  # the two oldest end; the third stays queued
            job = await claimed(queue)
            await queue.finish(job.id, JobState.DONE)
        assert await queue.prune(keep=2) == 2
        assert [j.id for j in await queue.jobs()] == ids[:1:-1]
        assert not await r.exists(f"t:jobs:job:{ids[0]}", f"t:jobs:job:{ids[0]}:items")
        assert await queue.prune(keep=2) == 0

    run(redis_server, scenario)


def test_progress_figures_count_the_range_covered_not_just_instruments() -> None:
    now = [100.0]
    job_items = (Item("AAPL.STK", START), Item("MSFT.STK", START, ItemState.DONE, END, 500))

    progress = JobProgress(Job("abcd1234", "csv", "1m", START, END, job_items), clock=lambda: now[0])
    assert progress.figures()["eta"] is None and progress.figures()["instruments"] == 1
    now[0] = 110.0
    progress.update(replace(job_items[0], state=ItemState.RUNNING, done_until=START + (END - START) / 4, bars=100,
                            windows=3, empty=1))
    figures = progress.figures()
    # 10 s for a quarter of AAPL, an eighth of the job's ranges (MSFT was done): three eighths left, 30 s.
    assert figures == {"job": "abcd1234", "instruments": 1, "total": 2, "failed": 0, "bars": 600, "empty": 1, "rate": 10.0,
                       "elapsed": 10.0, "eta": 30.0, "share": 0.625}
    assert progress.topic("window") == "job.abcd1234.window"


def test_redis_down_is_unavailable_naming_what_was_done(free_port: Callable[[], int]) -> None:
    async def scenario() -> None:
        client = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
        try:
            with pytest.raises(Unavailable, match="cannot submit a job: Redis"):
                await submit(JobQueue(client, "t:jobs"))
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_job_keys_read_what_users_type_without_a_broker() -> None:
    today = datetime(2026, 12, 7).date()
    assert job_key("aapl", today) == "AAPL.STK"
    assert job_key("msft.stk", today) == "MSFT.STK"
    assert job_key("ESZ6", today) == "ES.FUT.202612"
    assert job_key("EUR.USD", today) == "EUR.CASH.USD"
    assert job_key("BRK.B", today) == "BRK_B.STK"
    with pytest.raises(ValidationError):
        job_key("AAPL.STK.X.Y", today)
    with pytest.raises(ValidationError, match="not a contract key"):
        job_key("ES.FUT", today)
    assert job_bar_size("1 min") == "1m" and job_bar_size("1d") == "1d"
    with pytest.raises(ValidationError, match="bar size"):
        job_bar_size("7 fortnights")
