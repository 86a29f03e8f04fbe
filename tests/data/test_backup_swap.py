"""A restore's swap and the processes around it: a running writer refused, a live one followed, a mount point refused."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv
from tests.data.bars import MIN, T0, bars
from tests.waiting import wait_until_blocking
from trader.data.arctic import ArcticStore
from trader.data.backends import ASIDE
from trader.data.backup import backup, restore
from trader.data.restore import STAGING
from trader.errors import StorageError

CHILD_ENV = {**os.environ, "PYTHONPATH": str(Path.cwd())}
WRITER = """
import sys
from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore
store = ArcticStore("lmdb://" + sys.argv[1])
store.write_bars("OLD.STK", "1m", bars(T0, 3), start=T0, end=T0 + 3 * MIN)  # written, the locks made
print("open", flush=True)
sys.stdin.readline()  # the parent restores meanwhile
print("deleted", store.delete_record("universes", "old"), flush=True)  # a delete is a write too
print("wrote", store.write_bars("NEW.STK", "1m", bars(T0, 7), start=T0, end=T0 + 7 * MIN), flush=True)
store.append_ticks("NEW.STK", __import__("pandas").DataFrame({"bid": [1.0]}, index=bars(T0, 1).index))
"""


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """Return a backup directory holding AAPL.STK's 10 one-minute bars and the universe ``old``."""
    source = ArcticStore(f"lmdb://{tmp_path / 'source'}")
    source.write_bars("AAPL.STK", "1m", bars(T0, 10), start=T0, end=T0 + 10 * MIN)
    source.put_record("universes", "old", {"members": ["AAPL.STK"]})
    backup(source, tmp_path / "backup")
    return tmp_path / "backup"


def test_a_process_writing_the_store_follows_a_restore_and_writes_into_the_restored_store(
        saved: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "stores" / "live"
    live = ArcticStore(f"lmdb://{root}")
    live.write_bars("OLD.STK", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "open"
        restore(live, saved, force=True)
        assert "already been opened" not in capfd.readouterr().err  # reopen() let the old handle go first
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.split() == ["deleted", "True", "wrote", "7"]
    assert "was replaced (a restore)" in err and "already been opened" not in err
    # the writer's write landed in the restored store, not in the deleted one
    assert ArcticStore(f"lmdb://{root}").bar_symbols() == {"1m": ["AAPL.STK", "NEW.STK"]}
    assert live.bar_symbols() == {"1m": ["AAPL.STK", "NEW.STK"]} and live.tick_symbols() == ["NEW.STK"]
    assert live.records("universes") == []


MOUNTED = """
import sys
from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore
from trader.data.backup import restore
from trader.errors import Conflict
store = ArcticStore("lmdb://" + sys.argv[1])
store.write_bars("OLD.STK", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
try:
    restore(store, sys.argv[2], force=True)
except Conflict as exc:
    print("refused:", exc)
print("symbols:", store.bar_symbols())
"""


def test_a_store_directory_that_is_a_mount_point_is_refused_before_anything_is_copied(
        saved: Path, tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    # a tmpfs mounted on the store's directory, in a mount namespace of its own (no root needed)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here: cannot mount in a user namespace")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], check=False,
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount in a user namespace here: {probe.stderr!r}")
    script = f'mount -t tmpfs none "$1" && exec "{sys.executable}" -c "$2" "$1" "$3"'
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
                           str(root), MOUNTED, str(saved)], check=False, capture_output=True, text=True,
                          env=CHILD_ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"refused: {root} is a mount point" in done.stdout
    assert "symbols: {'1m': ['OLD.STK']}" in done.stdout  # the store as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "disk", "source"]  # no staging copy


KILLED = """
import ctypes, os, sys
from trader.data import restore as swap
from trader.data.arctic import ArcticStore
from trader.data.backup import restore
class NoExchange:  # a file system that refuses RENAME_EXCHANGE: the fallback's three renames
    renameat2 = None
swap.ctypes.CDLL = lambda *args, **kwargs: NoExchange()
renames = []
def rename(a, b):
    renames.append(b)
    if len(renames) == 2:
        os._exit(9)  # killed between moving the old store aside and moving the new one in
    os.replace(a, b)
swap.os.rename = rename
restore(ArcticStore("lmdb://" + sys.argv[1]), sys.argv[2], force=True)
"""


def test_a_swap_killed_between_its_renames_leaves_the_old_store_aside_where_nothing_deletes_it(
        saved: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    parent = tmp_path / "stores"
    root = parent / "live"
    ArcticStore(f"lmdb://{root}").write_bars("OLD.STK", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    killed = subprocess.run([sys.executable, "-c", KILLED, str(root), str(saved)], check=False, env=CHILD_ENV,
                            timeout=120)
    assert killed.returncode == 9
    aside = [p for p in parent.iterdir() if ASIDE in p.name]
    assert not root.exists() and len(aside) == 1 and STAGING not in aside[0].name
    with pytest.raises(StorageError, match=f"{root} is missing, and {aside[0]} holds the store"):
        ArcticStore(f"lmdb://{root}")  # not an empty store in its place
    assert not root.exists()
    aside[0].rename(root)  # what the error says to do
    store = ArcticStore(f"lmdb://{root}")
    assert store.bar_symbols() == {"1m": ["OLD.STK"]}
    (parent / f".live{ASIDE}20261208T000000000000").mkdir()  # an older aside: kept; a staging copy: deleted
    (parent / f".live{STAGING}20261208T000000000000").mkdir()
    (parent / f".live{STAGING}20261208T000000000000" / "data.mdb").write_bytes(b"x" * 1000)
    caplog.set_level("WARNING", "trader.data.restore")
    restore(store, saved, force=True)
    assert sorted(p.name for p in parent.iterdir()) == [f".live{ASIDE}20261208T000000000000", "live"]
    assert f"deleting {parent}/.live{STAGING}20261208T000000000000 (1000 bytes)" in caplog.text


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
    wait_until_blocking(lambda: {j["name"]: j.get("state") for j in data("status")}.get("tick_recorder")
                        == "RUNNING", timeout=30, what="tick_recorder running")
    error = refused(9, "data", "restore", str(tmp_path / "backup"), "--force")
    assert ("tick_recorder runs under pycron and writes to the store: stop it first "
            "(trader pycron stop tick_recorder)") in error
    assert ArcticStore(uri).bar_symbols() == {"1m": ["OLD.STK"]}  # untouched
    ok("pycron", "stop", "tick_recorder")
    ok("data", "restore", str(tmp_path / "backup"), "--force")
    assert ArcticStore(uri).bar_symbols() == {"1m": ["AAPL.STK"]}
