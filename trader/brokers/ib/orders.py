"""IB orders: this session's ib_async Trades by client order id, and a new order registered before its send.

ib_async's ``IB.placeOrder`` sends first, then builds the order's ``Trade``,
formats all of it into a log line (logging on or not) and emits
``newOrderEvent``. On this class of machine the broker, woken by the send,
usually takes the CPU at once, so what the sender does afterwards waits for
the broker, and the broker's answer waits for that. :func:`send_new` does it
the other way round: the Trade is registered with ib_async first, where the
status reports will find it, and the send comes last; nothing is logged and no
``newOrderEvent`` emitted (the desk books its own orders). With the desk's and
the RPC client's own sends last and :class:`PlacedTrade`'s short repr, 5-7%
off the place_order round trip (``bench.trader_ab``).

That registration writes ib_async's own state, which is not its public API:
``wrapper.trades`` keyed by ``wrapper.orderKey(clientId, orderId, permId)``,
``wrapper.clientId`` and ``wrapper.defaultTimezone``, and the Trade's
constructor. ``pyproject.toml`` pins ib_async to the minor version this was
tested with, and ``tests/brokers/test_ib_async_assumptions.py`` checks each
assumption, so an upgrade fails a test instead of a trade.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Sequence

from ib_async import IB, Contract, Order, OrderStatus, RequestError, Trade, TradeLogEntry

from trader import domain
from trader.brokers.ib import parsing
from trader.brokers.records import OrderPreview
from trader.errors import BrokerError, NotFound, Timeout

__all__ = ["IbOrders", "PlacedTrade", "send_new"]


class PlacedTrade(Trade):
    """The ``Trade`` of an order sent by :func:`send_new`: the same, with a one-line repr.

    ib_async puts the Trade into an f-string at every status report, logging
    on or not; its generated repr compares each of the order's ~130 fields
    with its default. This one names the order in a line.
    """

    def __repr__(self) -> str:
        order = self.order
        return (f"Trade({self.contract.symbol} {order.action} {order.totalQuantity:g} {order.orderType} "
                f"id {order.orderId} ref {order.orderRef!r}: {self.orderStatus.status})")


def send_new(ib: IB, contract: Contract, order: Order) -> Trade:
    """Register a new order's Trade with ib_async, then send the order; return the Trade ib_async keeps up to date.

    An order id ib_async knows already is a modification: it goes through
    ``ib.placeOrder``. A send that fails leaves nothing registered.
    """
    wrapper = ib.wrapper
    order_id = order.orderId or ib.client.getReqId()
    key = wrapper.orderKey(wrapper.clientId, order_id, order.permId)
    if key in wrapper.trades:
        return ib.placeOrder(contract, order)
    order.clientId, order.orderId = wrapper.clientId, order_id
    status = OrderStatus(orderId=order_id, status=OrderStatus.PendingSubmit)
    now = datetime.datetime.now(wrapper.defaultTimezone)
    trade = PlacedTrade(contract, order, status, [], [TradeLogEntry(now, status.status)])
    wrapper.trades[key] = trade
    try:
        ib.client.placeOrder(order_id, contract, order)
    except BaseException:
        del wrapper.trades[key]
        raise
    return trade


class IbOrders:
    """The orders this IB session can modify and cancel, by client order id; placing, modifying, cancelling.

    A handle (the order's Trade) comes from a placement, from a status report,
    or from what IB lists as the connection is made (:meth:`index`); all are
    forgotten with the connection (:meth:`forget`), as ib_async forgets its
    Trades.
    """

    def __init__(self, ib: IB, contract_of: Callable[[domain.Contract], Contract]) -> None:
        self.ib = ib
        self.contract_of = contract_of
        self._trades: dict[str, Trade] = {}

    def has(self, coid: str) -> bool:
        """Return whether the order has a handle in this session."""
        return coid in self._trades

    def order_id(self, coid: str) -> int | None:
        """Return the IB order id of the order's handle, or None."""
        trade = self._trades.get(coid)
        return trade.order.orderId if trade is not None else None

    def track(self, coid: str, trade: Trade) -> None:
        """Keep ``trade`` as the handle of ``coid`` unless it has one (a status report's)."""
        self._trades.setdefault(coid, trade)

    def index(self) -> None:
        """Take the handles of every order of ours ib_async holds (after connecting: IB's open orders)."""
        for trade in self.ib.trades():
            coid = parsing.client_order_id_of(trade.order.orderRef or "")
            if coid is not None and trade.order.orderId:
                self._trades[coid] = trade

    def forget(self) -> None:
        """Drop every handle: the connection, and ib_async's Trades with it, are gone."""
        self._trades.clear()

    def place(self, orders: Sequence[domain.Order]) -> None:
        """Send one order or a bracket (entry first): children under the entry's id, only the last transmitting.

        Every IB order is built before the first send; each is registered
        with ib_async before its own send (see :func:`send_new`). A send that
        fails raises; the orders before it were sent, and have their handles.
        """
        last = len(orders) - 1
        if last == 0:  # one order, the usual case: nothing to link, no list to build
            order = orders[0]
            contract = self.contract_of(order.contract)
            ib_order = parsing.to_ib_order(order, order_id=order.broker_order_id or 0)
            self._trades[order.client_order_id] = send_new(self.ib, contract, ib_order)
            return
        entry_id = orders[0].broker_order_id or 0
        prepared = [(order.client_order_id, self.contract_of(order.contract),
                     parsing.to_ib_order(order, order_id=order.broker_order_id or 0,
                                         parent_order_id=entry_id if i else 0, transmit=(i == last)))
                    for i, order in enumerate(orders)]
        trades = self._trades
        for coid, contract, ib_order in prepared:
            trades[coid] = send_new(self.ib, contract, ib_order)

    async def what_if(self, order: domain.Order, timeout: float) -> OrderPreview:
        """Ask IB what ``order`` would cost (a what-if order: nothing is placed, no Trade is kept).

        ib_async sends it under a request id of its own and answers with the
        openOrder's OrderState; IB's refusal (error 110 for a price off the
        tick grid, 201...) is a BrokerError carrying IB's code.
        """
        ib_order = parsing.to_ib_order(order, order_id=0)
        try:
            state = await asyncio.wait_for(self.ib.whatIfOrderAsync(self.contract_of(order.contract), ib_order),
                                           timeout)
        except RequestError as exc:
            raise BrokerError(f"IB refused the what-if order: {exc.message} (IB error {exc.code})",
                              code=exc.code) from None
        except TimeoutError:
            raise Timeout(f"IB did not answer the what-if order within {timeout:.0f} s") from None
        return parsing.from_ib_order_state(state)

    def _trade(self, coid: str) -> Trade:
        trade = self._trades.get(coid)
        if trade is None:
            raise NotFound(f"order {coid} is not known to this IB session", client_order_id=coid)
        return trade

    def modify(self, order: domain.Order) -> None:
        """Re-send a working order with ``order``'s quantity and prices, under its IB order id."""
        trade = self._trade(order.client_order_id)
        ib_order = trade.order
        ib_order.totalQuantity = float(order.quantity)
        fresh = parsing.to_ib_order(order, order_id=ib_order.orderId, parent_order_id=ib_order.parentId)
        for attr in ("lmtPrice", "auxPrice", "trailingPercent", "trailStopPrice"):
            setattr(ib_order, attr, getattr(fresh, attr))
        self.ib.placeOrder(trade.contract, ib_order)  # an id ib_async knows: a modification

    def cancel(self, coid: str) -> None:
        """Ask IB to cancel the order."""
        self.ib.cancelOrder(self._trade(coid).order)
