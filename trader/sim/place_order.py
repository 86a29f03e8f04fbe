"""placeOrder on the wire: the request read field by field, and turned into an engine ticket.

placeOrder is the protocol's longest request (about 120 fields for a plain
order) and several blocks appear only when an earlier field says so
(delta-neutral, scale, hedge, algo, conditions...). The parser follows the
layout field by field; docs/tws-protocol.md lists it. IB's spellings become
domain enums through the tables at the top; the way back, and the messages
that report orders, are in :mod:`trader.sim.order_wire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.domain import Action, OrderType, TimeInForce
from trader.peer_text import clip
from trader.sim.catalogue import ContractQuery, SimInstrument
from trader.sim.client_requests import parse_contract
from trader.sim.msgids import ErrorCode, ServerVersion
from trader.sim.orders import OrderTicket
from trader.sim.wire import FieldReader, WireError

__all__ = [
    "IB_ACTIONS",
    "IB_ORDER_TYPES",
    "IB_TIFS",
    "OrderRefused",
    "PlaceOrderRequest",
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
IB_TIFS: dict[str, TimeInForce] = {
    "": TimeInForce.DAY,
    "DAY": TimeInForce.DAY,
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
}
IB_ACTIONS: dict[str, Action] = {"BUY": Action.BUY, "SELL": Action.SELL}


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
