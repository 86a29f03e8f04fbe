"""What a drift looks like to a user: the table at 80 columns, the summary line, the record kept in Redis."""

from __future__ import annotations

import asyncio
import io
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import redis.asyncio as aioredis
from rich.console import Console

from tests.backtest.plugins_loaded import plugin_modules
from tests.cli.invoke import refused
from tests.conftest import RedisServer, StackEnv
from trader.cli import service_tables
from trader.cli.strategy_drift import drift_line, drift_table
from trader.strategy.drift_scores import DriftScores, decode_record, encode_record

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
RECORD = {"strategy": "demo", "start": T0, "end": T0, "score": 12.5, "matched": 3, "missing": 1, "extra": 0,
          "pnl_live": Decimal("-12.30"), "pnl_backtest": Decimal("40.05"), "pnl_diff": Decimal("-52.35"),
          "notional": Decimal("20000.5"), "components": {"trades": 0.25, "pnl": 0.0}, "time": T0}


def text(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def rows() -> list[dict[str, object]]:
    bar = pd.Timestamp(T0)
    return [{"bar": bar, "instrument": "ES.FUT.202612", "kind": "signal", "client_order_id": "demo.0123456789",
             "status": "matched", "side_backtest": "BUY", "side_live": "BUY", "qty_backtest": Decimal(2),
             "qty_live": Decimal(2), "price_backtest": Decimal("5921.25"), "price_live": Decimal("5921.50"),
             "qty_diff": Decimal(0), "price_diff": Decimal("0.25")},
            {"bar": bar, "instrument": "ES.FUT.202612", "kind": "stop_loss", "client_order_id": "demo.0123456789.sl",
             "status": "missing", "side_backtest": "SELL", "side_live": None, "qty_backtest": Decimal(-2),
             "qty_live": None, "price_backtest": Decimal(5900), "price_live": None, "qty_diff": None,
             "price_diff": None}]


def test_the_table_keeps_bar_status_side_and_quantities_at_80_columns() -> None:
    out = text(drift_table(rows()), 80)
    assert max(len(line) for line in out.splitlines()) <= 80
    words = out.split()
    assert {"matched", "missing", "BUY", "SELL", "2"} <= set(words), out
    wide = text(drift_table(rows()), 160)
    assert "5921.50" in wide and "0.25" in wide and "stop_loss" in wide


def test_the_summary_line_names_score_counts_and_pnls() -> None:
    line = text(drift_line(RECORD), 200)
    assert "demo: drift 12.5 / 100" in line
    assert "3 matched, 1 missing, 0 extra" in line and "-12.30" in line and "-52.35" in line


def test_strategy_list_shows_the_last_score_where_it_fits() -> None:
    info = {"name": "demo", "state": "RUNNING", "instruments": ["AAPL"], "bar_size": "1m", "positions": {},
            "realized_pnl": Decimal(0), "unrealized_pnl": Decimal(0), "net_pnl": Decimal(0), "commission": Decimal(0),
            "orders": 4, "reason": "", "drift": RECORD}
    assert "drift" in text(service_tables.strategies_table([info]), 200).split()
    assert "12.5" in text(service_tables.strategies_table([info]), 200).split()
    assert "-" in text(service_tables.strategies_table([{**info, "drift": None}]), 200).split()
    assert "demo" in text(service_tables.strategies_table([info]), 60)  # narrow: the score goes first


def test_a_record_reads_back_exactly() -> None:
    back = decode_record(encode_record(RECORD))
    assert back == RECORD
    assert isinstance(back["pnl_diff"], Decimal) and back["time"] == T0
    none = {"strategy": "quiet", "score": None, "error": "no fills", "time": T0}
    assert decode_record(encode_record(none)) == none


def test_records_outlive_the_process_in_redis(redis_server: RedisServer) -> None:
    async def go() -> dict[str, dict[str, object]]:
        client = aioredis.Redis(port=redis_server.port)
        try:
            first = DriftScores("strategies:drift")
            await first.load(client)
            await first.save("demo", RECORD)
            await client.hset("strategies:drift", "broken", "{not json")
            return await DriftScores("strategies:drift").load(client)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == {"demo": RECORD}  # the unreadable one is logged and left out


def test_the_command_says_what_it_needs(stack_env: StackEnv) -> None:
    assert "give a strategy NAME or --all" in refused(2, "strategy", "drift")
    assert "give a strategy NAME or --all" in refused(2, "strategy", "drift", "demo", "--all")
    assert "strategy_service is not running" in refused(7, "strategy", "drift", "--all")
    assert "no strategy nosuch" in refused(4, "strategy", "drift", "nosuch")
    assert "strategies directory not found" in refused(4, "strategy", "drift", "nosuch")


def test_the_plugin_is_unloaded_when_the_drift_fails(stack_env: StackEnv, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    loaded_before = plugin_modules()
    folder = tmp_path / "strategies"
    folder.mkdir()
    for suffix in (".py", ".yaml"):
        shutil.copy(REPO / "strategies" / f"ma_crossover{suffix}", folder / f"ma_crossover{suffix}")
    monkeypatch.setenv("TRADER_STRATEGIES__DIRECTORY", str(folder))
    assert "trader_service" in refused(7, "strategy", "drift", "ma_crossover")  # found, then no book to read
    assert not plugin_modules() - loaded_before
