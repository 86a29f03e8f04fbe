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
from trader.trading.risk import RiskGate

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
    desk.pnl_baseline = Decimal(40)
    exposure = desk.exposure()
    assert exposure.positions == {"AAPL.STK": Decimal(100)}
    assert exposure.working == {"AAPL.STK": Decimal(6)}
    assert (exposure.gross_exposure, exposure.daily_pnl) == (Decimal(15100), Decimal(60))
    order = book.order("b1")
    order.transition(OrderStatus.CANCELLED)
    book.put_order(order)
    assert desk.exposure().working == {"AAPL.STK": Decimal(-4)}
    assert exposure.working == {"AAPL.STK": Decimal(6)}  # an Exposure is a snapshot, not a live view

