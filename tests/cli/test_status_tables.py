"""``trader status``'s data-layer tables (a lagging recorder, a store error, a long queue at 80 columns) and why a service has none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console, RenderableType

from tests.conftest import StackEnv
from trader.cli import data_tables, jobs, service_status, service_tables
from trader.cli.context import CliContext, job_fix
from trader.cli.main import cli

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def shown(table: RenderableType) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    return text


def job(job_id: str, state: str, **more: Any) -> dict[str, Any]:
    return {"id": job_id, "state": state, "source": "ib", "bar_size": "1m", "done": 1, "total": 3, "failed": 0,
            "bars": 8640, "waiting": None, **more}


def test_a_recorder_behind_with_a_store_error_says_so() -> None:
    text = shown(data_tables.recorder_table({
        "state": "DEGRADED", "reason": "the store refuses writes", "pid": 42, "received": 1_234_567,
        "written": 1_200_000, "discarded": 17, "pending": 34_550, "open_batch": 9_550, "writing": True,
        "batches": 48, "malformed": 2, "behind": True, "last_error": "the LMDB map is full",
        "last_write_ms": 12.5, "previous_lost": 37}))
    assert "1,234,567 received, 1,200,000 stored, 17 lost, 2 malformed" in text
    assert "48 batches written, the last in 12.5 ms" in text
    assert "34,550 (open batch 9,550, one being written): the writer is" in text
    assert "lost 37 ticks" in text and "refuses writes: the LMDB map is full" in text


def test_a_quiet_recorder_shows_no_error_rows() -> None:
    text = shown(data_tables.recorder_table({"state": "RUNNING", "pid": 42, "received": 0, "written": 0,
                                             "discarded": 0, "pending": 0, "open_batch": 0, "batches": 0}))
    assert "0 received, 0 stored, 0 lost" in text and "0 batches written" in text and "the last in" not in text
    assert "malformed" not in text and "last run" not in text and "refuses" not in text and "behind" not in text


def test_the_queue_counts_queued_jobs_and_shows_the_running_one_waiting() -> None:
    running = job("3f9a0c12", "RUNNING", waiting={"until": NOW + timedelta(minutes=2), "reason": "IB pacing"})
    listed = [job(f"q{n:07d}", "QUEUED") for n in range(3)] + [running, job("d0000000", "DONE")]
    queue = data_tables.queue_summary(listed, "3f9a0c12")
    assert queue == {"running": running, "queued": 3, "queued_capped": False}
    text = shown(data_tables.history_table({"state": "RUNNING", "pid": 7, "job": "3f9a0c12", "queue": queue}))
    assert "job 3f9a0c12 RUNNING: 1/3 instruments, 8,640 bars" in text
    assert "waiting on IB pacing until" in text and "3 jobs" in text


def test_a_full_listing_says_more_may_queue_and_an_idle_service_no_job() -> None:
    listed = [job(f"q{n:07d}", "QUEUED") for n in range(data_tables.QUEUE_LIMIT)]
    queue = data_tables.queue_summary(listed, None)
    assert queue["queued"] == data_tables.QUEUE_LIMIT and queue["queued_capped"] is True
    text = shown(data_tables.history_table({"state": "RUNNING", "pid": 7, "job": None, "queue": queue}))
    assert f"{data_tables.QUEUE_LIMIT}+ jobs" in text and "no job" in text


def test_a_service_not_answering_is_shown_with_why() -> None:
    text = shown(data_tables.unanswered_table("tick_recorder", "not run by profile test", down=False))
    assert "tick_recorder" in text and "not run by profile test" in text


def test_a_service_with_no_rpc_port_is_not_configured_and_one_not_listening_is_down(
        stack_env: StackEnv, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("TRADER_SERVICES__TICK_RECORDER__RPC_PORT", str(port))
    cli = CliContext()
    assert asyncio.run(service_status.ask(cli, "bus")) == service_status.Answer(None, "not configured: no services.bus.rpc_port")
    assert asyncio.run(service_status.ask(cli, "tick_recorder")) == service_status.Answer(
        None, f"down: no answer at tcp://127.0.0.1:{port}")


def test_no_service_title_line_ends_in_spaces() -> None:
    tables = [
        data_tables.recorder_table({"state": "RUNNING", "pid": 42, "received": 1_234_567, "written": 1_200_000}),
        data_tables.history_table({"state": "RUNNING", "pid": 7, "job": None, "queue": None}),
        data_tables.unanswered_table("tick_recorder", "down: no answer at tcp://127.0.0.1:5564"),
        service_tables.service_table({"state": "RUNNING", "pid": 1, "connected": True, "accounts": ["DU1"]}),
        service_tables.strategy_service_table({"state": "RUNNING", "pid": 2, "trader_service": "up"}),
    ]
    for table in tables:
        title = shown(table).splitlines()[0]
        assert title == str(table.title), repr(title)


def test_a_job_waiting_as_intended_shows_no_health() -> None:
    cron = {"name": "backup", "state": "SCHEDULED", "pid": None, "healthy": False, "restarts": 0,
            "uptime": None, "heartbeat": None, "last_exit": 0}
    failed = {**cron, "name": "ingest", "state": "FAILED", "last_exit": 3}
    assert jobs.job_line(cron) == "backup: SCHEDULED, restarts 0"
    assert jobs.job_line(failed) == "ingest: FAILED, not healthy, restarts 0"
    text = shown(jobs.jobs_table({"pid": 9, "profile": "test", "jobs": [cron, failed]}))
    rows = {cells[0]: cells for cells in (line.replace("│", " ").split() for line in text.splitlines()) if cells}
    assert rows["backup"][5] == "-" and rows["ingest"][5] == "no", text  # job state pid uptime restarts healthy
    assert "not healthy" not in text and "yes" not in text


def test_a_service_down_with_its_job_not_running_names_the_state_and_the_fix() -> None:
    down = service_status.Answer(None, "down: no answer at tcp://127.0.0.1:5563")
    answers = {"history_service": down, "tick_recorder": down, "trader_service": down}
    jobs.with_fixes(answers, [{"name": "history_service", "state": "STOPPED"},
                              {"name": "tick_recorder", "state": "RUNNING"},
                              {"name": "trader_service", "state": "FAILED"}])
    assert answers["history_service"].error == (
        "down: no answer at tcp://127.0.0.1:5563; the history_service job is STOPPED: "
        "`trader pycron start history_service`")
    assert answers["tick_recorder"] == down  # running: nothing more known than that it does not answer
    assert answers["trader_service"].error.endswith("FAILED: `trader pycron start trader_service`")
    assert job_fix("bus", "BACKOFF") == "the bus job is BACKOFF: `trader pycron restart bus`"
    assert job_fix("bus", None) == "the running pycron has no bus job (not in its profile)"


def test_the_help_lists_history_services_keys_and_maps_the_tables_words() -> None:
    text = " ".join(CliRunner().invoke(cli, ["status", "--help"], terminal_width=80).output.split())
    history = text[text.index("history_service's service:"):]
    for key in ("service", "state", "reason", "pid", "time", "uptime", "job", "worker", "queue", "queue_error"):
        assert f"{key} " in history or f"{key}:" in history or f"{key}," in history, key
    assert history.index("...}") < history.index("A service that does not answer")
    assert "written (stored), discarded (lost)" in text
