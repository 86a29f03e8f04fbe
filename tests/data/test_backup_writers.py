"""``trader data restore`` while pycron runs a job that writes the store: refused, naming it; once stopped, done."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv
from tests.data.bars import MIN, T0, bars
from tests.waiting import wait_until_blocking
from trader.data.arctic import ArcticStore
from trader.data.backup import backup


@pytest.fixture
def recorder_up(stack_env: StackEnv, monkeypatch: pytest.MonkeyPatch,
                home_processes: Callable[[], list[int]]) -> Iterator[StackEnv]:
    """A real pycron running one job named tick_recorder (a sleep: its name is what the restore checks)."""
    jobs = {"jobs": {"tick_recorder": {"command": "sleep", "args": ["600"], "settle_time": 0.2}},
            "profiles": {"test": ["tick_recorder"]}}
    jobs_file = stack_env.home / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(jobs))
    monkeypatch.setenv("TRADER_PYCRON__CONFIG", str(jobs_file))
    monkeypatch.setenv("TRADER_PROFILE", "test")
    up = trader("up", "--detach", "--timeout", "60")
    assert up.exit_code == 0, up.output
    try:
        yield stack_env
    finally:
        trader("down", "--timeout", "30")
        wait_until_blocking(lambda: home_processes() == [], timeout=30, what="the stack gone")


def test_a_restore_is_refused_while_pycron_runs_a_writer_and_done_once_it_is_stopped(
        recorder_up: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = ArcticStore(f"lmdb://{tmp_path / 'source'}")
    source.write_bars("AAPL.STK", "1m", bars(T0, 10), start=T0, end=T0 + 10 * MIN)
    backup(source, tmp_path / "backup")
    uri = f"lmdb://{tmp_path / 'live'}"
    ArcticStore(uri).write_bars("OLD.STK", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    gc.collect()  # closed: the CLI opens the store itself
    monkeypatch.setenv("TRADER_STORAGE__ARCTIC_URI", uri)
    monkeypatch.setenv("COLUMNS", "80")
    wait_until_blocking(lambda: {j["name"]: j["state"] for j in data("status")}.get("tick_recorder")
                        == "RUNNING", timeout=30, what="tick_recorder running")
    error = refused(9, "data", "restore", str(tmp_path / "backup"), "--force")
    assert ("tick_recorder runs under pycron and writes to the store: stop it first "
            "(trader pycron stop tick_recorder)") in error
    assert ArcticStore(uri).bar_symbols() == {"1m": ["OLD.STK"]}  # untouched
    ok("pycron", "stop", "tick_recorder")
    ok("data", "restore", str(tmp_path / "backup"), "--force")
    assert ArcticStore(uri).bar_symbols() == {"1m": ["AAPL.STK"]}
