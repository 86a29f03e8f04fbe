"""``trader history get|jobs|cancel|retry|update`` in-process against a real history_service, Redis and bus."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack
from tests.data.csv_source import write_csv
from tests.service.history_stack import started_history
from tests.waiting import wait_until_blocking
from trader.cli import history as history_cli
from trader.cli import history_tables
from trader.cli.context import CliContext
from trader.config import load_settings
from trader.data.factory import open_store
from trader.data.universes import Member, Universes

START, END = "2026-03-02", "2026-03-02T06:00"
KEYS = ["AAPL.STK", "MSFT.STK"]


@pytest.fixture
def stack(stack_env: StackEnv, tmp_path: Path) -> Iterator[TradingStack]:
    store = open_store(load_settings())  # a universe, as universes.py keeps one (before the service opens the store)
    Universes(store).create("tech", [Member(k, 1000 + i, k.split(".")[0], "STK", "SMART")
                                    for i, k in enumerate(KEYS)])
    del store
    with started_history(stack_env) as running:
        yield running


def csv_file(tmp_path: Path, keys: list[str] = KEYS) -> str:
    path = tmp_path / "bars.csv"
    write_csv(path, keys, START, 360)
    return str(path)


def test_get_waits_names_the_failed_instruments_and_retry_finishes_them(stack: TradingStack, tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    result = trader("history", "get", "aapl", "MSFT", "NFLX", "-b", "1 min", "--start", START, "--end", END,
                    "-s", "csv", "-o", f"path={path}", "--wait")
    assert result.exit_code == 15, result.output
    job_id = result.stdout.split()[1]
    assert f"job {job_id} PARTIAL: 2/3 instruments, 720 bars, 1 failed" in result.stdout
    assert "NFLX.STK: not in bars.csv" in result.stdout
    assert f"1 instrument failed in job {job_id}: NFLX.STK; a retry as things are fails the same way: fix what " \
        "the errors say first" in result.stderr  # not in the file: no retry suggested (it would fail the same way)
    error = json.loads(trader("--json", "history", "retry", job_id, "AAPL", "--wait").stderr)["error"]
    assert error["code"] == "conflict" and "nothing to retry" in error["message"]  # AAPL is done
    csv_file(tmp_path, [*KEYS, "NFLX.STK"])  # NFLX in the file now
    retried = data("history", "retry", job_id, "--wait")
    assert retried["state"] == "DONE" and retried["runs"] == 2 and retried["bars"] == 1080
    listed = ok("history", "jobs").stdout
    assert job_id in listed and "DONE" in listed and "3/3" in listed and "1,080" in listed
    assert "2026-03-02..03-02 06:00" in listed  # the range; at 80 columns the creation time is left out
    one = data("history", "jobs", job_id)
    assert [(i["key"], i["state"], i["bars"]) for i in one["instruments"]] == [
        ("AAPL.STK", "DONE", 360), ("MSFT.STK", "DONE", 360), ("NFLX.STK", "DONE", 360)]
    assert f"job {job_id} has ended (DONE): nothing to cancel" in refused(9, "history", "cancel", job_id)
    assert "no job 'ffffffff'" in refused(4, "history", "jobs", "ffffffff")
    bars = open_store(load_settings()).read_bars("NFLX.STK", "1m")
    assert len(bars) == 360 and bars.index.is_unique


def test_no_wait_answers_at_once_and_cancel_stops_the_job(stack: TradingStack, tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    job = data("history", "get", "AAPL", "-b", "1m", "--start", START, "--end", END, "-s", "csv",
               "-o", f"path={path}", "-o", "delay=0.3", "--no-wait")
    assert job["state"] == "QUEUED" and job["instruments"][0]["key"] == "AAPL.STK"
    assert job["options"] == {"path": path, "delay": Decimal("0.3")}  # NAME=VALUE read as JSON where it is JSON
    cancelled = data("history", "cancel", job["id"])
    assert cancelled["cancel"] is True and cancelled["state"] in ("CANCELLED", "RUNNING")
    ended = wait_until_blocking(lambda: data("history", "jobs", job["id"])["state"] == "CANCELLED", 10, "cancelled")
    assert ended is None
    stopped = data("history", "jobs", job["id"])
    assert stopped["instruments"][0]["windows"] < 6 and stopped["instruments"][0]["state"] != "DONE"
    assert "has ended (CANCELLED)" in refused(9, "history", "cancel", job["id"])
    again = data("history", "retry", job["id"], "--no-wait")  # goes on from where it stopped
    assert again["state"] == "QUEUED" and again["cancel"] is False


def test_the_progress_bar_follows_the_bus_at_80_columns(stack: TradingStack, tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    out = io.StringIO()
    cli = CliContext(console=Console(file=out, force_terminal=True, width=80, color_system=None))
    job = history_cli._follow(cli, "submit", ("csv", "1m", datetime(2026, 3, 2, tzinfo=UTC),
                                               datetime(2026, 3, 2, 6, tzinfo=UTC)),
                              {"instruments": KEYS, "options": {"path": path, "delay": 0.1, "window": "30min"}},
                              wait=True)
    assert job["state"] == "DONE"
    text = out.getvalue()
    frames = [line for line in text.replace("\r", "\n").splitlines() if " instr " in line]
    assert frames, text
    assert all(len(line) <= 80 for line in frames)
    assert any("1/2 instr" in line and "bars" in line and "/s" in line and "ETA" in line for line in frames), frames
    assert "2/2 instr  720 bars" in frames[-1]
    assert f"job {job['id']} DONE: 2/2 instruments, 720 bars" in text


def test_update_starts_each_member_at_its_last_stored_bar(stack: TradingStack, tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    ok("history", "get", "AAPL", "-b", "1m", "--start", START, "--end", "2026-03-02T01:00", "-s", "csv",
       "-o", f"path={path}", "--wait")
    jobs = data("history", "update", "-u", "tech", "-b", "1m", "--since", START, "-s", "csv", "-o", f"path={path}",
                "-o", "window=30D", "--wait")
    (job,) = jobs
    starts = {i["key"]: i["start"] for i in job["instruments"]}
    assert starts == {"AAPL.STK": "2026-03-02T00:59:00+00:00", "MSFT.STK": "2026-03-02T00:00:00+00:00"}
    assert job["state"] == "DONE"
    store = open_store(load_settings())
    assert len(store.read_bars("AAPL.STK", "1m")) == len(store.read_bars("MSFT.STK", "1m")) == 360
    (every,) = data("history", "update", "--all", "-b", "1m", "--since", START, "-s", "csv", "-o", f"path={path}",
                    "-o", "window=30D", "--wait")  # the nightly job's: every universe, listed by Universes
    assert [i["key"] for i in every["instruments"]] == KEYS and every["state"] == "DONE"
    assert "give --all or --universe" in refused(2, "history", "update")
    assert "no universe named energy" in refused(4, "history", "update", "-u", "energy")


def test_jobs_say_what_a_queued_job_waits_on(stack: TradingStack, tmp_path: Path) -> None:
    """One job runs at a time: the table and the job's view name the job a queued one is behind."""
    path = csv_file(tmp_path)
    slow = ["-b", "1m", "--start", START, "--end", END, "-s", "csv", "-o", f"path={path}", "-o", "delay=0.5",
            "--no-wait"]
    first = data("history", "get", "AAPL", *slow)
    second = data("history", "get", "MSFT", *slow)
    assert (second["state"], second["queued_behind"], second["ahead"]) == ("QUEUED", first["id"], 1)
    listed = ok("history", "jobs").stdout
    lines = listed.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(second["id"]))
    assert "QUEUED" in lines[at] and lines[at + 1].split() == ["behind", first["id"]], listed  # under its state
    shown = ok("history", "jobs", second["id"]).stdout
    assert f"queued behind {first['id']}" in shown
    out = io.StringIO()  # `history get --wait`'s bar says it too, until the job starts
    console = Console(file=out, width=80, color_system=None)
    bar, _ = history_tables.progress_bar(second, console)
    console.print(bar.get_renderable())
    assert f"0/1  queued behind {first['id']}" in out.getvalue()
    third = ok("history", "get", "NFLX", *slow)  # the text on submit says what it waits behind
    third_id = third.stdout.split()[1]
    assert f"job {third_id} QUEUED: 0/1 instrument, 0 bars\n  queued behind {first['id']} and 1 more" \
        in third.stdout, third.stdout
    lines = ok("history", "jobs").stdout.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(third_id))
    assert lines[at + 1].split() == ["behind", first["id"]] and lines[at + 2].split() == ["and", "1", "more"], lines
    for job_id in (third_id, second["id"], first["id"]):
        data("history", "cancel", job_id)


def test_wait_off_a_terminal_writes_a_line_each_time_the_job_stands_otherwise(
        stack: TradingStack, tmp_path: Path) -> None:
    """A script's or cron's log (no terminal) shows what `get --wait` waits on: queued behind whom, then running."""
    path = csv_file(tmp_path)
    common = ["-b", "1m", "--start", START, "--end", END, "-s", "csv", "-o", f"path={path}"]
    first = data("history", "get", "AAPL", *common, "-o", "delay=0.3", "--no-wait")
    result = trader("history", "get", "MSFT", *common, "--wait")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.split()[1]
    lines = result.stderr.splitlines()
    assert lines[0] == f"job {job_id} queued behind {first['id']}", lines
    assert f"job {job_id} running 0/1" in lines, lines
    assert f"job {job_id} DONE: 1/1 instrument, 360 bars" in result.stdout
    assert "\x1b" not in result.stderr  # plain lines: no bar, no colour


def test_stands_says_where_a_job_is_in_a_line() -> None:
    """The line `get --wait` writes off a terminal: a pacing wait, a running job's count, a queued job's place."""
    base = {"id": "3f9a0c12", "done": 1, "failed": 1, "total": 3, "waiting": None, "queued_behind": None, "ahead": 0}
    until = datetime(2026, 12, 8, 1, 42, 29, tzinfo=UTC)
    assert history_tables.stands({**base, "state": "RUNNING"}) == "running 2/3"
    assert history_tables.stands({**base, "state": "RUNNING", "waiting": {"until": until, "reason": "IB pacing",
                                                                            "key": "AAPL.STK"}}) \
        == "waiting on IB pacing until 01:42:29 UTC"
    assert history_tables.stands({**base, "state": "QUEUED", "queued_behind": "2402f608", "ahead": 4}) \
        == "queued behind 2402f608 and 3 more"


def test_a_bad_symbol_or_a_future_start_is_refused_at_submit(stack: TradingStack) -> None:
    """Exit 3 naming what was typed; nothing queued (never a percent-mangled key failing later)."""
    for typed in ("A@#", "AAPL$", "A@#.STK", "MY_SYM"):
        assert f"{typed!r} is not a symbol or contract key" in refused(3, "history", "get", typed, "--start", START)
    said = refused(3, "history", "get", "AAPL", "--start", "2099-01-01")
    assert said.startswith("error (invalid): start 2099-01-01 is in the future (now 20"), said
    assert said.rstrip().endswith("UTC)"), said
    assert data("history", "jobs") == []
