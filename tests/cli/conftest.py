"""The CLI tests' market store: a real ArcticDB store on LMDB in the test's temp dir, named by the settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore

DAY = pd.Timedelta(days=1)
ES_BASES = (6000.0, 6050.0)  # the two ES contracts' first open


@pytest.fixture
def es_keys() -> tuple[str, str]:
    """Return the keys of the two ES contracts the ``store`` holds (a test module may override this fixture)."""
    return "ES.FUT.202612", "ES.FUT.202703"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, es_keys: tuple[str, str]) -> ArcticStore:
    """Return a store the settings name (``TRADER_STORAGE__ARCTIC_URI``), the terminal 80 columns wide.

    It holds AAPL.STK's 120 one-minute bars from T0, and 10 daily bars from
    T0's date of each of ``es_keys``, opening at 6000 and 6050.
    """
    uri = f"lmdb://{tmp_path / 'arctic'}"
    monkeypatch.setenv("TRADER_STORAGE__ARCTIC_URI", uri)
    monkeypatch.setenv("COLUMNS", "80")
    store = ArcticStore(uri)
    store.write_bars("AAPL.STK", "1m", bars(T0, 120), start=T0, end=T0 + 120 * MIN)
    day = T0.normalize()
    for key, base in zip(es_keys, ES_BASES, strict=True):
        store.write_bars(key, "1d", bars(day, 10, step=DAY, base=base), start=day, end=day + 10 * DAY)
    return store
