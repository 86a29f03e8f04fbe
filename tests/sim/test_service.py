"""The tws_sim process: heartbeats on the bus, ib_async trading against it, RPC control, clean stop."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ib_async import MarketOrder, Stock

from services.tws_sim import TwsSimService
from tests.conftest import REPO, StackEnv
from tests.sim.simulator import connect, wait_for
from trader.config import load_settings
from trader.errors import ConfigError, ValidationError
from trader.messaging.pubsub import Message, Subscriber
from trader.messaging.rpc import RpcClient


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def test_tws_sim_process_beats_trades_and_obeys_control(
    stack_env: StackEnv, free_port: Callable[[], int]
) -> None:
    port, rpc_port = free_port(), free_port()
    env = dict(os.environ, TRADER_SERVICES__TWS_SIM__RPC_PORT=str(rpc_port),
               TRADER_SERVICES__TWS_SIM__HEARTBEAT_INTERVAL="0.2")
    bus = _start(["services.bus"], env)
    sim = _start(["services.tws_sim", "--port", str(port)], env)

    async def scenario() -> list[Message]:
        sub = Subscriber(f"tcp://127.0.0.1:{stack_env.sub_port}")
        sub.start()
        beats: list[Message] = []
        sub.observe("heartbeat.tws_sim").subscribe(beats.append)
        await wait_for(lambda: any(b.payload["state"] == "RUNNING" for b in beats), timeout=20, what="RUNNING beat")
        ib = await connect(port, 1)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        rpc = RpcClient(f"tcp://127.0.0.1:{rpc_port}", timeout=5)
        for method, bad in (("set_delay", float("inf")), ("set_delay", float("nan")), ("set_delay", -1),
                            ("set_delay", 61), ("set_delay", "1"), ("set_delay", True),
                            ("reject_next_orders", 1.5), ("reject_next_orders", 10**9), ("requests", "x")):
            with pytest.raises(ValidationError, match=r"must be|bad argument"):  # the registry's type check, or the world's
                await rpc.call(method, bad)
        assert await rpc.call("set_delay", 0.0) == 0.0
        assert await rpc.call("reject_next_orders", 1) == 1
        refused = ib.placeOrder(aapl, MarketOrder("BUY", 1))
        await wait_for(refused.isDone, what="refused order done")
        assert refused.orderStatus.status == "Cancelled" and not refused.fills
        filled = ib.placeOrder(aapl, MarketOrder("BUY", 1))
        await wait_for(filled.isDone, what="second order done")
        assert filled.orderStatus.status == "Filled"
        log = await rpc.call("requests", 50)
        assert [r["message"] for r in log].count("PLACE_ORDER") == 2
        await wait_for(lambda: any(b.payload.get("executions") == 1 for b in beats), what="beat with the fill")
        assert await rpc.call("drop_connections") == 1
        await wait_for(lambda: not ib.isConnected(), what="dropped")
        rpc.close()
        sim.send_signal(signal.SIGTERM)
        await wait_for(lambda: sim.poll() is not None, timeout=10, what="tws_sim exit")
        sub.close()
        return beats

    try:
        beats = asyncio.run(scenario())
    finally:
        _stop(sim)
        _stop(bus)
    stderr = sim.stderr.read().decode() if sim.stderr else ""
    assert sim.returncode == 0, stderr
    assert beats[-1].payload["port"] == port
    assert "tws_sim: STOPPING -> STOPPED" in (stack_env.home / "logs" / "tws_sim.log").read_text()


def test_a_bad_sim_config_exits_with_the_config_code(stack_env: StackEnv, tmp_path: Path) -> None:
    bad = tmp_path / "sim.yaml"
    bad.write_text("market: {seed: 1, tick_rat: 3}\n")
    result = subprocess.run([sys.executable, "-m", "services.tws_sim", "--port", "0", "--sim-config", str(bad)],
                            cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == ConfigError.exit_code
    assert "market.tick_rat: unknown key" in result.stderr


def test_tick_rate_option_overrides_the_config() -> None:
    parser = argparse.ArgumentParser()
    TwsSimService.add_arguments(parser)
    settings = load_settings(env={})
    default = TwsSimService.from_args(settings, parser.parse_args(["--port", "0"]))
    fast = TwsSimService.from_args(settings, parser.parse_args(["--port", "0", "--tick-rate", "500"]))
    assert default.sim_config is not None and fast.sim_config is not None
    assert default.sim_config.market.tick_rate == 4.0
    assert fast.sim_config.market.tick_rate == 500.0
    assert fast.sim_config.market.seed == default.sim_config.market.seed


def test_a_tick_rate_out_of_range_exits_with_the_config_code(stack_env: StackEnv) -> None:
    result = subprocess.run([sys.executable, "-m", "services.tws_sim", "--port", "0", "--tick-rate", "5000"],
                            cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == ConfigError.exit_code
    assert "--tick-rate" in result.stderr and "tick_rate" in result.stderr


def test_replay_options_set_the_replay(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    TwsSimService.add_arguments(parser)
    settings = load_settings(env={})
    ticks = tmp_path / "ticks.csv"
    ticks.write_text("time,symbol,last\n2024-03-01 14:30,AAPL,180\n")
    service = TwsSimService.from_args(settings, parser.parse_args(
        ["--port", "0", "--replay", str(ticks), "--speed", "30", "--loop"]))
    assert service.sim_config is not None and service.sim_config.replay is not None
    replay = service.sim_config.replay
    assert (replay.file, replay.speed, replay.loop) == (ticks, 30.0, True)
    try:
        TwsSimService.from_args(settings, parser.parse_args(["--port", "0", "--speed", "30"]))
    except ConfigError as exc:
        assert "need a replay file" in str(exc)
    else:
        raise AssertionError("--speed without a file was accepted")


def test_a_bad_replay_file_exits_with_the_config_code(stack_env: StackEnv, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.csv"
    ticks.write_text("time,symbol,last\n2024-03-01 14:30,NOPE,180\n")
    result = subprocess.run([sys.executable, "-m", "services.tws_sim", "--port", "0", "--replay", str(ticks)],
                            cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert "unknown symbol 'NOPE'" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_a_listener_beyond_loopback_is_refused(stack_env: StackEnv, host: str) -> None:
    """IB's API has no authentication: tws-sim's simulated account stays on this host."""
    result = subprocess.run([sys.executable, "-m", "services.tws_sim", "--port", "0", "--host", host],
                            cwd=REPO, env=stack_env.env, capture_output=True, text=True, timeout=30)
    assert result.returncode == ConfigError.exit_code, result.stderr
    assert "beyond loopback" in result.stderr and "SSH tunnel" in result.stderr
