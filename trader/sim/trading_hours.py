"""When a simulated instrument trades: its exchange calendar's sessions, or around the clock.

tws-sim's instruments follow :mod:`trader.data.calendars`: stocks the ``XNYS``
sessions (04:00-20:00 ET, RTH 09:30-16:00), futures the CME Globex day (17:00 CT
to 16:00 CT, the daily halt between), FX the 24x5 week (Sunday 17:00 to Friday
17:00 ET), indices and options the stock RTH. Whether they do is the sim's
``market.sessions`` switch (configs/sim.yaml): off, the market and its history
run around the clock, so every code path can run on a Saturday night; on, the
live market prints nothing outside a session and the history holds no bar there.
``useRTH=1`` keeps only the RTH bars either way, as IB does.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from trader.data.calendars import SessionWindows, TradingCalendar, calendar_for
from trader.errors import ValidationError
from trader.sim.catalogue import SimInstrument

__all__ = ["SessionGate", "TradingHours", "hours_of"]

_GATE_SPAN = timedelta(days=14)  # how far ahead the live gate keeps its sessions


class TradingHours:
    """One calendar's sessions as tws-sim uses them: masks over bar starts and labels for daily bars."""

    def __init__(self, calendar: TradingCalendar, *, sessions: bool) -> None:
        self.calendar = calendar
        self.sessions = sessions  # follow the calendar (else only useRTH requests do)

    @property
    def timezone(self) -> str:
        """Return the time zone TWS writes this instrument's bar dates in (``US/Eastern``...)."""
        return self.calendar.ib_timezone

    def windows(self, first: int, end: int, use_rth: bool) -> SessionWindows:
        """Return the sessions overlapping the epoch seconds ``[first, end)``."""
        return self.calendar.windows(pd.Timestamp(first, unit="s", tz="UTC"), pd.Timestamp(end, unit="s", tz="UTC"),
                                     use_rth=use_rth)

    def mask(self, starts: np.ndarray, use_rth: bool, *, span: int = 1) -> np.ndarray | None:
        """Return which bars (epoch-second starts, ``span`` seconds long) lie in a session; None keeps them all.

        A bar is kept when its start is inside the session's hours (RTH with ``use_rth``).
        """
        if not (self.sessions or use_rth) or not len(starts):
            return None
        w = self.windows(int(starts.min()), int(starts.max()) + span, use_rth)
        return self._locate(w, starts) >= 0

    def session_labels(self, starts: np.ndarray) -> np.ndarray:
        """Return each bar's session date as days since the epoch (-1 for a bar outside every session)."""
        if not len(starts):
            return np.zeros(0, dtype=np.int64)
        w = self.windows(int(starts.min()), int(starts.max()) + 1, False)
        at = self._locate(w, starts)
        days = (w.labels.asi8 // (86400 * 10**9)).astype(np.int64) if len(w) else np.zeros(1, dtype=np.int64)
        return np.where(at >= 0, days[np.maximum(at, 0)], -1)

    @staticmethod
    def _locate(w: SessionWindows, starts: np.ndarray) -> np.ndarray:
        if not len(w):
            return np.full(len(starts), -1, dtype=np.int64)
        return w.locate(starts)


class SessionGate:
    """The live market's question, asked every step: is this instrument's market open now?

    Keeps two weeks of each calendar's sessions as plain lists and refreshes them when
    the clock leaves them, so a step costs one binary search per calendar.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int, list[int], list[int]]] = {}

    def is_open(self, hours: TradingHours, now: datetime) -> bool:
        """Return whether ``hours`` trades at ``now`` (always, when it does not follow sessions)."""
        if not hours.sessions:
            return True
        t = int(now.timestamp())
        cached = self._windows.get(hours.calendar.hours)
        if cached is None or not cached[0] <= t < cached[1]:
            lo, hi = t - 86400, t + int(_GATE_SPAN.total_seconds())
            w = hours.windows(lo - 86400, hi, False)
            cached = self._windows[hours.calendar.hours] = (lo, hi, w.opens.tolist(), w.closes.tolist())
        at = bisect.bisect_right(cached[2], t) - 1
        return at >= 0 and t < cached[3][at]


def hours_of(inst: SimInstrument, *, sessions: bool) -> TradingHours:
    """Return the trading hours of a catalogue instrument (by its sec type and listing exchange)."""
    contract = inst.contract
    exchange = contract.primary_exchange or contract.exchange
    if (exchange or "").upper() == "SMART":
        exchange = "NYSE"
    try:
        calendar = calendar_for(exchange, str(contract.sec_type))
    except ValidationError:  # an exchange no calendar names: trade it as FX does, around the week
        calendar = calendar_for("IDEALPRO")
    return TradingHours(calendar, sessions=sessions)
