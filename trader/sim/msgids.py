"""TWS protocol tables: message ids both ways, server version gates, IB error codes.

The names follow IB's own (``REQ_MKT_DATA``, ``TICK_PRICE``) so the next
engineer can look them up in IB's documentation. Version gates are the
server versions at which a message gained or lost a field; every encoder and
request parser checks its fields against these constants, never against a
bare number.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ErrorCode", "In", "Out", "ServerVersion", "negotiate_version"]


class ServerVersion(IntEnum):
    """The server versions tws-sim knows and the fields each one gates."""

    MIN = 157  # the oldest version tws-sim speaks (old official clients top out here)
    DURATION = 158  # placeOrder gains duration (ib_async decodes it in openOrder only from 159)
    OPEN_ORDER_DURATION = 159  # as ib_async reads openOrder; the official client uses 158
    POST_TO_ATS = 160
    AUTO_CANCEL_PARENT = 162
    FRACTIONAL_SIZE = 163  # sizes are decimals; contractDetails gains suggestedSizeIncrement
    SIZE_RULES = 164  # contractDetails drops its version field and mdSizeMultiplier
    ADVANCED_ORDER_REJECT = 166  # errorMsg gains advancedOrderRejectJson
    MANUAL_ORDER_TIME = 169  # placeOrder / cancelOrder gain manual order times
    PEGBEST_PEGMID_OFFSETS = 170  # openOrder and completedOrder gain five peg fields
    ISSUER_ID = 176  # reqContractDetails and symbolSamples gain issuerId (and description)
    FA_PROFILE_DESUPPORT = 177  # placeOrder / openOrder / completedOrder drop faProfile
    PENDING_PRICE_REVISION = 178  # execDetails gains pendingPriceRevision
    MAX = 178  # the newest version tws-sim speaks: ib_async 2.1's maximum


def negotiate_version(client_min: int, client_max: int) -> int | None:
    """Return the version to speak with a client offering ``client_min..client_max``.

    The highest common version, capped at ``ServerVersion.MAX``, with a floor of
    ``ServerVersion.MIN``, and never 158: ib_async and the official client
    disagree there about where openOrder's ``duration`` starts, so 158 is
    stepped down to 157, and a client that offers nothing below 158 is refused.
    ``None`` if no version qualifies.
    """
    version = min(client_max, ServerVersion.MAX)
    if version == ServerVersion.DURATION:
        version = ServerVersion.MIN
    if version < ServerVersion.MIN or version < client_min:
        return None
    return int(version)


class In(IntEnum):
    """Ids of the requests a client sends."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_NEWS_BULLETINS = 12
    CANCEL_NEWS_BULLETINS = 13
    SET_SERVER_LOGLEVEL = 14
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_MATCHING_SYMBOLS = 81
    REQ_HEAD_TIMESTAMP = 87
    REQ_PNL = 92
    CANCEL_PNL = 93
    REQ_COMPLETED_ORDERS = 99


class Out(IntEnum):
    """Ids of the messages the server sends."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_GENERIC = 45
    TICK_STRING = 46
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SYMBOL_SAMPLES = 79
    HEAD_TIMESTAMP = 88
    HISTORICAL_DATA_UPDATE = 90
    PNL = 94
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


class ErrorCode(IntEnum):
    """IB's error and notice codes that tws-sim sends (IB's numbers, IB's meaning)."""

    DUPLICATE_ORDER_ID = 103
    CANNOT_MODIFY_FILLED = 104
    PRICE_VARIATION = 110
    ORDER_NOT_FOUND = 135
    CANCEL_NOT_CANCELLABLE = 161
    HISTORICAL_DATA_ERROR = 162
    NO_SECURITY_DEFINITION = 200
    ORDER_REJECTED = 201
    ORDER_CANCELLED = 202
    NO_TICKER_ID = 300
    DUPLICATE_TICKER_ID = 322
    READ_ERROR = 320
    VALIDATION_ERROR = 321
    CLIENT_ID_IN_USE = 326
    UNSUPPORTED_ORDER_TYPE = 387
    ZERO_SIZE = 434
    NOT_CONNECTED = 504
    CANCEL_UNKNOWN_ORDER = 10147
    CANCEL_FILLED_ORDER = 10148
    MARKET_DATA_FARM_OK = 2104
    HMDS_FARM_OK = 2106
    SEC_DEF_FARM_OK = 2158
