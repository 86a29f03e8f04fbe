"""Answers to each TWS request: what tws-sim sends back, in the order TWS sends it.

One method per request type, registered explicitly in ``_table``. Each takes
the session that asked and the parsed request, reads or changes the world
through the world (a :class:`~trader.sim.world_api.World`), and answers on the session. Errors are IB's: an unknown
contract is 200, a bad historical request 162, an unknown ticker id 300. The connection and
order requests, accounts and positions are answered here; contracts, market
data and history in :mod:`trader.sim.market_handlers`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from trader.domain import SecType
from trader.sim import encoders as enc
from trader.sim import order_wire as ow
from trader.sim.client_requests import (
    AccountSummaryRequest,
    AccountUpdatesMultiRequest,
    AccountUpdatesRequest,
    CancelOrderRequest,
    ExecutionsRequest,
    IdRequest,
    Plain,
    StartApi,
)
from trader.sim.market_handlers import MarketDataHandlers
from trader.sim.msgids import ErrorCode, In
from trader.sim.order_wire import OrderRefused, PlaceOrderRequest
from trader.sim.orders import OrderError, OrderTicket
from trader.sim.store_history import StoreHistory

if TYPE_CHECKING:
    from trader.sim.account import Account
    from trader.sim.session import Session
    from trader.sim.world_api import World

log = logging.getLogger(__name__)

__all__ = ["RequestHandlers"]

_FARM_NOTICES = (
    (ErrorCode.MARKET_DATA_FARM_OK, "Market data farm connection is OK:usfarm"),
    (ErrorCode.HMDS_FARM_OK, "HMDS data farm connection is OK:ushmds"),
    (ErrorCode.SEC_DEF_FARM_OK, "Sec-def data farm connection is OK:secdefil"),
)


class RequestHandlers(MarketDataHandlers):
    """Every request tws-sim answers, by message id: connection, orders and accounts here, the rest in the mixin."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.store_history = StoreHistory.of(world.market.replay)
        self._table: dict[In, Callable[[Session, Any], None]] = {
            In.START_API: self.start_api,
            In.REQ_CURRENT_TIME: self.current_time,
            In.REQ_MANAGED_ACCTS: self.managed_accounts,
            In.REQ_IDS: self.ids,
            In.REQ_CONTRACT_DATA: self.contract_details,
            In.REQ_MATCHING_SYMBOLS: self.matching_symbols,
            In.REQ_MKT_DATA: self.market_data,
            In.CANCEL_MKT_DATA: self.cancel_market_data,
            In.REQ_MARKET_DATA_TYPE: self.market_data_type,
            In.REQ_HISTORICAL_DATA: self.historical_data,
            In.CANCEL_HISTORICAL_DATA: self.cancel_historical_data,
            In.REQ_REAL_TIME_BARS: self.real_time_bars,
            In.CANCEL_REAL_TIME_BARS: self.cancel_real_time_bars,
            In.REQ_HEAD_TIMESTAMP: self.head_timestamp,
            In.PLACE_ORDER: self.place_order,
            In.CANCEL_ORDER: self.cancel_order,
            In.REQ_GLOBAL_CANCEL: self.global_cancel,
            In.REQ_OPEN_ORDERS: self.open_orders,
            In.REQ_ALL_OPEN_ORDERS: self.all_open_orders,
            In.REQ_AUTO_OPEN_ORDERS: self.ignore,
            In.REQ_COMPLETED_ORDERS: self.completed_orders,
            In.REQ_EXECUTIONS: self.executions,
            In.REQ_POSITIONS: self.positions,
            In.CANCEL_POSITIONS: self.cancel_positions,
            In.REQ_ACCT_DATA: self.account_updates,
            In.REQ_ACCOUNT_UPDATES_MULTI: self.account_updates_multi,
            In.CANCEL_ACCOUNT_UPDATES_MULTI: self.cancel_account_updates_multi,
            In.REQ_ACCOUNT_SUMMARY: self.account_summary,
            In.CANCEL_ACCOUNT_SUMMARY: self.cancel_account_summary,
        }

    def handle(self, session: Session, msg_id: In, request: Any) -> None:
        handler = self._table.get(msg_id)
        if handler is None:
            log.info("client %s: %s is not implemented by tws-sim", session.client_id, msg_id.name)
            session.error(-1, ErrorCode.VALIDATION_ERROR,
                          f"Error validating request:-'{msg_id.name}' : cause - not supported by tws-sim")
            return
        handler(session, request)

    def ignore(self, session: Session, request: Any) -> None:
        """Requests that need no answer here (cancelHistoricalData, reqAutoOpenOrders)."""

    # -- connection -------------------------------------------------------------------
    def start_api(self, session: Session, request: StartApi) -> None:
        if session.client_id is not None:
            session.error(-1, ErrorCode.VALIDATION_ERROR, "Error validating request:-'startApi' : cause - already started")
            return
        if not self.world.register(session, request.client_id):
            log.warning("client id %d is already in use: refusing %s", request.client_id, session.peer)
            session.error(-1, ErrorCode.CLIENT_ID_IN_USE,
                          "Unable to connect as the client id is already in use. Retry with a unique client id.")
            session.close()
            return
        log.info("client %d connected from %s (version %d)", request.client_id, session.peer, session.version)
        session.send(enc.next_valid_id(self.world.next_order_id(request.client_id)))
        session.send(enc.managed_accounts(list(self.world.accounts)))
        for code, text in _FARM_NOTICES:
            session.error(-1, code, text)

    def current_time(self, session: Session, request: Plain) -> None:
        # a store replay's "now" is the moment replayed, as IB's server clock was on that day (and its history's)
        now = self.store_history.now() if self.store_history is not None else self.world.clock()
        session.send(enc.current_time(int(now.timestamp())))

    def managed_accounts(self, session: Session, request: Plain) -> None:
        session.send(enc.managed_accounts(list(self.world.accounts)))

    def ids(self, session: Session, request: IdRequest) -> None:
        assert session.client_id is not None
        session.send(enc.next_valid_id(self.world.reserve_ids(session.client_id, request.count)))

    # -- orders ---------------------------------------------------------------------------
    def place_order(self, session: Session, request: PlaceOrderRequest) -> None:
        assert session.client_id is not None
        inst = self._resolve(session, request.order_id, request.contract)
        if inst is None:
            return
        if inst.contract.sec_type is SecType.IND:  # IB quotes an index but trades only its derivatives
            session.error(request.order_id, ErrorCode.ORDER_REJECTED,
                          f"Order rejected - reason:{inst.contract.symbol} is an index, which is not tradable")
            return
        try:
            ticket = ow.to_ticket(request, session.client_id, inst)
        except OrderRefused as exc:
            log.info("client %d order %d refused: %s", session.client_id, request.order_id, exc.text)
            session.error(request.order_id, exc.code, exc.text)
            return
        if ticket.account and ticket.account not in self.world.accounts:  # IB refuses an account not managed
            session.error(request.order_id, ErrorCode.VALIDATION_ERROR,
                          f"Error validating request:-'bd' : cause - Invalid account code {ticket.account}")
            return
        if request.what_if:
            self._what_if(session, ticket)
            return
        self.world.dispatch(self.world.engine.place(ticket))

    def _what_if(self, session: Session, ticket: OrderTicket) -> None:
        """Answer a what-if order as IB does: one openOrder whose orderState carries margins and commission.

        Nothing is placed; a refusal (a price off the tick grid: 110) is the
        error a real order would get. The margins are the account's the ticket
        names (the default one when it names none), as IB's are.
        """
        world = self.world
        preview = world.engine.preview(ticket)
        if isinstance(preview, OrderError):
            session.error(preview.order_id, preview.code, preview.text)
            return
        price = world.engine.price_estimate(ticket) or world.mark(ticket.instrument.conid)
        if price is None:
            session.error(ticket.order_id, ErrorCode.ORDER_REJECTED, "Order rejected - reason:no price to cost it at")
            return
        account = world.accounts.get(ticket.account, world.account)  # the ticket's (checked above), else the default
        values = {tag: value for tag, value, currency in account.values(world.mark, world.fx_rate)
                  if currency == account.base}
        signed = ticket.quantity * ticket.action.sign
        init, maint = account.margin_change(ticket.instrument, signed, price, world.fx_rate)
        commission = world.engine.commission(ticket, price)
        state = ow.WhatIfState(Decimal(values["InitMarginReq"]), Decimal(values["MaintMarginReq"]),
                               Decimal(values["EquityWithLoanValue"]), init, maint, -commission, commission,
                               world.engine.commission_currency)
        session.send(ow.open_order(session.version, preview, account.id, state))

    def cancel_order(self, session: Session, request: CancelOrderRequest) -> None:
        assert session.client_id is not None
        self.world.dispatch(self.world.engine.cancel(session.client_id, request.order_id, "cancelled by client"))

    def global_cancel(self, session: Session, request: Plain) -> None:
        self.world.dispatch(self.world.engine.cancel_all())

    def _send_open_orders(self, session: Session, client_id: int | None) -> None:
        engine, account = self.world.engine, self.world.account.id
        for sim in engine.open_orders(client_id):
            session.send(ow.open_order(session.version, sim, account))
            session.send(ow.order_status(sim))
        session.send(enc.open_order_end())

    def open_orders(self, session: Session, request: Plain) -> None:
        self._send_open_orders(session, session.client_id)

    def all_open_orders(self, session: Session, request: Plain) -> None:
        self._send_open_orders(session, None)

    def completed_orders(self, session: Session, request: Plain) -> None:
        for sim in self.world.engine.completed_orders():
            session.send(ow.completed_order(session.version, sim, self.world.account.id))
        session.send(enc.completed_orders_end())

    def executions(self, session: Session, request: ExecutionsRequest) -> None:
        for execution in self.world.engine.executions:
            c = execution.instrument.contract
            if request.client_id and execution.client_id != request.client_id:
                continue
            if request.symbol and request.symbol.upper() != c.symbol.upper():
                continue
            if request.sec_type and request.sec_type.upper() != str(c.sec_type):
                continue
            if request.side and request.side.upper() not in (execution.side, execution.action.value):
                continue
            if request.account and request.account != execution.account:
                continue
            session.send(ow.exec_details(session.version, request.req_id, execution))
            session.send(ow.commission_report(execution, None))
        session.send(enc.exec_details_end(request.req_id))

    # -- account --------------------------------------------------------------------------
    def positions(self, session: Session, request: Plain) -> None:
        for account in self.world.accounts.values():
            for holding in account.holdings.values():
                session.send(enc.position(account.id, holding.instrument, holding.quantity, holding.avg_cost))
        session.send(enc.position_end())
        session.positions = True

    def cancel_positions(self, session: Session, request: Plain) -> None:
        session.positions = False

    def updates_account(self, session: Session) -> Account:
        """Return the account whose updates ``session`` asked for (reqAccountUpdates: one at a time, as IB)."""
        return self.world.accounts.get(session.account_updates_of, self.world.account)

    def _unknown_account(self, session: Session, request_id: int, what: str, account: str) -> bool:
        """Send IB's refusal of an account the login does not manage; return whether it was one."""
        if not account or account == "All" or account in self.world.accounts:
            return False
        session.error(request_id, ErrorCode.VALIDATION_ERROR,
                      f"Error validating request:-'{what}' : cause - unknown account {account}")
        return True

    def send_account(self, session: Session, only: int | None = None) -> None:
        """Push account values and portfolio lines (one instrument's, with ``only``)."""
        world, account = self.world, self.updates_account(session)
        for tag, value, currency in account.values(world.mark, world.fx_rate):
            session.send(enc.account_value(tag, value, currency, account.id))
        for row in account.rows(world.mark):
            holding = row.holding
            if only is not None and holding.instrument.conid != only:
                continue
            session.send(enc.portfolio_value(holding.instrument, holding.quantity, row.market_price,
                                             row.market_value, holding.avg_cost, row.unrealized,
                                             holding.realized, account.id))
        session.send(enc.account_update_time(world.clock()))

    def account_updates(self, session: Session, request: AccountUpdatesRequest) -> None:
        if self._unknown_account(session, -1, "account updates", request.account):
            return
        account = self.world.accounts.get(request.account, self.world.account)
        session.account_updates, session.account_updates_of = request.subscribe, account.id
        if request.subscribe:
            self.send_account(session)
            session.send(enc.account_download_end(account.id))

    def account_updates_multi(self, session: Session, request: AccountUpdatesMultiRequest) -> None:
        world = self.world
        if self._unknown_account(session, request.req_id, "account updates multi", request.account):
            return
        chosen = world.accounts.get(request.account)
        for account in [chosen] if chosen is not None else world.accounts.values():
            for tag, value, currency in account.values(world.mark, world.fx_rate):
                session.send(enc.account_update_multi(request.req_id, account.id, request.model, tag, value,
                                                      currency))
        session.send(enc.account_update_multi_end(request.req_id))
        session.account_multi.add(request.req_id)

    def cancel_account_updates_multi(self, session: Session, request: Plain) -> None:
        session.account_multi.discard(request.req_id)

    def account_summary(self, session: Session, request: AccountSummaryRequest) -> None:
        world = self.world
        wanted = {t.strip() for t in request.tags.split(",") if t.strip()}
        everything = any(t.startswith("$LEDGER") for t in wanted)
        for account in world.accounts.values():  # the group "All": every account managed
            for tag, value, currency in account.values(world.mark, world.fx_rate):
                if tag in wanted or (everything and tag == "CashBalance"):
                    session.send(enc.account_summary(request.req_id, account.id, tag, value, currency))
        session.send(enc.account_summary_end(request.req_id))
        session.account_summaries.add(request.req_id)

    def cancel_account_summary(self, session: Session, request: Plain) -> None:
        session.account_summaries.discard(request.req_id)
