"""``python -m pycron`` as a process: it refuses a bad config or a missing token before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def run_pycron(home: Path, jobs: str, **env: str) -> subprocess.CompletedProcess[str]:
    (home / "jobs.yaml").write_text(jobs)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    full_env.update(
        {
            "TRADER_HOME": str(home),
            "TRADER_CONFIG": str(REPO / "configs" / "trader.yaml"),
            "TRADER_PYCRON__CONFIG": str(home / "jobs.yaml"),
            "TRADER_PYCRON__PORT": "0",
            "PYTHONPATH": str(REPO),  # this checkout's pycron, not the one the venv has installed
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "pycron"],
        env=full_env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        (
            "jobs:\n  redis: {command: redis-server, helth: {tcp: 1}}\n",
            "jobs.redis.helth: unknown key",
        ),
        (
            "jobs:\n  a: {command: a, depends_on: [b]}\n  b: {command: b, depends_on: [a]}\n",
            "dependency cycle",
        ),
    ],
)
def test_bad_config_exits_with_the_config_code_and_the_message(trader_home: Path, jobs: str, expected: str) -> None:
    done = run_pycron(trader_home, jobs, TRADER_PYCRON__TOKEN="x" * 20)
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert expected in done.stderr
    assert not (trader_home / "run" / "pycron.pid").exists()


def test_refuses_to_start_without_a_token(trader_home: Path) -> None:
    done = run_pycron(trader_home, "jobs: {}\n")
    assert done.returncode == ConfigError.exit_code
    assert "no control token" in done.stderr
