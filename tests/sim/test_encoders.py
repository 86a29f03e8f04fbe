"""Every outgoing message, decoded by ib_async's own decoder at the versions tws-sim speaks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ib_async.util import UNSET_DOUBLE

from tests.sim.ib_decode import ib_decode, ib_decode_one
from trader.domain import Action, OrderType, TimeInForce
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.catalogue import Catalogue, SimInstrument
from trader.sim.engine import MatchingEngine
from trader.sim.orders import OrderTicket, Quote

VERSIONS = [157, 163, 164, 170, 176, 177, 178]

# Field counts of a plain order's messages, counted from the layouts field by field
# (docs/tws-protocol.md). ib_async ignores extra trailing fields of these two, so
# the lengths are pinned here rather than left to the decoder.
OPEN_ORDER_LENGTH = {157: 120, 163: 123, 164: 123, 170: 128, 176: 128, 177: 127, 178: 127}
COMPLETED_ORDER_LENGTH = {157: 92, 163: 92, 164: 92, 170: 97, 176: 97, 177: 96, 178: 96}


def test_next_valid_id_and_managed_accounts_have_exactly_three_fields() -> None:
    assert enc.next_valid_id(17) == [9, 1, 17]
    assert ib_decode_one(enc.next_valid_id(17), 178) == ("nextValidId", (17,))
    assert ib_decode_one(enc.managed_accounts(["DU1", "DU2"]), 178) == ("managedAccounts", ("DU1,DU2",))


@pytest.mark.parametrize("version", [157, 166, 178])
def test_error_message_gains_its_reject_json_at_166(version: int) -> None:
    fields = enc.error(version, 5, 200, "No security definition has been found for the request")
    assert len(fields) == (6 if version >= 166 else 5)
    assert ib_decode_one(fields, version) == (
        "error", (5, 200, "No security definition has been found for the request", ""))


def test_current_time() -> None:
    assert ib_decode_one(enc.current_time(1_790_000_000), 178) == ("currentTime", (1_790_000_000,))


def test_tick_price_and_size() -> None:
    assert ib_decode_one(enc.tick_price(3, 1, 231.5, Decimal(300)), 178) == ("priceSizeTick", (3, 1, 231.5, 300.0))
    assert ib_decode_one(enc.tick_size(3, 8, Decimal(12345)), 178) == ("tickSize", (3, 8, 12345.0))
    assert ib_decode_one(enc.tick_snapshot_end(3), 178) == ("tickSnapshotEnd", (3,))
    assert ib_decode_one(enc.market_data_type(3, 1), 178) == ("marketDataType", (3, 1))
    assert ib_decode_one(enc.tick_string(3, 45, "1790000000"), 178) == ("tickString", (3, 45, "1790000000"))


@pytest.mark.parametrize("version", VERSIONS)
def test_contract_details_for_each_kind(version: int, catalogue: Catalogue) -> None:
    for inst in catalogue:
        name, (req_id, details) = ib_decode_one(enc.contract_details(version, 7, inst), version)
        assert (name, req_id) == ("contractDetails", 7)
        c = details.contract
        assert c.conId == inst.conid and c.symbol == inst.contract.symbol
        assert c.secType == str(inst.contract.sec_type)
        assert c.localSymbol == inst.contract.local_symbol
        assert c.lastTradeDateOrContractMonth == inst.wire_expiry
        assert details.minTick == float(inst.tick_size)
        assert details.longName == inst.long_name
        if inst.contract.strike is not None:
            assert c.strike == float(inst.contract.strike)
        if version >= 164:
            assert details.minSize == float(inst.min_size)
    assert ib_decode_one(enc.contract_details_end(7), version) == ("contractDetailsEnd", (7,))


@pytest.mark.parametrize("version", [157, 176, 178])
def test_symbol_samples(version: int, catalogue: Catalogue) -> None:
    found = catalogue.search("AAP")
    name, (req_id, descriptions) = ib_decode_one(enc.symbol_samples(version, 4, found, catalogue), version)
    assert (name, req_id) == ("symbolSamples", 4)
    assert [d.contract.symbol for d in descriptions] == ["AAPL"]
    assert descriptions[0].derivativeSecTypes == ["OPT"]
    assert descriptions[0].contract.conId == 265598


def test_position_and_portfolio(aapl: SimInstrument, es: SimInstrument) -> None:
    name, (account, contract, size, cost) = ib_decode_one(enc.position("DU1", es, Decimal(-2), Decimal("296250.0")), 178)
    assert (name, account, contract.conId, contract.multiplier, size, cost) == (
        "position", "DU1", es.conid, "50", -2.0, 296250.0)
    assert contract.lastTradeDateOrContractMonth == "20261218"
    fields = enc.portfolio_value(aapl, Decimal(100), Decimal("231.5"), Decimal(23150), Decimal("230.01"),
                                 Decimal(149), Decimal(0), "DU1")
    name, args = ib_decode_one(fields, 178)
    assert name == "updatePortfolio"
    assert args[0].primaryExchange == "NASDAQ" and args[1:] == (100.0, 231.5, 23150.0, 230.01, 149.0, 0.0, "DU1")
    assert ib_decode_one(enc.position_end(), 178) == ("positionEnd", ())


def test_account_messages() -> None:
    assert ib_decode_one(enc.account_value("NetLiquidation", "1000000.00", "USD", "DU1"), 178) == (
        "updateAccountValue", ("NetLiquidation", "1000000.00", "USD", "DU1"))
    when = datetime(2026, 11, 20, 15, 4, tzinfo=UTC)
    assert ib_decode_one(enc.account_update_time(when), 178) == ("updateAccountTime", ("15:04",))
    assert ib_decode_one(enc.account_download_end("DU1"), 178) == ("accountDownloadEnd", ("DU1",))
    assert ib_decode_one(enc.account_summary(3, "DU1", "NetLiquidation", "1", "USD"), 178) == (
        "accountSummary", (3, "DU1", "NetLiquidation", "1", "USD"))
    assert ib_decode_one(enc.account_summary_end(3), 178) == ("accountSummaryEnd", (3,))
    assert ib_decode_one(enc.account_update_multi(3, "DU1", "", "CashBalance", "5", "USD"), 178) == (
        "accountUpdateMulti", (3, "DU1", "", "CashBalance", "5", "USD"))
    assert ib_decode_one(enc.account_update_multi_end(3), 178) == ("accountUpdateMultiEnd", (3,))


def test_list_ends() -> None:
    assert ib_decode_one(enc.open_order_end(), 178) == ("openOrderEnd", ())
    assert ib_decode_one(enc.exec_details_end(9), 178) == ("execDetailsEnd", (9,))
    assert ib_decode_one(enc.completed_orders_end(), 178) == ("completedOrdersEnd", ())


def test_historical_data() -> None:
    bars = [("20261120 15:00:00 UTC", 1.0, 2.0, 0.5, 1.5, Decimal(100), 1.2, 7)]
    calls = ib_decode(enc.historical_data(5, "a", "b", bars), 178)
    assert [c[0] for c in calls] == ["historicalData", "historicalDataEnd"]
    bar = calls[0][1][1]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.barCount) == (1.0, 2.0, 0.5, 1.5, 100.0, 7)
    assert calls[1][1] == (5, "a", "b")


def _filled_trail_order(engine: MatchingEngine, inst: SimInstrument) -> None:
    engine.on_quote(inst.conid, Quote(Decimal("231.50"), Decimal("231.51"), Decimal(300), Decimal(300)))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", [OrderType.LMT, OrderType.MKT, OrderType.STP_LMT, OrderType.TRAIL])
def test_order_messages_decode_at_every_version(
    version: int, kind: OrderType, engine: MatchingEngine, aapl: SimInstrument
) -> None:
    engine.on_quote(aapl.conid, Quote(Decimal("231.50"), Decimal("231.51"), Decimal(300), Decimal(300)))
    prices = {
        OrderType.LMT: {"limit_price": Decimal("230.00")},
        OrderType.MKT: {},
        OrderType.STP_LMT: {"limit_price": Decimal("240.00"), "stop_price": Decimal("239.00")},
        OrderType.TRAIL: {"trail_amount": Decimal("1.00")},
    }[kind]
    ticket = OrderTicket(client_id=3, order_id=11, instrument=aapl, action=Action.BUY if kind is not OrderType.TRAIL
                         else Action.SELL, quantity=Decimal(100), order_type=kind, tif=TimeInForce.GTC,
                         order_ref="strat-a", **prices)  # type: ignore[arg-type]
    events = engine.place(ticket)
    sim = engine.get(3, 11)
    assert sim is not None and events
    fields = ow.open_order(version, sim, "DU1")
    assert len(fields) == OPEN_ORDER_LENGTH[version]
    name, (order_id, contract, order, state) = ib_decode_one(fields, version)
    assert (name, order_id, contract.conId, contract.symbol) == ("openOrder", 11, aapl.conid, "AAPL")
    assert (order.orderId, order.clientId, order.permId) == (11, 3, sim.perm_id)
    assert order.orderType == ow.WIRE_ORDER_TYPES[kind] and order.totalQuantity == 100.0
    assert order.tif == "GTC" and order.orderRef == "strat-a" and order.account == "DU1234567"
    assert state.status == ow.IB_STATUS[sim.status]
    if kind is OrderType.LMT:
        assert order.lmtPrice == 230.0 and order.auxPrice == UNSET_DOUBLE
    if kind is OrderType.STP_LMT:
        assert (order.lmtPrice, order.auxPrice) == (240.0, 239.0)
    if kind is OrderType.TRAIL:
        assert order.auxPrice == 1.0 and order.trailStopPrice == 230.5
    name, args = ib_decode_one(ow.order_status(sim), version)
    assert name == "orderStatus" and args[0] == 11 and args[1] == ow.IB_STATUS[sim.status]
    assert args[5] == sim.perm_id and args[8] == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_fill_messages_and_completed_order(version: int, engine: MatchingEngine, aapl: SimInstrument) -> None:
    engine.on_quote(aapl.conid, Quote(Decimal("231.50"), Decimal("231.51"), Decimal(300), Decimal(300)))
    engine.place(OrderTicket(client_id=3, order_id=12, instrument=aapl, action=Action.BUY,
                             quantity=Decimal(100), order_type=OrderType.MKT))
    execution = engine.executions[-1]
    name, (req_id, contract, ex) = ib_decode_one(ow.exec_details(version, -1, execution), version)
    assert (name, req_id, contract.conId, ex.orderId, ex.clientId, ex.permId) == (
        "execDetails", -1, aapl.conid, 12, 3, execution.perm_id)
    assert (ex.side, ex.shares, ex.price, ex.cumQty, ex.avgPrice) == ("BOT", 100.0, 231.51, 100.0, 231.51)
    assert ex.execId == execution.exec_id and ex.time == execution.time
    name, (report,) = ib_decode_one(ow.commission_report(execution, None), version)
    assert (report.execId, report.commission, report.currency) == (execution.exec_id, 1.0, "USD")
    assert report.realizedPNL == UNSET_DOUBLE
    sim = engine.get(3, 12)
    assert sim is not None
    fields = ow.completed_order(version, sim, "DU1")
    assert len(fields) == COMPLETED_ORDER_LENGTH[version]
    name, (contract, order, state) = ib_decode_one(fields, version)
    assert (name, contract.conId, order.permId, state.status, state.completedStatus) == (
        "completedOrder", aapl.conid, sim.perm_id, "Filled", "Filled")
    assert order.filledQuantity == 100.0


def test_historical_data_update() -> None:
    row = ("20261120 15:00:00 UTC", 1.0, 2.0, 0.5, 1.5, 100, 1.2, 7)
    name, (req_id, bar) = ib_decode_one(enc.historical_data_update(5, row), 178)
    assert (name, req_id) == ("historicalDataUpdate", 5)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.barCount) == (1.0, 2.0, 0.5, 1.5, 100.0, 7)


def test_realtime_bar() -> None:
    name, args = ib_decode_one(enc.realtime_bar(4, 1_790_000_000, 1.0, 2.0, 0.5, 1.5, 10, 1.25, 3), 178)
    assert (name, args) == ("realtimeBar", (4, 1_790_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 1.25, 3))
