"""A strategy's ledger: positions, average cost, realized and unrealized PnL, commissions, exactly once.

The figures are docs/ARCHITECTURE.md's "Money figures": the average cost is per unit (no multiplier) with the
opening commissions, realized PnL is net of commissions, and net = realized + unrealized exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from trader.cli import formats
from trader.domain import Action, Contract, Fill, Position, SecType
from trader.domain.figures import Figures, Lot, price_decimals
from trader.strategy.ledger import Ledger, quote_mark

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
    assert ledger.holdings["AAPL.STK"].avg_cost == D("10.51")  # (1000 + 1 + 1100 + 1) / 200
    ledger.apply("AAPL.STK", fill("e3", Action.SELL, "150", "12.25"))
    ledger.mark("AAPL.STK", D("13"))
    s = ledger.summary()
    assert s["positions"] == {"AAPL.STK": D(50)}
    assert s["realized_pnl"] == D("260")  # 150 * (12.25 - 10.51) - 1
    assert s["unrealized_pnl"] == D("124.5")  # 50 * (13 - 10.51)
    assert s["commission"] == D(3) and s["fills"] == 3
    assert s["net_pnl"] == s["realized_pnl"] + s["unrealized_pnl"] == D("384.5")  # = 150*12.25 + 50*13 - 2100 - 3


def test_net_is_realized_plus_unrealized_and_the_cash_the_fills_moved_exactly() -> None:
    """Thirds and sevenths of a cost: the identity holds to the last digit, every commission counted once."""
    ledger = Ledger()
    trades = [("BUY", "3", "231.29", "1.01"), ("BUY", "4", "231.31", "0.99"), ("SELL", "1", "231.40", "1"),
              ("SELL", "5", "231.35", "1.03"), ("SELL", "4", "231.20", "0.97"),  # through flat to short 3
              ("BUY", "7", "230.99", "1.11"), ("SELL", "2", "231.07", "0.33")]
    cash = D(0)
    for i, (side, qty, px, comm) in enumerate(trades):
        action = Action(side)
        ledger.apply("AAPL.STK", fill(f"e{i}", action, qty, px, commission=comm))
        cash -= action.sign * D(qty) * D(px) + D(comm)
    ledger.mark("AAPL.STK", D("231.11"))
    s = ledger.summary()
    held = s["positions"]["AAPL.STK"]
    assert held == D(2)
    assert s["commission"] == sum(D(t[3]) for t in trades)
    assert s["net_pnl"] == s["realized_pnl"] + s["unrealized_pnl"]
    assert s["net_pnl"] == cash + held * D("231.11")  # what the strategy made: exact, not approximately
    h = s["holdings"]["AAPL.STK"]
    assert h["net_pnl"] == s["net_pnl"] and h["market_value"] == D("462.22") and h["price_decimals"] == 2


def test_reversal_opens_the_rest_at_the_fill_price_with_its_share_of_the_commission() -> None:
    ledger = Ledger()
    ledger.apply("AAPL.STK", fill("e1", Action.BUY, "100", "10", commission="0"))
    ledger.apply("AAPL.STK", fill("e2", Action.SELL, "300", "9", commission="3"))
    h = ledger.holdings["AAPL.STK"]
    assert h.quantity == D(-200) and h.realized == D(-101)  # 100 * -1, less a third of the commission
    assert h.avg_cost == D("8.99")  # a short's cost: (200 * 9 - 2) / 200
    ledger.apply("AAPL.STK", fill("e3", Action.BUY, "200", "8", commission="0"))
    assert h.quantity == 0 and h.avg_cost == 0 and h.realized == D(97) and h.commission == D(3)


def test_futures_pnl_uses_the_multiplier_and_the_cost_is_per_unit() -> None:
    ledger = Ledger()
    ledger.apply("ES.FUT.202612", fill("e1", Action.SELL, "2", "5000.25", ES, commission="2.25"))
    assert ledger.figures("ES.FUT.202612").avg_cost == D("5000.2275")  # comparable to the price, not x 50
    ledger.apply("ES.FUT.202612", fill("e2", Action.BUY, "2", "4990.00", ES, commission="2.25"))
    assert ledger.summary()["realized_pnl"] == D("1020.50")  # 2 * 10.25 * 50 - 4.50


def test_a_fill_counts_once_by_execution_id_and_a_late_commission_once() -> None:
    ledger = Ledger()
    assert ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10", commission=None))
    assert not ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10", commission="1"))
    assert not ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10", commission="1"))
    assert ledger.summary()["commission"] == D(1) and ledger.summary()["realized_pnl"] == 0  # it opened: a cost
    assert ledger.holdings["AAPL.STK"].avg_cost == D("10.1")
    assert ledger.position("AAPL.STK") == D(10) and ledger.position("MSFT.STK") == 0
    ledger.mark("AAPL.STK", D(11))
    ledger.reset()
    assert ledger.summary()["positions"] == {} and ledger.summary()["fills"] == 0
    ledger.apply("AAPL.STK", fill("e1", Action.BUY, "10", "10"))
    assert ledger.summary()["unrealized_pnl"] == D(9)  # the mark outlived the reset (a resync)


def test_a_position_without_a_mark_has_no_unrealized_rather_than_zero() -> None:
    ledger = Ledger()
    ledger.apply("AAPL.STK", fill("e1", Action.BUY, "100", "231.28"))
    assert ledger.unmarked() == ["AAPL.STK"]
    assert ledger.summary()["unrealized_pnl"] is None and ledger.summary()["net_pnl"] is None


def test_a_broker_position_and_a_strategy_holding_give_the_same_figures() -> None:
    lot = Lot(multiplier=D(50))
    lot.apply(D(2), D("5921.00"), D("4.50"))
    ours = lot.figures(D("5918.625"))
    broker = Figures.of_position(Position("DU1", ES, D(2), lot.avg_cost, market_price=D("5918.625")))
    assert (broker.market_value, broker.unrealized, broker.net) == (ours.market_value, ours.unrealized, ours.net)
    assert ours.unrealized == D("-242.00")  # 2 * 50 * (5918.625 - 5921) - 4.50


def test_prices_and_costs_are_shown_to_the_instruments_precision() -> None:
    es_cost = D("296052.25") / 50  # IB's average cost of one ES includes the multiplier: per unit 5921.045
    assert formats.price(es_cost, price_decimals(ES, D("0.25"))) == "5921.05"
    assert formats.price(D("231.30021978021978"), price_decimals(AAPL, D("0.01"))) == "231.30"
    eur = Contract("EUR", SecType.CASH, exchange="IDEALPRO", currency="USD")
    assert price_decimals(eur) == 5 and formats.price(D("1.0842125"), price_decimals(eur)) == "1.08421"
    assert price_decimals(AAPL) == 2 and formats.price(None, 2) == "-"


FILLS = [("e1", Action.SELL, "10", "50", "1"), ("e2", Action.BUY, "40", "45", "4"), ("e3", Action.BUY, "5", "46", "1"),
         ("e4", Action.SELL, "20", "47", "2"), ("e5", Action.SELL, "30", "48", "3")]


@pytest.mark.parametrize("late", [set(), {"e1"}, {"e2"}, {"e3", "e4"}, {"e5"}, {"e1", "e2", "e3", "e4", "e5"}])
def test_a_late_commission_lands_where_it_would_have_with_its_fill(late: set[str]) -> None:
    """Opening, adding, flipping, closing: a commission reported after its fill ends where the resync puts it."""
    live, resynced = Ledger(), Ledger()
    for exec_id, action, qty, price, commission in FILLS:
        live.apply("AAPL.STK", fill(exec_id, action, qty, price, commission=None if exec_id in late else commission))
        if exec_id in late:  # IB's commissionReport, after the execution
            live.apply("AAPL.STK", fill(exec_id, action, qty, price, commission=commission))
        resynced.apply("AAPL.STK", fill(exec_id, action, qty, price, commission=commission))
        mine, theirs = live.holdings["AAPL.STK"], resynced.holdings["AAPL.STK"]
        assert (mine.quantity, mine.avg_cost, mine.realized, mine.commission) == (
            theirs.quantity, theirs.avg_cost, theirs.realized, theirs.commission), exec_id


def test_a_late_commission_on_a_short_nets_off_its_proceeds() -> None:
    ledger = Ledger()
    ledger.apply("AAPL.STK", fill("e1", Action.SELL, "100", "10", commission=None))
    ledger.apply("AAPL.STK", fill("e1", Action.SELL, "100", "10", commission="1"))
    assert ledger.holdings["AAPL.STK"].avg_cost == D("9.99") and ledger.holdings["AAPL.STK"].realized == 0


def test_a_quote_marks_at_its_last_trade_else_its_mid() -> None:
    assert quote_mark({"bid": 0.1, "ask": 0.2}) == D("0.15")  # in Decimal: not 0.15000000000000002
    assert quote_mark({"bid": "0.1", "ask": D("0.2")}) == D("0.15") and quote_mark({"last": float("nan")}) is None
    assert quote_mark({"last": 231.37, "bid": 231.3, "ask": 231.4}) == D("231.37")
    assert quote_mark({"last": None, "bid": 1.05425, "ask": 1.0543}) == D("1.054275")
    assert quote_mark({"last": -1.0, "bid": -1.0, "ask": 5.0}) is None and quote_mark({}) is None
