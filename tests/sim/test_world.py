"""The world without sockets: market steps drive the engine, the day boundary expires DAY orders, controls check."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.sim.conftest import ESZ6, ManualClock
from tests.sim.simulator import sim_config
from trader.domain import Action, OrderStatus, OrderType, TimeInForce
from trader.errors import ValidationError
from trader.sim.orders import OrderTicket
from trader.sim.world import SimWorld


def test_day_orders_expire_at_the_utc_day_boundary_gtc_orders_stay() -> None:
    clock = ManualClock(datetime(2026, 11, 20, 23, 59, 58, tzinfo=UTC))
    server = SimWorld(sim_config(), clock=clock)
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
    server = SimWorld(sim_config(), clock=clock)
    es = server.catalogue.get(ESZ6)
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


@pytest.mark.parametrize(("control", "value"), [
    ("set_response_delay", math.inf), ("set_response_delay", math.nan), ("set_response_delay", -0.1),
    ("set_response_delay", 60.5), ("set_response_delay", "1"), ("set_response_delay", True),
    ("set_response_delay", None), ("reject_next_orders", -1), ("reject_next_orders", 1.0),
    ("reject_next_orders", 10**7), ("reject_next_orders", False), ("pause_market", "false"),
    ("pause_market", 0), ("recent_requests", "x"), ("recent_requests", -1), ("recent_requests", 10**6),
])
def test_controls_refuse_what_is_not_finite_bounded_and_of_the_right_type(control: str, value: object) -> None:
    world = SimWorld(sim_config())
    before = (world.response_delay, world.engine.reject_next, world.market.paused)
    with pytest.raises(ValidationError, match="must be"):
        getattr(world, control)(value)
    assert (world.response_delay, world.engine.reject_next, world.market.paused) == before


def test_controls_take_what_is_in_range() -> None:
    world = SimWorld(sim_config())
    assert world.set_response_delay(0.25) == 0.25 and world.set_response_delay(60) == 60.0
    assert world.reject_next_orders(3) == 3 and world.engine.reject_next == 3
    assert world.pause_market(True) is True and world.market.paused
    assert world.recent_requests(0) == [] and world.recent_requests(10_000) == []
