"""Redis with a password: the launcher hands it to redis-server on stdin, out of ``ps``; ``trader up`` makes one."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from pycron import runfiles
from services.redis_server import config_line
from tests.conftest import REPO, redis_argv, wait_for_port
from trader.config import Settings
from trader.errors import ConfigError


def resp(port: int, command: bytes) -> bytes:
    """Send one inline command to 127.0.0.1:``port`` and return the first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(256)


def launch(port: int, data_dir: Path, password: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env["TRADER_HOME"] = str(data_dir)
    if password is not None:
        env["TRADER_REDIS__PASSWORD"] = password
    argv = [sys.executable, "-m", "services.redis_server", *redis_argv(port, data_dir)[1:]]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 15, "redis-server")
    except RuntimeError:
        proc.kill()
        raise
    return proc


@pytest.mark.parametrize("password", ["tok_-.~en123", 'with "quotes", \\ a backslash and spaces', "ünïcødé€"])
def test_redis_requires_the_password_which_no_process_listing_shows(
    tmp_path: Path, free_port: Callable[[], int], password: str
) -> None:
    port = free_port()
    proc = launch(port, tmp_path, password)
    try:
        # Raw RESP: redis-py retries a refused login for seconds before it raises.
        assert resp(port, b"PING\r\n").startswith(b"-NOAUTH")
        assert resp(port, b"AUTH wrong\r\n").startswith(b"-WRONGPASS")
        assert redis.Redis(port=port, password=password).ping() is True
        # The launcher became redis-server (same pid, so pycron stops redis itself) ...
        assert Path(f"/proc/{proc.pid}/exe").resolve() == Path(shutil.which("redis-server") or "?").resolve()
        # ... and the password is on no command line and in no environment.
        secret = password.encode()
        assert secret not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert secret not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
        assert secret not in listing
    finally:
        proc.kill()
        proc.wait(5)


def test_without_a_password_redis_runs_as_before(tmp_path: Path, free_port: Callable[[], int]) -> None:
    port = free_port()
    proc = launch(port, tmp_path, None)
    try:
        assert redis.Redis(port=port).ping() is True
    finally:
        proc.kill()
        proc.wait(5)


def test_config_line_quotes_every_character_redis_could_misread() -> None:
    assert config_line("abc-_.~9") == b'requirepass "abc-_.~9"\n'
    assert config_line('a"b\\c d\n') == b'requirepass "a\\x22b\\x5cc\\x20d\\x0a"\n'
    with pytest.raises(ConfigError):
        config_line("")


def test_trader_up_generates_a_private_password_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = runfiles.ensure_redis_password(settings)
    path = tmp_path / "run" / "redis.password"
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert runfiles.ensure_redis_password(settings) == first
    assert runfiles.ensure_redis_password(Settings(home=tmp_path, redis={"password": "from-env"})) == "from-env"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        runfiles.ensure_redis_password(settings)
    assert "from-env" in Settings(home=tmp_path, redis={"password": "from-env"}).secrets()  # masked in logs
