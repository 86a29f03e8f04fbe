"""Item 9: a second ``trader backtest`` in a fresh process reuses the compiled code (numba's on-disk cache).

Two fresh processes run the same backtest with one empty ``NUMBA_CACHE_DIR``:
the first compiles and writes the cache, the second must write nothing (no
new or changed cache file, and numba's debug log says no ``saved``) and load
what the first wrote. Both wall and CPU times are printed and recorded as
test properties (CPU time: a loaded machine stretches the wall time) (``pytest -s -m slow tests/backtest/test_numba_cache.py``).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backtest.bars_file import write_bars

REPO = Path(__file__).resolve().parents[2]


def _cache_files(directory: Path) -> dict[str, float]:
    return {str(p.relative_to(directory)): p.stat().st_mtime for p in directory.rglob("*") if p.suffix in (".nbi", ".nbc")}


def _backtest(env: dict[str, str], data: Path) -> tuple[float, float, str]:
    """Run the backtest in a fresh process; return its wall time, its CPU time (user + system) and its output."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trader.cli", "backtest", "ma_crossover", "--data", str(data)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - began
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return elapsed, _children_cpu() - cpu, done.stdout + done.stderr


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(1300)
def test_the_second_fresh_process_compiles_nothing(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    shutil.copy(REPO / "strategies" / "ma_crossover.py", strategies)
    (strategies / "ma_crossover.yaml").write_text("instruments: [AAPL]\nbar_size: 1m\nparams: {fast: 5, slow: 20}\n"
                                                 "sizing: {kind: quantity, value: 100}\n")
    data = write_bars(tmp_path / "aapl.csv", 20_000)
    cache = tmp_path / "numba"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "NUMBA_"))}
    env.update(PYTHONPATH=str(REPO), TRADER_HOME=str(home), TRADER_CONFIG=str(REPO / "configs" / "trader.yaml"),
               TRADER_STRATEGIES__DIRECTORY=str(strategies), NUMBA_CACHE_DIR=str(cache), NUMBA_DEBUG_CACHE="1",
               COLUMNS="80")

    first, first_cpu, first_log = _backtest(env, data)
    written = _cache_files(cache)
    assert written, "the first run cached nothing: is numba's cache=True in use?"
    assert "data saved to" in first_log
    second, second_cpu, second_log = _backtest(env, data)
    assert _cache_files(cache) == written  # nothing new, nothing rewritten
    assert "saved to" not in second_log, [line for line in second_log.splitlines() if "saved to" in line][:5]
    assert "data loaded from" in second_log
    for name, value in (("first_wall_s", first), ("first_cpu_s", first_cpu), ("second_wall_s", second),
                        ("second_cpu_s", second_cpu)):
        record_property(name, round(value, 2))
    print(f"\ntrader backtest (20k bars), fresh processes: first {first:.2f} s wall, {first_cpu:.2f} s CPU "
          f"(writing {len(written)} cache files); second {second:.2f} s wall, {second_cpu:.2f} s CPU")
    assert second_cpu < first_cpu
