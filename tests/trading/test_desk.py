"""Desk.exposure without I/O: the book's working totals and IB's positions and portfolio as ib_async reports them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ib_async
import pytest
import redis.asyncio

from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, RiskSettings, TradingSettings
from trader.domain import Action, Contract, Order, OrderStatus
from trader.trading.book import Book
from trader.trading.desk import BrokerTotals, Desk
from trader.trading.instruments import Resolver
from trader.trading.journal import Journal
from trader.trading.recorder import Recorder
from trader.trading.risk import RiskGate, Working

AAPL = ib_async.Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ")
MSFT = ib_async.Stock("MSFT", "SMART", "USD", conId=272093, primaryExchange="NASDAQ")


@pytest.fixture
def adapter() -> IbAdapter:
    """An adapter never connected: IB's reports are fed to its ib_async wrapper, as the decoder would."""
    return IbAdapter(IbSettings(), TradingSettings())


def desk_for(adapter: IbAdapter, book: Book) -> Desk:
    journal = Journal(redis.asyncio.Redis(port=1), "unused")  # exposure() never appends
    return Desk(adapter, Resolver(adapter), book, Recorder(journal, lambda _topic, _payload: None),
                RiskGate(RiskSettings(), lambda: datetime.now(UTC)))


def test_broker_totals_are_read_again_only_after_ib_reports_a_change(adapter: IbAdapter) -> None:
    wrapper = adapter.ib.wrapper
    totals = BrokerTotals(adapter)
    assert totals.positions() == {} and totals.portfolio() == (Decimal(0), Decimal(0))
    wrapper.position("DU1", AAPL, 100.0, 150.0)
    wrapper.position("DU1", MSFT, -5.0, 410.0)
    positions = totals.positions()
    assert positions == {"AAPL.STK": Decimal(100), "MSFT.STK": Decimal(-5)}
    assert totals.positions() is positions  # not recomputed: nothing was reported since
    wrapper.updatePortfolio(AAPL, 100.0, 151.0, 15100.0, 150.0, 100.0, 5.5, "DU1")
    wrapper.updatePortfolio(MSFT, -5.0, 400.0, -2000.0, 410.0, 50.0, 0.0, "DU1")
    assert totals.portfolio() == (Decimal(17100), Decimal(0))  # the PnL is the account's: not reported yet
    account_values(adapter, unrealized="150.00", realized="5.50")
    assert totals.portfolio() == (Decimal(17100), Decimal("155.5"))
    wrapper.position("DU1", AAPL, 0.0, 0.0)  # closed
    assert totals.positions() == {"MSFT.STK": Decimal(-5)}
    wrapper.reset()  # what ib_async does when the connection goes; the adapter then reports the loss
    adapter.connection.on_next(False)
    assert totals.positions() == {} and totals.portfolio() == (Decimal(0), Decimal(0))


def test_exposure_combines_working_orders_broker_positions_and_the_day_pnl(adapter: IbAdapter) -> None:
    book = Book()
    desk = desk_for(adapter, book)
    aapl = Contract("AAPL", "STK", conid=265598)
    book.put_order(Order("b1", aapl, Action.BUY, Decimal(10), status=OrderStatus.SUBMITTED))
    book.put_order(Order("s1", aapl, Action.SELL, Decimal(4), status=OrderStatus.SUBMITTED))
    adapter.ib.wrapper.position("DU1", AAPL, 100.0, 150.0)
    adapter.ib.wrapper.updatePortfolio(AAPL, 100.0, 151.0, 15100.0, 150.0, 100.0, 0.0, "DU1")
    account_values(adapter, unrealized="100.00", realized="0.00")
    desk.pnl_baseline = Decimal(40)
    exposure = desk.exposure()
    assert exposure.positions == {"AAPL.STK": Decimal(100)}
    assert exposure.working == {"AAPL.STK": Working(buy=Decimal(10), sell=Decimal(4))}
    assert (exposure.gross_exposure, exposure.daily_pnl) == (Decimal(15100), Decimal(60))
    order = book.order("b1")
    order.transition(OrderStatus.CANCELLED)
    book.put_order(order)
    assert desk.exposure().working == {"AAPL.STK": Working(sell=Decimal(4))}
    assert exposure.working["AAPL.STK"].buy == Decimal(10)  # an Exposure is a snapshot, not a live view
    assert desk.exposure(excluding="s1").working == {}


def account_values(adapter: IbAdapter, *, unrealized: str, realized: str, base: str = "USD") -> None:
    """IB's account updates: the base currency's figures (the simulator's way; IB adds "BASE" rows too)."""
    wrapper = adapter.ib.wrapper
    wrapper.updateAccountValue("NetLiquidation", "100000.00", base, "DU1")
    wrapper.updateAccountValue("UnrealizedPnL", unrealized, base, "DU1")
    wrapper.updateAccountValue("RealizedPnL", realized, base, "DU1")


def test_the_day_pnl_keeps_a_closed_positions_realized_loss(adapter: IbAdapter) -> None:
    desk = desk_for(adapter, Book())
    adapter.ib.wrapper.updatePortfolio(AAPL, 100.0, 100.0, 10000.0, 150.0, -5000.0, 0.0, "DU1")
    account_values(adapter, unrealized="-5000.00", realized="0.00")
    assert desk.exposure().daily_pnl == Decimal(-5000)
    # Sold: ib_async drops the position from its portfolio, and its realized PnL with it; the account keeps it.
    adapter.ib.wrapper.updatePortfolio(AAPL, 0.0, 100.0, 0.0, 0.0, 0.0, -5000.0, "DU1")
    account_values(adapter, unrealized="0.00", realized="-5000.00")
    assert adapter.ib.portfolio() == []
    assert desk.exposure().daily_pnl == Decimal(-5000)
    assert desk.exposure().gross_exposure == 0
    # IB's "BASE" rows, where it sends them, are the account's total across currencies: they win.
    adapter.ib.wrapper.updateAccountValue("RealizedPnL", "-5100.00", "BASE", "DU1")
    adapter.ib.wrapper.updateAccountValue("UnrealizedPnL", "12.50", "BASE", "DU1")
    assert desk.exposure().daily_pnl == Decimal("-5087.50")



def test_a_fill_of_an_order_of_ours_not_yet_adopted_keeps_its_client_order_id(adapter: IbAdapter) -> None:
    # IB reports the day's executions while the connection is made, before the re-sync adopts the
    # order the service died too early to journal: the orderRef still says whose it is.
    book = Book()
    desk = desk_for(adapter, book)
    order = ib_async.LimitOrder("BUY", 10, 150.0, orderId=7, permId=99, orderRef="manual#c3")
    trade = ib_async.Trade(AAPL, order, ib_async.OrderStatus(orderId=7, status="Filled"))
    execution = ib_async.Execution(execId="e1", time=datetime.now(UTC), acctNumber="DU1", side="BOT", shares=10.0,
                                   price=150.0, permId=99, orderId=7, orderRef="manual#c3")
    report = ib_async.CommissionReport(execId="e1", commission=1.0, currency="USD")
    desk.on_fill(trade, ib_async.Fill(AAPL, execution, report, datetime.now(UTC)))
    assert [f.client_order_id for f in book.fills()] == ["c3"]
    # an execution of an order placed elsewhere (in TWS by hand) has no id of ours
    other = ib_async.Trade(AAPL, ib_async.LimitOrder("BUY", 1, 150.0, orderId=0, permId=100),
                           ib_async.OrderStatus(status="Filled"))
    execution = ib_async.Execution(execId="e2", time=datetime.now(UTC), acctNumber="DU1", side="BOT", shares=1.0,
                                   price=150.0, permId=100)
    desk.on_fill(other, ib_async.Fill(AAPL, execution, ib_async.CommissionReport(execId="e2"), datetime.now(UTC)))
    assert [f.client_order_id for f in book.fills()] == ["c3", None]
