"""Orders reported on the wire: openOrder, orderStatus, completedOrder, execDetails and commissionReport.

openOrder is the protocol's longest message (about 125 fields for a plain
order). The encoders here follow the layouts field by field;
docs/tws-protocol.md lists them. Domain enums become IB's spellings through
the tables at the top. The placeOrder request, parsed and turned into a
ticket, is :mod:`trader.sim.place_order`'s (its names are re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.domain import OrderStatus, OrderType
from trader.sim.catalogue import SimInstrument
from trader.sim.encoders import Fields, tws_time
from trader.sim.msgids import Out, ServerVersion
from trader.sim.orders import Execution, SimOrder
from trader.sim.place_order import (
    IB_ACTIONS,
    IB_ORDER_TYPES,
    IB_TIFS,
    OrderRefused,
    PlaceOrderRequest,
    parse_place_order,
    to_ticket,
)
from trader.sim.wire import UNSET_DOUBLE

__all__ = [
    "IB_ACTIONS",
    "IB_ORDER_TYPES",
    "IB_STATUS",
    "IB_TIFS",
    "WIRE_ORDER_TYPES",
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

# Domain order types -> what TWS reports.
WIRE_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MKT: "MKT",
    OrderType.LMT: "LMT",
    OrderType.STP: "STP",
    OrderType.STP_LMT: "STP LMT",
    OrderType.TRAIL: "TRAIL",
}
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
