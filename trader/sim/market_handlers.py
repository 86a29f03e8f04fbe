"""Answers to contract, market data and history requests: what tws-sim sends back for each.

:class:`MarketDataHandlers` resolves the contract a request names (error 200 for
none, or for an expired one), answers contract details and symbol searches,
streams ticks, historical bars (kept up to date on request) and 5-second
real-time bars. A bad historical request is IB's error 162. In a replay from
the market store the replayed instruments' history is the store's
(:mod:`trader.sim.store_history`); every other instrument's is
:mod:`trader.sim.history`'s synthetic past joined to the live market.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trader.sim import encoders as enc
from trader.sim.client_requests import (
    ContractDetailsRequest,
    HeadTimestampRequest,
    HistoricalDataRequest,
    MarketDataRequest,
    MarketDataTypeRequest,
    MatchingSymbolsRequest,
    Plain,
    RealTimeBarsRequest,
)
from trader.sim.history import (
    BAR_SECONDS,
    HistoryError,
    HistoryRequest,
    build_bars,
    check_keep_up_to_date,
    no_data,
)
from trader.sim.market_state import record_minute
from trader.sim.msgids import ErrorCode
from trader.sim.store_history import StoreHistory
from trader.sim.subscriptions import BarStream, MarketDataSubscription, RealTimeBarStream

if TYPE_CHECKING:
    from trader.sim.catalogue import ContractQuery, SimInstrument
    from trader.sim.market_state import MarketState
    from trader.sim.session import Session
    from trader.sim.world_api import World

log = logging.getLogger(__name__)

__all__ = ["BAR_UPDATE_INTERVAL", "HEAD_TIMESTAMP", "REALTIME_BAR_SECONDS", "MarketDataHandlers"]

_NO_DEFINITION = "No security definition has been found for the request"
BAR_UPDATE_INTERVAL = 1.0  # seconds between updates of a keepUpToDate bar
REALTIME_BAR_SECONDS = 5  # the only size IB serves
HEAD_TIMESTAMP = datetime(2000, 1, 3, 14, 30, tzinfo=UTC)  # where every instrument's history begins


class MarketDataHandlers:
    """The contract, market data and history requests, answered from ``world``."""

    world: World
    store_history: StoreHistory | None  # a store replay's: the replayed instruments' history

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

    def _stored(self, conid: int) -> StoreHistory | None:
        """Return the store history that answers for ``conid`` (replayed from the store), else None."""
        stored = self.store_history
        return stored if stored is not None and stored.covers(conid) else None

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
        stored = self._stored(inst.conid)
        try:
            if request.keep_up_to_date:
                check_keep_up_to_date(request.bar_size)
            history = HistoryRequest.parse(request.end, request.duration, stored.now() if stored else now,
                                           request.bar_size, request.what_to_show, request.format_date,
                                           request.use_rth)
            state = self.world.market.state(inst.conid)
            if history.end <= HEAD_TIMESTAMP:  # before the data begins (see head_timestamp)
                raise HistoryError(no_data(state, request.what_to_show))
            hours = self.world.market.hours(inst.conid)
            if stored is not None:
                bars = stored.bars(state, history, hours, empty_ok=request.keep_up_to_date)
            else:
                record_minute(state, now, 0.0, 0)  # the minute in progress has its bar before its first tick, as IB
                bars = build_bars(state, self.world.market.seed, history, hours)
            if not bars and not request.keep_up_to_date:  # IB answers an empty range with 162, not with no bars
                raise HistoryError(no_data(state, request.what_to_show))
        except HistoryError as exc:
            session.error(request.req_id, ErrorCode.HISTORICAL_DATA_ERROR, str(exc))
            return
        start = history.end.timestamp() - history.duration_seconds
        session.send(enc.historical_data(
            request.req_id, enc.tws_time(_from_epoch(start)), enc.tws_time(history.end), bars))
        if request.keep_up_to_date:
            stream = BarStream(request.req_id, inst.conid, request.bar_size, request.what_to_show,
                               request.format_date, now.timestamp(), request.use_rth)
            if stored is not None:
                stream.data_from = _bar_start(history.end, request.bar_size)
            session.bar_streams[request.req_id] = stream

    def cancel_historical_data(self, session: Session, request: Plain) -> None:
        session.bar_streams.pop(request.req_id, None)

    def send_bar_update(self, session: Session, stream: BarStream) -> None:
        """Send the forming bar of a keepUpToDate request (at most once a second).

        In a store replay the bars completed since the last update go first, so a
        replay faster than one bar a second skips none.
        """
        now = self.world.clock()
        if now.timestamp() - stream.last_sent < BAR_UPDATE_INTERVAL:
            return
        stream.last_sent = now.timestamp()
        state = self.world.market.state(stream.conid)
        hours = self.world.market.hours(stream.conid)
        size = BAR_SECONDS[stream.bar_size]
        stored = self._stored(stream.conid)
        try:
            if stored is not None:
                data_now = stored.now()
                since = size if stream.data_from is None else max(size, int(data_now.timestamp()) - stream.data_from)
                request = HistoryRequest(data_now, since, stream.bar_size, stream.what_to_show, stream.format_date,
                                         stream.use_rth)
                bars = stored.bars(state, request, hours, empty_ok=True)
                stream.data_from = _bar_start(data_now, stream.bar_size)
            else:
                request = HistoryRequest(now, size, stream.bar_size, stream.what_to_show, stream.format_date,
                                         stream.use_rth)
                bars = build_bars(state, self.world.market.seed, request, hours)[-1:]
        except HistoryError as exc:
            log.warning("client %s: bar stream %d stopped: %s", session.client_id, stream.req_id, exc)
            session.bar_streams.pop(stream.req_id, None)
            session.error(stream.req_id, ErrorCode.HISTORICAL_DATA_ERROR, str(exc))
            return
        for bar in bars:
            session.send(enc.historical_data_update(stream.req_id, bar))

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


def _bar_start(when: datetime, bar_size: str) -> int:
    """Return the epoch seconds at which the intraday ``bar_size`` bar holding ``when`` starts (a day's: its UTC day)."""
    size = min(BAR_SECONDS[bar_size], 86400)
    return int(when.timestamp()) // size * size
