"""tws-sim's command line: a second simulator beside a running one, ports in use, bad replay options."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.tws_sim import TwsSimService
from tests.conftest import REPO, StackEnv
from trader.config import load_settings
from trader.errors import ConfigError
from trader.messaging.rpc import RpcClient


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other process listens on (a running stack's tws-sim control port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.tws_sim", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_second_simulator_on_another_port_takes_an_ephemeral_control_port(
    stack_env: StackEnv, tmp_path: Path, held_port: int, free_port: Callable[[], int]
) -> None:
    # The stack's trader.yaml names the control port the running simulator holds; only --port differs.
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    yaml = configs / "trader.yaml"
    text, count = re.subn(r"(tws_sim:\n\s+rpc_port:) \d+", rf"\1 {held_port}", yaml.read_text())
    assert count == 1
    yaml.write_text(text)
    env = {**os.environ, "TRADER_CONFIG": str(yaml)}
    del env["TRADER_SERVICES__TWS_SIM__RPC_PORT"]  # an explicit setting is kept: this one comes from the file
    port = free_port()
    assert port != stack_env.ib_port
    sim = subprocess.Popen([sys.executable, "-m", "services.tws_sim", "--port", str(port)], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = stack_env.home / "logs" / "tws_sim.log"
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and sim.poll() is None and time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            found = re.search(r"control RPC on (tcp://127\.0\.0\.1:(\d+)) \(ephemeral", text)
            time.sleep(0.1)
        assert found is not None, sim.stderr.read().decode() if sim.poll() is not None and sim.stderr else "no line"
        assert int(found[2]) not in (held_port, 0)

        async def status() -> dict[str, object]:
            rpc = RpcClient(found[1], timeout=5)
            try:
                answer: dict[str, object] = await rpc.call("status")
                return answer
            finally:
                rpc.close()

        assert asyncio.run(status())["port"] == port
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(15) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
        sim.wait(5)


def test_a_control_port_in_use_is_one_line_and_the_config_code(stack_env: StackEnv, held_port: int) -> None:
    env = {**os.environ, "TRADER_SERVICES__TWS_SIM__RPC_PORT": str(held_port)}
    result = run(["--port", "0"], env)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert f"control port {held_port} is in use (another tws_sim?)" in result.stderr
    assert "TRADER_SERVICES__TWS_SIM__RPC_PORT or --rpc-port" in result.stderr
    assert "Traceback" not in result.stderr
    result = run(["--port", "0", "--rpc-port", str(held_port)], dict(os.environ))
    assert result.returncode == ConfigError.exit_code and f"control port {held_port} is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_api_port_in_use_is_one_line_and_the_config_code(stack_env: StackEnv, held_port: int) -> None:
    result = run(["--port", str(held_port), "--rpc-port", "0"], dict(os.environ))
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert f"port {held_port} is in use (a TWS or another tws-sim?): choose another with --port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["--replay", "store:"], "argument --replay: 'store:' names no instrument: give its keys, such as store:AAPL.STK"),
    (["--replay", "store-ticks: ,"], "'store-ticks: ,' names no instrument"),
    (["--replay", "store:AAPL.STK", "--bar-size", "7x"], "argument --bar-size: bar size '7x' is not one of IB's"),
    (["--replay", "store:AAPL.STK", "--start", "notadate"],
     "argument --start: 'notadate' is not a date or time: give 2026-03-02 or 2026-03-02T14:30 (UTC)"),
    (["--replay", "store:AAPL.STK", "--start", "2026-03-02", "--end", "2026-13-01"], "argument --end: '2026-13-01'"),
    (["--rpc-port", "70000"], "argument --rpc-port: '70000' is not a port: give 0 (any free port) to 65535"),
])
def test_bad_replay_options_are_usage_errors(stack_env: StackEnv, argv: list[str], message: str) -> None:
    result = run([*argv, "--port", "0"], dict(os.environ))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "usage:" in result.stderr
    assert "Value error" not in result.stderr and "<root>" not in result.stderr and "Traceback" not in result.stderr


def test_the_control_port_follows_the_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADER_SERVICES__TWS_SIM__RPC_PORT", raising=False)
    parser = argparse.ArgumentParser()
    TwsSimService.add_arguments(parser)
    settings = load_settings(env={})

    def rpc_port(*argv: str) -> int | None:
        return TwsSimService.from_args(settings, parser.parse_args(list(argv))).config.rpc_port

    assert rpc_port() == rpc_port("--port", str(settings.ib.port)) == 5561  # the stack's own tws job
    assert rpc_port("--port", "7611") == 0  # beside it: an ephemeral port
    assert rpc_port("--port", "7611", "--rpc-port", "5661") == rpc_port("--rpc-port", "5661") == 5661
    monkeypatch.setenv("TRADER_SERVICES__TWS_SIM__RPC_PORT", "5661")  # an explicit setting is kept
    assert rpc_port("--port", "7611") == 5561  # (these settings were loaded without it)
