"""One child process: its process group is stopped as a whole, escalation to SIGKILL, its environment."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from pycron_helpers import run

from pycron.output import RotatingOutput, Rotation
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


def test_output_rotates_by_size_and_count(tmp_path: Path) -> None:
    """A child writing 6 MB fills at most (backups + 1) * max_bytes; the newest output is in <job>.out."""

    async def scenario() -> None:
        proc = ChildProcess(
            "t",
            ["sh", "-c", "yes 0123456789abcdef | head -c 6000000; echo LAST-LINE"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            log_path=tmp_path / "t.out",
            grace_period=2.0,
            rotation=Rotation(max_bytes=256 * 1024, backups=2),
        )
        await proc.start()
        assert await proc.wait_for(20) == 0
        assert proc.output.written > 6_000_000

    run(scenario())
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.out", "t.out.1", "t.out.2"]
    assert all(p.stat().st_size <= 256 * 1024 for p in tmp_path.iterdir())
    newest = (tmp_path / "t.out").read_text()
    assert "LAST-LINE\n" in newest and "ended: exit 0" in newest


def test_no_output_is_lost_and_the_child_is_not_held_up(tmp_path: Path) -> None:
    lines = 200_000
    script = f"import sys; [print(i, flush=i % 7 == 0) for i in range({lines})]; sys.stderr.write('err-end')"

    async def scenario() -> float:
        proc = ChildProcess(
            "t", [sys.executable, "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
            log_path=tmp_path / "t.out", grace_period=2.0,
        )
        started = time.monotonic()
        await proc.start()
        assert await proc.wait_for(20) == 0
        return time.monotonic() - started

    elapsed = run(scenario())
    assert elapsed < 10
    got = (tmp_path / "t.out").read_text().splitlines()
    assert got[0].startswith("--- pycron ") and "started t" in got[0]
    assert got[1:lines + 1] == [str(i) for i in range(lines)]
    assert got[lines + 1] == "err-end" and "ended: exit 0" in got[-1]


def test_rotating_output_alone(tmp_path: Path) -> None:
    out = RotatingOutput(tmp_path / "x.out", Rotation(max_bytes=10, backups=1))
    out.write(b"0123456789ABCDE")  # one write larger than the file: split across a rotation
    out.write(b"xyz")
    out.close()
    assert (tmp_path / "x.out.1").read_bytes() == b"0123456789"
    assert (tmp_path / "x.out").read_bytes() == b"ABCDExyz"
    assert out.written == 18


def test_output_pipes_are_closed_after_each_run(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def scenario() -> tuple[int, int]:
        before = open_fds()
        for n in range(30):
            proc = child(tmp_path, f"echo run {n}")
            await proc.start()
            assert await proc.wait_for(10) == 0
        missing = ChildProcess("t", ["no-such-command-xyz"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                               log_path=tmp_path / "t.out", grace_period=1.0)
        with pytest.raises(OSError):
            await missing.start()
        return before, open_fds()

    before, after = run(scenario())
    assert after <= before
    assert (tmp_path / "t.out").read_text().count("\nrun ") == 30  # each run's output, after its start line
