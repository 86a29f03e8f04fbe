"""The ``trader`` command starts without the market store's libraries: ``--help`` and ``status`` import no ArcticDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import StackEnv

REPO = Path(__file__).resolve().parents[2]
# Imported only by the commands that open the store (ArcticDB) or run research (vectorbt).
HEAVY = ("arcticdb", "vectorbt")


def imported_after(*args: str) -> tuple[int, list[str]]:
    """Run ``trader ARGS`` in a fresh interpreter; return its exit code and which of HEAVY it imported."""
    code = ("import json, sys, trader.cli.main as m\n"
            f"rc = m.cli.main({list(args)!r}, standalone_mode=False)\n"
            f"print(json.dumps([rc if isinstance(rc, int) else 0, sorted({{n.split('.')[0] for n in sys.modules}}"
            f" & set({HEAVY!r}))]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    rc, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return rc, heavy


@pytest.mark.parametrize("args", [("--help",), ("history", "--help"), ("data", "--help")])
def test_help_imports_no_arcticdb(args: tuple[str, ...], stack_env: StackEnv) -> None:
    assert imported_after(*args) == (0, [])


def test_status_imports_no_arcticdb(stack_env: StackEnv) -> None:
    """``trader status`` runs (pycron is down here: exit 7) and imports neither ArcticDB nor vectorbt."""
    assert imported_after("status") == (7, [])
    assert imported_after("status", "--json") == (7, [])
