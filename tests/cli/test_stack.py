"""``trader up / status / down / pycron`` end to end: the real pycron, redis-server and bus on a temp home."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.sim.simulator import connect
from tests.waiting import wait_until_blocking
from trader.cli.main import cli
from trader.errors import ConfigError


def trader(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def api_accounts(port: int) -> list[str]:
    """Connect an ib_async client to ``port`` and return the accounts the TWS there manages."""
    async def accounts() -> list[str]:
        ib = await connect(port, 99)
        try:
            return ib.managedAccounts()
        finally:
            ib.disconnect()

    return asyncio.run(accounts())


def status_json() -> list[dict]:
    result = trader("status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_up_status_restart_down(stack_env, home_processes) -> None:
    home = stack_env.home
    result = trader("up", "--detach", "--profile", "test", "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert "6 jobs ready" in result.stdout

    token_file = home / "run" / "pycron.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    pycron_pid = int((home / "run" / "pycron.pid").read_text())
    assert alive(pycron_pid)
    assert token not in Path(f"/proc/{pycron_pid}/cmdline").read_text()

    again = trader("up", "--detach", "--profile", "test")
    assert again.exit_code == 9 and "already running" in again.output

    rows = status_json()
    jobs = {job["name"]: job for job in rows if "state" in job}  # then the data services not in the profile
    assert set(jobs) == {"redis", "bus", "tws", "trader_service", "strategy_service", "history_service"}
    assert [row["name"] for row in rows if "state" not in row] == ["tick_recorder"]
    for job in jobs.values():
        assert job["state"] == "RUNNING" and job["healthy"] is True and job["restarts"] == 0
        assert alive(job["pid"])
    assert jobs["bus"]["heartbeat"]["state"] == "RUNNING"
    assert jobs["bus"]["heartbeat"]["age"] < 5
    assert api_accounts(stack_env.ib_port) == ["DU1234567"]  # the tws job speaks the TWS API on ib.port
    # Redis wants the password trader up handed on (TRADER_REDIS__PASSWORD here), from no command line.
    with socket.create_connection(("127.0.0.1", stack_env.redis_port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64).startswith(b"-NOAUTH")
    assert stack_env.redis_password.encode() not in Path(f"/proc/{jobs['redis']['pid']}/cmdline").read_bytes()

    table = trader("--profile", "test", "status")
    assert table.exit_code == 0
    assert all(name in table.stdout for name in ("redis", "bus", "tws", "trader_")) and "RUNNING" in table.stdout

    restarted = trader("pycron", "restart", "bus")
    assert restarted.exit_code == 0, restarted.output
    bus = {job["name"]: job for job in status_json()}["bus"]
    assert bus["state"] == "RUNNING" and bus["pid"] != jobs["bus"]["pid"]
    assert not alive(jobs["bus"]["pid"])
    assert trader("pycron", "restart", "ghost").exit_code == 4

    pids = [pycron_pid, jobs["redis"]["pid"], bus["pid"], jobs["tws"]["pid"]]
    down = trader("down", "--timeout", "30")
    assert down.exit_code == 0, down.output
    wait_until_blocking(lambda: not any(alive(pid) for pid in pids), what="every process gone")
    assert home_processes() == []
    assert not (home / "run" / "pycron.pid").exists()

    after = trader("status")  # the token file stays: pycron refuses, and is said not to run
    assert after.exit_code == 7 and "pycron is not running for" in after.output, after.output
    assert "Errno" not in after.output and "`trader up`" in after.output
    for log in (home / "logs").iterdir():
        assert token not in log.read_text(errors="replace"), log
        assert stack_env.redis_password not in log.read_text(errors="replace"), log
    # Detached, pycron logs to its rotated pycron.log alone, not also to pycron.out.
    assert "supervising 6 jobs" in (home / "logs" / "pycron.log").read_text()
    assert "supervising" not in (home / "logs" / "pycron.out").read_text()


def test_status_and_down_when_nothing_runs(stack_env) -> None:
    result = trader("status")
    assert result.exit_code == 7
    assert result.output.startswith("error (unavailable):") and len(result.output.splitlines()) == 1
    down = trader("down")
    assert down.exit_code == 0 and "not running" in down.output


def test_status_with_a_token_but_no_pycron_says_so_in_a_sentence(stack_env) -> None:
    run = stack_env.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "pycron.token").write_text("t" * 32)  # left by an earlier `trader up`
    (run / "pycron.token").chmod(0o600)
    for args in (["status"], ["pycron", "restart", "bus"]):
        result = trader(*args)
        assert result.exit_code == 7, result.output
        assert result.output.startswith(f"error (unavailable): pycron is not running for {stack_env.home}")
        assert "Errno" not in result.output and "start the stack with `trader up`" in result.output
    body = json.loads(trader("status", "--json").stderr)["error"]
    assert (body["type"], body["code"]) == ("Unavailable", "unavailable") and "Errno" not in body["message"]


def test_up_reports_a_bad_jobs_file(stack_env, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = stack_env.home / "jobs.yaml"
    jobs.write_text("jobs:\n  redis: {command: redis-server, helth: {tcp: 1}}\n")
    monkeypatch.setenv("TRADER_PYCRON__CONFIG", str(jobs))
    result = trader("up", "--detach", "--timeout", "20")
    assert result.exit_code == ConfigError.exit_code == 78
    assert "jobs.redis.helth: unknown key" in result.output


@pytest.mark.slow
def test_up_shows_the_log_of_a_failed_job(
    stack_env, monkeypatch: pytest.MonkeyPatch, home_processes
) -> None:
    jobs = stack_env.home / "jobs.yaml"
    jobs.write_text(
        "jobs:\n"
        "  broken:\n"
        "    command: ${python} -c \"import sys; print('boom, cannot open the thing'); sys.exit(3)\"\n"
        "    max_restarts: 1\n"
        "    backoff: {initial: 0.1}\n"
    )
    monkeypatch.setenv("TRADER_PYCRON__CONFIG", str(jobs))
    result = trader("up", "--detach", "--timeout", "20")
    assert result.exit_code == 7, result.output
    assert "boom, cannot open the thing" in result.output
    assert "job broken FAILED (last exit 3)" in result.output
    down = trader("down")
    assert down.exit_code == 0, down.output
    wait_until_blocking(lambda: home_processes() == [], what="pycron gone")


def test_a_service_not_listening_without_an_answering_pycron_advises_the_stack(stack_env) -> None:
    """No pycron, then a 'pycron' answering garbage: neither fails the advice, which falls back to `trader up`."""
    run = stack_env.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "pycron.token").write_text("t" * 32)
    (run / "pycron.token").chmod(0o600)
    result = trader("history", "jobs")
    assert result.exit_code == 7, result.output
    assert "history_service is not listening on" in result.output and "`trader up`" in result.output

    class Garbage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name for a GET
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not the control API")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", stack_env.pycron_port), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = trader("history", "jobs")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 7, result.output
    assert "start the stack with `trader up`" in result.output, result.output


@pytest.mark.slow
def test_a_stopped_service_job_is_named_with_the_command_that_starts_it(
        stack_env, monkeypatch: pytest.MonkeyPatch, home_processes) -> None:
    jobs = stack_env.home / "jobs.yaml"
    jobs.write_text(
        "jobs:\n"
        "  history_service:\n"
        "    command: ${python} -c \"import time; time.sleep(600)\"\n"
        "    settle_time: 0.2\n"
    )
    monkeypatch.setenv("TRADER_PYCRON__CONFIG", str(jobs))
    monkeypatch.setenv("COLUMNS", "80")
    up = trader("up", "--detach", "--timeout", "30")
    assert up.exit_code == 0, up.output
    try:
        assert trader("pycron", "stop", "history_service").exit_code == 0
        fix = "the history_service job is STOPPED: `trader pycron start history_service`"
        for args in (["history", "jobs"], ["history", "get", "AAPL", "--start", "2026-12-01"]):
            result = trader(*args)
            assert result.exit_code == 7, result.output
            assert fix in " ".join(result.output.split()) and "`trader up`" not in result.output, result.output
        [row] = [row for row in status_json() if row["name"] == "history_service"]
        assert row["state"] == "STOPPED" and row["service_error"].endswith(fix), row
        table = trader("status").stdout
        assert "`trader pycron start" in table, table
    finally:
        trader("down", "--timeout", "30")
        wait_until_blocking(lambda: home_processes() == [], timeout=30, what="the stack gone")
