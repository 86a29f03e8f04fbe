"""One child process: its process group is stopped as a whole, escalation to SIGKILL, its environment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pycron_helpers import run

from pycron.process import ChildProcess, child_environment, describe_exit
from pycron.runfiles import pid_alive


def child(tmp_path: Path, script: str, grace: float = 2.0) -> ChildProcess:
    return ChildProcess(
        "t",
        ["sh", "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "t.out",
        grace_period=grace,
    )


async def wait_for_file(path: Path) -> str:
    """Wait until the child has written ``path``; return its text."""
    deadline = time.monotonic() + 5
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"the child never wrote {path.name}"
        await asyncio.sleep(0.01)
    return path.read_text()


async def read_pid(path: Path) -> int:
    return int(await wait_for_file(path))


def test_stop_reaches_the_whole_group_and_is_safe_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        proc = child(tmp_path, "sleep 30 & echo $! > gc.pid; wait")
        await proc.start()
        grandchild = await read_pid(tmp_path / "gc.pid")
        assert pid_alive(grandchild)
        first, second = await asyncio.gather(proc.stop(), proc.stop())
        assert first == second == proc.returncode
        assert await proc.stop() == proc.returncode
        assert not proc.running
        deadline = time.monotonic() + 2
        while pid_alive(grandchild) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not pid_alive(grandchild)

    run(scenario())


def test_leftovers_die_with_the_leader(tmp_path: Path) -> None:
    async def scenario() -> None:
        proc = child(tmp_path, "sleep 30 & echo $! > gc.pid; exit 4")
        await proc.start()
        grandchild = await read_pid(tmp_path / "gc.pid")
        assert await proc.wait() == 4
        deadline = time.monotonic() + 2
        while pid_alive(grandchild) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not pid_alive(grandchild)
        log = (tmp_path / "t.out").read_text()
        assert "started t" in log and "ended: exit 4" in log

    run(scenario())


def test_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    async def scenario() -> None:
        proc = child(
            tmp_path, "trap '' TERM; echo ready > ready; while true; do sleep 0.05; done", grace=0.3
        )
        await proc.start()
        await wait_for_file(tmp_path / "ready")
        started = time.monotonic()
        code = await proc.stop()
        assert describe_exit(code) == "killed by SIGKILL"
        assert 0.3 <= time.monotonic() - started < 3

    run(scenario())


def test_child_environment() -> None:
    base = {
        "PATH": "/bin",
        "TRADER_PYCRON__TOKEN": "secret",
        "TRADER_REDIS__PORT": "7000",
        "X": "base",
    }
    env = child_environment(
        {"TRADER_HOME": "/h", "TRADER_PROFILE": "test"}, {"X": "job"}, base=base
    )
    assert "TRADER_PYCRON__TOKEN" not in env  # the control token stays with pycron
    assert (
        env["TRADER_REDIS__PORT"] == "7000"
        and env["TRADER_HOME"] == "/h"
        and env["TRADER_PROFILE"] == "test"
    )
    assert env["X"] == "job" and env["PYTHONUNBUFFERED"] == "1"
