"""The pre-trade risk gate: every new order passes ``RiskGate.check`` before it is sent.

The gate is pure: it reads no files, no network and never the wall clock. The
caller hands it an ``OrderIntent`` (what is about to be sent) and an
``Exposure`` (the book as it stands; both in ``working.py``), and the gate either returns or raises
``RiskLimitExceeded`` whose message names the limit and the numbers and whose
``details`` carry ``limit``, ``value`` and ``maximum``. Time comes from the
injected clock, so the trading-hours window and the order rate are testable.

Checks run in a fixed order, the first failure wins: kill switch, blocked and
allowed lists, trading hours, order quantity, order notional, price deviation,
position, gross exposure, daily loss, order rate. A limit set to ``None`` is off.
Working orders count as if they filled where that is worse: toward the
position limit on the order's own side, toward gross exposure on whichever
side grows a position more (``Working``).

An order *reduces* risk when it is flagged ``reduces_only`` (the caller vouches
for it: the stop-loss and take-profit children of a bracket, which the broker
only fills against the parent's position) or when it moves the worst-case
position toward zero without crossing it. Reducing orders are exempt from the
position, gross-exposure and daily-loss limits, so a book over its limits can
always be brought back; they are still stopped by the kill switch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from trader.config import RiskSettings
from trader.domain import checks
from trader.domain.enums import Action
from trader.errors import RiskLimitExceeded, ValidationError
from trader.trading.trading_day import in_hours
from trader.trading.working import NOTHING_WORKING, Exposure, OrderIntent, Working

__all__ = ["RiskGate"]

RATE_WINDOW = timedelta(seconds=60)
_ZERO = Decimal(0)


def _fmt(value: Decimal) -> str:
    # Plain notation: "100000", never "1E+5", so messages read like the config.
    return format(value, "f")


def _percent(fraction: Decimal) -> str:
    """Return a fraction of the config as a percent with the fraction: ``20% (0.2)``."""
    return f"{_fmt((fraction * 100).normalize())}% ({_fmt(fraction)})"


def _refuse(message: str, limit: str, value: Any, maximum: Any, **more: Any) -> NoReturn:
    raise RiskLimitExceeded(f"{limit}: {message}", limit=limit, value=value, maximum=maximum, **more)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


class RiskGate:
    """Refuse orders that break the configured limits, and hold the kill switch."""

    def __init__(self, settings: RiskSettings, clock: Callable[[], datetime]) -> None:
        self._settings = self._validated(settings)
        self._clock = clock
        self._sent: deque[datetime] = deque()
        self._kill_reason: str | None = None
        self._kill_since: datetime | None = None

    @staticmethod
    def _validated(settings: object) -> RiskSettings:
        if not isinstance(settings, RiskSettings):
            raise ValidationError(f"settings must be RiskSettings, got {type(settings).__name__}")
        return settings

    @property
    def settings(self) -> RiskSettings:
        """Return the limits in force."""
        return self._settings

    def update(self, settings: RiskSettings) -> None:
        """Swap the limits at runtime; the kill switch and the order rate are kept."""
        self._settings = self._validated(settings)

    def _now(self) -> datetime:
        now = self._clock()
        # A naive time has no zone to convert into the trading-hours zone.
        return checks.utc_datetime("RiskGate clock", now)

    # -- kill switch ---------------------------------------------------------

    @property
    def kill_switch_engaged(self) -> bool:
        """Return whether the kill switch is engaged (every new order refused)."""
        return self._kill_reason is not None

    @property
    def kill_switch_reason(self) -> str | None:
        """Return why the kill switch was engaged, or None."""
        return self._kill_reason

    def engage_kill_switch(self, reason: str | None = None) -> str | None:
        """Refuse every new order until released; return the reason this replaced, if it replaced one.

        Engaging again keeps the first time, and the reason in force unless a
        new one is given: a second "on" without a reason does not lose why the
        switch was thrown. A first engagement without a reason says "manual".
        """
        if reason is not None:
            checks.text("kill switch reason", reason)
        if self._kill_since is None:
            # Keep the first time: the book has been frozen since then.
            self._kill_since = self._now()
        previous = self._kill_reason
        self._kill_reason = reason or previous or "manual"
        return previous if previous is not None and previous != self._kill_reason else None

    def release_kill_switch(self) -> None:
        """Let orders through again (subject to the other limits)."""
        self._kill_reason = None
        self._kill_since = None

    # -- order rate ----------------------------------------------------------

    def record_order(self) -> None:
        """Count one order as sent now, for the per-minute rate limit."""
        now = self._now()
        self._prune(now)
        self._sent.append(now)

    def orders_last_minute(self) -> int:
        """Return how many orders were recorded in the last 60 seconds."""
        self._prune(self._now())
        return len(self._sent)

    def _prune(self, now: datetime) -> None:
        # The window is (now - 60 s, now]: an order sent exactly 60 s ago has left it.
        while self._sent and self._sent[0] <= now - RATE_WINDOW:
            self._sent.popleft()

    # -- the gate ------------------------------------------------------------

    def check(self, intent: OrderIntent, exposure: Exposure, *, batch: int = 1) -> None:
        """Return if ``intent`` may be sent; raise RiskLimitExceeded naming the first limit broken.

        ``batch`` is how many orders go out together with this one (a bracket's
        entry and children): the order rate counts them all.
        """
        s = self._settings
        now = self._now()
        if self._kill_reason is not None:
            # Reduce-only orders too: a kill switch stops everything new.
            _refuse(f"kill switch engaged since {self._kill_since:%Y-%m-%d %H:%M:%S %Z}: "
                    f"{self._kill_reason}", "kill_switch", None, None,
                    reason=self._kill_reason, since=self._kill_since)
        names = {intent.symbol.upper(), intent.key.upper()}
        blocked = [e for e in s.blocked if e.upper() in names]
        if blocked:
            _refuse(f"{intent.key} is on the blocked list ({blocked[0]})", "blocked",
                    intent.key, None, entry=blocked[0])
        if s.allowed and not any(e.upper() in names for e in s.allowed):
            _refuse(f"{intent.key} is not on the allowed list ({', '.join(s.allowed)})",
                    "allowed", intent.key, None)
        if s.trading_hours is not None:
            inside, local = in_hours(s.trading_hours, now)
            if not inside:
                h = s.trading_hours
                window = f"{_hhmm(h.start)}-{_hhmm(h.end)}"
                _refuse(f"{local:%a %Y-%m-%d %H:%M:%S} {h.timezone} is outside {window} "
                        f"on weekdays {h.weekdays}", "trading_hours", local.isoformat(), window)
        if s.max_order_quantity is not None and intent.quantity > s.max_order_quantity:
            _refuse(f"order quantity {_fmt(intent.quantity)} exceeds "
                    f"{_fmt(s.max_order_quantity)}", "max_order_quantity",
                    intent.quantity, s.max_order_quantity)
        notional = intent.notional
        if s.max_order_notional is not None:
            if notional is None:
                # An order we cannot price could be any size: never wave it through.
                _refuse(f"order notional unknown (no reference price), limit "
                        f"{_fmt(s.max_order_notional)}", "max_order_notional",
                        None, s.max_order_notional)
            if notional > s.max_order_notional:
                _refuse(f"order notional {_fmt(notional)} exceeds {_fmt(s.max_order_notional)}",
                        "max_order_notional", notional, s.max_order_notional)
        if s.max_price_deviation is not None:
            market = intent.market_price
            for kind, price in (("limit", intent.limit_price), ("stop", intent.stop_price)):
                if price is None:
                    continue
                if market is None:
                    # A price nothing can be checked against could be anything: never wave it through.
                    _refuse(f"no market price to check the {kind} price {_fmt(price)} against, limit "
                            f"{_percent(s.max_price_deviation)}", "max_price_deviation", None,
                            s.max_price_deviation, price=price)
                deviation = abs(price - market) / market
                if deviation > s.max_price_deviation:
                    # Percent, as a trader reads it; the details keep the fractions the config holds.
                    _refuse(f"{kind} price {_fmt(price)} is {deviation * 100:.2f}% from the market "
                            f"{_fmt(market)}, over the limit of {_percent(s.max_price_deviation)}",
                            "max_price_deviation", deviation, s.max_price_deviation,
                            price=price, market_price=market)
        self._check_book(intent, exposure, notional)
        limit = s.max_orders_per_minute
        if limit is not None:
            self._prune(now)
            if len(self._sent) + batch > limit:
                more = f" and {batch} in this request" if batch > 1 else ""
                _refuse(f"{len(self._sent)} orders in the last 60 s{more}, limit {limit} per minute",
                        "max_orders_per_minute", len(self._sent) + batch, limit)

    def verdict(self, intent: OrderIntent, exposure: Exposure, *, batch: int = 1) -> dict[str, Any]:
        """Return what :meth:`check` would say, without raising: ``passed``, and the ``limit`` and ``message``.

        For a what-if order: nothing is recorded (the order rate counts only
        orders sent).
        """
        try:
            self.check(intent, exposure, batch=batch)
        except RiskLimitExceeded as exc:
            return {"passed": False, "limit": exc.details.get("limit"), "message": str(exc)}
        return {"passed": True, "limit": None, "message": ""}

    def _check_book(self, intent: OrderIntent, exposure: Exposure, notional: Decimal | None) -> None:
        """Apply the position, gross-exposure and daily-loss limits (checks 7-9)."""
        s = self._settings
        working = exposure.working.get(intent.key, NOTHING_WORKING)
        # Worst case: same-direction working orders fill, opposite ones are cancelled.
        same_side = working.buy if intent.action is Action.BUY else -working.sell
        base = exposure.positions.get(intent.key, _ZERO) + same_side
        after = base + intent.signed_quantity
        toward_zero = base * intent.signed_quantity < 0 and intent.quantity <= abs(base)
        reduces = intent.reduces_only or toward_zero
        if reduces:
            return
        if s.max_position is not None and abs(after) > s.max_position:
            _refuse(f"position {intent.key} would be {_fmt(after)} (held and working "
                    f"{_fmt(base)}, order {_fmt(intent.signed_quantity)}), |{_fmt(after)}| "
                    f"exceeds {_fmt(s.max_position)}", "max_position", abs(after),
                    s.max_position, position=base)
        if s.max_gross_exposure is not None:
            if notional is None:
                _refuse(f"gross exposure after the order unknown (no reference price), limit "
                        f"{_fmt(s.max_gross_exposure)}", "max_gross_exposure",
                        None, s.max_gross_exposure)
            # Worst case: every working order that can grow a position fills (see Working.worst_notional).
            with_order = working.plus(Working(buy_notional=notional) if intent.action is Action.BUY
                                      else Working(sell_notional=notional))
            pending = sum((w.worst_notional for key, w in exposure.working.items() if key != intent.key),
                          with_order.worst_notional)
            gross = exposure.gross_exposure + pending
            if gross > s.max_gross_exposure:
                _refuse(f"gross exposure would be {_fmt(gross)} ({_fmt(exposure.gross_exposure)} held "
                        f"+ {_fmt(pending)} at most from working orders and this one of {_fmt(notional)}), "
                        f"exceeds {_fmt(s.max_gross_exposure)}", "max_gross_exposure", gross, s.max_gross_exposure)
        if s.max_daily_loss is not None and -exposure.daily_pnl >= s.max_daily_loss:
            loss = -exposure.daily_pnl
            _refuse(f"daily loss {_fmt(loss)} reached the limit {_fmt(s.max_daily_loss)}; "
                    f"only orders that reduce a position are accepted", "max_daily_loss",
                    loss, s.max_daily_loss)

    def status(self) -> dict[str, Any]:
        """Return the limits, the kill switch and the orders sent in the last minute."""
        return {
            "limits": self._settings.model_dump(mode="json"),
            "kill_switch": {
                "engaged": self.kill_switch_engaged,
                "reason": self._kill_reason,
                "since": self._kill_since,
            },
            "orders_last_minute": self.orders_last_minute(),
        }
