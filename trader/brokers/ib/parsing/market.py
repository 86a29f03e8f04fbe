"""IB parsing, market data: tickers to ticks for the bus and quotes for the desk, historical bars (records, frames).

Pure: no I/O and no clock except ``now`` for a ticker that carries no time.
Market data stays ``float`` (it is never booked), except a quote's prices,
which price orders.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain

import ib_async
import numpy as np
import pandas as pd
from ib_async.util import UNSET_DOUBLE

from trader.brokers.ib.parsing.values import decimal_from_float
from trader.brokers.records import Quote
from trader.domain import Bar

__all__ = [
    "from_ib_bar",
    "ticker_quote",
    "ticker_to_tick",
]

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


_BAR_FIELDS = operator.attrgetter("open", "high", "low", "close", "volume", "average", "barCount")


def from_ib_bars_frame(bars: Sequence[ib_async.BarData]) -> pd.DataFrame:
    """Return IB's historical ``bars`` as a bar frame, as :func:`from_ib_bar` reads each bar.

    The index is ``time``, the UTC bar starts (a daily bar at midnight UTC);
    the columns ``open high low close volume`` (IB's -1 volume is 0), ``wap``
    (IB's ``average``) where IB gave every bar one (TRADES; not MIDPOINT, BID,
    ASK) and ``bar_count`` where IB counted every bar's trades. Built
    column-wise: no record per bar, for downloads of many bars.
    """
    count = len(bars)
    starts = np.fromiter((_epoch(bar.date) for bar in bars), dtype=np.float64, count=count)
    fields = chain.from_iterable(map(_BAR_FIELDS, bars))
    values = np.fromiter(fields, dtype=np.float64, count=7 * count).reshape(count, 7)
    index = pd.DatetimeIndex(np.rint(starts * 1e9).astype("int64").view("datetime64[ns]"), name="time")
    frame = pd.DataFrame(values[:, :5], index=index.tz_localize(UTC), columns=["open", "high", "low", "close", "volume"])
    frame["volume"] = np.maximum(frame["volume"].to_numpy(), 0.0)
    if count and (values[:, 5] > 0).all():
        frame["wap"] = values[:, 5]
    if count and (values[:, 6] >= 0).all():
        frame["bar_count"] = values[:, 6].astype(np.int64)
    return frame


def _epoch(moment: datetime | date) -> float:
    if isinstance(moment, datetime):
        return moment.timestamp()  # ib_async's are aware (UTC) with formatDate=2
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp()


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
