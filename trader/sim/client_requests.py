"""Incoming TWS requests (all but placeOrder): one parser per message id, into typed records.

A parser reads the fields after the message id with a :class:`FieldReader`,
checks the version gates of the negotiated server version, and refuses a
request whose field count does not fit its layout (``WireError``): the session
answers that with IB's error 320 and keeps serving. placeOrder is long enough
to have its own module, :mod:`trader.sim.place_order`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trader.sim.catalogue import ContractQuery
from trader.sim.msgids import In, ServerVersion
from trader.sim.wire import FieldReader, WireError

__all__ = [
    "REQUEST_PARSERS",
    "AccountSummaryRequest",
    "AccountUpdatesMultiRequest",
    "AccountUpdatesRequest",
    "ContractDetailsRequest",
    "ExecutionsRequest",
    "HeadTimestampRequest",
    "HistoricalDataRequest",
    "IdRequest",
    "MarketDataRequest",
    "MarketDataTypeRequest",
    "MatchingSymbolsRequest",
    "Plain",
    "RealTimeBarsRequest",
    "Request",
    "StartApi",
    "parse_contract",
]


@dataclass(frozen=True, slots=True)
class Plain:
    """A request that carries nothing but its id (and maybe a request id or flag)."""

    msg_id: In
    req_id: int = 0
    flag: bool = False


@dataclass(frozen=True, slots=True)
class StartApi:
    client_id: int
    capabilities: str


@dataclass(frozen=True, slots=True)
class MarketDataRequest:
    req_id: int
    contract: ContractQuery
    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool


@dataclass(frozen=True, slots=True)
class MarketDataTypeRequest:
    data_type: int


@dataclass(frozen=True, slots=True)
class ContractDetailsRequest:
    req_id: int
    contract: ContractQuery
    include_expired: bool


@dataclass(frozen=True, slots=True)
class MatchingSymbolsRequest:
    req_id: int
    pattern: str


@dataclass(frozen=True, slots=True)
class HistoricalDataRequest:
    req_id: int
    contract: ContractQuery
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


@dataclass(frozen=True, slots=True)
class RealTimeBarsRequest:
    req_id: int
    contract: ContractQuery
    bar_size: int
    what_to_show: str


@dataclass(frozen=True, slots=True)
class HeadTimestampRequest:
    req_id: int
    contract: ContractQuery
    what_to_show: str
    format_date: int


@dataclass(frozen=True, slots=True)
class IdRequest:
    count: int


@dataclass(frozen=True, slots=True)
class AccountUpdatesRequest:
    subscribe: bool
    account: str


@dataclass(frozen=True, slots=True)
class AccountUpdatesMultiRequest:
    req_id: int
    account: str
    model: str


@dataclass(frozen=True, slots=True)
class AccountSummaryRequest:
    req_id: int
    group: str
    tags: str


@dataclass(frozen=True, slots=True)
class ExecutionsRequest:
    req_id: int
    client_id: int | None
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


@dataclass(frozen=True, slots=True)
class CancelOrderRequest:
    order_id: int
    manual_time: str


Request = (
    Plain
    | StartApi
    | MarketDataRequest
    | MarketDataTypeRequest
    | ContractDetailsRequest
    | MatchingSymbolsRequest
    | HistoricalDataRequest
    | HeadTimestampRequest
    | RealTimeBarsRequest
    | IdRequest
    | AccountUpdatesRequest
    | AccountUpdatesMultiRequest
    | AccountSummaryRequest
    | ExecutionsRequest
    | CancelOrderRequest
)


def parse_contract(r: FieldReader) -> ContractQuery:
    """Read the 12 contract fields clients send: conId first, tradingClass last."""
    return ContractQuery(
        conid=r.optional_integer("conId") or 0,
        symbol=r.string("symbol").strip(),
        sec_type=r.string("secType").strip(),
        expiry=r.string("lastTradeDateOrContractMonth").strip(),
        strike=r.optional_decimal("strike") or None,
        right=r.string("right").strip(),
        multiplier=r.string("multiplier").strip(),
        exchange=r.string("exchange").strip(),
        primary_exchange=r.string("primaryExchange").strip(),
        currency=r.string("currency").strip(),
        local_symbol=r.string("localSymbol").strip(),
        trading_class=r.string("tradingClass").strip(),
    )


def _skip_combo_legs(r: FieldReader, contract: ContractQuery, per_leg: int) -> None:
    if contract.sec_type.upper() == "BAG":
        count = r.integer("comboLegsCount")
        if count < 0 or count * per_leg > r.remaining:
            raise WireError(f"{r.what}: bad combo leg count {count}")
        r.skip(count * per_leg, "comboLeg")


def _skip_delta_neutral(r: FieldReader) -> None:
    if r.flag("deltaNeutralContractPresent"):
        r.skip(3, "deltaNeutralContract")


def _start_api(r: FieldReader, version: int) -> StartApi:
    r.skip(1, "version")
    client_id = r.integer("clientId")
    capabilities = r.string("optionalCapabilities") if r.remaining else ""
    return StartApi(client_id, capabilities)


def _req_mkt_data(r: FieldReader, version: int) -> MarketDataRequest:
    r.skip(1, "version")
    req_id = r.integer("reqId")
    contract = parse_contract(r)
    _skip_combo_legs(r, contract, 4)
    _skip_delta_neutral(r)
    generic = r.string("genericTickList")
    snapshot = r.flag("snapshot")
    regulatory = r.flag("regulatorySnapshot")
    r.string("mktDataOptions")
    return MarketDataRequest(req_id, contract, generic, snapshot, regulatory)


def _versioned_req_id(msg_id: In) -> Callable[[FieldReader, int], Plain]:
    def parse(r: FieldReader, version: int) -> Plain:
        r.skip(1, "version")
        return Plain(msg_id, req_id=r.integer("reqId"))

    return parse


def _versioned_plain(msg_id: In) -> Callable[[FieldReader, int], Plain]:
    def parse(r: FieldReader, version: int) -> Plain:
        r.skip(1, "version")
        return Plain(msg_id)

    return parse


def _versioned_flag(msg_id: In) -> Callable[[FieldReader, int], Plain]:
    def parse(r: FieldReader, version: int) -> Plain:
        r.skip(1, "version")
        return Plain(msg_id, flag=r.flag("flag"))

    return parse


def _cancel_order(r: FieldReader, version: int) -> CancelOrderRequest:
    r.skip(1, "version")
    order_id = r.integer("orderId")
    manual = r.string("manualOrderCancelTime") if version >= ServerVersion.MANUAL_ORDER_TIME else ""
    return CancelOrderRequest(order_id, manual)


def _req_acct_data(r: FieldReader, version: int) -> AccountUpdatesRequest:
    r.skip(1, "version")
    return AccountUpdatesRequest(r.flag("subscribe"), r.string("acctCode").strip())


def _req_executions(r: FieldReader, version: int) -> ExecutionsRequest:
    r.skip(1, "version")
    return ExecutionsRequest(
        req_id=r.integer("reqId"),
        client_id=r.optional_integer("clientId"),
        account=r.string("acctCode").strip(),
        time=r.string("time").strip(),
        symbol=r.string("symbol").strip(),
        sec_type=r.string("secType").strip(),
        exchange=r.string("exchange").strip(),
        side=r.string("side").strip(),
    )


def _req_ids(r: FieldReader, version: int) -> IdRequest:
    r.skip(1, "version")
    return IdRequest(r.integer("numIds"))


def _req_contract_data(r: FieldReader, version: int) -> ContractDetailsRequest:
    r.skip(1, "version")
    req_id = r.integer("reqId")
    contract = parse_contract(r)
    include_expired = r.flag("includeExpired")
    r.skip(2, "secIdType/secId")
    if version >= ServerVersion.ISSUER_ID:
        r.skip(1, "issuerId")
    return ContractDetailsRequest(req_id, contract, include_expired)


def _req_historical_data(r: FieldReader, version: int) -> HistoricalDataRequest:
    req_id = r.integer("reqId")
    contract = parse_contract(r)
    r.skip(1, "includeExpired")
    end = r.string("endDateTime").strip()
    bar_size = r.string("barSizeSetting").strip()
    duration = r.string("durationStr").strip()
    use_rth = r.flag("useRTH")
    what = r.string("whatToShow").strip()
    format_date = r.optional_integer("formatDate") or 1
    _skip_combo_legs(r, contract, 4)
    keep = r.flag("keepUpToDate")
    r.string("chartOptions")
    return HistoricalDataRequest(req_id, contract, end, bar_size, duration, use_rth, what, format_date, keep)


def _req_real_time_bars(r: FieldReader, version: int) -> RealTimeBarsRequest:
    r.skip(1, "version")
    req_id = r.integer("reqId")
    contract = parse_contract(r)
    bar_size = r.integer("barSize")
    what = r.string("whatToShow").strip()
    r.skip(1, "useRTH")
    r.string("realTimeBarsOptions")
    return RealTimeBarsRequest(req_id, contract, bar_size, what)


def _req_head_timestamp(r: FieldReader, version: int) -> HeadTimestampRequest:
    req_id = r.integer("reqId")
    contract = parse_contract(r)
    r.skip(1, "includeExpired")
    r.skip(1, "useRTH")
    what = r.string("whatToShow").strip()
    format_date = r.optional_integer("formatDate") or 1
    return HeadTimestampRequest(req_id, contract, what, format_date)


def _req_market_data_type(r: FieldReader, version: int) -> MarketDataTypeRequest:
    r.skip(1, "version")
    return MarketDataTypeRequest(r.integer("marketDataType"))


def _req_account_summary(r: FieldReader, version: int) -> AccountSummaryRequest:
    r.skip(1, "version")
    return AccountSummaryRequest(r.integer("reqId"), r.string("groupName"), r.string("tags"))


def _req_account_updates_multi(r: FieldReader, version: int) -> AccountUpdatesMultiRequest:
    r.skip(1, "version")
    req_id = r.integer("reqId")
    account = r.string("account").strip()
    model = r.string("modelCode").strip()
    r.skip(1, "ledgerAndNLV")
    return AccountUpdatesMultiRequest(req_id, account, model)


def _req_matching_symbols(r: FieldReader, version: int) -> MatchingSymbolsRequest:
    return MatchingSymbolsRequest(r.integer("reqId"), r.string("pattern"))


def _req_completed_orders(r: FieldReader, version: int) -> Plain:
    return Plain(In.REQ_COMPLETED_ORDERS, flag=r.flag("apiOnly"))


# Every request tws-sim understands, except placeOrder (see place_order).
REQUEST_PARSERS: dict[In, Callable[[FieldReader, int], Request]] = {
    In.START_API: _start_api,
    In.REQ_MKT_DATA: _req_mkt_data,
    In.CANCEL_MKT_DATA: _versioned_req_id(In.CANCEL_MKT_DATA),
    In.CANCEL_ORDER: _cancel_order,
    In.REQ_OPEN_ORDERS: _versioned_plain(In.REQ_OPEN_ORDERS),
    In.REQ_ACCT_DATA: _req_acct_data,
    In.REQ_EXECUTIONS: _req_executions,
    In.REQ_IDS: _req_ids,
    In.REQ_CONTRACT_DATA: _req_contract_data,
    In.REQ_AUTO_OPEN_ORDERS: _versioned_flag(In.REQ_AUTO_OPEN_ORDERS),
    In.REQ_ALL_OPEN_ORDERS: _versioned_plain(In.REQ_ALL_OPEN_ORDERS),
    In.REQ_MANAGED_ACCTS: _versioned_plain(In.REQ_MANAGED_ACCTS),
    In.REQ_HISTORICAL_DATA: _req_historical_data,
    In.CANCEL_HISTORICAL_DATA: _versioned_req_id(In.CANCEL_HISTORICAL_DATA),
    In.REQ_CURRENT_TIME: _versioned_plain(In.REQ_CURRENT_TIME),
    In.REQ_GLOBAL_CANCEL: _versioned_plain(In.REQ_GLOBAL_CANCEL),
    In.REQ_MARKET_DATA_TYPE: _req_market_data_type,
    In.REQ_POSITIONS: _versioned_plain(In.REQ_POSITIONS),
    In.REQ_ACCOUNT_SUMMARY: _req_account_summary,
    In.CANCEL_ACCOUNT_SUMMARY: _versioned_req_id(In.CANCEL_ACCOUNT_SUMMARY),
    In.CANCEL_POSITIONS: _versioned_plain(In.CANCEL_POSITIONS),
    In.REQ_ACCOUNT_UPDATES_MULTI: _req_account_updates_multi,
    In.CANCEL_ACCOUNT_UPDATES_MULTI: _versioned_req_id(In.CANCEL_ACCOUNT_UPDATES_MULTI),
    In.REQ_MATCHING_SYMBOLS: _req_matching_symbols,
    In.REQ_HEAD_TIMESTAMP: _req_head_timestamp,
    In.REQ_REAL_TIME_BARS: _req_real_time_bars,
    In.CANCEL_REAL_TIME_BARS: _versioned_req_id(In.CANCEL_REAL_TIME_BARS),
    In.REQ_COMPLETED_ORDERS: _req_completed_orders,
}
