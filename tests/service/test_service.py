"""The service base with real processes: heartbeats, RPC status, DEGRADED, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, StackEnv
from tests.waiting import wait_until
from trader.config import load_settings
from trader.errors import ConfigError, NotFound
from trader.messaging.pubsub import Message, Subscriber
from trader.messaging.rpc import MethodRegistry, RpcClient
from trader.service.base import Service, loop_runner
from trader.service.lifecycle import ServiceState


def test_bus_process_beats_serves_and_stops_on_sigterm(stack_env: StackEnv) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "services.bus"], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def scenario() -> list[Message]:
        sub = Subscriber(f"tcp://127.0.0.1:{stack_env.sub_port}")
        sub.start()
        beats: list[Message] = []
        sub.observe("heartbeat.bus").subscribe(beats.append)
        await wait_until(lambda: len(beats) >= 2, timeout=10)
        proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: proc.poll() is not None, timeout=10)
        sub.close()
        return beats

    try:
        beats = asyncio.run(scenario())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, stderr
    first = beats[0].payload
    assert first["service"] == "bus" and first["pid"] == proc.pid
    assert first["state"] == ServiceState.RUNNING.value
    assert first["time"].tzinfo is not None
    assert "STOPPING -> STOPPED" in stderr
    log_file = stack_env.home / "logs" / "bus.log"
    assert "bus: RUNNING -> STOPPING" in log_file.read_text()
    assert "uvloop loop" in log_file.read_text()  # settings.event_loop's default
    assert "start-up heap frozen" in log_file.read_text()


def test_the_event_loop_setting_picks_the_loop_or_is_refused() -> None:
    async def loop_class() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop_runner("uvloop")(loop_class()) == "uvloop"
    assert loop_runner("asyncio")(loop_class()).startswith("asyncio")
    with pytest.raises(ConfigError, match="uvloop or asyncio"):
        loop_runner("trio")


def test_a_bad_config_exits_with_the_config_code(stack_env: StackEnv, tmp_path: Path) -> None:
    bad = tmp_path / "trader.yaml"
    bad.write_text("bus: {pub_prot: 1}\n")
    env = dict(os.environ, TRADER_CONFIG=str(bad))
    result = subprocess.run([sys.executable, "-m", "services.bus"], check=False, cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == ConfigError.exit_code == 78  # EX_CONFIG, not 2 (usage)
    assert "bus.pub_prot: unknown key" in result.stderr


class Echo(Service):
    """A service with one method and a switch to degrade it."""

    name = "echo"

    def register_methods(self, registry: MethodRegistry) -> None:
        registry.register("echo", self.echo)
        registry.register("degrade", self.degrade)

    async def echo(self, value: Any) -> Any:
        if value == "missing":
            raise NotFound("no such thing")
        return value

    def degrade(self, reason: str) -> str:
        self.set_degraded(reason)
        return self.state.value


def test_service_rpc_status_and_degraded_heartbeat(stack_env: StackEnv, free_port: Callable[[], int]) -> None:
    rpc_port = free_port()
    env = {**stack_env.env, "TRADER_SERVICES__ECHO__RPC_PORT": str(rpc_port),
           "TRADER_SERVICES__ECHO__HEARTBEAT_INTERVAL": "0.1"}
    settings = load_settings("test", env=env)

    async def scenario() -> None:
        from trader.messaging.proxy import BusProxy

        proxy = BusProxy(settings.bus.pub_endpoint, settings.bus.sub_endpoint)
        proxy.start()
        sub = Subscriber(settings.bus.sub_endpoint)
        sub.start()
        states: list[str] = []
        sub.observe("heartbeat.echo").subscribe(lambda m: states.append(m.payload["state"]))
        service = Echo(settings)
        runner = asyncio.ensure_future(service.run())
        client = RpcClient(f"tcp://127.0.0.1:{rpc_port}", timeout=5)
        await wait_until(lambda: "RUNNING" in states, timeout=10)
        status = await client.call("status")
        assert status["service"] == "echo" and status["state"] == "RUNNING"
        assert await client.call("echo", {"a": [1, 2]}) == {"a": [1, 2]}
        with pytest.raises(NotFound):
            await client.call("echo", "missing")
        assert await client.call("degrade", "broker down") == "DEGRADED"
        await wait_until(lambda: states[-1] == "DEGRADED", timeout=5)
        service.request_stop()
        service.request_stop()  # twice is fine
        assert await runner == 0
        assert service.state is ServiceState.STOPPED
        client.close()
        sub.close()
        proxy.stop()

    asyncio.run(scenario())
