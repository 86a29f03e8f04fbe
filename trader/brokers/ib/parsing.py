"""IB parsing: pure conversions between ib_async's types and the domain objects.

No I/O and no clock except ``now`` for a ticker that carries no time. Every
conversion the IB adapter makes is here: contracts and their details, orders
(with the ``orderRef`` that carries our client order id) and IB's reports of
them, fills, positions, account values, tickers and bars. IB's
spellings (``"STP LMT"``, ``"BOT"``, ``"PreSubmitted"``...) map to domain enums
through the lookup tables below, in both directions. ib_async carries
quantities and prices as floats, with ``UNSET_DOUBLE`` (``sys.float_info.max``)
or NaN for "no value"; :func:`decimal_from_float` turns them into exact
Decimals (``231.37`` stays ``Decimal('231.37')``) or ``None``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

import ib_async
from ib_async.util import UNSET_DOUBLE

from trader.brokers.records import ContractDetails, ContractQuery, OrderReport, Quote
from trader.domain import (
    AccountValue,
    Action,
    Bar,
    Contract,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Right,
    SecType,
    TimeInForce,
    checks,
)
from trader.errors import TraderError, ValidationError

__all__ = [
    "broker_ref",
    "client_order_id_of",
    "decimal_from_float",
    "from_ib_account_value",
    "from_ib_bar",
    "from_ib_contract",
    "from_ib_contract_details",
    "from_ib_fill",
    "from_ib_order",
    "from_ib_portfolio_item",
    "from_ib_position",
    "order_report",
    "order_status",
    "order_update",
    "parse_broker_ref",
    "ticker_quote",
    "ticker_to_tick",
    "to_ib_contract",
    "to_ib_order",
    "to_ib_query",
    "tradable_ib_contract",
]

SEC_TYPES: dict[str, SecType] = {
    "STK": SecType.STK,
    "FUT": SecType.FUT,
    "OPT": SecType.OPT,
    "CASH": SecType.CASH,
    "IND": SecType.IND,
    "CMDTY": SecType.CMDTY,
}
IB_SEC_TYPES: dict[SecType, str] = {member: code for code, member in SEC_TYPES.items()}

# IB writes an option's right several ways; "?" and "0" mean "not an option".
RIGHTS: dict[str, Right | None] = {
    "C": Right.C, "CALL": Right.C, "P": Right.P, "PUT": Right.P, "": None, "?": None, "0": None,
}  # fmt: skip
IB_RIGHTS: dict[Right | None, str] = {Right.C: "C", Right.P: "P", None: ""}

IB_ACTIONS: dict[Action, str] = {Action.BUY: "BUY", Action.SELL: "SELL"}
EXEC_SIDES: dict[str, Action] = {"BOT": Action.BUY, "SLD": Action.SELL}

IB_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MKT: "MKT",
    OrderType.LMT: "LMT",
    OrderType.STP: "STP",
    OrderType.STP_LMT: "STP LMT",
    OrderType.TRAIL: "TRAIL",
}
IB_TIFS: dict[TimeInForce, str] = {
    TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK",
}  # fmt: skip
ACTIONS: dict[str, Action] = {code: member for member, code in IB_ACTIONS.items()}
ORDER_TYPES: dict[str, OrderType] = {code: member for member, code in IB_ORDER_TYPES.items()}
TIFS: dict[str, TimeInForce] = {code: member for member, code in IB_TIFS.items()}

IB_STATUSES: dict[str, OrderStatus] = {
    "PendingSubmit": OrderStatus.PENDING_SUBMIT,
    "ApiPending": OrderStatus.PENDING_SUBMIT,
    "PreSubmitted": OrderStatus.PRE_SUBMITTED,
    "Submitted": OrderStatus.SUBMITTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "ApiCancelled": OrderStatus.API_CANCELLED,
    "Cancelled": OrderStatus.CANCELLED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.INACTIVE,
}
# Where an order for a contract IB sent without an exchange goes (portfolio updates carry none).
_SMART_ROUTED = frozenset({SecType.STK, SecType.OPT})
_STOPS = frozenset({OrderType.STP, OrderType.STP_LMT})
# Working statuses that IB keeps reporting while an order fills piece by piece.
_WORKING = frozenset({OrderStatus.PRE_SUBMITTED, OrderStatus.SUBMITTED})

_ZERO = Decimal(0)
# Below 2**53 every integral float is an exact int: write 100.0 as Decimal('100').
_EXACT_INT_LIMIT = 2.0**53
_EPOCH = ib_async.util.EPOCH

log = logging.getLogger(__name__)


def decimal_from_float(x: float | Decimal | None) -> Decimal | None:
    """Return ``x`` as the Decimal its shortest repr spells, or ``None`` if it is no value.

    ``None``, NaN, infinities and ib_async's ``UNSET_DOUBLE`` give ``None``.
    A float becomes ``Decimal(repr(x))``, so ``231.37`` is ``Decimal('231.37')``
    and not the binary expansion; an integral float becomes an integral
    Decimal (``100.0`` is ``Decimal('100')``). A Decimal passes through
    (``None`` if it is not finite).
    """
    if x is None:
        return None
    if isinstance(x, Decimal):
        return x if x.is_finite() else None
    if isinstance(x, bool):
        raise ValidationError(f"expected a number, got bool {x!r}")
    value = float(x)
    if not math.isfinite(value) or value == UNSET_DOUBLE:
        return None
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return Decimal(int(value))
    return Decimal(repr(value))


def _required_decimal(name: str, x: float | Decimal | None) -> Decimal:
    value = decimal_from_float(x)
    if value is None:
        raise ValidationError(f"{name} is missing (got {x!r})")
    return value


K = TypeVar("K")
V = TypeVar("V")


def _lookup(table: dict[K, V], code: K, what: str) -> V:
    try:
        return table[code]
    except KeyError:
        known = ", ".join(repr(k) for k in table)
        raise ValidationError(f"unknown IB {what} {code!r} (known: {known})") from None


def _ib_price(value: Decimal | None) -> float:
    return UNSET_DOUBLE if value is None else float(value)


def _expiry(code: str, sec_type: SecType, local_symbol: str) -> date | None:
    """Read ``YYYYMMDD`` or ``YYYYMM`` (a trailing time such as ``" 16:00 US/Eastern"`` is dropped).

    A bare contract month becomes the first of the month, except for a future
    that its local symbol already identifies: the domain key then uses that.
    """
    text = code.strip().split(" ", 1)[0]
    if not text:
        return None
    if len(text) == 6 and text.isdigit():
        if sec_type is SecType.FUT and local_symbol.strip():
            return None
        text = f"{text}01"
    return checks.plain_date("IB lastTradeDateOrContractMonth", text)


def broker_ref(order: Order) -> str:
    """Return the orderRef sent to IB: the strategy (or "manual") and our client order id."""
    return f"{order.order_ref}#{order.client_order_id}"


def parse_broker_ref(order_ref: str) -> tuple[str, str] | None:
    """Return the (strategy, client order id) a :func:`broker_ref` carries, or None for an order placed elsewhere."""
    strategy, sep, coid = order_ref.rpartition("#")
    return (strategy, coid) if sep and coid else None


def client_order_id_of(order_ref: str) -> str | None:
    """Return the client order id an orderRef carries, or None for an order placed elsewhere."""
    _, sep, coid = order_ref.rpartition("#")
    return coid if sep and coid else None


def to_ib_contract(c: Contract) -> ib_async.Contract:
    """Return ``c`` as an ib_async Contract (``conId`` 0 when not yet qualified)."""
    multiplier = "" if c.multiplier is None else format(c.multiplier.normalize(), "f")
    return ib_async.Contract(
        secType=IB_SEC_TYPES[c.sec_type],
        conId=c.conid or 0,
        symbol=c.symbol,
        lastTradeDateOrContractMonth="" if c.expiry is None else f"{c.expiry:%Y%m%d}",
        strike=0.0 if c.strike is None else float(c.strike),
        right=IB_RIGHTS[c.right],
        multiplier=multiplier,
        exchange=c.exchange,
        primaryExchange=c.primary_exchange,
        currency=c.currency,
        localSymbol=c.local_symbol,
        tradingClass=c.trading_class,
    )


def from_ib_contract(c: ib_async.Contract) -> Contract:
    """Return the domain Contract for ib_async's ``c``.

    Raise ValidationError for a secType the domain does not model (``"FOP"``,
    ``"BAG"``...) or a right or expiry IB should not send. Strike, right and
    expiry are taken only where the domain allows them (an OPT; a FUT's
    expiry), since IB fills them with placeholders (strike 0, right ``"?"``)
    for other kinds. An empty exchange (portfolio updates carry none) becomes
    ``"SMART"`` for stocks and options, else the primary exchange if known.
    """
    sec_type = _lookup(SEC_TYPES, c.secType, "secType")
    multiplier = c.multiplier.strip()
    is_option = sec_type is SecType.OPT
    fallback = "SMART" if sec_type in _SMART_ROUTED else c.primaryExchange or "SMART"
    right = _lookup(RIGHTS, c.right.strip().upper(), "right") if is_option else None
    expiry = None
    if sec_type in (SecType.FUT, SecType.OPT):
        expiry = _expiry(c.lastTradeDateOrContractMonth, sec_type, c.localSymbol)
    strike = decimal_from_float(c.strike) if is_option else None
    return Contract(
        c.symbol,
        sec_type,
        exchange=c.exchange or fallback,
        primary_exchange=c.primaryExchange,
        currency=c.currency,
        expiry=expiry,
        strike=strike or None,  # IB writes "no strike" as 0.0
        right=right,
        multiplier=None if multiplier in ("", "0") else multiplier,  # Contract parses text
        local_symbol=c.localSymbol,
        trading_class=c.tradingClass,
        conid=c.conId or None,
    )


class _IbContract(ib_async.Contract):
    """An ib_async Contract whose repr names the contract rather than listing its non-default fields.

    Equality and hashing stay ib_async's (by conId). The Trade that ib_async
    formats for its log on each placed order and each status report holds the
    contract, and its repr compares every field with its default: 13 us warm,
    over 100 us cold, twice per order.
    """

    def __repr__(self) -> str:
        return (f"Contract(conId={self.conId}, secType={self.secType!r}, symbol={self.symbol!r}, "
                f"localSymbol={self.localSymbol!r}, exchange={self.exchange!r}, currency={self.currency!r})")

    __str__ = __repr__


def tradable_ib_contract(c: ib_async.Contract) -> ib_async.Contract:
    """Return a copy of IB's (qualified) contract ``c`` to place orders with: the same fields, a short repr."""
    return _IbContract(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})


def to_ib_query(q: ContractQuery) -> ib_async.Contract:
    """Return the ib_async contract that asks IB's contract details for what ``q`` names."""
    return ib_async.Contract(
        symbol=q.symbol, secType=IB_SEC_TYPES[q.sec_type], exchange=q.exchange, currency=q.currency,
        lastTradeDateOrContractMonth=q.expiry, localSymbol=q.local_symbol, right=q.right,
        strike=0.0 if q.strike is None else float(q.strike))


def from_ib_contract_details(details: ib_async.ContractDetails) -> ContractDetails:
    """Return IB's ``details`` of a qualified contract: the domain contract, its tick (0.01 if IB gives none) and
    minimum size (1 if none); ValidationError for a contract the domain cannot read."""
    if details.contract is None:
        raise ValidationError("IB contract details without a contract")
    tick = decimal_from_float(details.minTick) or Decimal("0.01")
    size = details.minSize
    min_size = decimal_from_float(size) if size and size > 0 else None
    return ContractDetails(from_ib_contract(details.contract), tick, min_size or Decimal(1), details.longName or "")


class _IbOrder(ib_async.Order):
    """An ib_async Order whose repr names the order rather than listing its non-default fields.

    ib_async logs the Trade of each placed order and of each status report
    with an f-string, so the Trade's repr is built even when that logger is
    off; ib_async's Order repr compares all of its ~150 fields with their
    defaults, several times the cost of the rest of the Trade. On the order
    path that is time the caller waits for, for a line nobody reads.
    """

    def __repr__(self) -> str:
        return (f"Order(orderId={self.orderId}, permId={self.permId}, action={self.action!r}, "
                f"totalQuantity={self.totalQuantity}, orderType={self.orderType!r}, orderRef={self.orderRef!r})")

    __str__ = __repr__


def to_ib_order(
    order: Order, *, order_id: int, parent_order_id: int = 0, transmit: bool = True
) -> ib_async.Order:
    """Return ``order`` as an ib_async Order with IB id ``order_id``.

    Price fields the order type does not use keep ib_async's default
    ``UNSET_DOUBLE`` (sent as "no value"), never 0. A TRAIL order's trail
    amount goes in ``auxPrice``, its trail percent in ``trailingPercent`` and
    its initial stop, if any, in ``trailStopPrice``. Setting an OCA group sets
    ``ocaType`` 1 (cancel the others when one fills). The ``orderRef`` is
    :func:`broker_ref`'s: it names the order after a crash or a reconnect.
    """
    ib_order = _IbOrder(
        orderId=order_id,
        action=IB_ACTIONS[order.action],
        totalQuantity=float(order.quantity),
        orderType=IB_ORDER_TYPES[order.order_type],
        tif=IB_TIFS[order.tif],
        outsideRth=order.outside_rth,
        orderRef=broker_ref(order),
        account=order.account or "",
        parentId=parent_order_id,
        transmit=transmit,
    )
    if order.limit_price is not None:
        ib_order.lmtPrice = float(order.limit_price)
    if order.order_type is OrderType.TRAIL:
        ib_order.auxPrice = _ib_price(order.trail_amount)
        ib_order.trailingPercent = _ib_price(order.trail_percent)
        ib_order.trailStopPrice = _ib_price(order.stop_price)
    elif order.stop_price is not None:
        ib_order.auxPrice = float(order.stop_price)
    if order.oca_group:
        ib_order.ocaGroup = order.oca_group
        ib_order.ocaType = 1
    return ib_order


def from_ib_order(contract: ib_async.Contract, order: ib_async.Order, *, client_order_id: str, order_ref: str,
                  parent_id: str | None = None) -> Order:
    """Return the domain Order that IB's ``order`` on ``contract`` describes, as placed (status PENDING_SUBMIT).

    The inverse of :func:`to_ib_order`, for an order of ours that IB reports
    and the journal lacks (see reconcile). ``parent_id`` is the client order
    id of a bracket child's parent. Raise ValidationError for an order type,
    action or TIF the domain does not model.
    """
    def price(x: float) -> Decimal | None:
        return decimal_from_float(x) or None  # IB may write "no price" as 0

    order_type = _lookup(ORDER_TYPES, order.orderType, "orderType")
    trail = order_type is OrderType.TRAIL
    aux = price(order.auxPrice)
    return Order(
        client_order_id,
        from_ib_contract(contract),
        _lookup(ACTIONS, order.action, "action"),
        _required_decimal("order quantity", order.totalQuantity),
        order_type,
        limit_price=price(order.lmtPrice) if order_type in (OrderType.LMT, OrderType.STP_LMT) else None,
        stop_price=price(order.trailStopPrice) if trail else aux if order_type in _STOPS else None,
        trail_amount=aux if trail else None,
        trail_percent=price(order.trailingPercent) if trail else None,
        tif=_lookup(TIFS, order.tif or "DAY", "tif"),
        outside_rth=bool(order.outsideRth),
        parent_id=parent_id,
        oca_group=order.ocaGroup or None,
        order_ref=order_ref or "manual",
        account=order.account or None,
        broker_order_id=order.orderId or None,
        perm_id=order.permId or None,
    )


def order_status(status: str, filled: Decimal, remaining: Decimal) -> OrderStatus | None:
    """Return the domain status for IB's ``status`` report, or ``None`` if it is unknown.

    IB reports a partly filled working order as ``Submitted`` (or
    ``PreSubmitted``) with both ``filled`` and ``remaining`` above zero: that
    is PARTIALLY_FILLED. ``None`` (``"ApiUpdate"``, ``"ValidationError"``...)
    is for the caller to log.
    """
    result = IB_STATUSES.get(status)
    if result in _WORKING and filled > 0 and remaining > 0:
        return OrderStatus.PARTIALLY_FILLED
    return result


def _reason(trade: ib_async.Trade) -> str:
    """Return the last error or notice IB gave about the trade's order ("" if none)."""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return entry.message
    return ""


def order_update(trade: ib_async.Trade) -> OrderReport:
    """Return the status report ib_async's ``trade`` now holds (no ``order``: this is on the order path)."""
    order, st = trade.order, trade.orderStatus
    ref = order.orderRef or ""
    filled = decimal_from_float(st.filled) or _ZERO
    remaining = decimal_from_float(st.remaining) or _ZERO
    return OrderReport(client_order_id_of(ref), ref, order.orderId or None, order.permId or None,
                       order_status(st.status, filled, remaining), st.status, filled, remaining,
                       decimal_from_float(st.avgFillPrice) if filled else None, _reason(trade))


def order_report(trade: ib_async.Trade, parent_id: str | None = None) -> OrderReport:
    """Return an open or completed order as IB lists it, with the order as placed if it is ours.

    A completed order (from reqCompletedOrders) carries no status beyond its
    state: its filled quantity is the order's ``filledQuantity``, and its
    remaining quantity what is left of the total; it has no id (``None``) and
    no average price (IB gives it in the executions). ``parent_id`` is the
    client order id of a bracket child's parent.
    """
    order, st = trade.order, trade.orderStatus
    ref = order.orderRef or ""
    filled = decimal_from_float(st.filled) or _ZERO
    total = decimal_from_float(order.totalQuantity) or _ZERO
    if not filled:
        filled = decimal_from_float(order.filledQuantity) or _ZERO
    remaining = decimal_from_float(st.remaining) if st.remaining else None
    if remaining is None:
        remaining = total - filled
    avg = decimal_from_float(st.avgFillPrice) if st.avgFillPrice and filled else None
    placed = None
    parsed = parse_broker_ref(ref)
    if parsed is not None:
        try:
            placed = from_ib_order(trade.contract, order, client_order_id=parsed[1], order_ref=parsed[0],
                                   parent_id=parent_id)
        except TraderError as exc:
            log.warning("broker order %s (%s) cannot be read: %s", order.orderId, parsed[1], exc)
    return OrderReport(None if parsed is None else parsed[1], ref, order.orderId or None, order.permId or None,
                       order_status(st.status, filled, remaining), st.status, filled, remaining, avg,
                       _reason(trade), placed)


def from_ib_fill(fill: ib_async.Fill, client_order_id: str | None) -> Fill:
    """Return the domain Fill for ib_async's ``fill`` of our order ``client_order_id``.

    The time is the execution's (converted to UTC), or the fill's arrival time
    if the execution has none. The commission is ``None`` until IB's
    commission report has arrived (an empty report, or ``UNSET_DOUBLE``).
    Zero order and perm ids (manual TWS orders) become ``None``.
    """
    execution = fill.execution
    report = fill.commissionReport
    commission = None
    if report.execId or report.commission != 0.0:
        commission = decimal_from_float(report.commission)
    time = fill.time if execution.time == _EPOCH else execution.time
    return Fill(
        execution.execId,
        client_order_id,
        from_ib_contract(fill.contract),
        _lookup(EXEC_SIDES, execution.side, "execution side"),
        _required_decimal("execution shares", execution.shares),
        _required_decimal("execution price", execution.price),
        checks.utc_datetime("execution time", time),
        commission=commission,
        broker_order_id=execution.orderId or None,
        perm_id=execution.permId or None,
        account=execution.acctNumber or None,
    )


def from_ib_position(p: ib_async.Position) -> Position:
    """Return the domain Position for ib_async's ``p`` (no market values: IB sends none)."""
    return Position(
        p.account,
        from_ib_contract(p.contract),
        _required_decimal("position size", p.position),
        _required_decimal("position avgCost", p.avgCost),
    )


def from_ib_portfolio_item(item: ib_async.PortfolioItem) -> Position:
    """Return the domain Position, market values included, for ib_async's ``item``."""
    return Position(
        item.account,
        from_ib_contract(item.contract),
        _required_decimal("portfolio position", item.position),
        _required_decimal("portfolio averageCost", item.averageCost),
        market_price=decimal_from_float(item.marketPrice),
        market_value=decimal_from_float(item.marketValue),
        unrealized_pnl=decimal_from_float(item.unrealizedPNL),
        realized_pnl=decimal_from_float(item.realizedPNL),
    )


def from_ib_account_value(v: ib_async.AccountValue) -> AccountValue:
    """Return the domain AccountValue for ib_async's ``v`` (its ``modelCode`` is dropped)."""
    return AccountValue(v.account, v.tag, v.value, v.currency)


def _positive(x: float) -> Decimal | None:
    value = decimal_from_float(x)
    return value if value is not None and value > 0 else None


def ticker_quote(ticker: ib_async.Ticker) -> Quote:
    """Return the ticker's top of book: positive prices, a side with no size as ``None``."""
    bid_size, ask_size = ticker.bidSize, ticker.askSize
    return Quote(_positive(ticker.bid) if bid_size and bid_size > 0 else None,
                 _positive(ticker.ask) if ask_size and ask_size > 0 else None,
                 _positive(ticker.last))


def from_ib_bar(bar: ib_async.BarData, instrument: str, size: str) -> Bar:
    """Return IB's historical ``bar`` of ``instrument`` as a Bar (a daily bar starts at midnight UTC)."""
    start = bar.date if isinstance(bar.date, datetime) else datetime(bar.date.year, bar.date.month, bar.date.day,
                                                                     tzinfo=UTC)
    return Bar(instrument, start.astimezone(UTC), size, float(bar.open), float(bar.high), float(bar.low),
               float(bar.close), max(float(bar.volume), 0.0), int(bar.barCount) if bar.barCount >= 0 else None)


def _market(x: float | None) -> float | None:
    if x is None:
        return None
    value = float(x)
    if not math.isfinite(value) or value == UNSET_DOUBLE:
        return None
    return value


def _size(x: float | None) -> float | None:
    value = _market(x)
    return None if value is None or value < 0 else value


def ticker_to_tick(ticker: ib_async.Ticker, instrument: str) -> dict[str, object]:
    """Return ``ticker`` as a plain tick dict for the bus, keyed like the Tick record.

    Prices and sizes are floats; NaN, infinities, ``UNSET_DOUBLE`` and
    negative sizes are ``None``. Prices are reported as the ticker has them:
    IB's empty book side (price -1, size 0) stays -1 with size 0, since
    ``None`` would mean "unchanged" to a consumer, and some prices do go
    negative (spreads, TICK-NYSE). ``time`` is the ticker's time in UTC (a
    naive time is taken as UTC), or now if it has none.
    """
    time = ticker.time
    if time is None:
        time = datetime.now(UTC)
    elif time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    elif time.tzinfo is not UTC:
        time = time.astimezone(UTC)
    return {
        "instrument": instrument,
        "time": time,
        "bid": _market(ticker.bid),
        "ask": _market(ticker.ask),
        "last": _market(ticker.last),
        "bid_size": _size(ticker.bidSize),
        "ask_size": _size(ticker.askSize),
        "last_size": _size(ticker.lastSize),
        "volume": _size(ticker.volume),
    }
