"""The HTTP control API over real HTTP: the token, the envelope, status codes, job operations."""

from __future__ import annotations

from typing import Any

import aiohttp
from pycron_helpers import events, jobs_from, run, running, wait_until

from pycron.api import ControlServer
from pycron.job import JobState
from trader.config import Settings

TOKEN = "t0ken-for-tests"


def test_control_api(pycron_settings: Settings) -> None:
    record = pycron_settings.home / "record"
    config = jobs_from(
        f"""
        jobs:
          worker:
            command: {{child}} worker {record}
            settle_time: 0.2
            grace_period: 2
        """,
        pycron_settings,
    )
    shutdowns: list[bool] = []

    async def scenario() -> None:
        async with running(config, pycron_settings) as supervisor:
            server = ControlServer(supervisor, TOKEN, lambda: shutdowns.append(True))
            port = await server.start("127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"
            good = {"Authorization": f"Bearer {TOKEN}"}
            try:
                async with aiohttp.ClientSession() as http:

                    async def call(
                        method: str, path: str, headers: dict[str, str] | None = None
                    ) -> tuple[int, Any]:
                        async with http.request(method, base + path, headers=headers) as response:
                            return response.status, await response.json()

                    # No token, a wrong one, a wrong scheme: 401 with the error envelope, on any path.
                    for headers in (
                        None,
                        {"Authorization": "Bearer nope"},
                        {"Authorization": TOKEN},
                    ):
                        for method, path in (
                            ("GET", "/status"),
                            ("POST", "/shutdown"),
                            ("GET", "/nowhere"),
                        ):
                            status, body = await call(method, path, headers)
                            assert status == 401, (method, path, headers)
                            assert body["ok"] is False
                            assert body["error"]["code"] == "unauthorized"
                            assert body["error"]["type"] == "Unauthorized"
                    assert shutdowns == []

                    assert await supervisor.wait_ready(10)
                    status, body = await call("GET", "/status", good)
                    assert status == 200 and body["ok"] is True
                    result = body["result"]
                    assert result["profile"] == "default" and isinstance(result["pid"], int)
                    (job,) = result["jobs"]
                    assert {
                        "name",
                        "state",
                        "pid",
                        "uptime",
                        "restarts",
                        "healthy",
                        "last_exit",
                        "heartbeat",
                    } <= set(job)
                    assert (job["name"], job["state"], job["healthy"], job["heartbeat"]) == (
                        "worker",
                        "RUNNING",
                        True,
                        None,
                    )
                    first_pid = job["pid"]

                    status, body = await call("POST", "/jobs/ghost/restart", good)
                    assert (
                        status == 404
                        and body["error"]["code"] == "not_found"
                        and "ghost" in body["error"]["message"]
                    )
                    status, body = await call("GET", "/nowhere", good)
                    assert status == 404 and body["error"]["code"] == "not_found"

                    status, body = await call("POST", "/jobs/worker/start", good)
                    assert status == 409 and body["error"]["code"] == "conflict"

                    status, body = await call("POST", "/jobs/worker/restart", good)
                    assert status == 200 and body["result"]["state"] == "RUNNING"
                    assert body["result"]["pid"] not in (None, first_pid)

                    status, body = await call("POST", "/jobs/worker/stop", good)
                    assert (
                        status == 200
                        and body["result"]["state"] == "STOPPED"
                        and body["result"]["pid"] is None
                    )
                    assert supervisor.jobs["worker"].state is JobState.STOPPED
                    assert [e.kind for e in events(record)] == ["start", "term", "start", "term"]

                    status, body = await call("POST", "/shutdown", good)
                    assert status == 200 and body == {"ok": True, "result": {"shutting_down": True}}
                    await wait_until(lambda: shutdowns == [True], what="shutdown requested")
            finally:
                await server.close()

    run(scenario())
