"""The history commands read a SYMBOL as `history get` does; exports round-trip; snapshot names checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli.invoke import data, refused
from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore

DAY = pd.Timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArcticStore:
    uri = f"lmdb://{tmp_path / 'arctic'}"
    monkeypatch.setenv("TRADER_STORAGE__ARCTIC_URI", uri)
    monkeypatch.setenv("COLUMNS", "80")
    store = ArcticStore(uri)
    store.write_bars("AAPL.STK", "1m", bars(T0, 120), start=T0, end=T0 + 120 * MIN)
    day = T0.normalize()
    for key, base in (("ES.FUT.202612", 6000.0), ("ES.FUT.202703", 6050.0)):
        store.write_bars(key, "1d", bars(day, 10, step=DAY, base=base), start=day, end=day + 10 * DAY)
    return store


def test_read_export_and_summary_read_a_symbol_as_get_does(store: ArcticStore, tmp_path: Path) -> None:
    # ESZ6 is read as its contract month (ES alone is ambiguous here); AAPL as its stock.
    assert len(data("history", "read", "ESZ6", "--bar-size", "1d")) == 10
    assert data("history", "read", "ESH7", "--bar-size", "1d")[0]["open"] == 6050
    assert data("history", "export", "ESZ6", "--bar-size", "1d", "--csv", str(tmp_path / "es.csv"))["symbol"] \
        == "ES.FUT.202612"
    assert [r["key"] for r in data("history", "summary", "AAPL")] == ["AAPL.STK"]
    assert [r["key"] for r in data("history", "summary", "ESZ6", "aapl.stk")] == ["AAPL.STK", "ES.FUT.202612"]
    assert "ES is ambiguous" in refused(3, "history", "read", "ES", "--bar-size", "1d")


def test_an_unknown_symbol_is_named_with_how_it_was_read(store: ArcticStore) -> None:
    message = refused(4, "history", "read", "NQZ6", "--bar-size", "1d")
    assert "no bars stored for NQZ6 (read as NQ.FUT.202612; see `trader history summary`)" in message
    assert "read as MSFT.STK" in refused(4, "history", "summary", "MSFT")
    assert "bar-sizes" not in refused(4, "history", "read", "MSFT")
