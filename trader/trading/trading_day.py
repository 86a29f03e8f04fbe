"""The trading day: when one begins, whether now is inside the trading hours, and the day's PnL baseline.

Days begin at ``risk.trading_hours``' start (09:30 New York without one).
:class:`TradingDay` looks for a new day at each re-sync and every
``DAY_CHECK_INTERVAL`` seconds; at the first sight of one it takes the account's
PnL as the day's baseline, from which the risk gate's daily-loss limit counts.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from trader.config import Settings, TradingHours
from trader.errors import TraderError
from trader.trading.journal import Journal
from trader.trading.totals import BrokerTotals

log = logging.getLogger(__name__)

__all__ = ["DAY_CHECK_INTERVAL", "TradingDay", "in_hours", "trading_day"]

DAY_CHECK_INTERVAL = 30.0  # how often a new trading day is looked for


class DayDesk(Protocol):
    """What :class:`TradingDay` reads and sets on the desk (``trader.trading.desk.Desk``)."""

    synced: bool
    pnl_baseline: Decimal
    broker_totals: BrokerTotals


def in_hours(hours: TradingHours, now: datetime) -> tuple[bool, datetime]:
    """Return whether ``now`` falls in the window, and ``now`` in the window's zone.

    The window is ``[start, end)``. With ``end <= start`` it spans midnight, and
    a session belongs to the weekday it starts on: Friday 18:00-05:00 covers
    Saturday 02:00, and Sunday 23:00 is out unless Sunday (6) is listed.
    """
    local = now.astimezone(ZoneInfo(hours.timezone))
    t = local.time().replace(tzinfo=None)
    if hours.start < hours.end:
        inside, session_day = hours.start <= t < hours.end, local.weekday()
    elif t >= hours.start:
        inside, session_day = True, local.weekday()
    else:
        inside, session_day = t < hours.end, (local.weekday() - 1) % 7
    return inside and session_day in hours.weekdays, local


def trading_day(hours: TradingHours, now: datetime) -> date:
    """Return the trading day ``now`` belongs to: days begin at ``hours.start`` in ``hours.timezone``.

    With a 09:30 start, 09:29 New York time still counts to the day before; a
    session spanning midnight (18:00-17:00) belongs to the day it started on.
    """
    local = now.astimezone(ZoneInfo(hours.timezone)).replace(tzinfo=None)
    return (local - timedelta(hours=hours.start.hour, minutes=hours.start.minute)).date()


class TradingDay:
    """The trading day in force and its PnL baseline, set on the desk."""

    def __init__(self, settings: Settings, desk: DayDesk, journal: Journal) -> None:
        self.settings = settings
        self.desk = desk
        self.journal = journal
        self.day: str | None = None  # the trading day whose PnL baseline is set

    async def roll(self) -> None:
        """At the first sight of a new trading day, take the account's PnL as the day's baseline.

        The daily-loss limit counts from there. Days begin at ``risk.trading_hours``'s
        start (09:30 New York without one). The baseline is kept in Redis with its
        day, so a restart within the day keeps counting from the same point.
        """
        hours = self.settings.risk.trading_hours or TradingHours()  # no hours guard: days begin 09:30 New York
        day = trading_day(hours, datetime.now(UTC)).isoformat()
        if day == self.day or not self.desk.synced:
            return
        key = f"{self.settings.trading.snapshot_key}:day"
        try:
            saved = await self.journal.load_snapshot(key)
        except (RedisError, TraderError) as exc:
            log.warning("cannot read the day's PnL baseline (%s); taking the current PnL", exc)
            saved = None
        if saved and saved.get("day") == day:
            baseline = Decimal(saved["baseline"])
        else:
            baseline = self.desk.broker_totals.portfolio()[1]
            try:
                await self.journal.save_snapshot(key, {"day": day, "baseline": baseline})
            except RedisError as exc:
                log.warning("cannot save the day's PnL baseline: %s", exc)
        self.desk.pnl_baseline, self.day = baseline, day
        log.info("trading day %s: daily PnL counts from the account's PnL of %s", day, baseline)

    async def loop(self) -> None:
        """Look for a new trading day every ``DAY_CHECK_INTERVAL`` seconds, for ever."""
        while True:
            await asyncio.sleep(DAY_CHECK_INTERVAL)
            try:
                await self.roll()
            except Exception:  # the next check tries again
                log.exception("rolling the trading day failed")
