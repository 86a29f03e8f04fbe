"""Every benchmark module imports: a rename elsewhere must not break a bench nobody runs in the suite."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHES = sorted(p.stem for p in (Path(__file__).parent.parent / "bench").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", BENCHES)
def test_the_bench_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")
