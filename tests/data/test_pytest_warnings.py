"""The pytest configuration silences exactly arcticdb's pandas deprecation warning on reads, nothing broader."""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

from _pytest.config import parse_warning_filter

from tests.data.bars import T0, bars
from trader.data import open_store

ROOT = Path(__file__).resolve().parents[2]


def ignored(message: str, category: type[Warning]) -> bool:
    """Return whether pyproject's pytest filterwarnings ignore a warning of ``message`` and ``category``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    for text in config.get("filterwarnings", []):
        action, pattern, kind, module, _ = parse_warning_filter(text, escape=False)
        if action == "ignore" and issubclass(category, kind) and re.match(pattern, message, re.IGNORECASE) and not module:
            return True
    return False


def test_the_arcticdb_read_warning_is_filtered_and_only_it(tmp_path: Path) -> None:
    store = open_store(uri=f"lmdb://{tmp_path / 'arctic'}")
    frame = bars(T0, 10)
    store.write_bars("AAPL.STK", "1m", frame, start=frame.index[0], end=frame.index[-1] + (frame.index[1] - T0))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        store.read_bars("AAPL.STK", "1m")
    emitted = [w for w in seen if issubclass(w.category, DeprecationWarning)]
    # if arcticdb stops emitting it (fixed upstream), drop the filter from pyproject.toml and this test
    assert emitted, "arcticdb no longer warns on read: remove the filter"
    assert all(ignored(str(w.message), w.category) for w in emitted)
    assert not ignored("Passing a BlockManager to DataFrame is deprecated", DeprecationWarning)
    assert not ignored("something else is deprecated", DeprecationWarning)
    assert not ignored("Passing a BlockManagerUnconsolidated to DataFrame is deprecated", UserWarning)
