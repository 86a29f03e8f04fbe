"""trader_service end to end: real redis-server, bus, tws-sim and trader_service processes, driven over RPC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.exceptions
from ib_async import IB, LimitOrder, Stock

from services.trader_service import TraderService
from tests.conftest import StackEnv, TradingStack, call, eventually, started_trading_stack
from trader.config import Settings, TradingHours
from trader.domain import OrderStatus
from trader.errors import NotFound, RiskLimitExceeded, ValidationError
from trader.messaging import codec
from trader.messaging.pubsub import Subscriber
from trader.sim.catalogue import Catalogue, load_sim_config
from trader.trading.kill_switch import KillSwitch
from trader.trading.trading_day import trading_day

pytestmark = pytest.mark.slow


async def open_at_broker(port: int, client_id: int, order_ref: str,
                         place: tuple[int, float] | None = None) -> list[Any]:
    """Return tws-sim's open orders with ``order_ref``, seen by an ib_async client of its own.

    With ``place`` (quantity, limit), that client first places a GTC BUY AAPL LMT with that orderRef.
    """
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    try:
        if place is not None:
            [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            trade = ib.placeOrder(contract, LimitOrder("BUY", place[0], place[1], tif="GTC", orderRef=order_ref))
            while trade.orderStatus.status != "Submitted":
                await asyncio.wait_for(trade.statusEvent, 5)
        trades = await ib.reqAllOpenOrdersAsync()
    finally:
        ib.disconnect()
    return [t for t in trades if t.order.orderRef == order_ref]


def order_of(stack: TradingStack, coid: str) -> Any:
    return next(o for o in call(stack.trader_endpoint, "orders") if o.client_order_id == coid)


def test_each_order_type_and_tif_through_to_the_book(trading_stack: TradingStack) -> None:
    ep = trading_stack.trader_endpoint
    quote = call(ep, "snapshot", "AAPL")
    bid, ask = Decimal(str(quote["bid"])), Decimal(str(quote["ask"]))
    place = lambda **kw: call(ep, "place_order", symbol="AAPL", **kw)["order"]
    market = place(action="BUY", quantity=10, client_order_id="mkt")
    marketable = place(action="BUY", quantity=10, order_type="LMT", limit_price=ask + 1, client_order_id="lmt")
    stop = place(action="BUY", quantity=5, order_type="STP", stop_price=bid - 1, client_order_id="stp")
    stop_limit = place(action="SELL", quantity=5, order_type="STP LMT", stop_price=ask + 1, limit_price=bid - 1,
                       client_order_id="stplmt")
    trail = place(action="SELL", quantity=5, order_type="TRAIL", trail_amount="0.01", client_order_id="trail")
    resting = place(action="BUY", quantity=1, order_type="LMT", limit_price=bid - 5, tif="GTC", client_order_id="gtc")
    ioc = place(action="BUY", quantity=1, order_type="LMT", limit_price=bid - 5, tif="IOC", client_order_id="ioc")
    fok = place(action="BUY", quantity=3000, order_type="LMT", limit_price=ask + 1, tif="FOK",
                client_order_id="fok")
    for order in (market, marketable, stop, stop_limit, trail):
        eventually(lambda o=order: order_of(trading_stack, o.client_order_id).status is OrderStatus.FILLED,
                   what=f"{order.client_order_id} filled")
    assert order_of(trading_stack, "gtc").status is OrderStatus.SUBMITTED and resting.limit_price == bid - 5
    assert order_of(trading_stack, ioc.client_order_id).status is OrderStatus.CANCELLED
    assert order_of(trading_stack, fok.client_order_id).status is OrderStatus.CANCELLED
    fills = call(ep, "trades")
    assert {f.client_order_id for f in fills} == {"mkt", "lmt", "stp", "stplmt", "trail"}
    assert all(f.commission is not None and f.commission > 0 for f in fills)
    filled = sum((f.quantity if f.action == "BUY" else -f.quantity) for f in fills)
    positions = {p.contract.key: p.quantity for p in call(ep, "positions")}
    assert positions["AAPL.STK"] == filled == 10 + 10 + 5 - 5 - 5
    # the same client order id again returns the order, and nothing is sent twice
    again = call(ep, "place_order", symbol="AAPL", action="BUY", quantity=10, client_order_id="mkt")
    assert again["order"].broker_order_id == market.broker_order_id
    assert len([f for f in call(ep, "trades") if f.client_order_id == "mkt"]) == 1
    # modify and cancel the resting order
    modified = call(ep, "modify_order", "gtc", limit_price=bid - 4, quantity=2)["order"]
    assert modified.limit_price == bid - 4 and modified.quantity == 2
    call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, limit_price=bid - 5, client_order_id="gtc-two")
    with pytest.raises(NotFound):  # a program's id names its order exactly: a prefix is not enough
        call(ep, "cancel_order", "gtc-t")
    assert call(ep, "cancel_order", "gtc-t", abbreviated=True)["order"].client_order_id == "gtc-two"  # as typed
    cancelled = call(ep, "cancel_order", "gtc")["order"]
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(NotFound):
        call(ep, "cancel_order", "no-such-order")
    # a bracket: the entry fills, the stop loss and take profit work in one OCA group
    result = call(ep, "place_order", symbol="ES", action="BUY", quantity=1, stop_loss_percent=1,
                  take_profit_percent=1, client_order_id="br")
    sl, tp = result["children"]
    assert (sl.client_order_id, tp.client_order_id) == ("br.sl", "br.tp") and sl.oca_group == tp.oca_group
    eventually(lambda: order_of(trading_stack, "br").status is OrderStatus.FILLED, what="bracket entry filled")
    assert order_of(trading_stack, "br.sl").status is OrderStatus.SUBMITTED
    # a child is exempt from the position limits because it only closes what its parent opened: no more
    with pytest.raises(ValidationError, match="cannot exceed its parent's 1"):
        call(ep, "modify_order", "br.sl", quantity=5)
    with pytest.raises(ValidationError, match="minimum size"):
        call(ep, "modify_order", "br.sl", quantity="0.5")
    assert call(ep, "cancel_all") >= 2
    eventually(lambda: not call(ep, "orders", open_only=True), what="everything cancelled")


def test_bad_input_is_refused_with_a_typed_error_and_nothing_sent(trading_stack: TradingStack) -> None:
    ep = trading_stack.trader_endpoint
    with pytest.raises(ValidationError, match="quantity"):
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=-5)
    with pytest.raises(ValidationError, match="unknown key"):
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=5, colour="red")
    with pytest.raises(NotFound, match="ZZZZ"):
        call(ep, "place_order", symbol="ZZZZ", action="BUY", quantity=5)
    years = [i.wire_expiry[:4] for i in Catalogue.from_config(load_sim_config()) if i.contract.symbol == "CL"]
    year = next(y for y in years if years.count(y) > 1)  # a year two listed CL contracts expire in (they roll)
    with pytest.raises(ValidationError, match="ambiguous"):
        call(ep, "place_order", symbol="CL", action="BUY", quantity=1, sec_type="FUT", expiry=year)
    with pytest.raises(RiskLimitExceeded, match="max_price_deviation"):
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=5, order_type="LMT", limit_price=1)
    assert call(ep, "status")["state"] == "RUNNING"
    assert all(o.broker_order_id is None for o in call(ep, "orders"))  # refused orders never got a broker id


def test_each_risk_limit_refuses_with_the_numbers(stack_env: StackEnv) -> None:
    now = datetime.now(UTC)
    closed_start = (now + timedelta(hours=2)).strftime("%H:%M")
    closed_end = (now + timedelta(hours=3)).strftime("%H:%M")
    env = {
        "TRADER_RISK__MAX_ORDER_QUANTITY": "100",
        "TRADER_RISK__MAX_ORDER_NOTIONAL": "30000",
        "TRADER_RISK__MAX_POSITION": "120",
        "TRADER_RISK__MAX_GROSS_EXPOSURE": "40000",
        "TRADER_RISK__BLOCKED": "[TSLA]",
        "TRADER_RISK__MAX_ORDERS_PER_MINUTE": "4",
    }
    with started_trading_stack(stack_env, **env) as stack:
        ep = stack.trader_endpoint

        def refused(limit: str, **order: Any) -> str:
            with pytest.raises(RiskLimitExceeded) as info:
                call(ep, "place_order", **order)
            assert info.value.details["limit"] == limit
            return str(info.value)

        assert "150" in refused("max_order_quantity", symbol="AAPL", action="BUY", quantity=150)
        assert "30000" in refused("max_order_notional", symbol="MSFT", action="BUY", quantity=99)
        assert "TSLA" in refused("blocked", symbol="TSLA", action="BUY", quantity=1)
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=100)
        assert "120" in refused("max_position", symbol="AAPL", action="BUY", quantity=30)
        call(ep, "place_order", symbol="SPY", action="BUY", quantity=20)  # 12k on top of AAPL's 23k
        eventually(lambda: len(call(ep, "portfolio")) == 2, what="portfolio of two")
        assert "40000" in refused("max_gross_exposure", symbol="IWM", action="BUY", quantity=40)
        call(ep, "place_order", symbol="AAPL", action="SELL", quantity=10)  # reducing is allowed
        call(ep, "place_order", symbol="AAPL", action="SELL", quantity=10)
        assert "4" in refused("max_orders_per_minute", symbol="AAPL", action="SELL", quantity=10)
    with started_trading_stack(stack_env, TRADER_RISK__MAX_DAILY_LOSS="0.01",
                               TRADER_RISK__TRADING_HOURS=f"{{start: '{closed_start}', end: '{closed_end}', "
                                                          "timezone: UTC, weekdays: [0,1,2,3,4,5,6]}") as stack:
        with pytest.raises(RiskLimitExceeded, match="trading_hours"):
            call(stack.trader_endpoint, "place_order", symbol="AAPL", action="BUY", quantity=1)


def test_market_data_opened_to_price_orders_is_let_go_once_idle(stack_env: StackEnv) -> None:
    with started_trading_stack(stack_env, TRADER_TRADING__QUOTE_IDLE_RELEASE="3") as stack:
        ep = stack.trader_endpoint
        call(ep, "subscribe", "AAPL")  # someone wants AAPL's ticks: they stay
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1)
        call(ep, "place_order", symbol="MSFT", action="BUY", quantity=1)
        assert call(ep, "subscriptions") == ["AAPL.STK", "MSFT.STK"]  # MSFT's quotes priced the order
        eventually(lambda: call(ep, "subscriptions") == ["AAPL.STK"], what="MSFT's idle stream let go")
        with pytest.raises(NotFound):
            call(ep, "unsubscribe", "MSFT.STK")
        assert call(ep, "place_order", symbol="MSFT", action="SELL", quantity=1)["order"].status is not None
        assert "MSFT.STK" in call(ep, "subscriptions")  # opened again for the new order
        stopped = call(ep, "unsubscribe", "AAPL.STK")
        assert stopped["key"] == "AAPL.STK" and stopped["forgotten"] is True and "user" not in stopped["streamed_for"]
        eventually(lambda: call(ep, "subscriptions") == [], what="every stream let go")


def test_kill_switch_cancels_refuses_and_survives_a_restart(trading_stack: TradingStack) -> None:
    ep = trading_stack.trader_endpoint
    bid = Decimal(str(call(ep, "snapshot", "AAPL")["bid"]))
    call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, order_type="LMT", limit_price=bid - 3,
         tif="GTC", client_order_id="resting")
    status = call(ep, "kill_switch", True, reason="test")
    assert status["kill_switch"]["engaged"] is True
    eventually(lambda: order_of(trading_stack, "resting").status is OrderStatus.CANCELLED, what="cancelled")
    with pytest.raises(RiskLimitExceeded, match="kill_switch"):
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, client_order_id="refused")
    assert order_of(trading_stack, "refused").status is OrderStatus.REJECTED
    with pytest.raises(RiskLimitExceeded, match="kill_switch"):  # a retry is checked again, not answered from the book
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, client_order_id="refused")
    today = trading_day(TradingHours(), datetime.now(UTC)).isoformat()
    before = call(ep, "status")
    assert before["trading_day"] == today and before["daily_pnl"] is not None
    trading_stack.kill("trader_service")
    # placed while the service is away (by hand in TWS, say): the switch still holds when it is back
    port = trading_stack.env.ib_port
    assert len(asyncio.run(open_at_broker(port, 79, "while-away", (1, float(bid - 3))))) == 1
    trading_stack.start("trader_service")
    after = trading_stack.wait_trader_ready()
    assert after["kill_switch"] is True
    eventually(lambda: not asyncio.run(open_at_broker(port, 79, "while-away")), what="cancelled after the restart")
    saved = redis.Redis(port=trading_stack.env.redis_port, password=trading_stack.env.redis_password).get(
        "trader:snapshot:day")
    assert saved is not None and codec.decode(saved)["day"] == today  # the day's PnL baseline outlives the restart
    eventually(lambda: call(ep, "status")["trading_day"] == today, what="the trading day rolled again")
    call(ep, "kill_switch", False)
    # The refused order never reached the broker: a retry with its id is checked again, and now placed;
    # a retry that fails before reaching the broker (an unknown symbol) leaves it to the next one.
    with pytest.raises(NotFound):
        call(ep, "place_order", symbol="ZZZZ", action="BUY", quantity=1, client_order_id="refused")
    retried = call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, client_order_id="refused")["order"]
    assert retried.status is not OrderStatus.REJECTED and retried.broker_order_id is not None
    again = call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, client_order_id="refused")["order"]
    assert again.broker_order_id == retried.broker_order_id  # placed once: a further retry returns it


def test_cancel_all_leaves_orders_placed_elsewhere_unless_asked_for_everything(trading_stack: TradingStack) -> None:
    ep, port = trading_stack.trader_endpoint, trading_stack.env.ib_port
    limit = float(Decimal(str(call(ep, "snapshot", "AAPL")["bid"])) - 3)

    def by_hand(place: bool) -> list[Any]:  # another client on the account, as if placed in TWS by hand
        return asyncio.run(open_at_broker(port, 78, "by-hand", (1, limit) if place else None))

    assert len(by_hand(place=True)) == 1
    for coid in ("ours-1", "ours-2"):
        call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, order_type="LMT", limit_price=limit,
             tif="GTC", client_order_id=coid)
    assert call(ep, "cancel_all") == 2
    for coid in ("ours-1", "ours-2"):
        eventually(lambda c=coid: order_of(trading_stack, c).status is OrderStatus.CANCELLED, what=f"{coid} cancelled")
    assert len(by_hand(place=False)) == 1, "the order placed elsewhere is still working"
    assert call(ep, "cancel_all", everything=True) == 0  # IB's global cancel: none of ours was open
    eventually(lambda: not by_hand(place=False), what="the global cancel reached it")
    assert call(ep, "status")["state"] == "RUNNING"


def test_reconnect_after_tws_drops_the_connection_resumes_ticks_and_keeps_orders(
        trading_stack: TradingStack) -> None:
    ep = trading_stack.trader_endpoint
    bid = Decimal(str(call(ep, "snapshot", "AAPL")["bid"]))
    call(ep, "place_order", symbol="AAPL", action="BUY", quantity=1, order_type="LMT", limit_price=bid - 3,
         tif="GTC", client_order_id="kept")
    assert call(ep, "subscribe", "AAPL")["topic"] == "tick.ib.AAPL.STK"
    ticks: list[dict[str, Any]] = []

    async def watch(seconds: float) -> int:
        sub = Subscriber(f"tcp://127.0.0.1:{trading_stack.env.sub_port}")
        sub.start()
        handle = sub.observe("tick.ib.AAPL").subscribe(lambda m: ticks.append(m.payload))
        before = len(ticks)
        await asyncio.sleep(seconds)
        handle.dispose()
        sub.close()
        return len(ticks) - before

    assert asyncio.run(watch(1.5)) > 0
    assert call(trading_stack.tws_endpoint, "drop_connections") >= 1
    eventually(lambda: call(ep, "status")["connects"] >= 2 and call(ep, "status")["connected"],
               what="reconnected")
    assert asyncio.run(watch(1.5)) > 0, "ticks resumed after the reconnect"
    assert order_of(trading_stack, "kept").status is OrderStatus.SUBMITTED
    call(ep, "cancel_order", "kept")
    assert call(ep, "status")["differences"] == 0


def test_an_order_sent_but_never_journalled_is_adopted_and_its_retry_sends_nothing_new(
        trading_stack: TradingStack) -> None:
    ep, port = trading_stack.trader_endpoint, trading_stack.env.ib_port
    limit = float(Decimal(str(call(ep, "snapshot", "AAPL")["bid"])) - 3)
    trading_stack.kill("trader_service")
    # What a kill -9 between the broker's send and Redis's append leaves: the order at the broker,
    # under the service's client id and with our orderRef, and nothing of it in the journal.
    [sent] = asyncio.run(open_at_broker(port, 1, "manual#orphan", (2, limit)))
    trading_stack.start("trader_service")
    trading_stack.wait_trader_ready()
    order = order_of(trading_stack, "orphan")
    assert (order.status, order.quantity, order.limit_price, order.tif, order.order_ref) == \
        (OrderStatus.SUBMITTED, 2, Decimal(str(limit)), "GTC", "manual")
    assert order.broker_order_id == sent.order.orderId
    again = call(ep, "place_order", symbol="AAPL", action="BUY", quantity=2, order_type="LMT", limit_price=limit,
                 tif="GTC", client_order_id="orphan")
    assert again["order"].broker_order_id == sent.order.orderId
    assert len(asyncio.run(open_at_broker(port, 77, "manual#orphan"))) == 1, "the retry sent nothing"
    call(ep, "cancel_order", "orphan")
    eventually(lambda: order_of(trading_stack, "orphan").status is OrderStatus.CANCELLED, what="cancelled")


# --- without the stack: the kill switch ---------------------------------


class FailingRecorder:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def write(self, entry: dict[str, Any], *_: Any) -> str:
        self.calls.append(f"journal {entry['engaged']}")
        raise redis.exceptions.ConnectionError("Redis is down")


def test_the_kill_switch_sends_the_global_cancel_even_with_the_journal_down() -> None:
    calls: list[str] = []
    service = TraderService(Settings())
    service.recorder = FailingRecorder(calls)  # type: ignore[assignment]
    service.adapter = SimpleNamespace(connected=True)  # type: ignore[assignment]
    service.desk = SimpleNamespace(  # type: ignore[assignment]
        cancel_all=lambda everything=False: calls.append(f"cancel everything={everything}") or 0,
        adapter=service.adapter, book=service.book, recorder=service.recorder, risk=service.risk)
    service.switch = KillSwitch(service.desk)  # type: ignore[arg-type]
    reply = asyncio.run(service.kill_switch(True, reason="panic"))
    assert calls == ["cancel everything=True", "journal True"]
    assert reply["kill_switch"]["engaged"] is True and service.risk.kill_switch_engaged
    assert reply["cancel_sent"] is True and "Redis is down" in reply["journal_error"]
    reply = asyncio.run(service.kill_switch(False))
    assert not service.risk.kill_switch_engaged and "Redis is down" in reply["journal_error"]
