"""bench/store.py ends with one line per target of the issue, its own and those of the recorder and download benches."""

from __future__ import annotations

import importlib
import inspect

from bench import store as bench_store


def test_the_extra_benches_are_called_with_arguments_they_take() -> None:
    for name, (_, quick) in bench_store.EXTRAS.items():
        inspect.signature(importlib.import_module(name).measure).bind(**quick)  # TypeError if --quick would fail


def test_every_target_line_reads_name_value_target() -> None:
    lines = [("store_write_vs_raw", 0.934, "target >= 0.8"), ("store_read_vs_raw", 1.0, "target >= 0.9"),
             ("recorder_vs_raw", 0.95, ">= 0.8"), ("recorder_lost", 0.0, "<= 0"),
             ("ib_download_vs_direct", 0.912, ">= 0.8")]
    assert bench_store.target_lines(lines) == [
        "store_write_vs_raw: 0.93 (target >= 0.8)", "store_read_vs_raw: 1.00 (target >= 0.9)",
        "recorder_vs_raw: 0.95 (target >= 0.8)", "recorder_lost: 0 (target <= 0)",
        "ib_download_vs_direct: 0.91 (target >= 0.8)"]
    names = [n for n, _ in (line for lines, _ in bench_store.EXTRAS.values() for line in lines)]
    assert names == ["recorder_vs_raw", "recorder_lost", "ib_download_vs_direct"]  # all the targets
    assert bench_store.target_lines([("recorder_lost", None, "<= 0")]) == ["recorder_lost: failed (target <= 0)"]
