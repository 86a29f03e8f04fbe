"""tws-sim's historical-data pacing: it refuses what IB refuses, with IB's error 162 and text.

IB's "Historical Data Limitations": a pacing violation is an identical
historical request within 15 seconds, six or more requests for the same
contract, exchange and tick type within two seconds, or more than 60 requests
in any ten minutes (BID_ASK counts twice). The simulator counts the requests
it accepted, on the world's clock, across every client of the login (IB's
limits are the login's, not a connection's), and answers a request that breaks
a rule with :data:`PACING_VIOLATION`; a refused request is not counted. This
is written apart from the client's pacer (:mod:`trader.data.pacing`) on
purpose: the pacer is tested against this rule, not against itself. The
limits are the ``pacing`` section of configs/sim.yaml; ``enabled: false`` (or
``python -m services.tws_sim --no-pacing``) serves every request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime

from pydantic import Field

from trader.config import StrictModel

__all__ = ["PACING_VIOLATION", "HistoryPacing", "PacingConfig"]

PACING_VIOLATION = "Historical Market Data Service error message:Historical data request pacing violation"


class PacingConfig(StrictModel):
    """IB's historical-data pacing rules as the simulator enforces them (IB's limits by default)."""

    enabled: bool = Field(True, description="refuse requests that break a rule with error 162, as IB does")
    max_requests: int = Field(60, ge=1, description="requests at most in any `window` seconds (BID_ASK: two)")
    window: float = Field(600.0, gt=0, description="seconds of the overall limit (IB: ten minutes)")
    identical_interval: float = Field(15.0, ge=0, description="seconds before an identical request is served again")
    max_per_series: int = Field(5, ge=1, description="requests at most for one contract, exchange and tick type "
                                "in any `series_window` seconds (IB: six or more is a violation)")
    series_window: float = Field(2.0, gt=0, description="seconds of the per-contract limit")


class HistoryPacing:
    """The historical requests the simulator served lately, and the verdict on the next one."""

    def __init__(self, config: PacingConfig, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.clock = clock
        self.violations = 0
        self._served: deque[tuple[float, int]] = deque()  # (time, weight), oldest first, inside `window`
        self._served_total = 0
        self._by_series: dict[tuple[object, ...], deque[tuple[float, int]]] = {}
        self._last_identical: dict[tuple[object, ...], float] = {}

    def check(self, conid: int, exchange: str, end: str, duration: str, bar_size: str, what_to_show: str,
              use_rth: bool) -> str | None:
        """Return IB's violation text if this request breaks a rule (not counted); else count it, return None."""
        config = self.config
        if not config.enabled:
            return None
        now = self.clock().timestamp()
        what = what_to_show.upper()
        weight = 2 if what == "BID_ASK" else 1
        identity = (conid, end.strip(), " ".join(duration.split()).upper(), bar_size.strip(), what, bool(use_rth))
        series_key = (conid, exchange.upper(), what)
        while self._served and now - self._served[0][0] >= config.window:
            self._served_total -= self._served.popleft()[1]
        series = self._by_series.setdefault(series_key, deque())
        while series and now - series[0][0] >= config.series_window:
            series.popleft()
        last = self._last_identical.get(identity)
        broken = (
            (last is not None and now - last < config.identical_interval)
            or sum(w for _, w in series) + weight > max(config.max_per_series, weight)
            or self._served_total + weight > max(config.max_requests, weight)
        )
        if broken:
            self.violations += 1
            return PACING_VIOLATION
        self._served.append((now, weight))
        self._served_total += weight
        series.append((now, weight))
        self._last_identical[identity] = now
        if len(self._last_identical) > 4 * max(config.max_requests, 64):  # bounded: forget the expired ones
            self._last_identical = {k: t for k, t in self._last_identical.items()
                                    if now - t < config.identical_interval}
        return None
