"""pycron's control API beyond loopback: refused without TLS (the token would go in clear), HTTPS with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pycron_helpers import jobs_from, make_settings, running

from pycron.api import ControlServer
from pycron.client import PycronClient
from trader.config import Settings
from trader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TOKEN = "t0ken-for-security-tests"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and its key with the openssl command; return (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "api.crt", directory / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@pytest.mark.parametrize("host", ["0.0.0.0", "", "192.168.1.20", "pycron.example.com", "::"])
def test_the_api_refuses_to_bind_beyond_loopback_without_tls(pycron_settings: Settings, host: str) -> None:
    async def scenario() -> None:
        async with running(jobs_from("jobs: {}", pycron_settings), pycron_settings) as supervisor:
            server = ControlServer(supervisor, TOKEN, lambda: None)
            with pytest.raises(ConfigError, match="beyond loopback.*security.tls.cert_file"):
                await server.start(host, 0)
            assert server.port is None  # nothing was bound

    import asyncio

    asyncio.run(scenario())


def test_pycron_as_a_process_exits_with_the_config_code(trader_home: Path) -> None:
    (trader_home / "jobs.yaml").write_text("jobs: {}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env.update({"TRADER_HOME": str(trader_home), "TRADER_CONFIG": str(REPO / "configs" / "trader.yaml"),
                "TRADER_PYCRON__CONFIG": str(trader_home / "jobs.yaml"), "TRADER_PYCRON__PORT": "0",
                "TRADER_PYCRON__TOKEN": TOKEN, "TRADER_PYCRON__HOST": "0.0.0.0"})
    done = subprocess.run([sys.executable, "-m", "pycron"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert "pycron's control API binding tcp://0.0.0.0:0 is beyond loopback" in done.stderr
    assert "security.tls.cert_file" in done.stderr
    assert not (trader_home / "run" / "pycron.pid").exists()  # refused before anything started


def test_with_tls_the_api_serves_https_and_the_client_verifies_it(trader_home: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = make_settings(trader_home, security={"tls": {"cert_file": cert, "key_file": key}},
                             pycron={"host": "127.0.0.1", "port": 0})
    from pycron.__main__ import tls_context

    async def scenario() -> None:
        async with running(jobs_from("jobs: {}", settings), settings) as supervisor:
            server = ControlServer(supervisor, TOKEN, lambda: None)
            port = await server.start("127.0.0.1", 0, tls_context(settings))
            try:
                at_port = settings.model_copy(update={"pycron": settings.pycron.model_copy(update={"port": port})})
                client = PycronClient.with_token(at_port, TOKEN)
                assert client.base_url.startswith("https://")
                status = await asyncio.to_thread(client.status)
                assert status["jobs"] == []
                client.close()
                # Plain HTTP gets no answer it could read; an unverified certificate is refused.
                with pytest.raises(httpx.TransportError):
                    await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/status", timeout=5)
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await asyncio.to_thread(httpx.get, f"https://127.0.0.1:{port}/status", timeout=5)
            finally:
                await server.close()

    import asyncio

    asyncio.run(scenario())


def test_tls_needs_both_files(trader_home: Path, tmp_path: Path) -> None:
    from pycron.__main__ import tls_context

    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        tls_context(make_settings(trader_home, security={"tls": {"cert_file": tmp_path / "x.crt"}}))
    with pytest.raises(ConfigError, match="cannot load"):
        tls_context(make_settings(trader_home, security={"tls": {"cert_file": tmp_path / "x.crt",
                                                                  "key_file": tmp_path / "x.key"}}))
