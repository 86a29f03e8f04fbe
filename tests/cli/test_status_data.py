"""``trader status`` shows the data layer: the real pycron running redis, bus, history_service and tick_recorder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.store_recorder import tick
from tests.cli.invoke import data, ok, trader
from tests.conftest import REPO, StackEnv
from tests.data.csv_source import write_csv
from tests.waiting import wait_until_blocking
from trader.messaging.pubsub import Publisher
from trader.messaging.rpc import RpcClient

JOBS = ["redis", "bus", "history_service", "tick_recorder"]
TICKS = 25  # three batches of 10 (batch_rows 20 writes at half), the last one by batch_seconds
START = datetime(2026, 3, 2, tzinfo=UTC)
END = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def data_stack(stack_env: StackEnv, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch,
               home_processes: Callable[[], list[int]]) -> Iterator[StackEnv]:
    """``trader up`` of the test profile cut to the data layer (redis, bus, history_service, tick_recorder)."""
    jobs = yaml.safe_load((REPO / "configs" / "pycron.yaml").read_text())
    jobs["profiles"] = {"test": JOBS}
    jobs_file = stack_env.home / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(jobs))
    for name, value in {"TRADER_PYCRON__CONFIG": str(jobs_file),
                        "TRADER_HISTORY__SOURCES__CSV": "tests.data.csv_source:CsvSource",
                        "PYTHONPATH": str(REPO),  # the jobs run in the home (this jobs file's): tests importable
                        "TRADER_SERVICES__TICK_RECORDER__RPC_PORT": str(free_port()),
                        "TRADER_RECORDER__BATCH_ROWS": "20", "TRADER_RECORDER__BATCH_SECONDS": "0.5",
                        "TRADER_PROFILE": "test", "COLUMNS": "80"}.items():
        monkeypatch.setenv(name, value)
    up = trader("up", "--detach", "--timeout", "90")
    assert up.exit_code == 0, up.output
    try:
        yield stack_env
    finally:
        trader("down", "--timeout", "30")
        wait_until_blocking(lambda: home_processes() == [], timeout=30, what="the stack gone")


def services() -> dict[str, dict[str, Any]]:
    return {job["name"]: job for job in data("status")}


def submit(stack: StackEnv, csv: Path) -> str:
    async def go() -> str:
        client = RpcClient(f"tcp://127.0.0.1:{stack.history_rpc_port}")
        try:
            job = await client.call("submit", "csv", "1m", START, END, instruments=["AAPL"],
                                    options={"path": str(csv), "delay": 0.3}, timeout=10)
            return str(job["id"])
        finally:
            client.close()

    return asyncio.run(go())


def settled(check: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
    """Poll ``check`` until it returns a value (at most 30 s); return that value."""
    found: list[dict[str, Any]] = []

    def met() -> bool:
        value = check()
        if value is not None:
            found.append(value)
        return value is not None

    wait_until_blocking(met, timeout=30, what=what)
    return found[-1]


@pytest.mark.slow
def test_status_shows_the_recorders_counts_and_the_queue(data_stack: StackEnv, tmp_path: Path) -> None:
    pub = Publisher(f"tcp://127.0.0.1:{data_stack.pub_port}")
    try:
        warm = 0  # the bus drops what is sent before the recorder's subscription is in: warm up first
        while (first := services()["tick_recorder"]["service"]["received"]) == 0:
            assert warm < 100, "tick_recorder never got a tick"
            pub.publish("tick.ib.WARM.STK", tick("WARM.STK", warm))
            warm += 1
            time.sleep(0.1)
        for seq in range(TICKS):
            pub.publish("tick.ib.AAPL.STK", tick("AAPL.STK", seq))
    finally:
        pub.close()

    def recorded() -> dict[str, Any] | None:
        found = services()["tick_recorder"]["service"]
        return found if found["received"] >= first + TICKS and found["pending"] == 0 else None

    recorder = settled(recorded, "every tick stored")
    assert recorder["written"] == recorder["received"] and recorder["discarded"] == 0 and recorder["batches"] >= 2

    csv = tmp_path / "bars.csv"
    write_csv(csv, ["AAPL.STK"], "2026-03-02", 2880)
    running, queued = submit(data_stack, csv), submit(data_stack, csv)

    def queue() -> dict[str, Any] | None:
        found = services()["history_service"]["service"]["queue"]
        job = found["running"]
        return found if job and job["id"] == running and job["bars"] > 0 else None

    seen = settled(queue, "the first job running with bars written")
    assert seen["queued"] == 1 and seen["queued_capped"] is False
    assert seen["running"]["state"] == "RUNNING" and seen["running"]["total"] == 1

    ticks = services()["tick_recorder"]["service"]["received"]
    table = ok("status").stdout
    assert max(len(line) for line in table.splitlines()) <= 80, table
    assert f"{ticks} received, {ticks} stored, 0 lost" in table, table
    assert "unstored" in table and "batches written" in table
    assert f"job {running} RUNNING" in table and "1 job" in table
    assert queued not in table  # counted, not listed

    assert ok("pycron", "stop", "tick_recorder").exit_code == 0
    down = ok("status").stdout  # a stopped service does not fail the command: it is shown down
    assert "tick_recorder" in down and "down: no answer at" in down, down
    job = services()["tick_recorder"]
    assert "service" not in job and job["service_error"].startswith("down: no answer")
