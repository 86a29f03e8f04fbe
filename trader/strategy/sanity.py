"""Sane ticks: the bounds a tick off the bus must be within before a strategy sees it.

Anyone on the host can publish on the bus, and a tick that decodes is not
yet a price. :class:`TickGuard` (one per instrument, in the feed) refuses:

- a price that is not finite or whose size is absurd: NaN, infinities,
  ``|price| > MAX_PRICE`` (1e9), or ``0 < |price| < MIN_PRICE`` (1e-6): the
  probe's 1e308 and 5e-324 (a denormal). No listed instrument trades above 1e9 or at a millionth;
- a price ``<= 0``, except for futures and combos (``FUT``, ``CONTFUT``,
  ``BAG`` in the contract key): a calendar spread, or a future such as WTI
  crude in April 2020, can trade at zero or below. A bid or ask of exactly
  -1 or 0 is no price at all: IB's empty book side (-1, size 0), and the zero
  bid of a far out-of-the-money option. That side is absent, and the tick
  goes on with its other prices (a one-sided or empty book must not starve a
  strategy of its last prices);
- a size or volume that is negative, not finite or above ``MAX_SIZE``;
- a jump: a last price (or a bid/ask midpoint) more than ``MAX_JUMP`` times
  (or less than 1/``MAX_JUMP`` of) the last good one. A real move of that
  size (a reverse split, a bad reference) is taken once ``CONFIRM`` ticks in
  a row agree on the new level, so a guard cannot lock an instrument out.
  Futures and combos, whose prices may cross zero, skip this test; so does a
  one-sided quote (it is a weak price: the bar aggregator ignores it anyway).

The first good price is the reference: the guard has nothing to compare it
with. This keeps absurd values out; it does not authenticate a publisher
(a forger sending plausible prices is stopped only by CURVE on the bus).
"""

from __future__ import annotations

from trader.domain import Tick

MAX_PRICE = 1e9
MIN_PRICE = 1e-6
MAX_SIZE = 1e12
MAX_JUMP = 10.0
CONFIRM = 5
NEGATIVE_OK = frozenset({"FUT", "CONTFUT", "BAG"})
EMPTY_SIDE = (-1.0, 0.0)  # a bid or ask that says the side is empty (IB: -1 with size 0)


class TickGuard:
    """Check one instrument's ticks against the bounds above; ``check`` returns why a tick is refused."""

    __slots__ = ("_agree", "_candidate", "negative_ok", "reference")

    def __init__(self, key: str) -> None:
        parts = key.split(".")
        self.negative_ok = len(parts) > 1 and parts[1] in NEGATIVE_OK
        self.reference: float | None = None  # the last good price
        self._candidate: float | None = None  # a new level a jump went to, and how many ticks agree on it
        self._agree = 0

    def check(self, tick: Tick) -> str | None:
        """Return None if ``tick`` is sane (and take its price as the reference), else the reason."""
        bid, ask, last = tick.bid, tick.ask, tick.last
        bid_size, ask_size, last_size, volume = tick.bid_size, tick.ask_size, tick.last_size, tick.volume
        # The usual tick, in one expression (this is the hot path): positive prices and sizes within bounds.
        if not ((bid is None or MIN_PRICE <= bid <= MAX_PRICE) and (ask is None or MIN_PRICE <= ask <= MAX_PRICE)
                and (last is None or MIN_PRICE <= last <= MAX_PRICE)
                and (bid_size is None or 0.0 <= bid_size <= MAX_SIZE)
                and (ask_size is None or 0.0 <= ask_size <= MAX_SIZE)
                and (last_size is None or 0.0 <= last_size <= MAX_SIZE)
                and (volume is None or 0.0 <= volume <= MAX_SIZE)):
            reason = self._out_of_bounds(tick)
            if reason is not None:
                return reason
        if self.negative_ok:
            return None
        if last is None:
            if bid is None or ask is None or bid in EMPTY_SIDE or ask in EMPTY_SIDE:
                return None  # no price to test for a jump: an empty or one-sided book
            last = (bid + ask) / 2.0
        reference = self.reference
        if reference is not None and reference <= last * MAX_JUMP and last <= reference * MAX_JUMP:
            self.reference = last
            if self._candidate is not None:
                self._candidate, self._agree = None, 0
            return None
        return self._jump(last)

    def _out_of_bounds(self, tick: Tick) -> str | None:
        """Return which price or size of ``tick`` is out of bounds, or None (an empty side, a negative future)."""
        low = -MAX_PRICE if self.negative_ok else MIN_PRICE
        for name in ("bid", "ask", "last"):
            price = getattr(tick, name)
            if price is None or (low <= price <= MAX_PRICE  # NaN fails this
                                 and (price == 0.0 or not -MIN_PRICE < price < MIN_PRICE)):
                continue
            if name != "last" and price in EMPTY_SIDE:
                continue
            return f"{name} {price!r} out of bounds"
        for name in ("bid_size", "ask_size", "last_size", "volume"):
            size = getattr(tick, name)
            if size is not None and not 0.0 <= size <= MAX_SIZE:
                return f"{name} {size!r} out of bounds"
        return None

    def _jump(self, price: float) -> str | None:
        reference = self.reference
        if reference is None or reference / MAX_JUMP <= price <= reference * MAX_JUMP:
            self.reference, self._candidate, self._agree = price, None, 0
            return None
        candidate = self._candidate
        if candidate is not None and candidate / MAX_JUMP <= price <= candidate * MAX_JUMP:
            self._agree += 1
        else:
            self._candidate, self._agree = price, 1
        if self._agree >= CONFIRM:
            self.reference, self._candidate, self._agree = price, None, 0
            return None
        return f"a jump from {reference:g} to {price:g} (taken once {CONFIRM} ticks agree)"
