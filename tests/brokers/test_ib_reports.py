"""IB parsing of what the seam reports: order references, order reports, contract details, quotes, bars. No I/O."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import ib_async
import pandas as pd
import pytest
from ib_async.util import UNSET_DOUBLE

from trader.brokers.ib.parsing import (
    broker_ref,
    client_order_id_of,
    from_ib_bar,
    from_ib_bars_frame,
    from_ib_contract_details,
    order_report,
    order_update,
    parse_broker_ref,
    ticker_quote,
    to_ib_contract,
    to_ib_order,
    to_ib_query,
)
from trader.brokers.records import ContractQuery, Quote
from trader.domain import Action, Contract, Order, OrderStatus, OrderType, SecType
from trader.errors import ValidationError

AAPL = Contract("AAPL", SecType.STK, primary_exchange="NASDAQ", conid=265598)
T0 = datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC)


def placed(coid: str = "c1", order_ref: str = "momentum", **changes: object) -> Order:
    fields: dict[str, object] = {"client_order_id": coid, "contract": AAPL, "action": Action.BUY,
                                 "quantity": Decimal(10), "order_type": OrderType.LMT,
                                 "limit_price": Decimal("150.25"), "order_ref": order_ref}
    fields.update(changes)
    return Order(**fields)  # type: ignore[arg-type]


def trade(order: Order, order_id: int, status: str = "Submitted", **progress: float) -> ib_async.Trade:
    ib_order = to_ib_order(order, order_id=order_id)
    ib_order.permId = 1000 + order_id
    return ib_async.Trade(to_ib_contract(AAPL), ib_order, ib_async.OrderStatus(orderId=order_id, status=status,
                                                                                **progress))


# --- order references ----------------------------------------------------------------


def test_an_order_reference_carries_the_strategy_and_the_client_order_id() -> None:
    assert broker_ref(placed("c1", "momentum")) == "momentum#c1"
    assert parse_broker_ref(broker_ref(placed("c1", "a#b"))) == ("a#b", "c1")  # the id is after the last '#'
    assert parse_broker_ref("momentum#c1") == ("momentum", "c1") and client_order_id_of("momentum#c1") == "c1"
    assert parse_broker_ref("manual#c1") == ("manual", "c1")
    for other in ("", "placed in TWS", "momentum#"):
        assert parse_broker_ref(other) is None and client_order_id_of(other) is None


# --- order reports -------------------------------------------------------------------


def test_a_status_report_is_read_without_the_order() -> None:
    report = order_update(trade(placed(), 7, "Submitted", filled=4.0, remaining=6.0, avgFillPrice=150.2))
    assert report.client_order_id == "c1" and report.order_ref == "momentum#c1"
    assert (report.broker_order_id, report.perm_id) == (7, 1007)
    assert (report.status, report.status_text) == (OrderStatus.PARTIALLY_FILLED, "Submitted")
    assert (report.filled, report.remaining, report.avg_fill_price) == (Decimal(4), Decimal(6), Decimal("150.2"))
    assert report.order is None and report.reason == ""


def test_a_status_report_names_ibs_last_error_and_an_unknown_status() -> None:
    t = trade(placed(), 7, "ValidationError")
    t.log.append(ib_async.TradeLogEntry(T0, "Submitted", "Order rejected: price too far", 201))
    report = order_update(t)
    assert report.status is None and report.status_text == "ValidationError"
    assert report.reason == "Order rejected: price too far"
    assert report.avg_fill_price is None, "nothing filled: no average price, whatever IB writes"


def test_an_order_ib_refused_is_rejected_with_ibs_reason_not_cancelled() -> None:
    t = trade(placed(), 7, "Cancelled")
    t.log.append(ib_async.TradeLogEntry(T0, "Cancelled", "Error 110, reqId 7: The price does not conform to the "
                                                         "minimum price variation for this contract.", 110))
    report = order_update(t)
    assert report.status is OrderStatus.REJECTED and "minimum price variation" in report.reason
    t.log.append(ib_async.TradeLogEntry(T0, "Cancelled", "Order Canceled - reason:cancelled by client", 202))
    assert order_update(t).status is OrderStatus.CANCELLED  # a cancel is a cancel


def test_an_order_report_carries_the_order_as_placed_and_its_parent() -> None:
    child = placed("c1-tp", parent_id="c1", action=Action.SELL)
    report = order_report(trade(child, 8, "PreSubmitted", remaining=10.0), "c1")
    assert report.status is OrderStatus.PRE_SUBMITTED and report.remaining == Decimal(10)
    assert report.order is not None
    assert (report.order.client_order_id, report.order.order_ref, report.order.parent_id) == ("c1-tp", "momentum",
                                                                                              "c1")
    assert (report.order.limit_price, report.order.broker_order_id) == (Decimal("150.25"), 8)


def test_a_completed_order_reads_its_fills_from_the_order() -> None:
    # reqCompletedOrders: no order id, no status beyond the state, the filled quantity on the order
    t = trade(placed(), 0, "Filled")
    t.order.orderId, t.order.filledQuantity = 0, 10.0
    report = order_report(t)
    assert (report.broker_order_id, report.status, report.filled, report.remaining) == (
        None, OrderStatus.FILLED, Decimal(10), Decimal(0))
    assert report.avg_fill_price is None  # IB gives it in the executions


def test_an_order_not_ours_or_unreadable_has_no_order() -> None:
    manual = trade(placed(), 9)
    manual.order.orderRef = ""
    assert order_report(manual).client_order_id is None and order_report(manual).order is None
    odd = trade(placed(), 10)
    odd.order.orderType = "VOL"
    report = order_report(odd)
    assert report.client_order_id == "c1" and report.order is None


# --- contracts -------------------------------------------------------------------------


def test_a_query_asks_ib_for_what_it_names() -> None:
    q = to_ib_query(ContractQuery("ES", SecType.FUT, exchange="CME", expiry="202612"))
    assert (q.symbol, q.secType, q.exchange, q.currency, q.lastTradeDateOrContractMonth, q.strike) == (
        "ES", "FUT", "CME", "USD", "202612", 0.0)
    option = to_ib_query(ContractQuery("AAPL", SecType.OPT, expiry="20261218", right="C", strike=Decimal("150.5")))
    assert (option.right, option.strike) == ("C", 150.5)


def test_contract_details_give_the_contract_its_tick_and_size() -> None:
    ib = ib_async.ContractDetails(contract=to_ib_contract(AAPL), minTick=0.01, minSize=1.0, longName="APPLE INC")
    details = from_ib_contract_details(ib)
    assert (details.contract, details.tick, details.min_size, details.long_name) == (
        AAPL, Decimal("0.01"), Decimal(1), "APPLE INC")
    fractional = from_ib_contract_details(ib_async.ContractDetails(contract=to_ib_contract(AAPL), minTick=0.0,
                                                                   minSize=0.0001))
    assert (fractional.tick, fractional.min_size) == (Decimal("0.01"), Decimal("0.0001"))
    with pytest.raises(ValidationError):
        from_ib_contract_details(ib_async.ContractDetails())


# --- market data -----------------------------------------------------------------------


def ticker(**values: float) -> ib_async.Ticker:
    t = ib_async.Ticker(contract=to_ib_contract(AAPL))
    for name, value in values.items():
        setattr(t, name, value)
    return t


def test_a_quote_has_positive_prices_and_a_side_with_no_size_is_empty() -> None:
    assert ticker_quote(ticker(bid=231.37, bidSize=3.0, ask=231.38, askSize=2.0, last=231.375)) == Quote(
        Decimal("231.37"), Decimal("231.38"), Decimal("231.375"))
    assert ticker_quote(ticker(bid=-1.0, bidSize=0.0, ask=231.38, askSize=0.0, last=math.nan)) == Quote(
        None, None, None)
    assert ticker_quote(ticker(bid=UNSET_DOUBLE, bidSize=1.0, last=0.0)) == Quote(None, None, None)


def test_a_bar_starts_in_utc_and_a_daily_bar_at_midnight() -> None:
    intraday = ib_async.BarData(date=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=-1.0, barCount=-1)
    bar = from_ib_bar(intraday, "AAPL.STK", "1 min")
    assert (bar.instrument, bar.start, bar.size, bar.volume, bar.count) == ("AAPL.STK", T0, "1 min", 0.0, None)
    daily = from_ib_bar(ib_async.BarData(date=date(2026, 3, 2), open=1.0, high=2.0, low=0.5, close=1.5,
                                         volume=100.0, barCount=7), "AAPL.STK", "1 day")
    assert daily.start == datetime(2026, 3, 2, tzinfo=UTC) and daily.count == 7


def test_bars_as_a_frame_read_each_bar_as_from_ib_bar_does() -> None:
    minutes = [ib_async.BarData(date=T0.replace(second=0) + timedelta(minutes=i), open=1.0 + i, high=2.0 + i,
                                low=0.5 + i, close=1.5 + i, volume=-1.0 if i == 1 else 10.0 * i, barCount=i,
                                average=1.25 + i)
               for i in range(3)]
    frame = from_ib_bars_frame(minutes)
    assert frame.index.name == "time" and str(frame.index.tz) == "UTC"
    assert frame.index.tolist() == [pd.Timestamp(b.date) for b in minutes]
    assert frame.to_dict("list") == {"open": [1.0, 2.0, 3.0], "high": [2.0, 3.0, 4.0], "low": [0.5, 1.5, 2.5],
                                     "close": [1.5, 2.5, 3.5], "volume": [0.0, 0.0, 20.0], "wap": [1.25, 2.25, 3.25],
                                     "bar_count": [0, 1, 2]}
    uncounted = [ib_async.BarData(date=date(2026, 3, 2), open=1.0, high=2.0, low=0.5, close=1.5, volume=5.0,
                                  barCount=-1, average=-1.0)]
    daily = from_ib_bars_frame(uncounted)
    assert daily.index.tolist() == [pd.Timestamp("2026-03-02", tz="UTC")] and "bar_count" not in daily
    assert "wap" not in daily  # IB's -1 / 0 average (MIDPOINT, BID, ASK): no wap
    empty = from_ib_bars_frame([])
    assert len(empty) == 0 and list(empty.columns) == ["open", "high", "low", "close", "volume"]
