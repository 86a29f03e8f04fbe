"""Running one job in-process (real Redis, real ArcticDB): what a misbehaving source cannot do to the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer
from tests.data.bars import bars as bar_frame
from tests.data.csv_source import write_csv
from tests.data.sources.providers import ProviderServer
from trader.cli.history_tables import summary
from trader.config import HistorySettings, Settings, load_settings
from trader.data.arctic import ArcticStore
from trader.data.download import run_job
from trader.data.job import ItemState, Job, JobState
from trader.data.jobs import JobQueue
from trader.data.requests import last_stored
from trader.data.sources.base import Window
from trader.data.store import SymbolMeta
from trader.errors import NotFound

START, END = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 2, 3, tzinfo=UTC)


async def claimed(queue: JobQueue) -> Job:
    """Claim the next job, there being one."""
    job = await queue.claim()
    assert job is not None
    return job


class Unruly:
    """A source that does what its ``mode`` says to each instrument (the key's symbol), after one good window."""

    name = "unruly"

    def __init__(self, _settings: Any, path: str) -> None:
        self.frame = pd.read_csv(path, parse_dates=["time"])

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp, end: pd.Timestamp) -> AsyncIterator[Window]:
        bars = self.frame[self.frame["key"] == "GOOD.STK"].set_index("time")[["open", "high", "low", "close", "volume"]]
        bars.index = pd.DatetimeIndex(bars.index, tz="UTC").rename("time")
        hour = pd.Timedelta("1h")
        yield Window(start, start + hour, bars[(bars.index >= start) & (bars.index < start + hour)])
        mode = key.split(".")[0]
        if mode == "OUTSIDE":  # a window past the job's end
            yield Window(start + hour, end + hour, bars[bars.index >= start + hour])
        elif mode == "SHORT":  # stops an hour early
            return
        elif mode == "BUG":
            raise KeyError("oops")
        else:
            yield Window(start + hour, end, bars[(bars.index >= start + hour) & (bars.index < end)])

    async def close(self) -> None:
        pass


def test_a_source_misbehaving_fails_its_instrument_and_writes_nothing_outside(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, ["GOOD.STK"], "2026-03-02", 180)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    monkeypatch.setenv("TRADER_HISTORY__SOURCES__UNRULY", "tests.data.test_download:Unruly")
    settings = load_settings()
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    events: list[tuple[str, dict[str, Any]]] = []

    async def scenario() -> Any:
        client = aioredis.Redis(port=redis_server.port)
        try:
            queue = JobQueue(client, "t:jobs")
            await queue.submit(source="unruly", bar_size="1m", start=START, end=END,
                               keys=["GOOD.STK", "OUTSIDE.STK", "SHORT.STK", "BUG.STK"], options={"path": str(csv)})
            job = await claimed(queue)
            state = await run_job(job, queue, store, settings, lambda topic, payload: events.append((topic, payload)))
            return state, await queue.get(job.id)
        finally:
            await client.aclose()

    state, job = asyncio.run(scenario())
    assert state is JobState.PARTIAL and job.state is JobState.PARTIAL
    errors = {item.key: (item.state.value, item.error) for item in job.items}
    assert errors["GOOD.STK"] == ("DONE", "")
    assert errors["OUTSIDE.STK"][1].startswith("OUTSIDE.STK: the source gave the window 2026-03-02T01:00:00+00:00")
    assert "SHORT.STK: the source stopped at 2026-03-02T01:00:00+00:00, before the end" in errors["SHORT.STK"][1]
    assert errors["BUG.STK"][1] == "BUG.STK: internal error: KeyError('oops')"
    assert len(store.read_bars("GOOD.STK", "1m")) == 180
    for key in ("OUTSIDE.STK", "SHORT.STK", "BUG.STK"):  # the good first window only: nothing past it
        bars = store.read_bars(key, "1m")
        assert len(bars) == 60 and bars.index[-1] < pd.Timestamp(START) + pd.Timedelta("1h")
    topics = [topic.split(".")[-1] for topic, _ in events]
    assert topics[0] == "started" and topics[-1] == "partial" and topics.count("instrument") == 4
    assert events[-1][1]["failed"] == 3 and events[-1][1]["instruments"] == 4


def test_a_source_that_cannot_be_built_fails_every_instrument_with_why(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    monkeypatch.setenv("TRADER_HISTORY__SOURCES__UNRULY", "tests.data.test_download:Unruly")
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")

    async def scenario() -> Any:
        client = aioredis.Redis(port=redis_server.port)
        try:
            queue = JobQueue(client, "t:jobs")
            await queue.submit(source="unruly", bar_size="1m", start=START, end=END, keys=["A.STK", "B.STK"],
                               options={"colour": "red"})
            job = await claimed(queue)
            await run_job(job, queue, store, load_settings(), lambda *_: None)
            return await queue.get(job.id)
        finally:
            await client.aclose()

    job = asyncio.run(scenario())
    assert job.state is JobState.FAILED
    assert [item.error for item in job.items] == [
        "A.STK: source unruly: Unruly.__init__() got an unexpected keyword argument 'colour' (its options: path)",
        "B.STK: source unruly: Unruly.__init__() got an unexpected keyword argument 'colour' (its options: path)"]
    with pytest.raises(NotFound):
        store.read_bars("A.STK", "1m")


def test_last_stored_finds_the_last_bar_of_the_size_asked_only(tmp_path: Path) -> None:
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    csv = tmp_path / "bars.csv"
    frame = write_csv(csv, ["A.STK"], "2026-03-02", 180).set_index("time")[["open", "high", "low", "close", "volume"]]
    frame.index = pd.DatetimeIndex(frame.index, tz="UTC")
    store.write_bars("A.STK", "1m", frame, start=START, end=END)
    late = datetime(2026, 3, 20, tzinfo=UTC)
    assert last_stored(store, "A.STK", "1m", datetime(2026, 3, 1, tzinfo=UTC), late) == datetime(2026, 3, 2, 2, 59,
                                                                                                 tzinfo=UTC)
    assert last_stored(store, "A.STK", "1m", datetime(2026, 3, 2, 2, 59, 30, tzinfo=UTC), late) is None
    assert last_stored(store, "A.STK", "1h", datetime(2026, 3, 1, tzinfo=UTC), late) is None  # 1m is no 1h
    assert last_stored(store, "B.STK", "1m", datetime(2026, 3, 1, tzinfo=UTC), late) is None


def test_an_instrument_stopped_after_its_last_window_ends_done_without_asking_the_source(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, ["GOOD.STK"], "2026-03-02", 180)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    monkeypatch.setenv("TRADER_HISTORY__SOURCES__UNRULY", "tests.data.test_download:Unruly")
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")

    async def scenario() -> Any:
        client = aioredis.Redis(port=redis_server.port)
        try:
            queue = JobQueue(client, "t:jobs")
            job = await queue.submit(source="unruly", bar_size="1m", start=START, end=END, keys=["BUG.STK"],
                                     options={"path": str(csv)})
            await queue.claim()  # a run wrote every window, then was killed before it said DONE
            await queue.save(job.id, replace(job.items[0], state=ItemState.RUNNING, done_until=END, windows=3))
            await queue.release(job.id)
            job = await claimed(queue)
            return await run_job(job, queue, store, load_settings(), lambda *_: None), await queue.get(job.id)
        finally:
            await client.aclose()

    state, job = asyncio.run(scenario())
    assert state is JobState.DONE and job.items[0].state is ItemState.DONE  # BUG.STK's source would have raised


def test_a_file_import_over_a_range_wider_than_the_file_ends_done(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file source covers only the file's span (covers_range False): that is no source stopping short."""
    csv = tmp_path / "bars.csv"
    write_csv(csv, ["A.STK"], "2026-03-02", 180)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")

    async def scenario() -> Any:
        client = aioredis.Redis(port=redis_server.port)
        try:
            queue = JobQueue(client, "t:jobs")
            await queue.submit(source="file", bar_size="1m", start=datetime(2026, 3, 1, tzinfo=UTC),
                               end=datetime(2026, 3, 10, tzinfo=UTC), keys=["A.STK"], options={"path": str(csv)})
            job = await claimed(queue)
            await run_job(job, queue, store, load_settings(), lambda *_: None)
            return await queue.get(job.id)
        finally:
            await client.aclose()

    job = asyncio.run(scenario())
    assert job.state is JobState.DONE, [item.error for item in job.items]
    assert len(store.read_bars("A.STK", "1m")) == 180


def test_a_download_keeps_the_stored_contract_and_records_the_exchange_s_time_zone(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file knows no contract: the one the history cache stored stays; the zone comes from the key's calendar."""
    csv = tmp_path / "bars.csv"
    write_csv(csv, ["A.STK"], "2026-03-02", 180)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    contract = {"symbol": "A", "sec_type": "STK", "conid": "7"}
    day = datetime(2026, 2, 27, 15, tzinfo=UTC)
    one = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]},
                       index=pd.DatetimeIndex([day], name="time"))
    store.write_bars("A.STK", "1m", one, start=day, end=day + pd.Timedelta("1min"),
                     meta=SymbolMeta("A.STK", source="ib", contract=contract))  # what the history cache writes

    async def scenario() -> None:
        client = aioredis.Redis(port=redis_server.port)
        try:
            queue = JobQueue(client, "t:jobs")
            await queue.submit(source="file", bar_size="1m", start=START, end=END, keys=["A.STK"],
                               options={"path": str(csv)})
            await run_job(await claimed(queue), queue, store, load_settings(), lambda *_: None)
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert store.meta("A.STK", "1m") == SymbolMeta("A.STK", source="file", timezone="America/New_York",
                                                   contract=contract)


async def _run_one(port: int, store: ArcticStore, settings: Settings, source: str, start: datetime, end: datetime,
                   key: str, options: dict[str, Any], events: list[tuple[str, dict[str, Any]]]) -> Any:
    """Submit, claim and run a one-instrument job on the Redis at ``port``; return the job read back."""
    client = aioredis.Redis(port=port)
    try:
        queue = JobQueue(client, "t:jobs")
        await queue.submit(source=source, bar_size="1m" if source == "file" else "1d", start=start, end=end,
                           keys=[key], options=options)
        job = await claimed(queue)
        await run_job(job, queue, store, settings, lambda topic, payload: events.append((topic, payload)))
        return await queue.get(job.id)
    finally:
        await client.aclose()


def test_a_file_s_empty_month_keeps_the_bars_stored_there_and_is_counted(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A file with January and March bars, none in February: February's stored bars stay; one window empty."""
    jan, feb, mar = (pd.Timestamp(f"2026-{m:02d}-02 14:30", tz="UTC") for m in (1, 2, 3))
    csv = tmp_path / "bars.csv"
    pd.concat([bar_frame(jan, 60), bar_frame(mar, 60)]).reset_index().to_csv(csv, index=False)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    stored = bar_frame(feb, 30, base=50.0)
    store.write_bars("A.STK", "1m", stored, start=feb, end=feb + pd.Timedelta("30min"))
    events: list[tuple[str, dict[str, Any]]] = []
    with caplog.at_level("WARNING", logger="trader.data.arctic"):
        job = asyncio.run(_run_one(redis_server.port, store, load_settings(), "file", datetime(2026, 1, 1, tzinfo=UTC),
                                   datetime(2026, 4, 1, tzinfo=UTC), "A.STK", {"path": str(csv)}, events))
    assert job.state is JobState.DONE, [item.error for item in job.items]
    item = job.items[0]
    assert (item.windows, item.empty, item.bars) == (3, 1, 120)
    assert job.to_dict()["empty"] == 1 and job.to_dict()["instruments"][0]["empty"] == 1
    assert summary(job.to_dict()).plain == f"job {job.id} DONE: 1/1 instrument, 120 bars, 1 empty window (stored bars kept)"
    pd.testing.assert_frame_equal(store.read_bars("A.STK", "1m", feb, mar), stored, check_freq=False)
    assert len(store.read_bars("A.STK", "1m")) == 150
    assert [e["empty"] for t, e in events if t.endswith(".window")] == [False, True, False]
    assert [e["empty"] for t, e in events if t.endswith(".done")] == [1]
    assert [r.getMessage() for r in caplog.records] == [
        ("A.STK: the 1m window 2026-02-01T00:00:00+00:00 .. 2026-03-01T00:00:00+00:00 came empty; "
        "its 30 stored bars are kept")]


def test_an_empty_http_answer_keeps_the_stored_bars(redis_server: RedisServer, tmp_path: Path) -> None:
    """Yahoo answering no bars for a week it had (the local server's HOLE ticker): the stored week stays."""
    provider = ProviderServer()
    provider.start()
    try:
        settings = Settings(history=HistorySettings(yahoo_url=provider.url, http_timeout=5.0))
        store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
        monday = pd.Timestamp("2026-03-02", tz="UTC")
        week = bar_frame(monday, 5, step=pd.Timedelta(days=1))
        store.write_bars("HOLE.STK", "1d", week, start=monday, end=monday + pd.Timedelta(days=5))
        job = asyncio.run(_run_one(redis_server.port, store, settings, "yahoo", monday.to_pydatetime(),
                                   (monday + pd.Timedelta(days=7)).to_pydatetime(), "HOLE.STK", {}, []))
    finally:
        provider.stop()
    assert [path for path, *_ in provider.requests][-1:] == ["/v8/finance/chart/HOLE"]  # it was asked
    assert job.state is JobState.DONE, [item.error for item in job.items]
    assert (job.items[0].windows, job.items[0].empty, job.items[0].bars) == (1, 1, 0)
    pd.testing.assert_frame_equal(store.read_bars("HOLE.STK", "1d"), week, check_freq=False)


@pytest.mark.parametrize("rows", ["none", "other_year"])
def test_a_file_with_no_row_in_the_range_counts_one_empty_window_as_ib_does(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: str) -> None:
    """A header-only file, or one of 2020's rows: one empty window, done_until at the end, the stored bars kept."""
    csv = tmp_path / "empty.csv"
    if rows == "none":
        csv.write_text("time,open,high,low,close,volume\n")
    else:
        bar_frame(pd.Timestamp("2020-03-02 14:30", tz="UTC"), 30).reset_index().to_csv(csv, index=False)
    monkeypatch.setenv("TRADER_HOME", str(tmp_path))
    store = ArcticStore(f"lmdb://{tmp_path / 'arctic'}")
    stored = bar_frame(pd.Timestamp(START), 30, base=50.0)
    store.write_bars("A.STK", "1m", stored, start=START, end=START + pd.Timedelta("30min"))
    job = asyncio.run(_run_one(redis_server.port, store, load_settings(), "file", START, END, "A.STK",
                               {"path": str(csv)}, []))
    assert job.state is JobState.DONE, [item.error for item in job.items]
    item = job.items[0]
    assert (item.windows, item.empty, item.bars, item.done_until) == (1, 1, 0, END)
    assert summary(job.to_dict()).plain == f"job {job.id} DONE: 1/1 instrument, 0 bars, 1 empty window (stored bars kept)"
    pd.testing.assert_frame_equal(store.read_bars("A.STK", "1m"), stored, check_freq=False)
