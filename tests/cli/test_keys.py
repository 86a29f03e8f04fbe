"""``trader keys generate``: a CURVE pair on disk, the secret 0600, never overwritten by accident."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq.auth
from click.testing import CliRunner

from trader.cli.context import CliContext
from trader.cli.main import cli
from trader.config import load_settings
from trader.errors import ConfigError, Conflict, Unavailable
from trader.messaging.curve import CurveKeys


def generate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["keys", "generate", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_a_pair_with_a_private_secret_and_says_how_to_use_it(tmp_path: Path) -> None:
    code, out, _ = generate("--dir", str(tmp_path / "keys"), "--name", "server")
    assert code == 0
    public, secret = tmp_path / "keys" / "server.key", tmp_path / "keys" / "server.key_secret"
    assert mode(secret) == 0o600 and mode(public) == 0o644
    public_key, secret_key = zmq.auth.load_certificate(secret)
    assert secret_key is not None and zmq.curve_public(secret_key) == public_key
    assert zmq.auth.load_certificate(public) == (public_key, None)  # the public file holds no secret
    assert "mode: curve" in out and f"key_file: {secret}" in out
    assert secret_key.decode() not in out  # the secret key itself is never printed
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["server.key", "server.key_secret"]


def test_generate_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert generate("--dir", str(tmp_path))[0] == 0
    before = (tmp_path / "trader.key_secret").read_bytes()
    code, _, err = generate("--dir", str(tmp_path))
    assert code == Conflict.exit_code and "already exist" in err and "--force" in err
    assert (tmp_path / "trader.key_secret").read_bytes() == before
    assert generate("--dir", str(tmp_path), "--force")[0] == 0
    assert (tmp_path / "trader.key_secret").read_bytes() != before
    assert mode(tmp_path / "trader.key_secret") == 0o600


def test_generate_json_and_a_bad_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--json", "keys", "generate", "--dir", str(tmp_path), "--name", "a"])
    assert result.exit_code == 0
    written = json.loads(result.stdout)
    assert written["public_key"] == zmq.auth.load_certificate(tmp_path / "a.key")[0].decode()
    code, _, err = generate("--dir", str(tmp_path), "--name", "../escape")
    assert code == ConfigError.exit_code and "plain file name" in err


def test_the_generated_pair_is_what_curve_mode_loads(tmp_path: Path, trader_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_HOME", str(trader_home))
    assert generate("--name", "server")[0] == 0  # default directory: <home>/keys
    assert generate("--name", "laptop")[0] == 0
    settings = load_settings(env={"TRADER_HOME": str(trader_home), "TRADER_SECURITY__MODE": "curve",
                                  "TRADER_SECURITY__SERVER__KEY_FILE": "keys/server.key_secret",
                                  "TRADER_SECURITY__ALLOWED_CLIENTS_DIR": "keys"})
    keys = CurveKeys.from_settings(settings, need_server=True)
    assert keys.server is not None and keys.client is not None
    laptop = zmq.utils.z85.decode(zmq.auth.load_certificate(trader_home / "keys" / "laptop.key")[0])
    assert laptop in keys.server.allowed and keys.client.public in keys.server.allowed


def test_the_cli_calls_a_service_over_curve_with_the_keys_of_its_settings(
        tmp_path: Path, trader_home: Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path a command takes (settings -> keys -> RpcClient), curve forced on over 127.0.0.1."""
    from trader.messaging.rpc import MethodRegistry, RpcServer

    port = free_port()
    env = {"TRADER_HOME": str(trader_home), "TRADER_SECURITY__MODE": "curve",
           "TRADER_SECURITY__SERVER__KEY_FILE": "keys/trader.key_secret",
           "TRADER_SERVICES__ECHO__RPC_PORT": str(port)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert generate()[0] == 0
    settings = load_settings()
    registry = MethodRegistry()
    registry.register("status", lambda: {"state": "RUNNING"})

    async def scenario() -> None:
        server = RpcServer(f"tcp://127.0.0.1:{port}", registry,
                           curve=CurveKeys.from_settings(settings, need_server=True).server)
        await server.start()
        try:
            assert await CliContext().call_service_async("echo", "status", timeout=5) == {"state": "RUNNING"}
            monkeypatch.setenv("TRADER_SECURITY__MODE", "none")  # a CLI without keys gets no answer
            with pytest.raises(Unavailable, match="did not answer"):
                await CliContext().call_service_async("echo", "status", timeout=1.5)
        finally:
            await server.close()

    asyncio.run(scenario())
