"""What a download request names: instruments as users type them, a bar size, a universe, where an update starts.

history_service reads instruments without a broker: a contract key as it
is; else the first reading of :func:`trader.trading.symbols.read_symbol`,
so a plain symbol is its stock (``AAPL`` -> ``AAPL.STK``), a futures code its
contract month (``ESZ6`` -> ``ES.FUT.202612``), a pair its cash key
(``EUR.USD`` -> ``EUR.CASH.USD``), a share class its stock (``BRK.B`` ->
``BRK_B.STK``). Anything else needs its contract key. A universe is read
through :class:`trader.data.universes.Universes` (its members' keys, in the
order they joined), when the job is submitted. A job's end is never past
the start of the bar forming now (:func:`job_end`): no job stores a bar that
has not closed. A stored symbol is resolved against the keys the store holds
(:func:`stored_key`, what ``history read`` and the backtest read).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from trader.data.store import MarketStore
from trader.data.universes import Universes
from trader.domain import SecType
from trader.domain.contract_key import is_key, make_key, parse_key
from trader.errors import NotFound, ValidationError
from trader.strategy.bars import parse_bar_size, short_bar_size
from trader.trading.symbols import Hints, read_symbol

__all__ = ["job_bar_size", "job_key", "last_stored", "read_key", "reading", "stored_key", "universe_keys"]

RECENT = timedelta(days=4)  # an update looks for the last stored bar here first (a long weekend)
# What a typed symbol or key may hold: a key's parts are [A-Z0-9_-] (an escape starts with "-"), a symbol's
# letters, digits, dots (a pair, a share class) and spaces. Anything else is a typo, never escaped into a key.
_TYPED_KEY, _TYPED_SYMBOL = re.compile(r"[A-Za-z0-9._-]+"), re.compile(r"[A-Za-z0-9. ]+")


def job_key(text: str, today: date) -> str:
    """Return the contract key of what a user typed, read without a broker; ValidationError if it cannot be.

    Characters no symbol or key holds (``A@#``) are refused, naming what was
    typed: they are never escaped into a key the broker would not know.
    """
    if not (_TYPED_KEY if is_key(text) else _TYPED_SYMBOL).fullmatch(text.strip()):
        raise ValidationError(f"{text!r} is not a symbol or contract key (letters, digits and dots: AAPL, BRK.B, "
                              "ES.FUT.202612)", symbol=text)
    if is_key(text):
        parse_key(text)  # ValidationError with the grammar if malformed
        return text.strip().upper()
    query = read_symbol(text, Hints(), today).queries[0]
    if query.sec_type not in (SecType.STK, SecType.CASH, SecType.FUT) or (query.sec_type is SecType.FUT
                                                                          and not query.expiry):
        raise ValidationError(f"{text!r}: give its contract key (SYMBOL.SECTYPE...)", symbol=text)
    return make_key(query.symbol, query.sec_type, query.currency, contract_month=query.expiry)


def job_bar_size(text: str) -> str:
    """Return a bar size's short form (``1 min`` -> ``1m``); ValidationError naming the sizes if unknown."""
    try:
        return short_bar_size(parse_bar_size(text))
    except ValueError as exc:
        raise ValidationError(str(exc), bar_size=text) from None


def job_end(bar_size: str, end: datetime | None, now: datetime) -> datetime:
    """Return a job's end: ``end`` (None: ``now``), at most the start of the ``bar_size`` bar forming at ``now``.

    A source asked up to now sends the bar still forming (its figures still
    moving); stored, it would never be corrected. Bars of a day or longer end
    at the UTC midnight before ``now``. ``bar_size`` is a short form (``1m``).
    """
    seconds = min(parse_bar_size(bar_size), 86_400)
    closed = datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=now.tzinfo)
    return min(end or now, closed)


def universe_keys(store: MarketStore, name: str) -> list[str]:
    """Return the contract keys of universe ``name`` (``NotFound`` if there is none, ValidationError if empty)."""
    try:
        universe = Universes(store).get(name)
    except NotFound:  # one message whatever layer found it missing
        raise NotFound(f"no universe named {name} (see `trader universes list`)", universe=name) from None
    keys = list(dict.fromkeys(m.key for m in universe.members))
    if not keys:
        raise ValidationError(f"universe {name} has no members", universe=name)
    return keys


def last_stored(store: MarketStore, key: str, bar_size: str, start: datetime, end: datetime) -> datetime | None:
    """Return the time of ``key``'s last stored ``bar_size`` bar in ``[start, end)`` (None: none there).

    An update starts there: that bar's window is downloaded again (it may have
    been written while its bar was still forming).
    """
    if key not in store.bar_symbols(bar_size).get(bar_size, []):
        return None  # not stored at this size (a read would resample a finer one)
    recent = max(start, end - RECENT)
    for lo in dict.fromkeys((recent, start)):  # the last few days first: a nightly update reads little
        bars = store.read_bars(key, bar_size, lo, end)
        if len(bars):
            return bars.index[-1].to_pydatetime()
    return None


def stored_key(store: MarketStore, symbol: str, *, ticks: bool = False) -> str:
    """Return the stored key SYMBOL names, read as ``history get`` reads it; NotFound saying how if none.

    A contract key is itself; else the symbol parser's first reading
    (:func:`trader.data.requests.job_key`: ``AAPL`` -> ``AAPL.STK``, ``ESZ6``
    -> ``ES.FUT.202612``). If that is not stored, the one stored key whose
    first part SYMBOL is (``ES`` -> ``ES.FUT.202612``), so a stored key always
    matches; several are ambiguous (ValidationError).
    """
    keys = set(store.tick_symbols()) if ticks else {k for ks in store.bar_symbols().values() for k in ks}
    key = read_key(symbol)
    if key in keys:
        return key
    exact = [k for k in keys if k.upper() == symbol.strip().upper()]
    starts = exact or sorted(k for k in keys if k.split(".")[0].upper() == symbol.strip().upper())
    if len(starts) == 1:
        return starts[0]
    if starts:
        raise ValidationError(f"{symbol} is ambiguous: {', '.join(starts)}", candidates=starts)
    what = "ticks recorded" if ticks else "bars stored"
    raise NotFound(f"no {what} for {symbol} ({reading(symbol, key)}; see `trader history summary`)",
                   symbol=symbol, key=key)


def read_key(symbol: str) -> str | None:
    """Return the contract key ``history get`` reads SYMBOL as (None: it needs its contract key)."""
    try:
        return job_key(symbol, datetime.now(UTC).date())
    except ValidationError:
        return None


def reading(symbol: str, key: str | None) -> str:
    """Return how SYMBOL was read, for an error message."""
    if key is None:
        return "not read as a symbol: give its contract key, e.g. ES.FUT.202612"
    return "a contract key" if key == symbol.strip().upper() else f"read as {key}"
