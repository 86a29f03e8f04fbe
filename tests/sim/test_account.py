"""Account bookkeeping without I/O: average cost, realized PnL, cash, values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from trader.domain import Action, Contract, SecType
from trader.domain.figures import Lot
from trader.sim.account import Account
from trader.sim.catalogue import Catalogue, SimInstrument
from trader.sim.orders import Execution

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
_STOCK = SimInstrument(Contract("XYZ", SecType.STK, conid=1), "XYZ", D("0.01"), D(10), 0.2, 1, 100, 100, D(1))


def execution(inst: SimInstrument, action: str, shares: str, price: str, commission: str = "1.00") -> Execution:
    return Execution("x", T0, 1, 1, 1, inst, Action(action), D(shares), D(price), D(shares), D(price),
                     D(commission), "USD", "DU1", "")


def no_marks(conid: int) -> D | None:
    return None


def test_stock_round_trip(aapl: SimInstrument) -> None:
    account = Account("DU1", "USD", D(100_000))
    assert account.apply(execution(aapl, "BUY", "100", "100.00")) is None
    holding = account.holdings[aapl.conid]
    assert holding.quantity == 100 and holding.avg_cost == D("100.01")  # commission in the cost
    assert account.cash["USD"] == D(100_000) - D(10_000) - D(1)
    realized = account.apply(execution(aapl, "SELL", "40", "101.00"))
    assert realized == (D("101.00") - D("100.01")) * 40 - 1
    assert holding.quantity == 60 and holding.avg_cost == D("100.01")
    realized = account.apply(execution(aapl, "SELL", "60", "99.00"))
    assert realized == (D("99.00") - D("100.01")) * 60 - 1
    assert holding.quantity == 0 and holding.avg_cost == 0
    assert account.realized_pnl == D("38.60") - D("61.60")
    assert account.cash["USD"] == D(100_000) + account.realized_pnl


def test_short_and_flip(aapl: SimInstrument) -> None:
    account = Account("DU1", "USD", D(0))
    account.apply(execution(aapl, "SELL", "10", "50.00", "0"))
    holding = account.holdings[aapl.conid]
    assert holding.quantity == -10 and holding.avg_cost == D(50)
    realized = account.apply(execution(aapl, "BUY", "15", "45.00", "0"))
    assert realized == D(50)  # 10 covered at 5 profit each
    assert holding.quantity == 5 and holding.avg_cost == D(45)


def test_a_flip_splits_its_commission_between_closing_and_opening(aapl: SimInstrument) -> None:
    account = Account("DU1", "USD", D(0))
    account.apply(execution(aapl, "SELL", "10", "50.00", "0"))
    realized = account.apply(execution(aapl, "BUY", "40", "45.00", "4.00"))
    holding = account.holdings[aapl.conid]
    assert realized == D(50) - D(1)  # a quarter of the fill closed: a quarter of its commission
    assert holding.quantity == 30 and holding.avg_cost == D("45.10")  # (30 * 45 + 3) / 30


def test_futures_move_cash_only_by_pnl(es: SimInstrument) -> None:
    account = Account("DU1", "USD", D(50_000))
    account.apply(execution(es, "BUY", "2", "5925.00", "4.50"))
    holding = account.holdings[es.conid]
    assert holding.avg_cost == (D("5925.00") * 50 * 2 + D("4.50")) / 2
    assert account.cash["USD"] == D(50_000) - D("4.50")
    values = {t: v for t, v, c in account.values(lambda c: D("5930.00"), lambda c: None) if c == "USD"}
    unrealized = D("5930.00") * 50 * 2 - holding.avg_cost * 2
    assert D(values["UnrealizedPnL"]) == unrealized.quantize(D("0.01"))
    assert D(values["NetLiquidation"]) == (D(50_000) - D("4.50") + unrealized).quantize(D("0.01"))
    realized = account.apply(execution(es, "SELL", "2", "5930.00", "4.50"))
    assert realized == unrealized - D("4.50")
    assert account.cash["USD"] == D(50_000) + account.realized_pnl


def test_fx_positions_keep_cash_by_currency(catalogue: Catalogue) -> None:
    usdjpy = catalogue.get(15016059)
    assert usdjpy is not None
    account = Account("DU1", "USD", D(100_000))
    account.apply(execution(usdjpy, "BUY", "10000", "150.000", "2.00"))
    assert account.cash["JPY"] == D(-1_500_000)
    rates = {"JPY": D(1) / D(150)}
    values = account.values(lambda c: D("150.000"), lambda c: rates.get(c))
    tags = {(t, c): v for t, v, c in values}
    assert D(tags[("NetLiquidation", "USD")]) == D("99998.00")  # flat apart from the commission
    assert tags[("CashBalance", "JPY")] == "-1500000.00"


def test_values_without_positions_are_the_cash(aapl: SimInstrument) -> None:
    account = Account("DU1", "USD", D(1000000))
    tags = {t: v for t, v, c in account.values(no_marks, lambda c: None)}
    assert tags["NetLiquidation"] == tags["TotalCashValue"] == "1000000.00"
    assert tags["AccountCode"] == "DU1" and tags["GrossPositionValue"] == "0.00"


def test_a_short_nets_its_commission_off_the_proceeds_as_ib_and_the_ledger_do(aapl: SimInstrument) -> None:
    account = Account("DU1", "USD", D(0))
    account.apply(execution(aapl, "SELL", "100", "10.00", "1.00"))
    holding = account.holdings[aapl.conid]
    assert holding.avg_cost == D("9.99")  # the proceeds less the commission, per share
    [row] = account.rows(lambda conid: D("10.00"))
    assert row.unrealized == D("-1.00")  # at the price it was sold at, the short is down its commission


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-300, 300).filter(bool), st.integers(1, 4000), st.integers(0, 500)),
                min_size=1, max_size=25),
       st.sampled_from([1, 50]))
def test_the_sim_account_agrees_with_the_ledger_lot_to_the_digit(fills: list[tuple[int, int, int]],
                                                                 multiplier: int) -> None:
    # random fill sequences: longs, shorts, partial closes and flips; prices in cents, commissions in cents
    inst = replace(_STOCK, contract=replace(_STOCK.contract, multiplier=D(multiplier)))
    account, lot = Account("DU1", "USD", D(0)), Lot(D(multiplier))
    for signed, cents, fee in fills:
        price, commission = D(cents) / 100, D(fee) / 100
        before = lot.realized
        realized = account.apply(execution(inst, "BUY" if signed > 0 else "SELL", str(abs(signed)), str(price),
                                           str(commission)))
        lot.apply(D(signed), price, commission)
        holding = account.holdings[inst.conid]
        assert holding.quantity == lot.quantity
        assert holding.avg_cost == lot.avg_cost * multiplier
        assert holding.realized == lot.realized == account.realized_pnl
        assert realized is None or realized == lot.realized - before
        [row] = account.rows(lambda conid, mark=price: mark)
        assert row.unrealized == lot.figures(price).unrealized
