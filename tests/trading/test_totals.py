"""BrokerTotals without I/O: the broker's positions, gross exposure and account PnL, re-read only after a report."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.trading.broker_double import BrokerDouble
from trader.domain import AccountValue, Action, Contract, Fill, Position
from trader.trading.totals import UNREPORTED_FOR, BrokerTotals, positions_by_key

AAPL = Contract("AAPL", primary_exchange="NASDAQ", conid=265598)
MSFT = Contract("MSFT", primary_exchange="NASDAQ", conid=272093)


def position(contract: Contract, quantity: int, market_value: int | None = None, account: str = "DU1") -> Position:
    return Position(account, contract, Decimal(quantity), Decimal(150),
                    market_value=None if market_value is None else Decimal(market_value))


def report_pnl(broker: BrokerDouble, *, unrealized: str, realized: str, currency: str = "USD") -> None:
    """The account's updates: the base currency's figures (the simulator's way; IB adds "BASE" rows too)."""
    for tag, value in (("NetLiquidation", "100000.00"), ("UnrealizedPnL", unrealized), ("RealizedPnL", realized)):
        broker.account_updates.on_next(AccountValue("DU1", tag, value, currency))


def test_positions_are_summed_by_contract_key_over_the_accounts() -> None:
    held = [position(AAPL, 100), position(AAPL, -30, account="DU2"), position(MSFT, -5)]
    assert positions_by_key(held) == {"AAPL.STK": Decimal(70), "MSFT.STK": Decimal(-5)}


def test_broker_totals_are_read_again_only_after_the_broker_reports_a_change() -> None:
    broker = BrokerDouble()
    totals = BrokerTotals(broker)
    assert totals.positions() == {} and totals.portfolio() == (Decimal(0), Decimal(0))
    broker.held_positions = [position(AAPL, 100), position(MSFT, -5)]
    assert totals.positions() == {}, "nothing reported yet: the totals stand"
    broker.position_updates.on_next(broker.held_positions[0])
    positions = totals.positions()
    assert positions == {"AAPL.STK": Decimal(100), "MSFT.STK": Decimal(-5)}
    assert totals.positions() is positions  # not recomputed: nothing was reported since
    broker.held_portfolio = [position(AAPL, 100, 15100), position(MSFT, -5, -2000)]
    broker.portfolio_updates.on_next(broker.held_portfolio[1])
    assert totals.portfolio() == (Decimal(17100), Decimal(0))  # the PnL is the account's: not reported yet
    report_pnl(broker, unrealized="150.00", realized="5.50")
    assert totals.portfolio() == (Decimal(17100), Decimal("155.5"))
    broker.held_positions = [position(MSFT, -5)]  # AAPL closed
    broker.position_updates.on_next(position(AAPL, 0))
    assert totals.positions() == {"MSFT.STK": Decimal(-5)}
    broker.held_positions, broker.held_portfolio = [], []  # the connection went, and the broker's view with it
    broker.connection.on_next(False)
    assert totals.positions() == {} and totals.portfolio() == (Decimal(0), Decimal(0))


def test_the_pnl_is_the_accounts_in_its_base_currency_and_base_rows_win() -> None:
    broker = BrokerDouble()
    totals = BrokerTotals(broker)
    report_pnl(broker, unrealized="-5000.00", realized="0.00")
    broker.account_updates.on_next(AccountValue("DU1", "RealizedPnL", "70.00", "EUR"))  # not the base currency
    broker.account_updates.on_next(AccountValue("DU1", "RealizedPnL", "n/a", "USD"))  # not a number: ignored
    assert totals.portfolio()[1] == Decimal(-5000)
    # IB's "BASE" rows, where it sends them, are the account's total across currencies: they win.
    broker.account_updates.on_next(AccountValue("DU1", "RealizedPnL", "-5100.00", "BASE"))
    broker.account_updates.on_next(AccountValue("DU1", "UnrealizedPnL", "12.50", "BASE"))
    assert totals.portfolio()[1] == Decimal("-5087.50")


def test_the_gross_exposure_counts_the_holdings_the_domain_cannot_model() -> None:
    broker = BrokerDouble()
    totals = BrokerTotals(broker)
    broker.held_portfolio = [position(AAPL, 100, 15000), position(MSFT, -10, -3000)]
    broker.held_unmodelled = [Decimal(-4000)]  # a short FOP: left out of portfolio(), not out of the exposure
    broker.portfolio_updates.on_next(broker.held_portfolio[0])
    assert totals.portfolio()[0] == Decimal(22000)


def test_a_fill_counts_on_top_of_the_positions_until_the_broker_reports_its_position() -> None:
    # An order ends Filled before the broker's position message: in between, the gate must still see the fill.
    broker = BrokerDouble()
    now = [100.0]
    totals = BrokerTotals(broker, clock=lambda: now[0])
    aapl = AAPL
    broker.held_positions = [Position("DU1", aapl, Decimal(20), Decimal(150))]
    assert totals.positions() == {"AAPL.STK": Decimal(20)}
    totals.fill_booked(Fill("e1", "o1", aapl, Action.BUY, Decimal(100), Decimal(150), datetime.now(UTC)))
    totals.fill_booked(Fill("e2", "o2", aapl, Action.SELL, Decimal(30), Decimal(150), datetime.now(UTC)))
    assert totals.positions() == {"AAPL.STK": Decimal(90)}  # 20 reported + 100 - 30 not reported yet
    broker.held_positions = [Position("DU1", aapl, Decimal(90), Decimal(150))]
    broker.position_updates.on_next(broker.held_positions[0])  # the broker's position now holds both fills
    assert totals.positions() == {"AAPL.STK": Decimal(90)}
    totals.fill_booked(Fill("e3", "o3", aapl, Action.BUY, Decimal(5), Decimal(150), datetime.now(UTC)))
    assert totals.positions() == {"AAPL.STK": Decimal(95)}
    now[0] += UNREPORTED_FOR + 0.1  # a fill whose position never came stops counting
    assert totals.positions() == {"AAPL.STK": Decimal(90)}
