"""IB parsing, orders: orders out and back, the ``orderRef`` that carries our client order id, IB's reports, fills.

Pure: no I/O. An order IB reports in a form the domain does not model (an
order type, action or TIF it lacks) is a ValidationError, or, in a listing,
an order left out of the report (logged).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Final

import ib_async

from trader.brokers.ib.parsing.contracts import from_ib_contract
from trader.brokers.ib.parsing.values import (
    ACTIONS,
    EXEC_SIDES,
    IB_ACTIONS,
    IB_ORDER_TYPES,
    IB_TIFS,
    ORDER_TYPES,
    TIFS,
    ZERO,
    decimal_from_float,
    decimal_from_text,
    ib_price,
    lookup,
    order_status,
    required_decimal,
)
from trader.brokers.records import OrderPreview, OrderReport
from trader.domain import Fill, Order, OrderStatus, OrderType, checks
from trader.errors import TraderError

__all__ = [
    "broker_ref",
    "client_order_id_of",
    "from_ib_fill",
    "from_ib_order",
    "from_ib_order_state",
    "order_report",
    "order_update",
    "parse_broker_ref",
    "to_ib_order",
]

log = logging.getLogger(__name__)

_STOPS = frozenset({OrderType.STP, OrderType.STP_LMT})
_EPOCH = ib_async.util.EPOCH


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
        ib_order.auxPrice = ib_price(order.trail_amount)
        ib_order.trailingPercent = ib_price(order.trail_percent)
        ib_order.trailStopPrice = ib_price(order.stop_price)
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
    def price(x: float | Decimal | None) -> Decimal | None:
        return decimal_from_float(x) or None  # IB may write "no price" as 0

    order_type = lookup(ORDER_TYPES, order.orderType, "orderType")
    trail = order_type is OrderType.TRAIL
    aux = price(order.auxPrice)
    return Order(
        client_order_id,
        from_ib_contract(contract),
        lookup(ACTIONS, order.action, "action"),
        required_decimal("order quantity", order.totalQuantity),
        order_type,
        limit_price=price(order.lmtPrice) if order_type in (OrderType.LMT, OrderType.STP_LMT) else None,
        stop_price=price(order.trailStopPrice) if trail else aux if order_type in _STOPS else None,
        trail_amount=aux if trail else None,
        trail_percent=price(order.trailingPercent) if trail else None,
        tif=lookup(TIFS, order.tif or "DAY", "tif"),
        outside_rth=bool(order.outsideRth),
        parent_id=parent_id,
        oca_group=order.ocaGroup or None,
        order_ref=order_ref or "manual",
        account=order.account or None,
        broker_order_id=order.orderId or None,
        perm_id=order.permId or None,
    )


def _last_error(trade: ib_async.Trade) -> tuple[int, str]:
    """Return the code and text of the last error or notice IB gave about the trade's order ((0, "") if none)."""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return entry.errorCode, entry.message
    return 0, ""


def _reason(trade: ib_async.Trade) -> str:
    """Return the last error or notice IB gave about the trade's order ("" if none)."""
    return _last_error(trade)[1]


#: IB's refusals of an order: ib_async ends its Trade "Cancelled", but nothing was cancelled: the order was
#: refused (110: a price off the tick grid; 201: rejected; 103 duplicate id; 200 no such contract; 387
#: unsupported type; 434 zero size).
REFUSALS: Final = frozenset({103, 110, 200, 201, 387, 434})


def order_update(trade: ib_async.Trade) -> OrderReport:
    """Return the status report ib_async's ``trade`` now holds (no ``order``: this is on the order path)."""
    order, st = trade.order, trade.orderStatus
    ref = order.orderRef or ""
    filled = decimal_from_float(st.filled) or ZERO
    remaining = decimal_from_float(st.remaining) or ZERO
    status = order_status(st.status, filled, remaining)
    code, reason = _last_error(trade)
    if status is OrderStatus.CANCELLED and code in REFUSALS and not filled:
        status = OrderStatus.REJECTED  # refused, with IB's reason: not a cancel the user asked for
    return OrderReport(client_order_id_of(ref), ref, order.orderId or None, order.permId or None,
                       status, st.status, filled, remaining,
                       decimal_from_float(st.avgFillPrice) if filled else None, reason)


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
    filled = decimal_from_float(st.filled) or ZERO
    total = decimal_from_float(order.totalQuantity) or ZERO
    if not filled:
        filled = decimal_from_float(order.filledQuantity) or ZERO
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


def _state_decimal(value: str | float) -> Decimal | None:
    """Return one of an OrderState's figures (IB sends the margins as text, the commissions as doubles)."""
    return decimal_from_text(value) if isinstance(value, str) else decimal_from_float(value)


def from_ib_order_state(state: ib_async.OrderState) -> OrderPreview:
    """Return the answer to a what-if order: IB's OrderState, its unset figures ``None``."""
    return OrderPreview(
        commission=_state_decimal(state.commission),
        min_commission=_state_decimal(state.minCommission),
        max_commission=_state_decimal(state.maxCommission),
        commission_currency=state.commissionCurrency or "",
        init_margin_change=_state_decimal(state.initMarginChange),
        maint_margin_change=_state_decimal(state.maintMarginChange),
        equity_with_loan_change=_state_decimal(state.equityWithLoanChange),
        init_margin_after=_state_decimal(state.initMarginAfter),
        maint_margin_after=_state_decimal(state.maintMarginAfter),
        equity_with_loan_after=_state_decimal(state.equityWithLoanAfter),
        warning=state.warningText or "",
    )


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
        lookup(EXEC_SIDES, execution.side, "execution side"),
        required_decimal("execution shares", execution.shares),
        required_decimal("execution price", execution.price),
        checks.utc_datetime("execution time", time),
        commission=commission,
        broker_order_id=execution.orderId or None,
        perm_id=execution.permId or None,
        account=execution.acctNumber or None,
    )
