"""`trader data ...` and `trader history read|export|bar-sizes` on a real store in a temp dir (no service)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.data.bars import MIN, T0, bars
from trader.data.arctic import ArcticStore
from trader.data.store import SymbolMeta


def test_history_read_shows_the_last_rows_and_json_gives_them_all(store: ArcticStore) -> None:
    rows = data("history", "read", "AAPL.STK", "--start", "2026-03-02T15:00", "--end", "2026-03-02T15:10")
    assert [r["time"] for r in rows][:2] == ["2026-03-02T15:00:00+00:00", "2026-03-02T15:01:00+00:00"]
    assert len(rows) == 10 and set(rows[0]) == {"time", "open", "high", "low", "close", "volume", "wap", "bar_count"}
    assert rows[0]["bar_count"] == 3
    out = ok("history", "read", "AAPL", "--tail", "3").stdout  # a bare symbol names its one key
    assert "AAPL.STK 1m bars: last 3 of 120" in out and "16:29" in out and "16:26" not in out
    assert all(len(line) <= 80 for line in out.splitlines())
    five = data("history", "read", "AAPL.STK", "--bar-size", "5 mins")  # resampled on read
    assert len(five) == 24 and five[0]["volume"] == 50


def test_history_read_refusals(store: ArcticStore) -> None:
    assert "ES is ambiguous: ES.FUT.202612, ES.FUT.202703" in refused(3, "history", "read", "ES", "--bar-size", "1d")
    assert "no bars stored for MSFT" in refused(4, "history", "read", "MSFT")
    for command in (("read", "AAPL.STK"), ("export", "AAPL.STK", "--csv", "x.csv"), ("get", "AAPL")):
        # one date type in the history group: the same text refused with the same usage error (exit 2)
        assert "'yesterday-ish' is not a date or time" in refused(2, "history", *command, "--start", "yesterday-ish")
    assert "not one of IB's bar sizes" in refused(3, "history", "read", "AAPL.STK", "--bar-size", "7m")


def test_history_read_as_of_a_snapshot(store: ArcticStore) -> None:
    assert data("data", "snapshot", "before")["libraries"] == ["bars.1d", "bars.1m"]
    store.write_bars("AAPL.STK", "1m", bars(T0, 0), start=T0, end=T0 + 120 * MIN)
    assert len(data("history", "read", "AAPL.STK", "--as-of", "before")) == 120
    assert "no snapshot named nope" in refused(4, "history", "read", "AAPL.STK", "--as-of", "nope")


def test_history_export_writes_csv_and_parquet(store: ArcticStore, tmp_path: Path) -> None:
    result = data("history", "export", "ES.FUT.202612", "--bar-size", "1d", "--start", "2026-03-04",
                  "--csv", str(tmp_path / "es.csv"))
    assert result["rows"] == 8 and result["first"] == "2026-03-04T00:00:00+00:00" and result["format"] == "csv"
    back = pd.read_csv(tmp_path / "es.csv", index_col="time", parse_dates=True)
    assert len(back) == 8 and str(back.index.tz) == "UTC" and back["open"].iloc[0] == pytest.approx(6000.02)
    ok("history", "export", "AAPL.STK", "--parquet", str(tmp_path / "a.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), store.read_bars("AAPL.STK", "1m"))
    assert trader("history", "export", "AAPL.STK").exit_code == 2  # neither --csv nor --parquet


def test_history_bar_sizes_counts_what_is_stored(store: ArcticStore) -> None:
    sizes = {row["size"]: row for row in data("history", "bar-sizes")}
    assert sizes["1m"] == {"size": "1m", "ib": "1 min", "seconds": 60, "stored": 1}
    assert sizes["1d"]["stored"] == 2 and sizes["5s"]["stored"] == 0


def test_data_snapshots_list_and_delete(store: ArcticStore) -> None:
    ok("data", "snapshot", "one")
    assert "a snapshot named one exists" in refused(9, "data", "snapshot", "one")
    listed = data("data", "snapshots")
    assert [s["name"] for s in listed] == ["one"] and listed[0]["created"]
    assert "one" in ok("data", "snapshots").stdout
    assert data("data", "snapshot-delete", "one") == {"name": "one", "deleted": True}
    assert "no snapshot named one" in refused(4, "data", "snapshot-delete", "one")
    assert "no snapshots" in ok("data", "snapshots").stdout


def test_data_backup_and_restore(store: ArcticStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = data("data", "backup", str(tmp_path / "bk"))
    assert made["rows"] == 140 and len(made["symbols"]) == 3
    assert "backed up" not in ok("data", "backup", str(tmp_path / "bk2"), "--json").stdout
    assert "is not empty" in refused(9, "data", "backup", str(tmp_path / "bk"))
    assert "is not empty" in refused(9, "data", "restore", str(tmp_path / "bk"))
    monkeypatch.setenv("TRADER_STORAGE__ARCTIC_URI", f"lmdb://{tmp_path / 'other'}")
    out = ok("data", "restore", str(tmp_path / "bk")).stdout
    assert "restored 3 symbols, 140 rows, verified" in out
    assert ArcticStore(f"lmdb://{tmp_path / 'other'}").bar_symbols() == store.bar_symbols()
    assert "no backup" in refused(4, "data", "restore", str(tmp_path / "nothing-here"))


def test_history_read_ticks(store: ArcticStore) -> None:
    ticks = pd.DataFrame({"bid": [1.0850, 1.0851], "ask": [1.0852, None]},
                         index=pd.DatetimeIndex([T0, T0 + pd.Timedelta(seconds=1)]))
    store.append_ticks("EUR.CASH.USD", ticks, meta=SymbolMeta(key="EUR.CASH.USD", source="recorder"))
    rows = data("history", "read", "EUR", "--ticks")
    assert [str(r["bid"]) for r in rows] == ["1.085", "1.0851"]
    assert rows[1]["ask"] is None and rows[0]["last"] is None
    out = ok("history", "read", "EUR.CASH.USD", "--ticks").stdout
    assert "EUR.CASH.USD ticks from recorder: last 2 of 2" in out and "1.0851" in out  # who wrote them
    assert "no ticks recorded for AAPL" in refused(4, "history", "read", "AAPL", "--ticks")


def test_history_export_to_a_missing_directory_is_a_storage_error(store: ArcticStore, tmp_path: Path) -> None:
    message = refused(14, "history", "export", "AAPL.STK", "--csv", str(tmp_path / "no" / "such" / "a.csv"))
    assert "cannot write" in message and "a.csv" in message
