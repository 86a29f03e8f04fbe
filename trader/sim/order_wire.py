"""Orders on the wire: the placeOrder request, and openOrder, orderStatus, completedOrder,
execDetails and commissionReport messages.

placeOrder and openOrder are the protocol's longest messages (about 120 fields
for a plain order) and several blocks appear only when an earlier field says
so (delta-neutral, scale, hedge, algo, conditions...). The parser and encoders
here follow the layouts field by field; docs/tws-protocol.md lists them. IB's
spellings become domain enums through the tables at the top (and back).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.domain import Action, OrderStatus, OrderType, TimeInForce
from trader.peer_text import clip
from trader.sim.catalogue import ContractQuery, SimInstrument
from trader.sim.client_requests import parse_contract
from trader.sim.encoders import Fields, tws_time
from trader.sim.msgids import ErrorCode, Out, ServerVersion
from trader.sim.orders import Execution, OrderTicket, SimOrder
from trader.sim.wire import UNSET_DOUBLE, FieldReader, WireError

__all__ = [
    "IB_ORDER_TYPES",
    "IB_STATUS",
    "IB_TIFS",
    "OrderRefused",
    "PlaceOrderRequest",
    "WhatIfState",
    "commission_report",
    "completed_order",
    "exec_details",
    "open_order",
    "order_status",
    "parse_place_order",
    "to_ticket",
]

# IB's spellings -> domain enums (unknown spellings are refused with error 387).
IB_ORDER_TYPES: dict[str, OrderType] = {
    "MKT": OrderType.MKT,
    "LMT": OrderType.LMT,
    "STP": OrderType.STP,
    "STP LMT": OrderType.STP_LMT,
    "STPLMT": OrderType.STP_LMT,
    "TRAIL": OrderType.TRAIL,
}
WIRE_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MKT: "MKT",
    OrderType.LMT: "LMT",
    OrderType.STP: "STP",
    OrderType.STP_LMT: "STP LMT",
    OrderType.TRAIL: "TRAIL",
}
IB_TIFS: dict[str, TimeInForce] = {
    "": TimeInForce.DAY,
    "DAY": TimeInForce.DAY,
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
}
IB_ACTIONS: dict[str, Action] = {"BUY": Action.BUY, "SELL": Action.SELL}
# Domain status -> what TWS reports. A partly filled order is "Submitted" with a
# non-zero filled quantity; a rejected one is reported "Inactive".
IB_STATUS: dict[OrderStatus, str] = {
    OrderStatus.PENDING_SUBMIT: "PendingSubmit",
    OrderStatus.PRE_SUBMITTED: "PreSubmitted",
    OrderStatus.SUBMITTED: "Submitted",
    OrderStatus.PARTIALLY_FILLED: "Submitted",
    OrderStatus.PENDING_CANCEL: "PendingCancel",
    OrderStatus.API_CANCELLED: "ApiCancelled",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.FILLED: "Filled",
    OrderStatus.INACTIVE: "Inactive",
    OrderStatus.REJECTED: "Inactive",
}


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """The parts of a placeOrder tws-sim acts on; IB spellings kept, checked by the engine."""

    order_id: int
    contract: ContractQuery
    action: str
    quantity: Decimal | None
    order_type: str
    limit_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    display_size: int | None
    outside_rth: bool
    hidden: bool
    good_after_time: str
    good_till_date: str
    oca_type: int
    all_or_none: bool
    min_qty: int | None
    trail_stop_price: Decimal | None
    trailing_percent: Decimal | None
    algo_strategy: str
    what_if: bool
    conditions: int


def _skip_tag_values(r: FieldReader, name: str) -> None:
    count = r.integer(f"{name}Count")
    if count < 0 or 2 * count > r.remaining:
        raise WireError(f"{r.what}: bad {name} count {count}")
    r.skip(2 * count, name)


def parse_place_order(r: FieldReader, version: int) -> PlaceOrderRequest:
    """Read placeOrder (id 3) at ``version``; raise WireError if the layout does not fit.

    Orders with conditions are read up to their condition count and returned
    for the caller to refuse: each condition type has its own length, which
    tws-sim does not model, so the rest of such a message is not read.
    """
    order_id = r.integer("orderId")
    contract = parse_contract(r)
    r.skip(2, "secIdType/secId")
    action = r.string("action").strip().upper()
    quantity = r.optional_decimal("totalQuantity")
    order_type = r.string("orderType").strip().upper()
    limit_price = r.optional_decimal("lmtPrice")
    aux_price = r.optional_decimal("auxPrice")
    tif = r.string("tif").strip().upper()
    oca_group = r.string("ocaGroup").strip()
    account = r.string("account").strip()
    r.skip(2, "openClose/origin")
    order_ref = r.string("orderRef")
    transmit = r.flag("transmit")
    parent_id = r.optional_integer("parentId") or 0
    r.skip(2, "blockOrder/sweepToFill")
    display_size = r.optional_integer("displaySize")
    r.skip(1, "triggerMethod")
    outside_rth = r.flag("outsideRth")
    hidden = r.flag("hidden")
    if contract.sec_type.upper() == "BAG":
        legs = r.integer("comboLegsCount")
        if legs < 0 or 8 * legs > r.remaining:
            raise WireError(f"{r.what}: bad combo leg count {legs}")
        r.skip(8 * legs, "comboLeg")
        order_legs = r.integer("orderComboLegsCount")
        if order_legs < 0 or order_legs > r.remaining:
            raise WireError(f"{r.what}: bad order combo leg count {order_legs}")
        r.skip(order_legs, "orderComboLeg")
        _skip_tag_values(r, "smartComboRoutingParams")
    r.skip(2, "sharesAllocation/discretionaryAmt")
    good_after_time = r.string("goodAfterTime").strip()
    good_till_date = r.string("goodTillDate").strip()
    r.skip(3, "faGroup/faMethod/faPercentage")
    if version < ServerVersion.FA_PROFILE_DESUPPORT:
        r.skip(1, "faProfile")
    r.skip(4, "modelCode/shortSaleSlot/designatedLocation/exemptCode")
    oca_type = r.optional_integer("ocaType") or 0
    r.skip(2, "rule80A/settlingFirm")
    all_or_none = r.flag("allOrNone")
    min_qty = r.optional_integer("minQty")
    r.skip(1, "percentOffset")
    r.skip(3, "eTradeOnly/firmQuoteOnly/nbboPriceCap")
    r.skip(7, "auctionStrategy/startingPrice/stockRefPrice/delta/stockRange*/override")
    r.skip(2, "volatility/volatilityType")
    delta_neutral_type = r.string("deltaNeutralOrderType").strip()
    r.skip(1, "deltaNeutralAuxPrice")
    if delta_neutral_type:
        r.skip(8, "deltaNeutral*")
    r.skip(2, "continuousUpdate/referencePriceType")
    trail_stop_price = r.optional_decimal("trailStopPrice")
    trailing_percent = r.optional_decimal("trailingPercent")
    r.skip(2, "scaleInitLevelSize/scaleSubsLevelSize")
    increment = r.optional_decimal("scalePriceIncrement")
    if increment is not None and increment > 0:
        r.skip(7, "scale*")
    r.skip(3, "scaleTable/activeStartTime/activeStopTime")
    hedge_type = r.string("hedgeType").strip()
    if hedge_type:
        r.skip(1, "hedgeParam")
    r.skip(4, "optOutSmartRouting/clearingAccount/clearingIntent/notHeld")
    if r.flag("deltaNeutralContractPresent"):
        r.skip(3, "deltaNeutralContract")
    algo_strategy = r.string("algoStrategy").strip()
    if algo_strategy:
        _skip_tag_values(r, "algoParams")
    r.skip(1, "algoId")
    what_if = r.flag("whatIf")
    r.skip(4, "orderMiscOptions/solicited/randomizeSize/randomizePrice")
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5, "pegBench*")
    conditions = r.optional_integer("conditionsCount") or 0
    request = PlaceOrderRequest(
        order_id=order_id,
        contract=contract,
        action=action,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        aux_price=aux_price,
        tif=tif,
        oca_group=oca_group,
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        display_size=display_size,
        outside_rth=outside_rth,
        hidden=hidden,
        good_after_time=good_after_time,
        good_till_date=good_till_date,
        oca_type=oca_type,
        all_or_none=all_or_none,
        min_qty=min_qty,
        trail_stop_price=trail_stop_price,
        trailing_percent=trailing_percent,
        algo_strategy=algo_strategy,
        what_if=what_if,
        conditions=conditions,
    )
    if conditions:
        return request  # unreadable tail: the caller refuses the order
    r.skip(8, "adjustedOrderType..extOperator")
    r.skip(3, "softDollarTier name/value, cashQty")
    r.skip(4, "mifid2*")
    r.skip(4, "dontUseAutoPriceForHedge/isOmsContainer/discretionaryUpToLimitPrice/usePriceMgmtAlgo")
    if version >= ServerVersion.DURATION:
        r.skip(1, "duration")
    if version >= ServerVersion.POST_TO_ATS:
        r.skip(1, "postToAts")
    if version >= ServerVersion.AUTO_CANCEL_PARENT:
        r.skip(1, "autoCancelParent")
    if version >= ServerVersion.ADVANCED_ORDER_REJECT:
        r.skip(1, "advancedErrorOverride")
    if version >= ServerVersion.MANUAL_ORDER_TIME:
        r.skip(1, "manualOrderTime")
    if version >= ServerVersion.PEGBEST_PEGMID_OFFSETS:
        if request.contract.exchange.upper() == "IBKRATS":
            r.skip(1, "minTradeQty")
        if order_type in ("PEG BEST", "PEGBEST"):
            r.skip(1, "minCompeteSize")
            offset = r.string("competeAgainstBestOffset").strip()
            if offset in ("Infinite", "Infinity", "inf"):
                r.skip(2, "midOffsetAtWhole/midOffsetAtHalf")
        elif order_type in ("PEG MID", "PEGMID"):
            r.skip(2, "midOffsetAtWhole/midOffsetAtHalf")
    r.expect_end()
    return request


class OrderRefused(Exception):
    """A placeOrder that is refused before it reaches the engine, with IB's code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def to_ticket(request: PlaceOrderRequest, client_id: int, instrument: SimInstrument) -> OrderTicket:
    """Turn a placeOrder into an engine ticket; raise OrderRefused with IB's code if it cannot be one."""
    if request.conditions:
        raise OrderRefused(ErrorCode.ORDER_REJECTED, "Order rejected - reason:order conditions are not supported by tws-sim")
    if request.algo_strategy:
        raise OrderRefused(ErrorCode.ORDER_REJECTED, "Order rejected - reason:algo orders are not supported by tws-sim")
    action = IB_ACTIONS.get(request.action)
    if action is None:
        raise OrderRefused(ErrorCode.VALIDATION_ERROR,
                           f"Error validating request:-'action' : cause - invalid action {clip(request.action)}")
    kind = IB_ORDER_TYPES.get(request.order_type)
    if kind is None:
        raise OrderRefused(ErrorCode.UNSUPPORTED_ORDER_TYPE, "Unsupported order type for this exchange and security type.")
    tif = IB_TIFS.get(request.tif)
    if tif is None:
        raise OrderRefused(ErrorCode.ORDER_REJECTED,
                           f"Order rejected - reason:time in force {clip(request.tif)} is not supported")
    if request.quantity is None or request.quantity <= 0:
        raise OrderRefused(ErrorCode.ZERO_SIZE, "The order size cannot be zero")
    stop = trail_amount = trail_percent = None
    if kind is OrderType.TRAIL:
        if request.trailing_percent is not None:
            trail_percent = request.trailing_percent
        else:
            trail_amount = request.aux_price
        stop = request.trail_stop_price
    elif kind in (OrderType.STP, OrderType.STP_LMT):
        stop = request.aux_price
    limit = request.limit_price if kind in (OrderType.LMT, OrderType.STP_LMT) else None
    return OrderTicket(
        client_id=client_id,
        order_id=request.order_id,
        instrument=instrument,
        action=action,
        quantity=request.quantity,
        order_type=kind,
        limit_price=limit,
        stop_price=stop,
        trail_amount=trail_amount,
        trail_percent=trail_percent,
        tif=tif,
        oca_group=request.oca_group,
        oca_type=request.oca_type,
        parent_id=request.parent_id,
        transmit=request.transmit,
        outside_rth=request.outside_rth,
        account=request.account,
        order_ref=request.order_ref,
    )


def _contract_block(inst: SimInstrument) -> Fields:
    c = inst.contract
    return [
        inst.conid, c.symbol, str(c.sec_type), inst.wire_expiry, inst.wire_strike, inst.wire_right,
        inst.wire_multiplier, c.exchange, c.currency, c.local_symbol, c.trading_class,
    ]


def _aux_price(sim: SimOrder) -> Decimal | None:
    t = sim.ticket
    if t.order_type is OrderType.TRAIL:
        return t.trail_amount
    return t.stop_price


@dataclass(frozen=True, slots=True)
class WhatIfState:
    """The orderState of IB's answer to a what-if order: margins (sent as text), commissions, a warning."""

    init_margin_before: Decimal
    maint_margin_before: Decimal
    equity_with_loan_before: Decimal
    init_margin_change: Decimal
    maint_margin_change: Decimal
    equity_with_loan_change: Decimal
    commission: Decimal
    commission_currency: str
    warning: str = ""

    def fields(self) -> Fields:
        """Return the 15 orderState fields that follow the status in openOrder."""
        after = (self.init_margin_before + self.init_margin_change,
                 self.maint_margin_before + self.maint_margin_change,
                 self.equity_with_loan_before + self.equity_with_loan_change)
        margins = [self.init_margin_before, self.maint_margin_before, self.equity_with_loan_before,
                   self.init_margin_change, self.maint_margin_change, self.equity_with_loan_change, *after]
        return [*(format(m, "f") for m in margins), self.commission, self.commission, self.commission,
                self.commission_currency, self.warning]


def open_order(version: int, sim: SimOrder, account: str, what_if: WhatIfState | None = None) -> Fields:
    """openOrder (id 5) for a plain (non-combo, non-algo) order; ~125 fields at 178.

    With ``what_if``, the answer to a what-if order: its whatIf flag set and
    its orderState carrying the margins and the commission (an order with a
    known commission gives it as the minimum and maximum too).
    """
    t = sim.ticket
    status = IB_STATUS[sim.status]
    state: Fields = what_if.fields() if what_if is not None else [
        "", "", "", "", "", "", "", "", "",  # margins before / change / after
        None, None, None, "", "",  # commission, min, max, commissionCurrency, warningText
    ]
    fields: Fields = [Out.OPEN_ORDER, t.order_id, *_contract_block(t.instrument)]
    fields += [
        t.action.value, t.quantity, WIRE_ORDER_TYPES[t.order_type], t.limit_price, _aux_price(sim),
        t.tif.value, t.oca_group, sim.order.account or account, "O", 0, t.order_ref,
        t.client_id, sim.perm_id, t.outside_rth, False, 0, "", "",  # hidden, discretionaryAmt, goodAfterTime, sharesAllocation
        "", "", "",  # faGroup, faMethod, faPercentage
    ]
    if version < ServerVersion.FA_PROFILE_DESUPPORT:
        fields.append("")  # faProfile
    fields += [
        "", "", "",  # modelCode, goodTillDate, rule80A
        None, "", 0, "", -1,  # percentOffset, settlingFirm, shortSaleSlot, designatedLocation, exemptCode
        0, None, None, None, None, None,  # auctionStrategy, startingPrice, stockRefPrice, delta, stockRange x2
        None, False, False, False, None, t.oca_type or 3,  # displaySize, blockOrder, sweepToFill, allOrNone, minQty, ocaType
        False, False, None,  # eTradeOnly, firmQuoteOnly, nbboPriceCap
        t.parent_id, 0,  # parentId, triggerMethod
        None, 0, "", None,  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False, 0,  # continuousUpdate, referencePriceType
        sim.trail_stop, t.trail_percent,  # trailStopPrice, trailingPercent
        None, "",  # basisPoints, basisPointsType
        "", 0, 0, 0,  # comboLegsDescrip, comboLegs, orderComboLegs, smartComboRoutingParams
        None, None, None,  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "", False, False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, deltaNeutralContract
        "",  # algoStrategy
        False, what_if is not None, status,  # solicited, whatIf, status
        *state,  # margins before / change / after, commission, min, max, commissionCurrency, warningText
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "", None, sim.trail_stop, None, None, None, None, 0,  # adjusted order, trigger, trailStop, lmtPriceOffset...
        "", "", "",  # softDollarTier name, value, displayName
        None, False, False, False, False,  # cashQty, dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpTo, usePriceMgmtAlgo
    ]
    if version >= ServerVersion.DURATION:
        fields.append(None)  # duration
    if version >= ServerVersion.POST_TO_ATS:
        fields.append(None)  # postToAts
    if version >= ServerVersion.AUTO_CANCEL_PARENT:
        fields.append(False)  # autoCancelParent
    if version >= ServerVersion.PEGBEST_PEGMID_OFFSETS:
        fields += [None, None, None, None, None]  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsets
    return fields


def order_status(sim: SimOrder) -> Fields:
    """orderStatus (id 3): 12 fields, no version field at these server versions."""
    order = sim.order
    return [
        Out.ORDER_STATUS, sim.order_id, IB_STATUS[sim.status], order.filled_quantity, order.remaining
        if not order.is_done else Decimal(0), order.avg_fill_price or Decimal(0), sim.perm_id,
        sim.ticket.parent_id, sim.last_fill_price or Decimal(0), sim.client_id, "", UNSET_DOUBLE,
    ]


def completed_order(version: int, sim: SimOrder, account: str) -> Fields:
    """completedOrder (id 101) for an order that is done."""
    t = sim.ticket
    fields: Fields = [Out.COMPLETED_ORDER, *_contract_block(t.instrument)]
    fields += [
        t.action.value, t.quantity, WIRE_ORDER_TYPES[t.order_type], t.limit_price, _aux_price(sim),
        t.tif.value, t.oca_group, sim.order.account or account, "O", 0, t.order_ref, sim.perm_id,
        t.outside_rth, False, 0, "",  # hidden, discretionaryAmt, goodAfterTime
        "", "", "",  # faGroup, faMethod, faPercentage
    ]
    if version < ServerVersion.FA_PROFILE_DESUPPORT:
        fields.append("")
    fields += [
        "", "", "", None, "", 0, "", -1,  # modelCode .. exemptCode
        None, None, None, None, None,  # startingPrice, stockRefPrice, delta, stockRange x2
        None, False, False, None, t.oca_type or 3,  # displaySize, sweepToFill, allOrNone, minQty, ocaType
        0, None, 0, "", None,  # triggerMethod, volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False, 0, sim.trail_stop, t.trail_percent,  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
        "", 0, 0, 0,  # combo legs
        None, None, None,  # scale
        "",  # hedgeType
        "", "", False, False,  # clearingAccount, clearingIntent, notHeld, deltaNeutralContract
        "",  # algoStrategy
        False, IB_STATUS[sim.status], False, False,  # solicited, status, randomizeSize, randomizePrice
        0,  # conditions
        sim.trail_stop, None, None, False, False,  # trailStopPrice, lmtPriceOffset, cashQty, dontUseAuto.., isOms..
        "", sim.order.filled_quantity, 0, False, "", False, False, None,  # .. parentPermId
        tws_time(sim.completed_time) if sim.completed_time else "", sim.completed_status,
    ]
    if version >= ServerVersion.PEGBEST_PEGMID_OFFSETS:
        fields += [None, None, None, None, None]
    return fields


def exec_details(version: int, req_id: int, execution: Execution) -> Fields:
    """execDetails (id 11); ``req_id`` -1 for a live fill, the request's id for reqExecutions."""
    inst = execution.instrument
    fields: Fields = [
        Out.EXECUTION_DATA, req_id, execution.order_id, *_contract_block(inst),
        execution.exec_id, tws_time(execution.time), execution.account, inst.contract.exchange,
        execution.side, execution.shares, execution.price, execution.perm_id, execution.client_id,
        0, execution.cum_qty, execution.avg_price, execution.order_ref, "", None, "", 2,
    ]
    if version >= ServerVersion.PENDING_PRICE_REVISION:
        fields.append(False)
    return fields


def commission_report(execution: Execution, realized_pnl: Decimal | None) -> Fields:
    """commissionReport (id 59): exactly 8 fields; realizedPNL unset for an opening fill."""
    return [
        Out.COMMISSION_REPORT, 1, execution.exec_id, execution.commission, execution.commission_currency,
        UNSET_DOUBLE if realized_pnl is None else realized_pnl, UNSET_DOUBLE, "",
    ]
