"""The loopback policy: every binder and connecter refuses a non-loopback endpoint without CURVE keys."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from tests.conftest import REPO, StackEnv
from tests.waiting import wait_until
from trader.errors import ConfigError, Timeout
from trader.messaging.curve import ClientKeys, ServerKeys
from trader.messaging.loopback import is_loopback_endpoint, is_loopback_host
from trader.messaging.proxy import BusProxy
from trader.messaging.pubsub import Message, Publisher, Subscriber
from trader.messaging.rpc import MethodRegistry, RpcClient, RpcServer

REMOTE = ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.20:5555", "tcp://trader.example.com:5555",
          "tcp://[::]:5555", "tcp://[fe80::1]:5555", "tcp://eth0:5555", "tcp://127.0.0.1;10.0.0.2:5555"]
LOCAL = ["tcp://127.0.0.1:5555", "tcp://127.3.2.1:0", "tcp://localhost:1", "tcp://[::1]:5555",
         "tcp://[::ffff:127.0.0.1]:5555", "ipc:///tmp/x.sock", "inproc://bus"]


@pytest.mark.parametrize("endpoint", LOCAL)
def test_loopback_endpoints(endpoint: str) -> None:
    assert is_loopback_endpoint(endpoint)


@pytest.mark.parametrize("endpoint", REMOTE)
def test_endpoints_beyond_loopback(endpoint: str) -> None:
    assert not is_loopback_endpoint(endpoint)


def test_hosts() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback_host, ["", "*", "0.0.0.0", "::", "10.1.2.3", "128.0.0.1", "localhost.evil.com"]))


def _keys() -> tuple[ServerKeys, ClientKeys]:
    server_public, server_secret = (z85.decode(k) for k in zmq.curve_keypair())
    client_public, client_secret = (z85.decode(k) for k in zmq.curve_keypair())
    return (ServerKeys(server_public, server_secret, frozenset({client_public})),
            ClientKeys(client_public, client_secret, server_public))


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:0", "tcp://*:0", "tcp://192.168.1.20:5560"])
def test_every_socket_refuses_a_remote_endpoint_without_keys_and_says_how(endpoint: str) -> None:
    makers: list[Callable[[], object]] = [
        lambda: RpcServer(endpoint, MethodRegistry()),
        lambda: RpcClient(endpoint),
        lambda: BusProxy(endpoint, "tcp://127.0.0.1:0"),
        lambda: BusProxy("tcp://127.0.0.1:0", endpoint),
        lambda: Publisher(endpoint),
        lambda: Subscriber(endpoint),
    ]
    for make in makers:
        with pytest.raises(ConfigError) as refused:
            make()
        message = str(refused.value)
        assert endpoint in message and "beyond loopback" in message
        assert "trader keys generate" in message and "security.mode: curve" in message


def test_with_keys_a_remote_endpoint_is_allowed() -> None:
    server, client = _keys()
    # Constructed only: nothing binds beyond loopback in a test.
    RpcServer("tcp://0.0.0.0:0", MethodRegistry(), curve=server)
    RpcClient("tcp://192.168.1.20:5560", curve=client).close()
    BusProxy("tcp://0.0.0.0:0", "tcp://0.0.0.0:0", curve=server)
    Publisher("tcp://192.168.1.20:5555", curve=client).close()
    Subscriber("tcp://192.168.1.20:5556", curve=client)


def _run_bus(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.bus"], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("override", [
    {"TRADER_BUS__HOST": "0.0.0.0"},  # the bus proxy (and every publisher) beyond loopback
    {"TRADER_SERVICES__BUS__HOST": "0.0.0.0", "TRADER_SERVICES__BUS__RPC_PORT": "0"},  # an RPC server
])
def test_a_service_process_asked_to_leave_loopback_without_keys_exits_with_the_config_code(
        stack_env: StackEnv, override: dict[str, str]) -> None:
    done = _run_bus({**os.environ, **override})
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert "beyond loopback" in done.stderr and "trader keys generate" in done.stderr
    assert "0.0.0.0" in done.stderr


def test_a_service_process_with_curve_keys_serves_allowed_clients_only(
        stack_env: StackEnv, free_port: Callable[[], int], tmp_path: Path) -> None:
    """The bus as a real process with ``security.mode: curve`` forced on over 127.0.0.1."""
    from trader.cli.keys import write_key_pair

    write_key_pair(tmp_path, "server")
    rpc_port = free_port()
    env = {**os.environ, "TRADER_SECURITY__MODE": "curve",
           "TRADER_SECURITY__SERVER__KEY_FILE": str(tmp_path / "server.key_secret"),
           "TRADER_SERVICES__BUS__RPC_PORT": str(rpc_port), "TRADER_SERVICES__BUS__HEARTBEAT_INTERVAL": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "services.bus"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    public, secret = (z85.decode(k) for k in zmq.auth.load_certificate(tmp_path / "server.key_secret"))
    allowed = ClientKeys(public, secret, public)  # one host: the server's pair is the client's
    stranger_public, stranger_secret = (z85.decode(k) for k in zmq.curve_keypair())
    stranger = ClientKeys(stranger_public, stranger_secret, public)

    async def scenario() -> None:
        good_sub = Subscriber(f"tcp://127.0.0.1:{stack_env.sub_port}", curve=allowed)
        bad_sub = Subscriber(f"tcp://127.0.0.1:{stack_env.sub_port}", curve=stranger)
        beats: list[Message] = []
        refused: list[Message] = []
        good_sub.observe("heartbeat").subscribe(beats.append)
        bad_sub.observe("heartbeat").subscribe(refused.append)
        good_sub.start()
        bad_sub.start()
        client = RpcClient(f"tcp://127.0.0.1:{rpc_port}", timeout=10, curve=allowed)
        intruder = RpcClient(f"tcp://127.0.0.1:{rpc_port}", timeout=1.5, curve=stranger)
        try:
            await wait_until(lambda: len(beats) >= 2, timeout=20, what="heartbeats through the CURVE bus")
            assert (await client.call("status"))["state"] == "RUNNING"
            with pytest.raises(Timeout):  # the stranger gets no reply
                await intruder.call("status")
            assert refused == []
        finally:
            for closing in (client, intruder, good_sub, bad_sub):
                closing.close()

    try:
        asyncio.run(scenario())
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
