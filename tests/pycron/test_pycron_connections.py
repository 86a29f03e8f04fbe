"""``python -m pycron`` under a low open-files limit, flooded with idle connections: it still answers and restarts.

The probe's finding: under ``ulimit -n 256``, 300 idle TCP connections to the
control API made an authorised ``GET /status`` time out (still at 20 s), all
300 stayed open, and pycron at its limit could neither make output pipes nor
fork, so it could not restart a job.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pycron.connections import BACKLOG, IDLE_TIMEOUT, MAX_CONNECTIONS

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")
TOKEN = "t0ken-for-the-fd-limit-test"
LIMIT = 256
FLOOD = 300


def open_files_limit(pid: int) -> tuple[int, int]:
    """Return the (soft, hard) open-files limit of process ``pid``, read from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files line")


def poll(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_pycron(home: Path, port: int, soft: int, hard: int) -> subprocess.Popen[bytes]:
    (home / "jobs.yaml").write_text(
        f"jobs:\n  worker:\n    command: {sys.executable}\n"
        f"    args: [{CHILD}, worker, {home / 'record'}]\n    settle_time: 0.2\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env.update(
        TRADER_HOME=str(home),
        TRADER_CONFIG=str(REPO / "configs" / "trader.yaml"),
        TRADER_PYCRON__CONFIG=str(home / "jobs.yaml"),
        TRADER_PYCRON__PORT=str(port),
        TRADER_PYCRON__TOKEN=TOKEN,
        PYTHONPATH=str(REPO),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "pycron", "--detached"],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Only a setrlimit between fork and exec: no lock a thread of the test could hold is taken.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),  # noqa: PLW1509
    )


@pytest.fixture
def pycron_process(trader_home: Path, free_port: Callable[[], int]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = start_pycron(trader_home, port, LIMIT, LIMIT)
    try:
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status(port: int, timeout: float = 2.0) -> dict:
    with httpx.Client(trust_env=False, timeout=timeout) as client:
        reply = client.get(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def worker(port: int) -> dict:
    return next(job for job in status(port)["jobs"] if job["name"] == "worker")


def try_status(port: int) -> bool:
    try:
        return worker(port)["state"] == "RUNNING"
    except httpx.TransportError:
        return False


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_an_idle_flood_under_a_low_fd_limit_neither_locks_out_the_cli_nor_stops_restarts(
    pycron_process: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = pycron_process
    poll("pycron's worker RUNNING", lambda: try_status(port), 20)
    baseline = open_fds(proc.pid)
    idle: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)  # let pycron accept what it will
        print(f"pycron's descriptors: {baseline} before the flood, {open_fds(proc.pid)} after")
        # pycron keeps at most MAX_CONNECTIONS of them: its descriptors stay below the limit.
        assert open_fds(proc.pid) <= baseline + MAX_CONNECTIONS + BACKLOG, (baseline, open_fds(proc.pid))
        # An authorised request answers at once, through the flood.
        started = time.monotonic()
        assert status(port)["pid"] == proc.pid
        assert time.monotonic() - started < 1.0
        # pycron can still fork and make pipes: a killed job is restarted.
        old_pid = worker(port)["pid"]
        os.kill(old_pid, signal.SIGKILL)
        poll("the worker restarted", lambda: worker(port)["pid"] not in (None, old_pid), 10)
        # The idle connections are closed: most at once (evicted), the rest within the idle timeout.
        for sock in idle:
            sock.settimeout(IDLE_TIMEOUT + 5)
        started = time.monotonic()
        assert all(sock.recv(1) == b"" for sock in idle)
        assert time.monotonic() - started < IDLE_TIMEOUT + 5
    finally:
        for sock in idle:
            sock.close()
    assert FLOOD > MAX_CONNECTIONS


def test_pycron_raises_its_soft_open_files_limit_to_the_hard_one(
    trader_home: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    proc = start_pycron(trader_home, port, LIMIT, 4 * LIMIT)
    try:
        poll("pycron's worker RUNNING", lambda: try_status(port), 20)
        assert open_files_limit(proc.pid) == (4 * LIMIT, 4 * LIMIT)
        assert "open-file limit raised from 256 to 1024" in (trader_home / "logs" / "pycron.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
