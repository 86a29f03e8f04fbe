"""What a tws-sim client subscribed to: market data, keepUpToDate bars and real-time bars.

A session holds these by request id; the world's market steps update them and
the handlers send what changed. Plain records, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BarStream", "MarketDataSubscription", "RealTimeBarStream"]


@dataclass(slots=True)
class BarStream:
    """A keepUpToDate historical request: the forming bar is re-sent as it changes."""

    req_id: int
    conid: int
    bar_size: str
    what_to_show: str
    format_date: int
    last_sent: float = 0.0  # server-clock epoch seconds of the last update
    use_rth: bool = False
    data_from: int | None = None  # a store replay's stream: data-time epoch seconds of the last bar sent


@dataclass(slots=True)
class RealTimeBarStream:
    """A reqRealTimeBars stream: the 5-second bar being built from the market's steps."""

    req_id: int
    conid: int
    what_to_show: str
    start: int | None = None  # epoch seconds of the bar being built
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    price_sum: float = 0.0
    samples: int = 0
    volume_at_start: int = 0
    last_volume: int = 0
    trades: int = 0


@dataclass(slots=True)
class MarketDataSubscription:
    """A reqMktData stream: what was last sent, so only changes go out."""

    req_id: int
    conid: int
    delayed: bool
    sent: dict[str, object] = field(default_factory=dict)
