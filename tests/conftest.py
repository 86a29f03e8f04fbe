"""Shared fixtures: free loopback ports, a throwaway platform home, and a stack environment.

Processes started for a test are found again by their environment
(``TRADER_HOME=<the test's home>``) and killed by pid at teardown, so a
failing test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Return a function giving a free 127.0.0.1 TCP port, never the same one twice in a test."""
    given: set[int] = set()

    def pick() -> int:
        while True:
            port = _free_port()
            if port not in given:
                given.add(port)
                return port

    return pick


def pids_with_home(home: Path) -> list[int]:
    """Return the pids of our processes whose environment has ``TRADER_HOME=<home>``."""
    marker = f"TRADER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each pid and its process group, and reap those that are our children."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.01)


@pytest.fixture
def trader_home(tmp_path: Path) -> Iterator[Path]:
    """A fresh platform home; every process still running with it as TRADER_HOME is killed after the test."""
    home = tmp_path / "home"
    home.mkdir()
    yield home
    leftovers = pids_with_home(home)
    kill_pids(leftovers)


@dataclass
class StackEnv:
    """The environment a whole-stack test runs in: its home and its ephemeral ports."""

    home: Path
    redis_port: int
    pub_port: int
    sub_port: int
    pycron_port: int
    ib_port: int
    trader_rpc_port: int = 0
    tws_rpc_port: int = 0
    strategy_rpc_port: int = 0
    history_rpc_port: int = 0
    recorder_rpc_port: int = 0
    redis_password: str = ""
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def stack_env(
    trader_home: Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> StackEnv:
    """Point the platform at a temp home, the repository's configs and fresh ports (via TRADER_* env)."""
    stack = StackEnv(
        home=trader_home,
        redis_port=free_port(),
        pub_port=free_port(),
        sub_port=free_port(),
        pycron_port=free_port(),
        ib_port=free_port(),
        trader_rpc_port=free_port(),
        tws_rpc_port=free_port(),
        strategy_rpc_port=free_port(),
        history_rpc_port=free_port(),
        recorder_rpc_port=free_port(),
        redis_password=secrets.token_urlsafe(16),
    )
    stack.env = {
        "TRADER_HOME": str(trader_home),
        "TRADER_CONFIG": str(REPO / "configs" / "trader.yaml"),
        "TRADER_REDIS__PORT": str(stack.redis_port),
        "TRADER_BUS__PUB_PORT": str(stack.pub_port),
        "TRADER_BUS__SUB_PORT": str(stack.sub_port),
        "TRADER_PYCRON__PORT": str(stack.pycron_port),
        "TRADER_IB__PORT": str(stack.ib_port),
        "TRADER_SERVICES__TRADER_SERVICE__RPC_PORT": str(stack.trader_rpc_port),
        "TRADER_SERVICES__TWS_SIM__RPC_PORT": str(stack.tws_rpc_port),
        "TRADER_SERVICES__STRATEGY_SERVICE__RPC_PORT": str(stack.strategy_rpc_port),
        "TRADER_SERVICES__HISTORY_SERVICE__RPC_PORT": str(stack.history_rpc_port),
        "TRADER_SERVICES__TICK_RECORDER__RPC_PORT": str(stack.recorder_rpc_port),  # never a real stack's default
        # Redis with a password, as `trader up` runs it: every client of the stack's Redis must send it.
        "TRADER_REDIS__PASSWORD": stack.redis_password,
    }
    for name in list(os.environ):
        if name.startswith("TRADER_"):
            monkeypatch.delenv(name)
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    return stack


@pytest.fixture
def home_processes(trader_home: Path) -> Callable[[], list[int]]:
    """Return a function listing the live processes started with this test's home."""
    return lambda: pids_with_home(trader_home)


def redis_argv(port: int, data_dir: Path) -> list[str]:
    """Return the command line of a loopback redis-server with the append-only file on, as pycron runs it."""
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no"]


def wait_for_port(port: int, timeout: float, what: str) -> None:
    """Wait until something listens on 127.0.0.1:``port``; RuntimeError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} is not listening on port {port} after {timeout:g} s")
        time.sleep(0.02)


@dataclass
class RedisServer:
    """A real redis-server started for one test."""

    port: int
    pid: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[RedisServer]:
    """Start redis-server (AOF on) on a free loopback port in a temp dir; kill it by pid afterwards."""
    import subprocess

    port = free_port()
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    proc = subprocess.Popen(redis_argv(port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10, "redis-server")
    except RuntimeError:
        proc.kill()
        raise
    try:
        yield RedisServer(port, proc.pid, data_dir)
    finally:
        proc.kill()
        proc.wait(5)


@dataclass
class TradingStack:
    """redis-server, bus, tws-sim, trader_service (and strategy_service) as real processes, not under pycron."""

    env: StackEnv
    procs: dict[str, object] = field(default_factory=dict)
    args: dict[str, list[str]] = field(default_factory=dict)  # extra command-line arguments by process name

    @property
    def trader_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.env.trader_rpc_port}"

    @property
    def strategy_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.env.strategy_rpc_port}"

    @property
    def history_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.env.history_rpc_port}"

    @property
    def tws_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.env.tws_rpc_port}"

    def start(self, name: str) -> None:
        """Start one of the stack's processes (again)."""
        import subprocess
        import sys

        logs = self.env.home / "logs"
        logs.mkdir(exist_ok=True)
        argv = {
            # Through the launcher pycron's redis job uses: the password goes to redis-server on its stdin.
            "redis": [sys.executable, "-m", "services.redis_server", *redis_argv(self.env.redis_port, self.env.home)[1:]],
            "bus": [sys.executable, "-m", "services.bus"],
            "tws": [sys.executable, "-m", "services.tws_sim", "--tick-rate", "20"],
            "trader_service": [sys.executable, "-m", "services.trader_service"],
            "strategy_service": [sys.executable, "-m", "services.strategy_service"],
            "history_service": [sys.executable, "-m", "services.history_service"],
            "tick_recorder": [sys.executable, "-m", "services.tick_recorder"],
        }[name] + self.args.get(name, [])
        out = (logs / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **self.env.env},
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL one process (as a crash would)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            kill_pids([proc.pid])  # type: ignore[attr-defined]

    def wait_trader_ready(self, timeout: float = 30.0) -> dict[str, object]:
        """Wait until trader_service answers status RUNNING with connected=True; return that status."""
        return self.wait_ready(self.trader_endpoint, "trader_service", timeout, lambda s: bool(s.get("connected")))

    def wait_strategies_ready(self, timeout: float = 30.0) -> dict[str, object]:
        """Wait until strategy_service answers status RUNNING (its plugins loaded); return that status."""
        return self.wait_ready(self.strategy_endpoint, "strategy_service", timeout)

    def wait_ready(self, endpoint: str, what: str, timeout: float,
                   also: Callable[[dict[str, object]], bool] = lambda _s: True) -> dict[str, object]:
        """Poll ``status`` at ``endpoint`` until it says RUNNING (and ``also`` holds)."""
        import asyncio

        from trader.errors import TraderError
        from trader.messaging.rpc import RpcClient

        async def poll() -> dict[str, object]:
            client = RpcClient(endpoint)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        status = await client.call("status", timeout=1.0)
                        if status.get("state") == "RUNNING" and also(status):
                            return status
                    except TraderError:  # not up yet: no reply within the second
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{what} not ready within {timeout}s; see {self.env.home}/logs")
                    await asyncio.sleep(0.1)
            finally:
                client.close()

        return asyncio.run(poll())


def call(endpoint: str, method: str, *args: Any, timeout: float = 10, **kwargs: Any) -> Any:
    """Call ``method`` at ``endpoint`` once, from code without a loop; remote errors arrive typed."""
    from trader.messaging.rpc import RpcClient

    async def go() -> Any:
        client = RpcClient(endpoint)
        try:
            return await client.call(method, *args, timeout=timeout, **kwargs)
        finally:
            client.close()

    return asyncio.run(go())


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def started_trading_stack(stack_env: StackEnv, *, args: Mapping[str, list[str]] | None = None,
                          **env: str) -> Iterator[TradingStack]:
    """Start the trading stack with ``env`` added (e.g. risk limits) and ``args`` (process name -> extra
    command-line arguments, e.g. a replay for "tws"); kill every process by pid at the end."""
    stack_env.env.update(env)
    stack = TradingStack(stack_env, args=dict(args or {}))
    try:
        for name in ("redis", "bus", "tws"):
            stack.start(name)
        for port, what in ((stack_env.redis_port, "redis"), (stack_env.ib_port, "tws-sim")):
            wait_for_port(port, 15, f"{what} (logs in {stack_env.home}/logs)")
        stack.start("trader_service")
        stack.wait_trader_ready()
        yield stack
    finally:
        for name in list(stack.procs):
            stack.kill(name)


@contextlib.contextmanager
def started_strategy_stack(stack_env: StackEnv, strategies: Path, **env: str) -> Iterator[TradingStack]:
    """The trading stack (with ``env`` added) plus strategy_service running the plugins in ``strategies``."""
    with started_trading_stack(stack_env, TRADER_STRATEGIES__DIRECTORY=str(strategies), **env) as stack:
        stack.start("strategy_service")
        stack.wait_strategies_ready()
        yield stack


def write_plugins(directory: Path, plugins: Mapping[str, str]) -> Path:
    """Write ``plugins`` (file name -> text, dedented) to ``directory``, made if missing; return it."""
    directory.mkdir(exist_ok=True)
    for name, text in plugins.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def strategy_stack_fixture(plugins: Mapping[str, str], **env: str) -> Callable[..., Iterator[TradingStack]]:
    """Return a fixture: the strategy stack (``env`` added) running ``plugins`` (file name -> text).

    A test module takes it as ``strategy_stack = strategy_stack_fixture(PLUGINS)``.
    """
    @pytest.fixture
    def strategy_stack(stack_env: StackEnv, tmp_path: Path) -> Iterator[TradingStack]:
        with started_strategy_stack(stack_env, write_plugins(tmp_path / "strategies", plugins), **env) as stack:
            yield stack

    return strategy_stack


@pytest.fixture
def trading_stack(stack_env: StackEnv) -> Iterator[TradingStack]:
    """The trading stack on ephemeral ports in a temp home; every process killed by pid afterwards."""
    with started_trading_stack(stack_env) as stack:
        yield stack
