"""Outgoing TWS messages (everything but orders): one function per message, returning its fields.

Each function returns the message's field list, message id first, exactly as
TWS lays it out at the negotiated server ``version``. Several clients unpack
some of these messages into a fixed number of names (ib_async: tickPrice,
position, updatePortfolio, nextValidId, managedAccounts...), so a field too
many or too few is a broken client, not a tolerated extra: the tests decode
every message with ib_async's own decoder. Order messages live in
:mod:`trader.sim.order_wire`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from trader.sim.catalogue import Catalogue, SimInstrument
from trader.sim.msgids import Out, ServerVersion
from trader.sim.wire import Field

__all__ = [
    "account_download_end",
    "account_summary",
    "account_summary_end",
    "account_update_multi",
    "account_update_multi_end",
    "account_update_time",
    "account_value",
    "completed_orders_end",
    "contract_details",
    "contract_details_end",
    "current_time",
    "error",
    "exec_details_end",
    "handshake_reply",
    "head_timestamp",
    "historical_data",
    "historical_data_update",
    "managed_accounts",
    "market_data_type",
    "next_valid_id",
    "open_order_end",
    "portfolio_value",
    "position",
    "position_end",
    "realtime_bar",
    "symbol_samples",
    "tick_price",
    "tick_size",
    "tick_snapshot_end",
    "tick_string",
    "tws_time",
]

Fields = list[Field]


def tws_time(when: datetime) -> str:
    """Return ``when`` as TWS writes a time with its zone: ``YYYYMMDD HH:MM:SS UTC``."""
    return when.astimezone(UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def handshake_reply(version: int, now: datetime) -> Fields:
    """The answer to the handshake: the negotiated version and the connection time."""
    return [version, tws_time(now)]


def next_valid_id(order_id: int) -> Fields:
    return [Out.NEXT_VALID_ID, 1, order_id]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    return [Out.MANAGED_ACCTS, 1, ",".join(accounts)]


def error(version: int, req_id: int, code: int, text: str, advanced_reject_json: str = "") -> Fields:
    """errorMsg; ``req_id`` is the request or order id, -1 for a notice about the connection."""
    fields: Fields = [Out.ERR_MSG, 2, req_id, code, text]
    if version >= ServerVersion.ADVANCED_ORDER_REJECT:
        fields.append(advanced_reject_json)
    return fields


def current_time(epoch_seconds: int) -> Fields:
    return [Out.CURRENT_TIME, 1, epoch_seconds]


# The order types and attributes tws-sim accepts, as contractDetails lists them.
ORDER_TYPES = "DAY,GTC,IOC,FOK,LMT,MKT,OCA,STP,STPLMT,TRAIL"


def contract_details(version: int, req_id: int, inst: SimInstrument) -> Fields:
    """contractDetails (id 10) for one instrument."""
    c = inst.contract
    fields: Fields = [Out.CONTRACT_DATA]
    if version < ServerVersion.SIZE_RULES:
        fields.append(8)
    fields += [
        req_id,
        c.symbol,
        str(c.sec_type),
        f"{inst.wire_expiry} {inst.last_trade_time} {inst.time_zone}" if inst.last_trade_time else inst.wire_expiry,
        inst.wire_strike,
        inst.wire_right,
        c.exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,  # marketName
        c.trading_class,
        inst.conid,
        inst.tick_size,  # minTick
    ]
    if version < ServerVersion.SIZE_RULES:
        fields.append(1)  # mdSizeMultiplier, obsolete
    fields += [
        inst.wire_multiplier,
        ORDER_TYPES,
        c.exchange if c.exchange != "SMART" else f"SMART,{c.primary_exchange}".rstrip(","),
        1,  # priceMagnifier
        0,  # underConId
        inst.long_name,
        c.primary_exchange,
        inst.wire_contract_month,  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        inst.time_zone,  # timeZoneId
        "",  # tradingHours
        "",  # liquidHours
        "",  # evRule
        "",  # evMultiplier
        0,  # secIdList count
        1,  # aggGroup
        c.symbol if c.sec_type.value in ("OPT", "FUT") else "",  # underSymbol
        "STK" if c.sec_type.value == "OPT" else ("IND" if c.sec_type.value == "FUT" else ""),
        "",  # marketRuleIds
        inst.wire_expiry,  # realExpirationDate
        "COMMON" if c.sec_type.value == "STK" else "",  # stockType
    ]
    if version == ServerVersion.FRACTIONAL_SIZE:
        fields.append(inst.min_size)  # suggestedSizeIncrement
    if version >= ServerVersion.SIZE_RULES:
        fields += [inst.min_size, inst.min_size, inst.min_size]  # minSize, sizeIncrement, suggested
    return fields


def contract_details_end(req_id: int) -> Fields:
    return [Out.CONTRACT_DATA_END, 1, req_id]


def symbol_samples(version: int, req_id: int, found: Sequence[SimInstrument], catalogue: Catalogue) -> Fields:
    """symbolSamples (id 79): the answer to reqMatchingSymbols."""
    fields: Fields = [Out.SYMBOL_SAMPLES, req_id, len(found)]
    for inst in found:
        c = inst.contract
        derivatives = catalogue.derivative_types(c.symbol) if c.sec_type.value == "STK" else []
        fields += [inst.conid, c.symbol, str(c.sec_type), c.primary_exchange or c.exchange, c.currency]
        fields += [len(derivatives), *derivatives]
        if version >= ServerVersion.ISSUER_ID:
            fields += [inst.long_name, ""]  # description, issuerId
    return fields


# -- market data -------------------------------------------------------------

def tick_price(req_id: int, tick_type: int, price: float, size: Decimal | int, attrib_mask: int = 0) -> Fields:
    """tickPrice (id 1): exactly 7 fields; the size rides along for bid/ask/last."""
    return [Out.TICK_PRICE, 6, req_id, tick_type, price, size, attrib_mask]


def tick_size(req_id: int, tick_type: int, size: Decimal | int) -> Fields:
    return [Out.TICK_SIZE, 6, req_id, tick_type, size]


def tick_string(req_id: int, tick_type: int, value: str) -> Fields:
    return [Out.TICK_STRING, 6, req_id, tick_type, value]


def tick_snapshot_end(req_id: int) -> Fields:
    return [Out.TICK_SNAPSHOT_END, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> Fields:
    return [Out.MARKET_DATA_TYPE, 1, req_id, data_type]


def historical_data(req_id: int, start: str, end: str, bars: Sequence[Sequence[Field]]) -> Fields:
    """historicalData (id 17): every bar is (date, open, high, low, close, volume, wap, count)."""
    fields: Fields = [Out.HISTORICAL_DATA, req_id, start, end, len(bars)]
    for bar in bars:
        if len(bar) != 8:
            raise ValueError(f"a historical bar has 8 fields, got {len(bar)}")
        fields += list(bar)
    return fields


def historical_data_update(req_id: int, bar: Sequence[Field]) -> Fields:
    """historicalDataUpdate (id 90): the forming bar of a keepUpToDate request.

    ``bar`` is a historicalData row (date, o, h, l, c, volume, wap, count); this
    message orders it count, date, open, close, high, low, wap, volume.
    """
    date, open_, high, low, close, volume, wap, count = bar
    return [Out.HISTORICAL_DATA_UPDATE, req_id, count, date, open_, close, high, low, wap, volume]


def realtime_bar(req_id: int, epoch_seconds: int, open_: float, high: float, low: float, close: float,
                 volume: Decimal | int, wap: float, count: int) -> Fields:
    """realtimeBar (id 50): one 5-second bar; time is the bar's start in epoch seconds."""
    return [Out.REAL_TIME_BARS, 3, req_id, epoch_seconds, open_, high, low, close, volume, wap, count]


def head_timestamp(req_id: int, stamp: str) -> Fields:
    return [Out.HEAD_TIMESTAMP, req_id, stamp]


# -- account -------------------------------------------------------------------

def position(account: str, inst: SimInstrument, quantity: Decimal, avg_cost: Decimal) -> Fields:
    """position (id 61): exactly 16 fields."""
    c = inst.contract
    return [
        Out.POSITION_DATA, 3, account,
        inst.conid, c.symbol, str(c.sec_type), inst.wire_expiry, inst.wire_strike, inst.wire_right,
        inst.wire_multiplier, c.exchange, c.currency, c.local_symbol, c.trading_class,
        quantity, avg_cost,
    ]


def position_end() -> Fields:
    return [Out.POSITION_END, 1]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [Out.ACCT_VALUE, 2, key, value, currency, account]


def portfolio_value(
    inst: SimInstrument,
    quantity: Decimal,
    market_price: Decimal,
    market_value: Decimal,
    avg_cost: Decimal,
    unrealized: Decimal,
    realized: Decimal,
    account: str,
) -> Fields:
    """updatePortfolio (id 7): exactly 20 fields; the contract carries primaryExchange."""
    c = inst.contract
    return [
        Out.PORTFOLIO_VALUE, 8,
        inst.conid, c.symbol, str(c.sec_type), inst.wire_expiry, inst.wire_strike, inst.wire_right,
        inst.wire_multiplier, c.primary_exchange, c.currency, c.local_symbol, c.trading_class,
        quantity, market_price, market_value, avg_cost, unrealized, realized, account,
    ]


def account_update_time(when: datetime) -> Fields:
    return [Out.ACCT_UPDATE_TIME, 1, when.astimezone(UTC).strftime("%H:%M")]


def account_download_end(account: str) -> Fields:
    return [Out.ACCT_DOWNLOAD_END, 1, account]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    return [Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> Fields:
    return [Out.ACCOUNT_SUMMARY_END, 1, req_id]


def account_update_multi(req_id: int, account: str, model: str, key: str, value: str, currency: str) -> Fields:
    return [Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model, key, value, currency]


def account_update_multi_end(req_id: int) -> Fields:
    return [Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id]


# -- list ends -----------------------------------------------------------------

def open_order_end() -> Fields:
    return [Out.OPEN_ORDER_END, 1]


def exec_details_end(req_id: int) -> Fields:
    return [Out.EXECUTION_DATA_END, 1, req_id]


def completed_orders_end() -> Fields:
    return [Out.COMPLETED_ORDERS_END]
