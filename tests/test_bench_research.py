"""bench/research.py's driver: the target lines' format, the bounds, a failing part reported, not fatal."""

from __future__ import annotations

import pytest

from bench import research


def test_target_lines_have_the_documented_form_and_bounds() -> None:
    figures = {"backtest": {"backtest_vs_vectorbt": 1.05}, "sweep": {"sweep_peak_gb": 3.5, "sweep_vs_vectorbt": 0.7,
                                                                  "dask_speedup": 1.5},
               "mc": {"mc_vs_numpy": 31.2}}
    lines, met = research.target_lines(figures, list(research.PARTS))
    assert lines == ["backtest_vs_vectorbt: 1.05 (target <= 1.2)", "sweep_peak_gb: 3.50 (target <= 3)",
                     "sweep_vs_vectorbt: 0.70 (target <= 1.0)", "dask_speedup: 1.50 (target >= 1.5)",
                     "mc_vs_numpy: 31.20 (target >= 10)"]
    assert not met  # 3.5 GB > 3
    figures["sweep"]["sweep_peak_gb"] = 2.9
    assert research.target_lines(figures, list(research.PARTS))[1]  # every target met now
    lines, met = research.target_lines({}, ["mc"])
    assert (lines, met) == (["mc_vs_numpy: n/a (target >= 10)"], False)


def test_a_part_that_fails_is_reported_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(research.PARTS, "mc", "bench.no_such_part")
    assert research.main(["--only", "mc"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: ModuleNotFoundError" in out and out.rstrip().endswith("mc_vs_numpy: n/a (target >= 10)")
    with pytest.raises(SystemExit):
        research.main(["--only", "nope"])


@pytest.mark.parametrize("part", sorted(research.PARTS))
def test_every_part_exposes_run_and_takes_quick_or_the_quick_sizes(part: str) -> None:
    """The driver's call of each part is valid for its signature (checked without running a benchmark)."""
    import importlib
    import inspect

    accepted = inspect.signature(importlib.import_module(research.PARTS[part]).run).parameters
    assert "quick" in accepted or set(research.QUICK_SIZES.get(part, {})) <= set(accepted), (part, list(accepted))
    assert "quick" in accepted or part in research.QUICK_SIZES, f"{part}: --quick would run the full size"
