"""The server's world without sockets: market steps drive the engine, the day boundary expires DAY orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.sim.conftest import ManualClock
from tests.sim.simulator import sim_config
from trader.domain import Action, OrderStatus, OrderType, TimeInForce
from trader.sim.orders import OrderTicket
from trader.sim.server import TwsSimServer


def test_day_orders_expire_at_the_utc_day_boundary_gtc_orders_stay() -> None:
    clock = ManualClock(datetime(2026, 11, 20, 23, 59, 58, tzinfo=UTC))
    server = TwsSimServer(sim_config(), port=0, clock=clock)
    aapl = server.catalogue.get(265598)
    assert aapl is not None
    for order_id, tif in ((1, TimeInForce.DAY), (2, TimeInForce.GTC)):
        server.dispatch(server.engine.place(OrderTicket(
            client_id=1, order_id=order_id, instrument=aapl, action=Action.BUY, quantity=Decimal(1),
            order_type=OrderType.LMT, limit_price=Decimal("1.00"), tif=tif)))
    server.market_step(clock())
    assert len(server.engine.open_orders()) == 2
    clock.advance(5)
    server.market_step(clock())
    assert [o.order_id for o in server.engine.open_orders()] == [2]
    assert server.engine.get(1, 1).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


def test_market_steps_fill_resting_orders_and_book_them() -> None:
    clock = ManualClock()
    server = TwsSimServer(sim_config(), port=0, clock=clock)
    es = server.catalogue.get(637533641)
    assert es is not None
    ask = server.market.state(es.conid).ask
    server.dispatch(server.engine.place(OrderTicket(
        client_id=1, order_id=1, instrument=es, action=Action.BUY, quantity=Decimal(1),
        order_type=OrderType.LMT, limit_price=ask - 2, tif=TimeInForce.GTC)))
    for _ in range(20_000):
        clock.advance(0.05)
        server.market_step(clock())
        if server.engine.executions:
            break
    [execution] = server.engine.executions
    assert execution.price <= ask - 2
    assert server.account.holdings[es.conid].quantity == 1
    assert server.market.steps > 0 and timedelta(0) <= clock.now - execution.time
