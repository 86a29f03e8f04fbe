"""Tables at 60, 80 and 120 columns: what a trader needs to read an order, a position or a quote stays whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from trader.cli import formats, instrument_tables, money_tables, order_tables, service_tables
from trader.cli.jobs import jobs_table
from trader.cli.layout import STYLES, Col, FitTable, abbreviate
from trader.domain import Contract, Fill, Order, OrderStatus, Position

AAPL = Contract("AAPL", "STK", primary_exchange="NASDAQ", conid=265598)
ES = Contract("ES", "FUT", exchange="CME", expiry="20261218", multiplier=Decimal(50), local_symbol="ESZ6", conid=7)
NOW = datetime.now(UTC)


def text(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    out = console.export_text()
    assert all(len(line) <= width for line in out.splitlines()), out
    return out


def orders() -> list[Order]:
    return [
        Order("3f9a2c1dbe01", AAPL, "BUY", Decimal(100), "LMT", limit_price=Decimal("229.12"),
              status=OrderStatus.PARTIALLY_FILLED, filled_quantity=Decimal(40), avg_fill_price=Decimal("229.11"),
              order_ref="ma_crossover", created_at=NOW),
        Order("3f9a2c1dbe01.sl", AAPL, "SELL", Decimal(100), "STP", stop_price=Decimal("224.5"),
              parent_id="3f9a2c1dbe01", status=OrderStatus.PRE_SUBMITTED, created_at=NOW - timedelta(days=1)),
    ]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_an_order_is_readable_at_any_width(width: int) -> None:
    out = text(order_tables.orders_table(orders(), title="2 orders"), width)
    for header in ("time", "symbol", "side", "qty", "type", "price", "status"):
        assert header in out, out
    words = out.split()
    for value in ("AAPL.STK", "BUY", "SELL", "100", "LMT", "STP", "229.12", "224.5", "PARTIALLY_FILLED",
                  "PRE_SUBMITTED", "UTC"):
        assert value in words, (value, out)
    assert NOW.strftime("%H:%M:%S") in words
    assert "…" not in out.replace("3f9a…be01", "").replace("3f9a…1.sl", "")  # nothing cut but an id
    if width >= 80:
        assert {"3f9a…be01", "3f9a…1.sl"} <= set(words) or "3f9a2c1dbe01" in words  # the id stays, cut at most
    if width >= 120:
        assert "3f9a2c1dbe01" in words and "ma_crossover" not in words  # the strategy goes first


def test_the_widest_table_keeps_every_column() -> None:
    out = text(order_tables.orders_table(orders()), 200)
    assert all(word in out for word in ("3f9a2c1dbe01.sl", "ma_crossover", "229.11", "DAY", "40"))


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_portfolio_keeps_symbol_quantity_cost_and_price(width: int) -> None:
    positions = [
        Position("DU1234567", AAPL, Decimal(100), Decimal("231.3"), market_price=Decimal("229.12"),
                 market_value=Decimal(22912), unrealized_pnl=Decimal(-218), realized_pnl=Decimal(0)),
        Position("DU1234567", ES, Decimal(-2), Decimal("5921.045"), market_price=Decimal("5918.625"),
                 market_value=Decimal("-591862.5"), unrealized_pnl=Decimal(242), realized_pnl=Decimal(10)),
    ]
    words = text(money_tables.positions_table(positions, market=True), width).split()
    for value in ("AAPL.STK", "ES.FUT.202612", "100", "-2", "231.30", "229.12", "5921.05", "5918.63", "total"):
        assert value in words, (value, words)
    if width >= 80:
        assert "-218.00" in words and "242.00" in words  # unrealized stays longest
    if width >= 120:
        assert "DU1234567" in words and "-568,950.50" in words


@pytest.mark.parametrize("width", [60, 80])
def test_streamed_quotes_keep_bid_and_ask_whole(width: int) -> None:
    ticks = [
        {"instrument": "EUR.USD.CASH", "bid": 1.08345, "ask": 1.0835, "bid_size": 1_000_000.0,
         "ask_size": 2_500_000.0, "last": 1.08347, "last_size": 100_000.0, "volume": 123_456_789.0, "time": NOW},
        {"instrument": "ES.FUT.202612", "bid": 5918.25, "ask": 5918.5, "bid_size": 12.0, "ask_size": 30.0,
         "last": 5918.25, "last_size": 1.0, "volume": 1_234_567.0, "time": NOW},
    ]
    words = text(instrument_tables.quotes_table(ticks, title="ticks"), width).split()
    assert {"EUR.USD.CASH", "ES.FUT.202612", "1.08345", "1.0835", "5918.25", "5918.5"} <= set(words), words


def test_fills_and_contracts_fit_80_columns() -> None:
    fill = Fill(exec_id="0001f4e8.6578a2b1.01.01", client_order_id="3f9a2c1dbe01", contract=AAPL, action="BUY",
                quantity=Decimal(40), price=Decimal("229.11"), time=NOW, commission=Decimal("1.0"))
    words = text(order_tables.fills_table([fill]), 80).split()
    assert {"AAPL.STK", "BUY", "40", "229.11", "fill"} <= set(words), words
    rows = [{"input": c.symbol, "key": c.key, "local_symbol": c.local_symbol, "description": "", "contract": c}
            for c in (AAPL, ES)]
    words = text(instrument_tables.contracts_table(rows), 80).split()
    assert {"AAPL", "AAPL.STK", "ES", "ES.FUT.202612"} <= set(words), words


def test_an_id_is_cut_in_its_middle_before_it_goes() -> None:
    assert abbreviate("3f9a2c1dbe01.sl", 9) == "3f9a…1.sl" and abbreviate("short", 9) == "short"
    table = FitTable([Col("id", 1, min_width=9), Col("x"), Col("note", 6)],
                     [["  3f9a2c1dbe01.sl", "y" * 10, "z" * 12]])
    assert isinstance(table.fitted(60), Table)
    assert "3f9a2c1dbe01.sl" in text(table, 60) and "z" * 12 in text(table, 60)
    assert "z" not in text(table, 40) and "┃" in text(table, 40)  # a lavish column goes before the box
    assert "3f9a2c1dbe01.sl" in text(table, 30) and "┃" not in text(table, 30)  # then the box, for the id
    assert "3f9a…1.sl y" in text(table, 20) and "y" * 10 in text(table, 20)  # then the id is cut (indent first)
    assert "3f9a" not in text(table, 15)


@pytest.mark.parametrize("style", range(len(STYLES)))
def test_the_width_a_table_reckons_is_what_rich_measures(style: int) -> None:
    table = order_tables.orders_table(orders(), title="orders")
    console = Console(width=500)
    for shown in ([0], [1, 2], list(range(12)), [1, 2, 3, 4, 5, 6, 8]):
        for cut in ({}, {0: 9} if 0 in shown else {}):
            built = table._build(shown, cut, style)
            measured = Measurement.get(console, console.options, built).maximum
            assert table.width(shown, cut, style) == measured, (shown, cut, style)


def test_times_carry_their_zone() -> None:
    stamp = datetime(2026, 12, 7, 14, 3, 7, 123000, tzinfo=UTC)
    assert formats.when(stamp) == "2026-12-07 14:03:07 UTC"
    assert formats.when(stamp, millis=True) == "2026-12-07 14:03:07.123 UTC"
    assert formats.clock(stamp, today=stamp.date()) == "14:03:07 UTC"
    assert formats.clock(stamp, today=stamp.date() + timedelta(days=1)) == "12-07 14:03 UTC"
    assert formats.clock(stamp.astimezone(), today=stamp.date()) == "14:03:07 UTC"  # any zone in, UTC out


def test_counts_agree_with_their_noun() -> None:
    assert [formats.count(n, "open order") for n in (0, 1, 2)] == ["0 open orders", "1 open order", "2 open orders"]
    assert formats.count(1, "strategy", "strategies") == "1 strategy"
    assert formats.count(3, "strategy", "strategies") == "3 strategies"
    status = {"state": "RUNNING", "open_orders": 1, "orders": 1, "fills": 1, "differences": 1}
    out = text(service_tables.service_table(status), 120)
    assert "1 open of 1, 1 fill, 1 reconcile difference" in out and "fills" not in out
    assert "0 fills" in text(order_tables.fills_table([]), 80)
    ib = {"connected": True, "ib": "127.0.0.1:4002", "client_id": 1, "accounts": ["DU1234567"], "connects": 1}
    assert "connected, account DU1234567, 1 connection made" in text(service_tables.service_table(ib), 120)
    two = text(service_tables.service_table({**ib, "accounts": ["DU1", "DU2"], "connects": 3}), 120)
    assert "accounts DU1, DU2, 3 connections made" in two and "connects" not in two


@pytest.mark.parametrize("width", [60, 80])
def test_the_jobs_of_status_keep_name_state_and_health(width: int) -> None:
    job = {"name": "strategy_service", "state": "RUNNING", "pid": 123456, "uptime": 7260, "restarts": 12,
           "healthy": True, "heartbeat": {"state": "RUNNING", "age": 0.4}, "last_exit": -9}
    out = text(jobs_table({"pid": 1, "profile": "default", "jobs": [job, {**job, "name": "tws", "healthy": False}]}),
               width)
    assert {"strategy_service", "tws", "RUNNING", "yes", "no"} <= set(out.split()), out
    if width >= 80:
        assert "0.4s" in out and "123456" in out


@pytest.mark.parametrize("width", [60, 80])
def test_a_degraded_strategy_keeps_its_reason_folded_at_narrow_widths(width: int) -> None:
    info = {"name": "ma_crossover", "state": "DEGRADED", "instruments": ["AAPL"], "bar_size": "1 min",
            "positions": {"AAPL.STK": Decimal(-100)}, "realized_pnl": Decimal("12.5"),
            "unrealized_pnl": Decimal("-3.2"), "net_pnl": Decimal("9.3"), "commission": Decimal(2), "orders": 4,
            "reason": "no ticks for AAPL.STK for over 30 s: trader_service restarting"}
    words = text(service_tables.strategies_table([info]), width).split()
    assert {"ma_crossover", "DEGRADED", "9.30"} <= set(words), words
    assert all(word in words for word in info["reason"].split()), words  # folded, not left out
