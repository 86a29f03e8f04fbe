"""``trader status`` never fails because of one service's answer: real RPC servers answering badly, one not accepting.

The services here are stub ``RpcServer``s on 127.0.0.1 (the real ZeroMQ
RPC of trader.messaging, served from a thread's own loop) registering only
the methods ``trader status`` calls. pycron is not running, so ``trader
status`` shows the services it could ask and exits 7; the last test runs the
real pycron, with a profile without the data services.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.cli.invoke import data, ok, trader
from tests.conftest import REPO, StackEnv
from tests.waiting import wait_until_blocking
from trader.cli import service_status
from trader.cli.context import CliContext
from trader.errors import NotFound
from trader.messaging.methods import MethodRegistry
from trader.messaging.rpc import RpcServer

RUNNING = {"state": "RUNNING", "reason": None, "pid": 4242, "uptime": 60.0}
JOB_ID = "3f9a0c12"


class Stubs:
    """RPC servers on 127.0.0.1 served from one background thread's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[RpcServer] = []

    def serve(self, methods: dict[str, Callable[..., Any]]) -> int:
        """Serve ``methods`` on an ephemeral port; return the port."""
        registry = MethodRegistry()
        for name, fn in methods.items():
            registry.register(name, fn)

        async def start() -> RpcServer:
            server = RpcServer("tcp://127.0.0.1:0", registry)
            await server.start()
            return server

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        return int(server.endpoint.rsplit(":", 1)[1])

    def close(self) -> None:
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def stubs(stack_env: StackEnv, monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]) -> Iterator[Stubs]:
    """Stub servers; tick_recorder gets a port where nothing listens (shown down), the terminal 80 columns."""
    monkeypatch.setenv("TRADER_SERVICES__TICK_RECORDER__RPC_PORT", str(free_port()))
    monkeypatch.setenv("COLUMNS", "80")
    found = Stubs()
    try:
        yield found
    finally:
        found.close()


def history(stubs: Stubs, monkeypatch: pytest.MonkeyPatch, **methods: Callable[..., Any]) -> None:
    """Serve a history_service stub answering ``status`` (running JOB_ID) and ``methods``."""
    port = stubs.serve({"status": lambda: {**RUNNING, "job": JOB_ID}, **methods})
    monkeypatch.setenv("TRADER_SERVICES__HISTORY_SERVICE__RPC_PORT", str(port))


def malformed_jobs(limit: Any = None) -> Any:
    return {"jobs": [{"identifier": JOB_ID}]}  # a mapping, not the list of Jobs


def no_jobs(limit: Any = None) -> Any:
    return []


def pruned_job(job_id: Any) -> Any:
    raise NotFound(f"no job {job_id}")


def test_a_malformed_jobs_answer_leaves_history_service_up_with_its_queue_unknown(
        stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    history(stubs, monkeypatch, jobs=malformed_jobs)
    answer = asyncio.run(service_status.ask(CliContext(), "history_service"))
    assert answer.status is not None and answer.status["state"] == "RUNNING", answer
    assert answer.status["queue"] is None and answer.status["queue_error"].startswith("jobs: ")

    result = trader("status")  # no pycron: the services answering are shown, then exit 7
    assert result.exit_code == 7, result.output
    text = result.stdout
    assert "RUNNING, pid 4242" in text and "unknown" in text and "jobs: " in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_a_pruned_running_job_leaves_history_service_up_with_a_note(
        stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    history(stubs, monkeypatch, jobs=no_jobs, job=pruned_job)
    answer = asyncio.run(service_status.ask(CliContext(), "history_service"))
    assert answer.status is not None and answer.error == "", answer
    assert answer.status["queue"] == {"running": None, "queued": 0, "queued_capped": False}
    assert answer.status["queue_error"] == f"job {JOB_ID}: NotFound: no job {JOB_ID}"

    text = trader("status").stdout
    assert "RUNNING, pid 4242" in text and f"job {JOB_ID}" in text and "NotFound" in text, text


def test_a_status_that_cannot_be_shown_is_an_error_row_not_a_failed_command(
        stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    port = stubs.serve({"status": lambda: {**RUNNING, "received": "many"}})  # int("many") fails the table
    monkeypatch.setenv("TRADER_SERVICES__TICK_RECORDER__RPC_PORT", str(port))
    history(stubs, monkeypatch, jobs=no_jobs, job=pruned_job)
    result = trader("status")
    assert result.exit_code == 7, result.output
    assert "cannot show its status" in result.stdout and "ValueError" in result.stdout, result.stdout
    assert "RUNNING, pid 4242" in result.stdout  # history_service, shown before it


def test_a_status_that_is_no_mapping_is_an_error(stubs: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    port = stubs.serve({"status": lambda: ["RUNNING"]})
    monkeypatch.setenv("TRADER_SERVICES__TICK_RECORDER__RPC_PORT", str(port))
    answer = asyncio.run(service_status.ask(CliContext(), "tick_recorder"))
    assert answer.status is None and answer.error.startswith("error: ") and "list" in answer.error, answer


def test_services_that_accept_no_connection_are_waited_for_at_once(
        stack_env: StackEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports whose accept queue is full drop the SYN: each check waits its whole 1 s, all four together."""
    held: list[socket.socket] = []
    try:
        for name in service_status.SERVICE_TABLES:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            held.append(listener)
            for _ in range(3):  # fill the accept queue (its length is 1 for a backlog of 0)
                client = socket.socket()
                client.setblocking(False)
                client.connect_ex(listener.getsockname())
                held.append(client)
            monkeypatch.setenv(f"TRADER_SERVICES__{name.upper()}__RPC_PORT", str(listener.getsockname()[1]))
        cli = CliContext()
        cli.settings()  # loaded before the clock starts
        began = time.monotonic()
        answers = asyncio.run(service_status.ask_services(cli, list(service_status.SERVICE_TABLES)))
        took = time.monotonic() - began
    finally:
        for sock in held:
            sock.close()
    assert all(answer.error.startswith("down: ") for answer in answers.values()), answers
    assert took < 3.5, f"the four 1 s connection checks took {took:.2f} s: one after another (>= 4 s)"


@pytest.mark.slow
def test_json_lists_the_data_services_the_profile_does_not_run(
        stack_env: StackEnv, monkeypatch: pytest.MonkeyPatch, home_processes: Callable[[], list[int]]) -> None:
    """The real pycron runs a profile of the bus alone: the table and the JSON both name the data services."""
    config = yaml.safe_load((REPO / "configs" / "pycron.yaml").read_text())
    config["profiles"] = {"test": ["bus"]}
    jobs_file = stack_env.home / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("TRADER_PYCRON__CONFIG", str(jobs_file))
    monkeypatch.setenv("TRADER_PROFILE", "test")
    monkeypatch.setenv("COLUMNS", "80")
    up = trader("up", "--detach", "--timeout", "60")
    assert up.exit_code == 0, up.output
    try:
        rows = data("status")
        table = ok("status").stdout
    finally:
        trader("down", "--timeout", "30")
        wait_until_blocking(lambda: home_processes() == [], timeout=30, what="the stack gone")
    assert [row["name"] for row in rows] == ["bus", "history_service", "tick_recorder"], rows
    assert rows[0]["state"] == "RUNNING" and "service_error" not in rows[0]
    for row in rows[1:]:
        assert row == {"name": row["name"], "service_error": "not run by profile test"}
        assert f"{row['name']}" in table
    assert table.count("not run by profile test") == 2, table
