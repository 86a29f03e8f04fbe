"""Tests for the IB parsing module: real ib_async objects in and out, no I/O."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import ib_async
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async.util import UNSET_DOUBLE

from trader.brokers.ib.parsing import (
    decimal_from_float,
    from_ib_account_value,
    from_ib_contract,
    from_ib_contract_details,
    from_ib_fill,
    from_ib_order,
    from_ib_portfolio_item,
    from_ib_position,
    gross_market_value,
    order_status,
    ticker_to_tick,
    to_ib_contract,
    to_ib_order,
    tradable_ib_contract,
)
from trader.domain import (
    AccountValue,
    Action,
    Contract,
    Order,
    OrderStatus,
    OrderType,
    Right,
    SecType,
    Tick,
    TimeInForce,
)
from trader.errors import ValidationError

T0 = datetime(2026, 3, 2, 14, 30, 5, tzinfo=UTC)
AAPL = Contract("AAPL", SecType.STK, primary_exchange="NASDAQ", conid=265598)
ES = Contract(
    "ES",
    SecType.FUT,
    exchange="CME",
    expiry=date(2026, 12, 18),
    multiplier=Decimal(50),
    local_symbol="ESZ6",
    trading_class="ES",
    conid=637533641,
)
AAPL_C = Contract(
    "AAPL",
    SecType.OPT,
    expiry=date(2026, 12, 18),
    strike=Decimal("152.5"),
    right=Right.C,
    multiplier=Decimal(100),
    local_symbol="AAPL  261218C00152500",
    trading_class="AAPL",
)
EURUSD = Contract("EUR", SecType.CASH, exchange="IDEALPRO", local_symbol="EUR.USD")

# Every ib_async.Order price field this module may set; the rest must stay unset.
PRICE_FIELDS = ("lmtPrice", "auxPrice", "trailingPercent", "trailStopPrice")


# --- contracts ---------------------------------------------------------------


@pytest.mark.parametrize("contract", [AAPL, ES, AAPL_C, EURUSD], ids=lambda c: c.key)
def test_contract_round_trip(contract: Contract) -> None:
    ib = to_ib_contract(contract)
    assert isinstance(ib, ib_async.Contract)
    assert from_ib_contract(ib) == contract


def test_to_ib_contract_fields_for_an_option() -> None:
    ib = to_ib_contract(AAPL_C)
    assert (ib.secType, ib.symbol, ib.conId) == ("OPT", "AAPL", 0)
    assert ib.lastTradeDateOrContractMonth == "20261218"
    assert ib.strike == 152.5 and type(ib.strike) is float
    assert (ib.right, ib.multiplier) == ("C", "100")
    assert (ib.exchange, ib.currency, ib.tradingClass) == ("SMART", "USD", "AAPL")
    assert ib.localSymbol == "AAPL  261218C00152500"


def test_to_ib_contract_fields_for_a_stock_and_a_future() -> None:
    stock = to_ib_contract(AAPL)
    assert (stock.secType, stock.conId, stock.primaryExchange) == ("STK", 265598, "NASDAQ")
    assert (stock.strike, stock.right, stock.multiplier) == (0.0, "", "")
    assert stock.lastTradeDateOrContractMonth == ""
    es = Contract("ES", SecType.FUT, local_symbol="ESZ6", multiplier=Decimal("50.00"))
    future = to_ib_contract(es)
    assert future.multiplier == "50"  # normalized, no trailing zeros or exponent
    assert future.lastTradeDateOrContractMonth == ""


def test_from_ib_contract_reads_ib_placeholders_as_absent() -> None:
    ib = ib_async.Contract(
        secType="STK", conId=0, symbol="MSFT", strike=0.0, right="?", multiplier="",
        exchange="", primaryExchange="NASDAQ", currency="USD",
    )  # fmt: skip
    contract = from_ib_contract(ib)
    assert contract == Contract("MSFT", SecType.STK, exchange="SMART", primary_exchange="NASDAQ")
    assert contract.conid is None and contract.multiplier is None
    bare = from_ib_contract(ib_async.Contract(secType="IND", symbol="SPX", currency="USD"))
    assert bare.exchange == "SMART" and bare.key == "SPX.IND"
    future = ib_async.Future("ES", "20261218", "", primaryExchange="CME", currency="USD")
    assert from_ib_contract(future).exchange == "CME"


@pytest.mark.parametrize(
    ("code", "right"), [("C", Right.C), ("CALL", Right.C), ("P", Right.P), ("PUT", Right.P)]
)
def test_from_ib_contract_reads_each_right_spelling(code: str, right: Right) -> None:
    ib = ib_async.Option("SPY", "20261218", 600.0, code, "SMART", currency="USD")
    assert from_ib_contract(ib).right is right


def test_from_ib_contract_expiry_forms() -> None:
    with_time = ib_async.Future("ES", "20261218 09:30 US/Central", "CME", currency="USD")
    assert from_ib_contract(with_time).expiry == date(2026, 12, 18)
    month_only = ib_async.Future("ES", "202612", "CME", currency="USD")  # a future's YYYYMM is its contract month
    assert from_ib_contract(month_only).expiry is None
    assert (from_ib_contract(month_only).contract_month, from_ib_contract(month_only).key) == ("202612", "ES.FUT.202612")
    named = ib_async.Future("ES", "202612", "CME", localSymbol="ESZ6", currency="USD")
    parsed = from_ib_contract(named)
    assert parsed.expiry is None and parsed.key == "ES.FUT.202612"
    option_month = ib_async.Option("SPY", "202612", 600.0, "C", "SMART", currency="USD")
    assert from_ib_contract(option_month).expiry == date(2026, 12, 1)


def test_a_future_is_keyed_by_its_contract_month_not_its_last_trade_date() -> None:
    # CL's January 2027 contract stops trading in December 2026 (NYMEX): IB qualifies it with the last
    # trade date, and its details carry the contract month.
    qualified = ib_async.Future("CL", "20261217", "NYMEX", localSymbol="CLF7", currency="USD", conId=212921504)
    assert from_ib_contract(qualified).key == "CL.FUT.202701"  # read from the local symbol
    unnamed = ib_async.Future("CL", "20261217", "NYMEX", currency="USD", conId=212921504)
    details = ib_async.ContractDetails(contract=unnamed, minTick=0.01, contractMonth="202701")
    parsed = from_ib_contract_details(details).contract
    assert (parsed.key, parsed.expiry, parsed.contract_month) == ("CL.FUT.202701", date(2026, 12, 17), "202701")
    back = to_ib_contract(parsed)
    assert back.lastTradeDateOrContractMonth == "20261217"
    assert to_ib_contract(dataclasses.replace(parsed, expiry=None)).lastTradeDateOrContractMonth == "202701"


@pytest.mark.parametrize("sec_type", ["FOP", "BAG", "CONTFUT", ""])
def test_from_ib_contract_refuses_an_unknown_sec_type(sec_type: str) -> None:
    with pytest.raises(ValidationError, match=f"secType '{sec_type}'"):
        from_ib_contract(ib_async.Contract(secType=sec_type, symbol="ES", currency="USD"))


def test_from_ib_contract_refuses_a_bad_option() -> None:
    with pytest.raises(ValidationError, match="right 'X'"):
        from_ib_contract(ib_async.Option("SPY", "20261218", 600.0, "X", "SMART", currency="USD"))
    with pytest.raises(ValidationError, match="needs strike"):
        from_ib_contract(ib_async.Option("SPY", "20261218", 0.0, "C", "SMART", currency="USD"))
    with pytest.raises(ValidationError, match="lastTradeDateOrContractMonth"):
        from_ib_contract(ib_async.Option("SPY", "2026-13", 600.0, "C", "SMART", currency="USD"))


# --- decimals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (231.37, "231.37"),
        (0.00005, "0.00005"),
        (5900.25, "5900.25"),
        (-37.63, "-37.63"),
        (100.0, "100"),
        (0.0, "0"),
        (1.1e-7, "1.1E-7"),
    ],
)
def test_decimal_from_float_is_exact(value: float, expected: str) -> None:
    result = decimal_from_float(value)
    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize("value", [None, math.nan, UNSET_DOUBLE, math.inf, -math.inf])
def test_decimal_from_float_maps_no_value_to_none(value: float | None) -> None:
    assert decimal_from_float(value) is None


def test_decimal_from_float_passes_decimals_through() -> None:
    value = Decimal("231.370")
    assert decimal_from_float(value) is value
    assert decimal_from_float(Decimal("NaN")) is None


@given(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False))
def test_decimal_survives_the_float_round_trip(value: Decimal) -> None:
    # A price sent to IB as a float and read back is the price we meant.
    assert decimal_from_float(float(value)) == value


# --- orders ------------------------------------------------------------------


def make_order(order_type: str = "MKT", **changes: Any) -> Order:
    fields: dict[str, Any] = {
        "client_order_id": "o-1",
        "contract": AAPL,
        "action": Action.BUY,
        "quantity": Decimal(100),
        "order_type": order_type,
    }
    fields.update(changes)
    return Order(**fields)


def unset(ib: ib_async.Order, *names: str) -> None:
    for name in names:
        assert getattr(ib, name) == UNSET_DOUBLE, name


def test_market_order_fields() -> None:
    ib = to_ib_order(make_order(order_ref="momentum", account="DU123"), order_id=7)
    assert isinstance(ib, ib_async.Order)
    assert (ib.orderId, ib.action, ib.orderType, ib.tif) == (7, "BUY", "MKT", "DAY")
    assert ib.totalQuantity == 100.0 and type(ib.totalQuantity) is float
    assert (ib.orderRef, ib.account, ib.parentId, ib.transmit) == ("momentum#o-1", "DU123", 0, True)
    assert (ib.outsideRth, ib.ocaGroup, ib.ocaType) == (False, "", 0)
    unset(ib, *PRICE_FIELDS)


def test_an_ib_order_is_an_ib_async_order_whose_repr_names_it_cheaply() -> None:
    ib = to_ib_order(make_order(order_ref="momentum", client_order_id="c-1"), order_id=7)
    assert isinstance(ib, ib_async.Order)
    trade = ib_async.Trade(ib_async.Stock("AAPL", "SMART", "USD"), ib, ib_async.OrderStatus(orderId=7))
    text = f"{trade}"  # what ib_async formats for its log on every placed order and status report
    assert "orderId=7" in text and "orderRef='momentum#c-1'" in text
    assert "UNSET" not in repr(ib) and "softDollarTier" not in repr(ib) and len(repr(ib)) < 200


def test_a_tradable_ib_contract_is_ibs_contract_with_a_short_repr() -> None:
    ib = ib_async.Contract.recreate(ib_async.Contract(secType="FUT", conId=637533641, symbol="ES",
                                                      lastTradeDateOrContractMonth="20261218", multiplier="50",
                                                      exchange="CME", currency="USD", localSymbol="ESZ6"))
    tradable = tradable_ib_contract(ib)
    assert isinstance(tradable, ib_async.Contract) and tradable == ib and hash(tradable) == hash(ib)
    assert ib_async.util.dataclassAsDict(tradable) == ib_async.util.dataclassAsDict(ib)
    assert repr(tradable) == ("Contract(conId=637533641, secType='FUT', symbol='ES', localSymbol='ESZ6', "
                              "exchange='CME', currency='USD')")
    assert from_ib_contract(tradable) == from_ib_contract(ib)


def test_limit_order_fields() -> None:
    order = make_order("LMT", action="SELL", quantity=Decimal("0.5"), limit_price=Decimal("231.37"))
    ib = to_ib_order(order, order_id=8)
    assert (ib.action, ib.orderType, ib.totalQuantity, ib.lmtPrice) == ("SELL", "LMT", 0.5, 231.37)
    assert decimal_from_float(ib.lmtPrice) == Decimal("231.37")
    assert ib.account == ""
    unset(ib, "auxPrice", "trailingPercent", "trailStopPrice")


def test_stop_and_stop_limit_order_fields() -> None:
    stop = to_ib_order(make_order("STP", stop_price=Decimal("5900.25")), order_id=9)
    assert (stop.orderType, stop.auxPrice) == ("STP", 5900.25)
    unset(stop, "lmtPrice", "trailingPercent", "trailStopPrice")
    order = make_order("STP_LMT", limit_price=Decimal(5901), stop_price=Decimal("5900.25"))
    stop_limit = to_ib_order(order, order_id=10)
    assert (stop_limit.orderType, stop_limit.lmtPrice, stop_limit.auxPrice) == (
        "STP LMT",
        5901.0,
        5900.25,
    )
    unset(stop_limit, "trailingPercent", "trailStopPrice")


def test_trail_order_fields() -> None:
    by_amount = to_ib_order(make_order("TRAIL", trail_amount=Decimal("1.5")), order_id=11)
    assert (by_amount.orderType, by_amount.auxPrice) == ("TRAIL", 1.5)
    unset(by_amount, "lmtPrice", "trailingPercent", "trailStopPrice")
    order = make_order("TRAIL", trail_percent=Decimal("2.5"), stop_price=Decimal(225))
    by_percent = to_ib_order(order, order_id=12)
    assert (by_percent.trailingPercent, by_percent.trailStopPrice) == (2.5, 225.0)
    unset(by_percent, "lmtPrice", "auxPrice")


@pytest.mark.parametrize("changes", [
    {},
    {"order_type": "LMT", "limit_price": Decimal("231.37"), "tif": TimeInForce.GTC, "outside_rth": True},
    {"order_type": "STP", "stop_price": Decimal("5900.25"), "parent_id": "o-0", "oca_group": "oca-1"},
    {"order_type": "STP_LMT", "limit_price": Decimal(5901), "stop_price": Decimal("5900.25")},
    {"order_type": "TRAIL", "trail_amount": Decimal("1.5")},
    {"order_type": "TRAIL", "trail_percent": Decimal("2.5"), "stop_price": Decimal(225), "account": "DU1"},
])
def test_an_ib_order_reads_back_as_the_order_placed(changes: dict[str, Any]) -> None:
    order = make_order(**{"order_ref": "momentum", **changes})
    ib = to_ib_order(order, order_id=41)
    ib.permId = 9041
    back = from_ib_order(to_ib_contract(AAPL), ib, client_order_id="o-1", order_ref="momentum",
                         parent_id=order.parent_id)
    assert back == dataclasses.replace(order, broker_order_id=41, perm_id=9041, created_at=back.created_at,
                                       updated_at=back.updated_at)


def test_an_ib_order_the_domain_cannot_model_is_refused() -> None:
    ib = to_ib_order(make_order(), order_id=1)
    ib.orderType = "MIDPRICE"
    with pytest.raises(ValidationError, match="orderType 'MIDPRICE'"):
        from_ib_order(to_ib_contract(AAPL), ib, client_order_id="x", order_ref="")


@pytest.mark.parametrize("tif", list(TimeInForce))
def test_every_tif_is_sent(tif: TimeInForce) -> None:
    assert to_ib_order(make_order(tif=tif), order_id=1).tif == str(tif)


def test_every_order_type_has_an_ib_spelling() -> None:
    prices: dict[OrderType, dict[str, Decimal]] = {
        OrderType.MKT: {},
        OrderType.LMT: {"limit_price": Decimal(1)},
        OrderType.STP: {"stop_price": Decimal(1)},
        OrderType.STP_LMT: {"limit_price": Decimal(1), "stop_price": Decimal(1)},
        OrderType.TRAIL: {"trail_amount": Decimal(1)},
    }
    spelled = {t: to_ib_order(make_order(t, **prices[t]), order_id=1).orderType for t in OrderType}
    assert spelled == {
        OrderType.MKT: "MKT",
        OrderType.LMT: "LMT",
        OrderType.STP: "STP",
        OrderType.STP_LMT: "STP LMT",
        OrderType.TRAIL: "TRAIL",
    }


def test_bracket_child_and_oca_fields() -> None:
    order = make_order(
        "LMT", action="SELL", limit_price=Decimal(250), oca_group="bracket-1", outside_rth=True
    )
    ib = to_ib_order(order, order_id=21, parent_order_id=20, transmit=False)
    assert (ib.orderId, ib.parentId, ib.transmit) == (21, 20, False)
    assert (ib.ocaGroup, ib.ocaType, ib.outsideRth) == ("bracket-1", 1, True)


# --- order status ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ib_status", "expected"),
    [
        ("PendingSubmit", OrderStatus.PENDING_SUBMIT),
        ("ApiPending", OrderStatus.PENDING_SUBMIT),
        ("PreSubmitted", OrderStatus.PRE_SUBMITTED),
        ("Submitted", OrderStatus.SUBMITTED),
        ("PendingCancel", OrderStatus.PENDING_CANCEL),
        ("ApiCancelled", OrderStatus.API_CANCELLED),
        ("Cancelled", OrderStatus.CANCELLED),
        ("Filled", OrderStatus.FILLED),
        ("Inactive", OrderStatus.INACTIVE),
    ],
)
def test_status_table(ib_status: str, expected: OrderStatus) -> None:
    assert order_status(ib_status, Decimal(0), Decimal(100)) is expected


@pytest.mark.parametrize("ib_status", ["Submitted", "PreSubmitted"])
def test_working_order_with_fills_is_partially_filled(ib_status: str) -> None:
    assert order_status(ib_status, Decimal(40), Decimal(60)) is OrderStatus.PARTIALLY_FILLED


def test_partial_fill_rule_applies_only_to_working_orders() -> None:
    assert order_status("Submitted", Decimal(100), Decimal(0)) is OrderStatus.SUBMITTED
    assert order_status("Cancelled", Decimal(40), Decimal(60)) is OrderStatus.CANCELLED
    assert order_status("PendingCancel", Decimal(40), Decimal(60)) is OrderStatus.PENDING_CANCEL


@pytest.mark.parametrize("ib_status", ["ApiUpdate", "ValidationError", "", "submitted"])
def test_unknown_status_is_none(ib_status: str) -> None:
    assert order_status(ib_status, Decimal(0), Decimal(1)) is None


# --- fills -------------------------------------------------------------------


def make_ib_fill(
    side: str = "BOT",
    report: ib_async.CommissionReport | None = None,
    **changes: Any,
) -> ib_async.Fill:
    fields: dict[str, Any] = {
        "execId": "0001f4e8.6584.01.01",
        "time": T0,
        "acctNumber": "DU123",
        "exchange": "ISLAND",
        "side": side,
        "shares": 100.0,
        "price": 231.37,
        "permId": 1946557,
        "orderId": 7,
    }
    fields.update(changes)
    execution = ib_async.Execution(**fields)
    report = report or ib_async.CommissionReport()
    return ib_async.Fill(to_ib_contract(AAPL), execution, report, T0 + timedelta(seconds=1))


@pytest.mark.parametrize(("side", "action"), [("BOT", Action.BUY), ("SLD", Action.SELL)])
def test_fill_fields(side: str, action: Action) -> None:
    fill = from_ib_fill(make_ib_fill(side), "o-1")
    assert (fill.exec_id, fill.client_order_id) == ("0001f4e8.6584.01.01", "o-1")
    assert fill.contract == AAPL
    assert fill.action is action
    assert (fill.quantity, fill.price) == (Decimal(100), Decimal("231.37"))
    assert str(fill.price) == "231.37"
    assert fill.time == T0 and fill.time.tzinfo is UTC
    assert (fill.broker_order_id, fill.perm_id, fill.account) == (7, 1946557, "DU123")
    assert fill.commission is None  # the report has not arrived yet


def test_fill_commission_once_reported() -> None:
    report = ib_async.CommissionReport(execId="0001f4e8.6584.01.01", commission=1.0025)
    assert from_ib_fill(make_ib_fill(report=report), "o-1").commission == Decimal("1.0025")
    free = ib_async.CommissionReport(execId="0001f4e8.6584.01.01", commission=0.0)
    assert from_ib_fill(make_ib_fill(report=free), "o-1").commission == Decimal(0)
    unset_report = ib_async.CommissionReport(execId="0001f4e8.6584.01.01", commission=UNSET_DOUBLE)
    assert from_ib_fill(make_ib_fill(report=unset_report), "o-1").commission is None


def test_fill_time_becomes_utc_and_manual_orders_have_no_ids() -> None:
    chicago = timezone(timedelta(hours=-6))
    ib = make_ib_fill(time=datetime(2026, 3, 2, 8, 30, 5, tzinfo=chicago), orderId=0, permId=0)
    fill = from_ib_fill(ib, None)
    assert fill.time == T0 and fill.time.tzinfo is UTC
    assert (fill.client_order_id, fill.broker_order_id, fill.perm_id) == (None, None, None)
    no_time = from_ib_fill(make_ib_fill(time=ib_async.util.EPOCH), "o-1")
    assert no_time.time == T0 + timedelta(seconds=1)  # the fill's arrival time


@pytest.mark.parametrize("side", ["BUY", "", "SOLD"])
def test_fill_with_an_unknown_side_is_refused(side: str) -> None:
    with pytest.raises(ValidationError, match=f"side '{side}'"):
        from_ib_fill(make_ib_fill(side), "o-1")


def test_fill_with_a_bad_sec_type_is_refused() -> None:
    ib = make_ib_fill()
    ib.contract.secType = "BAG"
    with pytest.raises(ValidationError, match="BAG"):
        from_ib_fill(ib, "o-1")


# --- positions and account values --------------------------------------------


def test_position() -> None:
    ib = ib_async.Position("DU123", to_ib_contract(ES), -2.0, 295012.5)
    position = from_ib_position(ib)
    assert (position.account, position.contract) == ("DU123", ES)
    assert (position.quantity, position.avg_cost) == (Decimal(-2), Decimal("5900.25"))  # per unit: IB's / 50
    assert position.market_price is None


def test_a_futures_portfolio_items_cost_is_per_unit_comparable_to_its_price() -> None:
    ib = ib_async.PortfolioItem(to_ib_contract(ES), 2.0, 5918.625, 591862.5, 296052.25, -2242.0, 0.0, "DU123")
    position = from_ib_portfolio_item(ib)
    assert position.avg_cost == Decimal("5921.045") and position.market_price == Decimal("5918.625")


def test_portfolio_item() -> None:
    ib = ib_async.PortfolioItem(
        to_ib_contract(AAPL), 100.0, 231.37, 23137.0, 225.10005, 626.99, UNSET_DOUBLE, "DU123"
    )
    position = from_ib_portfolio_item(ib)
    assert (position.account, position.contract, position.quantity) == ("DU123", AAPL, 100)
    assert position.avg_cost == Decimal("225.10005")
    assert (position.market_price, position.market_value) == (Decimal("231.37"), Decimal(23137))
    assert position.unrealized_pnl == Decimal("626.99")
    assert position.realized_pnl is None


def test_a_fop_portfolio_item_is_no_position_but_counts_in_the_gross_market_value() -> None:
    fop = ib_async.Contract(secType="FOP", conId=7, symbol="ES", lastTradeDateOrContractMonth="20261218",
                            strike=6000.0, right="C", multiplier="50", currency="USD")
    items = [
        ib_async.PortfolioItem(fop, -2.0, 40.0, -4000.0, 45.0, 1000.0, 0.0, "DU123"),
        ib_async.PortfolioItem(to_ib_contract(AAPL), 100.0, 231.37, 23137.0, 225.1, 626.99, UNSET_DOUBLE, "DU123"),
        ib_async.PortfolioItem(to_ib_contract(AAPL), 1.0, UNSET_DOUBLE, UNSET_DOUBLE, 1.0, 0.0, 0.0, "DU9"),
    ]
    with pytest.raises(ValidationError):
        from_ib_portfolio_item(items[0])
    assert gross_market_value(items) == Decimal(27137)  # |-4000| + 23137; a value IB did not give counts 0
    assert gross_market_value([]) == Decimal(0)


def test_account_value() -> None:
    ib = ib_async.AccountValue("DU123", "NetLiquidation", "1000123.45", "USD", "")
    value = from_ib_account_value(ib)
    assert value == AccountValue("DU123", "NetLiquidation", "1000123.45", "USD")
    assert value.amount == Decimal("1000123.45")


# --- ticks -------------------------------------------------------------------


def make_ticker(**values: Any) -> ib_async.Ticker:
    ticker = ib_async.Ticker(contract=to_ib_contract(AAPL))
    for name, value in values.items():  # the constructor resets prices to NaN
        setattr(ticker, name, value)
    return ticker


def test_tick_dict() -> None:
    ticker = make_ticker(
        time=T0, bid=231.37, ask=231.38, last=231.375, bidSize=300.0, askSize=200.0,
        lastSize=100.0, volume=1234567.0,
    )  # fmt: skip
    tick = ticker_to_tick(ticker, AAPL.key)
    assert tick == {
        "instrument": "AAPL.STK",
        "time": T0,
        "bid": 231.37,
        "ask": 231.38,
        "last": 231.375,
        "bid_size": 300.0,
        "ask_size": 200.0,
        "last_size": 100.0,
        "volume": 1234567.0,
    }
    assert Tick(**tick).mid == pytest.approx(231.375)  # type: ignore[arg-type]


def test_tick_dict_maps_missing_values_to_none() -> None:
    ticker = make_ticker(bid=math.nan, ask=UNSET_DOUBLE, last=231.37, lastSize=-1.0)
    before = datetime.now(UTC)
    tick = ticker_to_tick(ticker, "AAPL.STK")
    assert ticker.time is None
    assert before <= tick["time"] <= datetime.now(UTC)  # type: ignore[operator]
    assert tick["time"].tzinfo is UTC  # type: ignore[attr-defined]
    assert (tick["bid"], tick["ask"], tick["last"]) == (None, None, 231.37)
    assert (tick["bid_size"], tick["ask_size"], tick["last_size"], tick["volume"]) == (None,) * 4


def test_tick_dict_time_becomes_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    tick = ticker_to_tick(make_ticker(time=T0.astimezone(tokyo)), "AAPL.STK")
    assert tick["time"] == T0 and tick["time"].tzinfo is UTC  # type: ignore[attr-defined]
    naive = ticker_to_tick(make_ticker(time=T0.replace(tzinfo=None)), "AAPL.STK")
    assert naive["time"] == T0


def test_tick_dict_keeps_an_empty_book_side_as_ib_reports_it() -> None:
    tick = ticker_to_tick(make_ticker(bid=-1.0, bidSize=0.0, ask=231.38, askSize=5.0), "AAPL.STK")
    assert (tick["bid"], tick["bid_size"]) == (-1.0, 0.0)
