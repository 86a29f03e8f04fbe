"""A strategy's ledger: positions, average cost, realized and unrealized PnL, commissions, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from trader.domain import Action, Contract, Fill, SecType
from trader.strategy.ledger import Ledger

D = Decimal
AAPL = Contract("AAPL")
ES = Contract("ES", SecType.FUT, exchange="CME", expiry=datetime(2026, 12, 18).date(), multiplier=D(50))
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def fill(exec_id: str, action: Action, qty: str, price: str, contract: Contract = AAPL,
         commission: str | None = "1") -> Fill:
    return Fill(exec_id, "s.1", contract, action, D(qty), D(price), NOW,
                commission=None if commission is None else D(commission))


def test_round_trip_realizes_the_difference_net_of_commissions() -> None:
    ledger = Ledger()
    ledger.apply("AAPL.STK", fill("e1", Action.BUY, "100", "10.00"))
    ledger.apply("AAPL.STK", fill("e2", Action.BUY, "100", "11.00"))
    assert ledger.holdings["AAPL.STK"].avg_cost == D("10.5")
    ledger.apply("AAPL.STK", fill("e3", Action.SELL, "150", "12.25"))
    ledger.mark("AAPL.STK", D("13"))
    s = ledger.summary()
    assert s["positions"] == {"AAPL.STK": D(50)}
    assert s["realized_pnl"] == D("262.5")  # 150 * (12.25 - 10.5)
    assert s["unrealized_pnl"] == D("125")  # 50 * (13 - 10.5)
    assert s["commission"] == D(3) and s["pnl"] == D("384.5") and s["fills"] == 3


def test_reversal_opens_the_rest_at_the_fill_price() -> None:
    ledger = Ledger()
    ledger.apply("AAPL.STK", fill("e1", Action.BUY, "100", "10"))
    ledger.apply("AAPL.STK", fill("e2", Action.SELL, "300", "9"))
    h = ledger.holdings["AAPL.STK"]
    assert h.quantity == D(-200) and h.avg_cost == D(9) and h.realized == D(-100)
    ledger.apply("AAPL.STK", fill("e3", Action.BUY, "200", "8"))
    assert h.quantity == 0 and h.avg_cost == 0 and h.realized == D(100)


def test_futures_pnl_uses_the_multiplier() -> None:
    ledger = Ledger()
    ledger.apply("ES.FUT.202612", fill("e1", Action.SELL, "2", "5000.25", ES))
    ledger.apply("ES.FUT.202612", fill("e2", Action.BUY, "2", "4990.00", ES))
    assert ledger.summary()["realized_pnl"] == D("1025.00")  # 2 * 10.25 * 50


def test_a_fill_counts_once_by_execution_id() -> None:
    ledger = Ledger()
    assert ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10"))
    assert not ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10"))
    assert ledger.position("AAPL.STK") == D(10) and ledger.position("MSFT.STK") == 0
    ledger.reset()
    assert ledger.summary()["positions"] == {} and ledger.summary()["fills"] == 0
