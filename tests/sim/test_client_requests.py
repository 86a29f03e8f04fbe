"""Request parsers fed by ib_async's own request encoder, captured without a socket, at every version."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from ib_async import (
    Contract,
    ExecutionFilter,
    Forex,
    Future,
    LimitOrder,
    MarketOrder,
    Order,
    PriceCondition,
    Stock,
    StopLimitOrder,
    StopOrder,
    TagValue,
)
from ib_async.client import Client

from tests.sim.ib_decode import Recorder
from trader.domain import Action, OrderType, TimeInForce
from trader.sim import order_wire as ow
from trader.sim.catalogue import SimInstrument
from trader.sim.client_requests import REQUEST_PARSERS, ContractDetailsRequest, MarketDataRequest
from trader.sim.msgids import In
from trader.sim.wire import FieldReader, WireError, decode_fields

VERSIONS = [157, 163, 166, 169, 170, 176, 177, 178]


class _Capture:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def sendMsg(self, data: bytes) -> None:
        self.frames.append(data)


def captured(version: int, call: Any) -> list[str]:
    """Run ``call(client)`` on an ib_async Client that believes it is connected; return the fields sent."""
    client = Client(Recorder())
    capture = _Capture()
    client.conn = capture  # type: ignore[assignment]
    client.connState = Client.CONNECTED
    client._serverVersion = version
    client.MaxRequests = 0
    call(client)
    assert len(capture.frames) == 1
    return decode_fields(capture.frames[0][4:])


def parse(version: int, call: Any) -> Any:
    fields = captured(version, call)
    msg_id = In(int(fields[0]))
    reader = FieldReader(fields, msg_id.name, start=1)
    if msg_id is In.PLACE_ORDER:
        return ow.parse_place_order(reader, version)
    request = REQUEST_PARSERS[msg_id](reader, version)
    reader.expect_end()
    return request


AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("order", "expect"),
    [
        (MarketOrder("BUY", 100), {"order_type": "MKT", "limit_price": None, "aux_price": None}),
        (LimitOrder("SELL", 5, 231.25, tif="GTC", orderRef="s1"),
         {"order_type": "LMT", "limit_price": Decimal("231.25"), "tif": "GTC", "order_ref": "s1"}),
        (StopOrder("SELL", 10, 220.5), {"order_type": "STP", "aux_price": Decimal("220.5")}),
        (StopLimitOrder("BUY", 10, 241.0, 240.5),
         {"order_type": "STP LMT", "limit_price": Decimal("241.0"), "aux_price": Decimal("240.5")}),
        (Order(action="SELL", totalQuantity=10, orderType="TRAIL", auxPrice=1.5, trailStopPrice=229.0),
         {"order_type": "TRAIL", "aux_price": Decimal("1.5"), "trail_stop_price": Decimal("229.0")}),
        (Order(action="SELL", totalQuantity=10, orderType="TRAIL", trailingPercent=2.0),
         {"trailing_percent": Decimal("2.0"), "aux_price": None}),
        (LimitOrder("BUY", 1, 10.0, parentId=41, transmit=False, ocaGroup="g", ocaType=2),
         {"parent_id": 41, "transmit": False, "oca_group": "g", "oca_type": 2}),
        (Order(action="BUY", totalQuantity=1, orderType="PEG MID", midOffsetAtWhole=0.01, midOffsetAtHalf=0.005),
         {"order_type": "PEG MID"}),
        (Order(action="BUY", totalQuantity=1, orderType="PEG BEST", competeAgainstBestOffset=math.inf),
         {"order_type": "PEG BEST"}),
        (Order(action="BUY", totalQuantity=1, orderType="LMT", lmtPrice=1.0, algoStrategy="Adaptive",
               algoParams=[TagValue("adaptivePriority", "Normal")]), {"algo_strategy": "Adaptive"}),
        (Order(action="BUY", totalQuantity=1, orderType="LMT", lmtPrice=1.0, whatIf=True), {"what_if": True}),
    ],
)
def test_place_order_layouts(version: int, order: Order, expect: dict[str, object]) -> None:
    order.orderId = 17
    request = parse(version, lambda c: c.placeOrder(17, AAPL, order))
    assert request.order_id == 17 and request.contract.conid == 265598 and request.contract.symbol == "AAPL"
    assert request.action == order.action and request.quantity == Decimal(str(order.totalQuantity))
    for name, value in expect.items():
        assert getattr(request, name) == value, name


def test_orders_with_conditions_are_read_up_to_their_count() -> None:
    order = LimitOrder("BUY", 1, 10.0)
    order.conditions = [PriceCondition(price=100.0, conId=265598, exch="SMART")]
    request = parse(178, lambda c: c.placeOrder(3, AAPL, order))
    assert request.conditions == 1
    with pytest.raises(ow.OrderRefused):
        ow.to_ticket(request, 1, None)  # type: ignore[arg-type]


def test_a_ticket_uses_domain_enums(aapl: SimInstrument) -> None:
    order = Order(action="SELL", totalQuantity=10, orderType="TRAIL", auxPrice=1.5, tif="IOC")
    ticket = ow.to_ticket(parse(178, lambda c: c.placeOrder(3, AAPL, order)), 9, aapl)
    assert (ticket.action, ticket.order_type, ticket.tif) == (Action.SELL, OrderType.TRAIL, TimeInForce.IOC)
    assert ticket.trail_amount == Decimal("1.5") and ticket.stop_price is None and ticket.client_id == 9


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (Order(action="BUY", totalQuantity=1, orderType="VWAP"), 387),
        (Order(action="BUY", totalQuantity=0, orderType="MKT"), 434),
        (Order(action="HOLD", totalQuantity=1, orderType="MKT"), 321),
        (Order(action="BUY", totalQuantity=1, orderType="MKT", tif="GTD"), 201),
    ],
)
def test_tickets_refuse_what_ib_refuses(order: Order, code: int, aapl: SimInstrument) -> None:
    request = parse(178, lambda c: c.placeOrder(3, AAPL, order))
    with pytest.raises(ow.OrderRefused) as caught:
        ow.to_ticket(request, 1, aapl)
    assert caught.value.code == code


@pytest.mark.parametrize("version", VERSIONS)
def test_market_data_and_contract_requests(version: int) -> None:
    es = Future("ES", "202612", "CME")
    md = parse(version, lambda c: c.reqMktData(5, es, "233", True, False, []))
    assert isinstance(md, MarketDataRequest)
    assert (md.req_id, md.contract.symbol, md.contract.expiry, md.generic_ticks, md.snapshot) == (
        5, "ES", "202612", "233", True)
    cd = parse(version, lambda c: c.reqContractDetails(6, Forex("EURUSD")))
    assert isinstance(cd, ContractDetailsRequest)
    assert (cd.req_id, cd.contract.symbol, cd.contract.currency, cd.contract.sec_type) == (6, "EUR", "USD", "CASH")
    cancel = parse(version, lambda c: c.cancelOrder(12, "20261120 15:00:00"))
    assert cancel.order_id == 12


def test_other_requests() -> None:
    v = 178
    hist = parse(v, lambda c: c.reqHistoricalData(7, AAPL, "", "2 D", "1 hour", "TRADES", True, 1, False, []))
    assert (hist.req_id, hist.duration, hist.bar_size, hist.what_to_show, hist.use_rth) == (
        7, "2 D", "1 hour", "TRADES", True)
    ex = parse(v, lambda c: c.reqExecutions(8, ExecutionFilter(clientId=3, symbol="AAPL", side="BUY")))
    assert (ex.req_id, ex.client_id, ex.symbol, ex.side) == (8, 3, "AAPL", "BUY")
    summary = parse(v, lambda c: c.reqAccountSummary(9, "All", "NetLiquidation,$LEDGER:ALL"))
    assert (summary.req_id, summary.group, summary.tags) == (9, "All", "NetLiquidation,$LEDGER:ALL")
    assert parse(v, lambda c: c.reqMatchingSymbols(10, "AA")).pattern == "AA"
    assert parse(v, lambda c: c.reqIds(1)).count == 1
    assert parse(v, lambda c: c.startApi()).client_id == -1
    assert parse(v, lambda c: c.reqAccountUpdates(True, "DU1")).account == "DU1"
    assert parse(v, lambda c: c.reqAccountUpdatesMulti(11, "DU1", "", False)).req_id == 11
    assert parse(v, lambda c: c.reqMarketDataType(3)).data_type == 3
    assert parse(v, lambda c: c.reqCompletedOrders(True)).flag is True
    rt = parse(v, lambda c: c.reqRealTimeBars(12, AAPL, 5, "MIDPOINT", False, []))
    assert (rt.req_id, rt.contract.conid, rt.bar_size, rt.what_to_show) == (12, 265598, 5, "MIDPOINT")
    assert parse(v, lambda c: c.cancelRealTimeBars(12)).req_id == 12
    assert parse(v, lambda c: c.cancelHistoricalData(13)).req_id == 13
    for call in (Client.reqPositions, Client.reqOpenOrders, Client.reqAllOpenOrders, Client.reqCurrentTime,
                 Client.reqGlobalCancel, Client.reqManagedAccts):
        parse(v, call)


def test_a_combo_contract_is_read_past_its_legs() -> None:
    bag = Contract(symbol="AAPL", secType="BAG", exchange="SMART", currency="USD")
    from ib_async import ComboLeg

    bag.comboLegs = [ComboLeg(conId=1, ratio=1, action="BUY", exchange="SMART"),
                     ComboLeg(conId=2, ratio=1, action="SELL", exchange="SMART")]
    md = parse(178, lambda c: c.reqMktData(5, bag, "", False, False, []))
    assert md.contract.sec_type == "BAG"
    request = parse(178, lambda c: c.placeOrder(4, bag, LimitOrder("BUY", 1, 1.0)))
    assert request.contract.sec_type == "BAG" and request.limit_price == Decimal("1.0")


def test_a_request_too_short_or_too_long_is_refused() -> None:
    with pytest.raises(WireError, match="missing field"):
        REQUEST_PARSERS[In.REQ_CONTRACT_DATA](FieldReader(["9", "8", "1", "0"], "REQ_CONTRACT_DATA", 1), 178)
    fields = captured(178, lambda c: c.placeOrder(3, AAPL, MarketOrder("BUY", 1)))
    with pytest.raises(WireError, match="trailing"):
        ow.parse_place_order(FieldReader([*fields, "x"], "PLACE_ORDER", 1), 178)
    with pytest.raises(WireError, match="missing"):
        ow.parse_place_order(FieldReader(fields[:-3], "PLACE_ORDER", 1), 178)
