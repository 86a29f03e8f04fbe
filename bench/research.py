"""The research benchmark: the engine, sweep and Monte Carlo parts in one run, ending with the target lines.

Run from the repository root::

    .venv/bin/python -m bench.research           # the issue's sizes (1M one-minute bars, 100 combos...)
    .venv/bin/python -m bench.research --quick   # a smoke run: small sizes, the same code paths
    .venv/bin/python -m bench.research --only backtest,mc   # parts: backtest, sweep, mc, metrics

Each part is a module of its own, written by the owner of what it measures,
exposing ``run(...) -> dict[str, float]`` (given ``quick=`` when it takes
it): ``bench/research_backtest.py`` (``trader.research.backtest`` vs the same
job in plain vectorbt), ``bench/research_sweep.py`` (the chunked Dask sweep's
peak memory and time vs vectorbt over the whole grid, 2 workers vs 1) and
``bench/research_mc.py`` (numba vs numpy bootstrap), and for the record
``bench/research_metrics.py`` (the metrics' timings, no target). The parts are imported
when they run, so this driver imports without them. A part that fails is
reported and the others still run. The output is a table of every figure
the parts returned, then one line per target::

    backtest_vs_vectorbt: 1.05 (target <= 1.2)
    sweep_peak_gb: 1.80 (target <= 3)
    sweep_vs_vectorbt: 0.74 (target <= 1.0)
    dask_speedup: 1.71 (target >= 1.5)
    mc_vs_numpy: 31.20 (target >= 10)

The exit status is 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

# Set before a part imports numba (the research module's rule): compiled code cached across runs.
import trader.research  # noqa: F401  - sets NUMBA_CACHE_DIR


@dataclass(frozen=True)
class Target:
    """One acceptance figure: its name, the part that measures it, the comparison and the bound."""

    name: str
    part: str
    op: str  # "<=" or ">="
    bound: float
    text: str  # the bound as the issue writes it

    def met(self, value: float | None) -> bool:
        """Return whether ``value`` meets the target (None: not measured, not met)."""
        if value is None or math.isnan(value):
            return False
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def line(self, value: float | None) -> str:
        """Return the target line: ``name: value (target op bound)``."""
        shown = "n/a" if value is None or math.isnan(value) else f"{value:.2f}"
        return f"{self.name}: {shown} (target {self.op} {self.text})"


PARTS = {"backtest": "bench.research_backtest", "sweep": "bench.research_sweep", "mc": "bench.research_mc",
         "metrics": "bench.research_metrics"}
# A part whose run() takes no ``quick`` gets these keywords in a quick run instead (metrics: no target, a record).
QUICK_SIZES: dict[str, dict[str, int]] = {
    "backtest": {"bars": 100_000, "rounds": 1},
    "mc": {"rounds": 2, "paths": 2_000},
    "metrics": {"bars": 50_000, "combos": 10, "loop_columns": 10},
}
TARGETS = (
    Target("backtest_vs_vectorbt", "backtest", "<=", 1.2, "1.2"),
    Target("sweep_peak_gb", "sweep", "<=", 3.0, "3"),
    Target("sweep_vs_vectorbt", "sweep", "<=", 1.0, "1.0"),
    Target("dask_speedup", "sweep", ">=", 1.5, "1.5"),
    Target("mc_vs_numpy", "mc", ">=", 10.0, "10"),
)


def run_part(part: str, *, quick: bool) -> dict[str, float]:
    """Import part ``part``'s module and return what its ``run`` measured (``quick`` passed if it takes it)."""
    module = importlib.import_module(PARTS[part])
    runner = module.run
    accepted = inspect.signature(runner).parameters
    if "quick" in accepted:
        kwargs: dict[str, object] = {"quick": quick}
    else:
        kwargs = {k: v for k, v in QUICK_SIZES.get(part, {}).items() if quick and k in accepted}
    figures = runner(**kwargs)
    return {str(k): float(v) for k, v in dict(figures).items()}


def run_all(parts: Sequence[str], *, quick: bool) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Run ``parts`` in turn in this process; return each one's figures and each failure's message."""
    figures: dict[str, dict[str, float]] = {}
    failures: dict[str, str] = {}
    for part in parts:
        began = time.perf_counter()
        print(f"== {part} ({PARTS[part]}){' quick' if quick else ''}", flush=True)
        try:
            figures[part] = run_part(part, quick=quick)
        except Exception as exc:  # noqa: BLE001 - one part's failure must not hide the others' figures
            traceback.print_exc()
            failures[part] = f"{type(exc).__name__}: {exc}"
        print(f"   {time.perf_counter() - began:.1f} s", flush=True)
    return figures, failures


def table(figures: dict[str, dict[str, float]], failures: dict[str, str]) -> list[str]:
    """Return the table of every figure (part, name, value) and every failure, as lines."""
    lines = [f"{'part':<10}{'figure':<32}{'value':>14}", "-" * 56]
    for part, values in figures.items():
        for name, value in values.items():
            lines.append(f"{part:<10}{name:<32}{value:>14.4g}")
    for part, message in failures.items():
        lines.append(f"{part:<10}FAILED: {message}"[:200])
    return lines


def target_lines(figures: dict[str, dict[str, float]], parts: Sequence[str]) -> tuple[list[str], bool]:
    """Return the target lines of the parts run, and whether every one was met."""
    lines, met = [], True
    for target in TARGETS:
        if target.part not in parts:
            continue
        value = figures.get(target.part, {}).get(target.name)
        lines.append(target.line(value))
        met = met and target.met(value)
    return lines, met


def main(argv: Sequence[str] | None = None) -> int:
    """Run the research benchmark; print the table and the target lines; return 0 if every target is met."""
    parser = argparse.ArgumentParser(prog="python -m bench.research", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the same code paths")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    print(f"research benchmark: {os.cpu_count()} cores, NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR')}")
    figures, failures = run_all(parts, quick=args.quick)
    print("\n".join(table(figures, failures)))
    lines, met = target_lines(figures, parts)
    print("\n".join(lines), flush=True)
    return 0 if met and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
