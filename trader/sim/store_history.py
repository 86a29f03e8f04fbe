"""History in a replay from the market store: the stored past of the replayed instruments, up to the replay's data time.

A store replay (``--replay store:KEYS`` or ``store-ticks:KEYS``) plays stored data
as the live market, so tws-sim answers ``reqHistoricalData`` for the replayed
instruments from the same store, as IB would have answered at the replay's
data time: ``now`` (an empty ``endDateTime``, and the cap on any other) is the
data time played so far (:meth:`~trader.sim.replay.ReplaySource.played_until`),
never the server's clock. A bar is served only once its whole length has been
played, so no price from the future reaches a strategy warming up; before the
replay starts that is exactly the stored bars before its start.

Bars are aggregated from one stored size into the requested one (the replay's
own size when it divides the request, else the coarsest stored size that
does), by the same code that aggregates the synthetic history
(:func:`~trader.sim.history.bar_rows`), so ``useRTH``, ``formatDate`` and the
session-labelled daily bars behave as they do there. A size finer than any
stored one is refused with error 162 naming what is stored; a range with no
stored bar is IB's "HMDS query returned no data". Stored bars are trades (or
mids where the source had no trades): BID and ASK are shifted half the
instrument's spread from them, as the synthetic history's are.

A tick replay's history is built from the recorded ticks instead: one-second
bars of the trades (TRADES: the rows that traded, as the replay plays them),
of the mids (MIDPOINT, BID_ASK), the bids (BID) or the asks (ASK), aggregated
the same way. Whether a range's first tick traded is judged against the tick
recorded before the range (as the replay carries it from one day's chunk to
the next), so a minute's volume does not depend on where a request starts;
a tick with none recorded in the week before it (the recording's first) is
the ticker as found, not a trade.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from trader.errors import NotFound
from trader.sim.bar_arrays import BarArrays
from trader.sim.history import (
    BAR_SECONDS,
    HistoryError,
    HistoryRequest,
    bar_rows,
    check_length,
    check_request,
    in_session,
    no_data,
)
from trader.sim.market_state import MarketState
from trader.sim.replay import ReplaySource
from trader.sim.store_replay import StoreReplayData, mark_trades
from trader.sim.trading_hours import TradingHours
from trader.sim.wire import Field
from trader.strategy.bars import ib_bar_size, parse_bar_size, short_bar_size

log = logging.getLogger(__name__)

__all__ = ["StoreHistory"]

_NANOS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ERROR = "Historical Market Data Service error message:"
_LOOKBACK = (60, 3600, 86400, 7 * 86400)  # seconds searched for the tick before a range, widening while none


class StoreHistory:
    """The replayed instruments' historical bars, read from the store the replay plays."""

    def __init__(self, replay: ReplaySource, data: StoreReplayData) -> None:
        self.replay = replay
        self.data = data
        self.keys: dict[int, str] = {}  # conid -> the contract key it replays
        for key in data.keys:
            [conid] = replay.resolver.conids(pd.DataFrame({"symbol": [key]})).tolist()
            self.keys[int(conid)] = key
        self._sizes: dict[str, list[int]] = {}  # key -> its stored bar sizes (seconds), read once

    @classmethod
    def of(cls, replay: ReplaySource | None) -> StoreHistory | None:
        """Return the store history of ``replay``, or None when it does not replay the store."""
        if replay is None or not isinstance(replay.data, StoreReplayData):
            return None
        return cls(replay, replay.data)

    def covers(self, conid: int) -> bool:
        """Return whether ``conid``'s history comes from the store (it is replayed from it)."""
        return conid in self.keys

    def now(self) -> datetime:
        """Return the data time played so far: the replay's "now" for a history request."""
        return _EPOCH + timedelta(microseconds=self._played() // 1000)

    def _played(self) -> int:
        """Return the data time played (ns): once the replay is done, its end (its last bar has printed its close)."""
        played = self.replay.played_until()
        return max(played, int(self.data.end.value)) if self.replay.done else played

    def bars(self, state: MarketState, request: HistoryRequest, hours: TradingHours | None, *,
             empty_ok: bool = False) -> list[tuple[Field, ...]]:
        """Return ``request``'s bars (its end already capped at :meth:`now`) as historicalData rows.

        Raises HistoryError (IB's 162 texts) for a bad request, a bar size finer than
        the stored ones, or a range with no stored bar (unless ``empty_ok``).
        """
        check_request(state, request)
        check_length(request)
        key = self.keys[state.instrument.conid]
        size = BAR_SECONDS[request.bar_size]
        played = self._played()
        requested = (request.end - _EPOCH) // timedelta(microseconds=1) * 1000
        if requested >= played // 1000 * 1000:  # an end at the data time (now() is in whole microseconds)
            requested = played
        end = min(requested, played)
        first = requested - request.duration_seconds * _NANOS
        if size < 86400:  # whole bars only, as the store reads a coarser size
            first = -(-first // (size * _NANOS)) * size * _NANOS
        if self.data.ticks:  # a tick at the data time itself has been played
            ticks_end = played + 1 if requested >= played else requested
            arrays, span, quoted = self._from_ticks(key, request.what_to_show.upper(), first, ticks_end), 1, True
        else:
            span = self._source_size(key, size, request.bar_size)
            arrays, quoted = self._from_bars(key, span, first, end, played), False
        rows = bar_rows(in_session(arrays, hours, request, span), state, request, hours, quoted=quoted)
        if not rows and not empty_ok:
            raise HistoryError(no_data(state, request.what_to_show))
        return rows

    # -- stored bars --------------------------------------------------------------------------
    def _source_size(self, key: str, size: int, bar_size: str) -> int:
        """Return the stored size (seconds) to aggregate ``size`` bars from; HistoryError if none divides it."""
        stored = self._sizes.get(key)
        if stored is None:
            stored = sorted(parse_bar_size(s) for s, keys in self.data.store.bar_symbols().items() if key in keys)
            self._sizes[key] = stored
        fits = [s for s in stored if s <= size and size % s == 0]
        if not fits:
            held = ", ".join(ib_bar_size(s) for s in stored) or "none"
            raise HistoryError(f"{_ERROR}no {bar_size} bars for {key}: this replay's store holds {held} bars, "
                               f"and serves those sizes and coarser ones only")
        own = parse_bar_size(self.data.bar_size)
        return own if own in fits else fits[-1]

    def _from_bars(self, key: str, span: int, first: int, end: int, played: int) -> BarArrays:
        """Return ``key``'s stored ``span``-second bars that start in ``[first, end)`` and were played whole."""
        try:
            frame = self.data.store.read_bars(key, short_bar_size(span), _stamp(first), _stamp(end))
        except NotFound:
            return _empty()
        starts = frame.index.asi8 if len(frame) else np.zeros(0, dtype=np.int64)
        frame = frame[starts + span * _NANOS <= played]
        volume = frame["volume"].to_numpy(dtype=np.float64) if "volume" in frame else np.zeros(len(frame))
        count = (frame["bar_count"].to_numpy(dtype=np.int64) if "bar_count" in frame
                 else np.full(len(frame), -1, dtype=np.int64))
        o, h, lo, c = (frame[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close"))
        return BarArrays(frame.index.asi8 // _NANOS, o, h, lo, c, np.nan_to_num(volume), np.maximum(count, 0))

    # -- recorded ticks -----------------------------------------------------------------------
    def _from_ticks(self, key: str, what: str, first: int, end: int) -> BarArrays:
        """Return one-second bars of ``key``'s recorded ticks in ``[first, end)`` (prices of kind ``what``)."""
        frame = self.data.store.read_ticks(key, _stamp(first), _stamp(end))
        if not len(frame):
            return _empty()
        if what == "TRADES":
            frame = mark_trades(frame, self._before(key, first), key)
            sizes = frame["last_size"].to_numpy(dtype=np.float64)
            traded = np.isfinite(sizes) & (sizes > 0)
            prices, volume = frame["last"].to_numpy(dtype=np.float64)[traded], sizes[traded]
            times = frame.index.asi8[traded]
        else:
            bid = frame["bid"].to_numpy(dtype=np.float64) if "bid" in frame else np.full(len(frame), np.nan)
            ask = frame["ask"].to_numpy(dtype=np.float64) if "ask" in frame else np.full(len(frame), np.nan)
            prices = {"BID": bid, "ASK": ask}.get(what, (bid + ask) / 2)
            times, volume = frame.index.asi8, np.zeros(len(frame))
        ok = np.isfinite(prices) & (prices > 0)
        prices, volume, seconds = prices[ok], volume[ok], times[ok] // _NANOS
        if not len(seconds):
            return _empty()
        heads = np.flatnonzero(np.concatenate([[True], seconds[1:] != seconds[:-1]]))
        tails = np.concatenate([heads[1:], [len(seconds)]]) - 1
        counts = np.diff(np.concatenate([heads, [len(seconds)]]))
        return BarArrays(seconds[heads], prices[heads], np.maximum.reduceat(prices, heads),
                         np.minimum.reduceat(prices, heads), prices[tails], np.add.reduceat(volume, heads),
                         counts if what == "TRADES" else np.zeros(len(heads), dtype=np.int64))

    def _before(self, key: str, first: int) -> dict[str, tuple[float, float, float]]:
        """Return :func:`mark_trades`'s state of ``key`` just before ``first``: from the ticks recorded before it.

        Empty when none was recorded in the widest lookback: then the range's
        first tick is taken as the ticker as found, as at the recording's start.
        """
        previous: dict[str, tuple[float, float, float]] = {}
        for seconds in _LOOKBACK:
            before = self.data.store.read_ticks(key, _stamp(first - seconds * _NANOS), _stamp(first))
            if len(before):
                mark_trades(before, previous, key)
                break
        return previous


def _stamp(nanos: int) -> pd.Timestamp:
    return pd.Timestamp(nanos, unit="ns", tz="UTC")


def _empty() -> BarArrays:
    none = np.zeros(0, dtype=np.float64)
    return BarArrays(np.zeros(0, dtype=np.int64), none, none, none, none, none, np.zeros(0, dtype=np.int64))
