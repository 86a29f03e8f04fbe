"""Answers to each TWS request: what tws-sim sends back, in the order TWS sends it.

One method per request type, registered explicitly in ``_table``. Each takes
the session that asked and the parsed request, reads or changes the world
through the world (a :class:`~trader.sim.world_api.World`), and answers on the session. Errors are IB's: an unknown
contract is 200, a bad historical request 162, an unknown ticker id 300.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
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
    ContractDetailsRequest,
    ExecutionsRequest,
    HeadTimestampRequest,
    HistoricalDataRequest,
    IdRequest,
    MarketDataRequest,
    MarketDataTypeRequest,
    MatchingSymbolsRequest,
    Plain,
    RealTimeBarsRequest,
    StartApi,
)
from trader.sim.history import (
    BAR_SECONDS,
    HistoryError,
    HistoryRequest,
    build_bars,
    check_keep_up_to_date,
)
from trader.sim.market_state import record_minute
from trader.sim.msgids import ErrorCode, In
from trader.sim.order_wire import OrderRefused, PlaceOrderRequest
from trader.sim.orders import OrderError, OrderTicket
from trader.sim.subscriptions import BarStream, MarketDataSubscription, RealTimeBarStream

if TYPE_CHECKING:
    from trader.sim.account import Account
    from trader.sim.catalogue import ContractQuery, SimInstrument
    from trader.sim.market_state import MarketState
    from trader.sim.session import Session
    from trader.sim.world_api import World

log = logging.getLogger(__name__)

__all__ = ["RequestHandlers"]

_NO_DEFINITION = "No security definition has been found for the request"
BAR_UPDATE_INTERVAL = 1.0  # seconds between updates of a keepUpToDate bar
REALTIME_BAR_SECONDS = 5  # the only size IB serves
HEAD_TIMESTAMP = datetime(2000, 1, 3, 14, 30, tzinfo=UTC)  # where every instrument's history begins
_FARM_NOTICES = (
    (ErrorCode.MARKET_DATA_FARM_OK, "Market data farm connection is OK:usfarm"),
    (ErrorCode.HMDS_FARM_OK, "HMDS data farm connection is OK:ushmds"),
    (ErrorCode.SEC_DEF_FARM_OK, "Sec-def data farm connection is OK:secdefil"),
)


def _no_data(inst: SimInstrument, what_to_show: str) -> str:
    """Return IB's text for a historical request whose range holds no bars."""
    name = inst.contract.local_symbol if inst.contract.sec_type is SecType.CASH else inst.contract.symbol
    return (f"Historical Market Data Service error message:HMDS query returned no data: "
            f"{name}@{inst.contract.exchange} {what_to_show.strip().title()}")


class RequestHandlers:
    """Every request tws-sim answers, by message id."""

    def __init__(self, world: World) -> None:
        self.world = world
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
        session.send(enc.current_time(int(self.world.clock().timestamp())))

    def managed_accounts(self, session: Session, request: Plain) -> None:
        session.send(enc.managed_accounts(list(self.world.accounts)))

    def ids(self, session: Session, request: IdRequest) -> None:
        assert session.client_id is not None
        session.send(enc.next_valid_id(self.world.reserve_ids(session.client_id, request.count)))

    # -- contracts ----------------------------------------------------------------------
    def _resolve(self, session: Session, req_id: int, query: ContractQuery) -> SimInstrument | None:
        """Return the one instrument ``query`` names, or answer error 200 and return None (an expired one too)."""
        found = self._listed(query)
        if len(found) == 1:
            return found[0]
        if found:
            session.error(req_id, ErrorCode.NO_SECURITY_DEFINITION,
                          f"The contract description specified for {query.symbol} is ambiguous.")
        else:
            session.error(req_id, ErrorCode.NO_SECURITY_DEFINITION, _NO_DEFINITION)
        return None

    def _listed(self, query: ContractQuery) -> list[SimInstrument]:
        # IB answers for contracts still trading: past its last trade a contract has no definition (error 200).
        now = self.world.clock()
        return [inst for inst in self.world.catalogue.match(query) if not inst.expired(now)]

    def contract_details(self, session: Session, request: ContractDetailsRequest) -> None:
        found = self._listed(request.contract)
        if not found:
            session.error(request.req_id, ErrorCode.NO_SECURITY_DEFINITION, _NO_DEFINITION)
            return
        for inst in found:
            session.send(enc.contract_details(session.version, request.req_id, inst))
        session.send(enc.contract_details_end(request.req_id))

    def matching_symbols(self, session: Session, request: MatchingSymbolsRequest) -> None:
        catalogue = self.world.catalogue
        found = catalogue.search(request.pattern)
        session.send(enc.symbol_samples(session.version, request.req_id, found, catalogue))

    # -- market data ----------------------------------------------------------------------
    def market_data(self, session: Session, request: MarketDataRequest) -> None:
        if request.req_id in session.market_data:
            session.error(request.req_id, ErrorCode.DUPLICATE_TICKER_ID,
                          f"Error processing request:-'bC' : cause - Duplicate ticker id {request.req_id}")
            return
        inst = self._resolve(session, request.req_id, request.contract)
        if inst is None:
            return
        delayed = session.market_data_type in (3, 4)
        session.send(enc.market_data_type(request.req_id, 3 if delayed else 1))
        sub = MarketDataSubscription(request.req_id, inst.conid, delayed)
        session.send_ticks(sub, self.world.market.state(inst.conid))
        if request.snapshot or request.regulatory_snapshot:
            session.send(enc.tick_snapshot_end(request.req_id))
        else:
            session.market_data[request.req_id] = sub

    def cancel_market_data(self, session: Session, request: Plain) -> None:
        if session.market_data.pop(request.req_id, None) is None:
            session.error(request.req_id, ErrorCode.NO_TICKER_ID, f"Can't find EId with tickerId:{request.req_id}")

    def market_data_type(self, session: Session, request: MarketDataTypeRequest) -> None:
        if request.data_type not in (1, 2, 3, 4):
            session.error(-1, ErrorCode.VALIDATION_ERROR,
                          f"Error validating request:-'market data type' : cause - invalid type {request.data_type}")
            return
        session.market_data_type = request.data_type

    def historical_data(self, session: Session, request: HistoricalDataRequest) -> None:
        inst = self._resolve(session, request.req_id, request.contract)
        if inst is None:
            return
        refused = self.world.pacing.check(inst.conid, request.contract.exchange, request.end, request.duration,
                                          request.bar_size, request.what_to_show, request.use_rth)
        if refused is not None:
            session.error(request.req_id, ErrorCode.HISTORICAL_DATA_ERROR, refused)
            return
        now = self.world.clock()
        try:
            if request.keep_up_to_date:
                check_keep_up_to_date(request.bar_size)
            history = HistoryRequest.parse(request.end, request.duration, now, request.bar_size,
                                           request.what_to_show, request.format_date, request.use_rth)
            if history.end <= HEAD_TIMESTAMP:  # before the data begins (see head_timestamp)
                raise HistoryError(_no_data(inst, request.what_to_show))
            state = self.world.market.state(inst.conid)
            record_minute(state, now, 0.0, 0)  # the minute in progress has its bar before its first tick, as at IB
            bars = build_bars(state, self.world.market.seed, history, self.world.market.hours(inst.conid))
            if not bars and not request.keep_up_to_date:  # IB answers an empty range with 162, not with no bars
                raise HistoryError(_no_data(inst, request.what_to_show))
        except HistoryError as exc:
            session.error(request.req_id, ErrorCode.HISTORICAL_DATA_ERROR, str(exc))
            return
        start = history.end.timestamp() - history.duration_seconds
        session.send(enc.historical_data(
            request.req_id, enc.tws_time(_from_epoch(start)), enc.tws_time(history.end), bars))
        if request.keep_up_to_date:
            session.bar_streams[request.req_id] = BarStream(
                request.req_id, inst.conid, request.bar_size, request.what_to_show, request.format_date,
                now.timestamp(), request.use_rth)

    def cancel_historical_data(self, session: Session, request: Plain) -> None:
        session.bar_streams.pop(request.req_id, None)

    def send_bar_update(self, session: Session, stream: BarStream) -> None:
        """Send the forming bar of a keepUpToDate request (at most once a second)."""
        now = self.world.clock()
        if now.timestamp() - stream.last_sent < BAR_UPDATE_INTERVAL:
            return
        stream.last_sent = now.timestamp()
        state = self.world.market.state(stream.conid)
        request = HistoryRequest(now, BAR_SECONDS[stream.bar_size], stream.bar_size, stream.what_to_show,
                                 stream.format_date, stream.use_rth)
        try:
            bars = build_bars(state, self.world.market.seed, request, self.world.market.hours(stream.conid))
        except HistoryError as exc:
            log.warning("client %s: bar stream %d stopped: %s", session.client_id, stream.req_id, exc)
            session.bar_streams.pop(stream.req_id, None)
            session.error(stream.req_id, ErrorCode.HISTORICAL_DATA_ERROR, str(exc))
            return
        if bars:
            session.send(enc.historical_data_update(stream.req_id, bars[-1]))

    def real_time_bars(self, session: Session, request: RealTimeBarsRequest) -> None:
        inst = self._resolve(session, request.req_id, request.contract)
        if inst is None:
            return
        what = request.what_to_show.upper()
        if request.bar_size != REALTIME_BAR_SECONDS or what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
            session.error(request.req_id, ErrorCode.VALIDATION_ERROR,
                          f"Error validating request:-'realtime bars' : cause - only {REALTIME_BAR_SECONDS}-second "
                          f"TRADES, MIDPOINT, BID or ASK bars (got {request.bar_size}, {what})")
            return
        session.realtime_bars[request.req_id] = RealTimeBarStream(request.req_id, inst.conid, what)

    def cancel_real_time_bars(self, session: Session, request: Plain) -> None:
        session.realtime_bars.pop(request.req_id, None)

    def update_realtime_bar(self, session: Session, stream: RealTimeBarStream, state: MarketState) -> None:
        """Fold the market's latest step into the 5-second bar; send the bar when its time is over."""
        now = int(self.world.clock().timestamp())
        start = now - now % REALTIME_BAR_SECONDS
        if stream.start is not None and start > stream.start and stream.samples:
            volume = state.volume - stream.volume_at_start if stream.what_to_show == "TRADES" else -1
            session.send(enc.realtime_bar(stream.req_id, stream.start, stream.open, stream.high, stream.low,
                                          stream.close, volume, stream.price_sum / stream.samples, stream.trades))
        price = _bar_price(state, stream.what_to_show)
        if stream.start is None or start > stream.start:
            stream.start, stream.samples, stream.price_sum, stream.trades = start, 0, 0.0, 0
            stream.open = stream.high = stream.low = price
            stream.volume_at_start = stream.last_volume = state.volume
        stream.high, stream.low, stream.close = max(stream.high, price), min(stream.low, price), price
        stream.price_sum += price
        stream.samples += 1
        if state.volume > stream.last_volume:  # a trade printed since the last step
            stream.trades += 1
        stream.last_volume = state.volume

    def head_timestamp(self, session: Session, request: HeadTimestampRequest) -> None:
        inst = self._resolve(session, request.req_id, request.contract)
        if inst is not None:
            session.send(enc.head_timestamp(request.req_id, HEAD_TIMESTAMP.strftime("%Y%m%d-%H:%M:%S")))

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


def _bar_price(state: MarketState, what: str) -> float:
    if what == "BID":
        return float(state.bid)
    if what == "ASK":
        return float(state.ask)
    if what == "TRADES" and state.last is not None:
        return float(state.last)
    return float(state.mid)


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
