"""The money figures' table: ``portfolio`` and ``strategy list`` show the same figures, to each instrument's precision."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from rich.console import Console

from trader.cli import money_tables
from trader.domain import Action, Contract, Fill, Position, SecType
from trader.strategy.ledger import Ledger

D = Decimal
ES = Contract("ES", SecType.FUT, exchange="CME", expiry=date(2026, 12, 18), multiplier=D(50))
AAPL = Contract("AAPL")


def shown(table: object, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(table)
    return console.export_text()


def test_a_futures_cost_is_shown_per_unit_next_to_its_price_in_both_tables() -> None:
    # IB's avgCost for 1 ES bought at 5921 with 2.25 commission: 296052.25, the multiplier in (the adapter divides).
    broker = Position("DU123", ES, D(1), D("296052.25") / 50, market_price=D("5918.75"),
                      market_value=D("295937.5"), unrealized_pnl=D("-114.75"), realized_pnl=D(0))
    ledger = Ledger()
    ledger.apply("ES.FUT.202612", Fill("e1", "demo.1", ES, Action.BUY, D(1), D(5921), datetime.now(UTC),
                                       commission=D("2.25")))
    ledger.mark("ES.FUT.202612", D("5918.75"))
    ledger.ticks["ES.FUT.202612"] = D("0.25")
    info = {"name": "demo", **ledger.summary()}
    portfolio = shown(money_tables.positions_table([broker], market=True), 120)
    strategy = shown(money_tables.strategy_holdings_table([info]), 120)
    for text in (portfolio, strategy):
        row = next(line for line in text.splitlines() if "ES.FUT.202612" in line)
        cells = [c.strip() for c in row.strip("│ ").split("│")]
        assert cells[2:9] == ["1", "5921.05", "5918.75", "295,937.50", "-114.75", "0.00", "-114.75"], cells
    assert "296052" not in portfolio + strategy and "5921.045" not in portfolio + strategy


def test_at_80_columns_whole_cells_and_net_beside_its_parts() -> None:
    positions = [Position("DU123", ES, D(1), D("5921.045"), market_price=D("5918.625"), market_value=D("295931.25"),
                          unrealized_pnl=D("-121.0"), realized_pnl=D(0)),
                 Position("DU123", AAPL, D(91), D("231.30021978021978"), market_price=D("231.5"),
                          market_value=D("21066.5"), unrealized_pnl=D("18.18"), realized_pnl=D("-3.5"))]
    text = shown(money_tables.positions_table(positions, market=True), 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    header = next(line for line in text.splitlines() if "qty" in line)
    assert all(name in header for name in ("qty", "avg cost", "price", "unrealized", "realized", "net pnl"))
    assert "231.30" in text and "231.30021978021978" not in text
    total = next(line for line in text.splitlines() if "total" in line)
    assert total.replace("│", " ").split()[-3:] == ["-102.82", "-3.50", "-106.32"]
