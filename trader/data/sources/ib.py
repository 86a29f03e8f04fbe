"""The IB source: an instrument's historical bars from IB through the broker seam, in IB's longest requests, paced.

:class:`IbSource` has its own :class:`~trader.brokers.ib.adapter.IbAdapter`
(client id ``settings.history.client_id``, so history_service never competes
with trader_service's connection) and asks it through the
:class:`~trader.brokers.base.Broker` seam: the key is resolved to IB's
contract by the broker's contract details (:class:`~trader.trading.instruments.Resolver`),
and ``[start, end)`` is split into windows of the longest duration IB serves
for the bar size (its "step sizes" table, :mod:`trader.brokers.ib.durations`), one request
each, ending at the window's end (UTC ``yyyymmdd-HH:MM:SS``). Each request goes
through the platform's one :class:`~trader.data.pacing.Pacer` (IB's three
rules; off with ``settings.history.pacing: false`` against a tws-sim started
with ``--no-pacing``); a pacing violation (162) is backed off and retried.
Each window's bars are clipped to it (IB may send a bar just outside; the
store refuses those). IB's "HMDS query returned no data" is an empty window;
an unknown symbol, a refused request or a timeout is a SourceError naming the
instrument (a timeout, a lost connection and persistent pacing violations
are retryable, the others not).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pandas as pd

from trader.brokers.ib.adapter import IbAdapter
from trader.brokers.ib.durations import MAX_DURATION, duration_text
from trader.brokers.ib.durations import end_text as ib_end_text
from trader.brokers.records import ContractDetails
from trader.config import Settings
from trader.data.calendars import calendar_for
from trader.data.frames import BAR_COLUMNS, utc
from trader.data.pacing import (
    IB_RULES,
    PACING_RETRY,
    Pacer,
    PacingRules,
    PacingViolation,
    is_no_data,
    retry_paced,
)
from trader.data.sources.base import Window
from trader.data.store import SymbolMeta, contract_fields
from trader.domain import Contract, SecType
from trader.errors import BrokerError, NotFound, SourceError, Timeout, Unavailable, ValidationError
from trader.retry import RetryPolicy
from trader.strategy.bars import ib_bar_size, parse_bar_size
from trader.trading.instruments import Resolver

log = logging.getLogger(__name__)

__all__ = ["IbSource", "ib_requests"]

def ib_requests(start: pd.Timestamp, end: pd.Timestamp, bar_seconds: int) -> Iterator[tuple[pd.Timestamp,
                                                                                             pd.Timestamp, str]]:
    """Yield ``(window start, window end, IB duration)`` covering ``[start, end)``, each one request long.

    The windows are :data:`~trader.brokers.ib.durations.MAX_DURATION` long; a
    duration is :func:`~trader.brokers.ib.durations.duration_text`'s (seconds up
    to a day for intraday bars, else whole days: what a request brings early is clipped).
    """
    step = timedelta(seconds=MAX_DURATION[bar_seconds])
    window_start = start
    while window_start < end:
        window_end = min(window_start + step, end)
        yield window_start, window_end, duration_text((window_end - window_start).total_seconds(), bar_seconds)
        window_start = window_end


def _clipped(frame: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return ``frame``'s bars inside ``[start, end)`` (IB may send one just outside); None: no bars."""
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                            index=pd.DatetimeIndex([], tz="UTC", name="time"))
    index = frame.index
    inside = (index >= start) & (index < end)
    return frame if inside.all() else frame[inside]


_PACERS: dict[tuple[str, int, PacingRules, bool], Pacer] = {}


def _pacer(host: str, port: int, rules: PacingRules, enabled: bool) -> Pacer:
    """Return the process's pacer of the IB at ``host:port``: IB counts a job's requests into the next job's."""
    return _PACERS.setdefault((host, port, rules, enabled), Pacer(rules, enabled=enabled))


class IbSource:
    """Bars from IB (or tws-sim), built as ``IbSource(settings, **options)``.

    Options: ``rules`` (the pacer's limits, IB's by default; a job gives them as a
    mapping of :class:`~trader.data.pacing.PacingRules`' fields), ``timeout``
    (seconds for one request), ``use_rth`` (regular trading hours only),
    ``what_to_show`` (default TRADES, MIDPOINT for FX, which IB has no trades
    of), ``retry`` (the backoff on a pacing violation), ``connect_timeout``.
    """

    name = "ib"

    def __init__(self, settings: Settings, *, rules: PacingRules | Mapping[str, Any] = IB_RULES,
                 timeout: float = 60.0, use_rth: bool = False, what_to_show: str | None = None,
                 retry: RetryPolicy = PACING_RETRY, connect_timeout: float = 15.0) -> None:
        if isinstance(rules, Mapping):  # a job's options are JSON: {"max_requests": 30, ...}
            rules = PacingRules(**rules)
        ib = settings.ib.model_copy(update={"client_id": settings.history.client_id})
        self.pacer = _pacer(ib.host, ib.port, rules, settings.history.pacing)
        self.broker = IbAdapter(ib, settings.trading, pacer=self.pacer)
        self.resolver = Resolver(self.broker)
        self.timeout = timeout
        self.use_rth = use_rth
        self.what_to_show = what_to_show
        self.retry = retry
        self.connect_timeout = connect_timeout
        self._started = False
        self._contracts: dict[str, ContractDetails] = {}

    async def close(self) -> None:
        """Disconnect from IB."""
        if self._started:
            self._started = False
            await self.broker.stop()

    async def _connect(self, key: str) -> None:
        if not self._started:
            self._started = True
            self.broker.start()
        if not await self.broker.wait_connected(self.connect_timeout):
            where = self.broker.describe()["ib"]
            raise SourceError.of(key, f"IB not reachable at {where} within {self.connect_timeout:g} s",
                                 retryable=True)

    async def _contract(self, key: str) -> ContractDetails:
        found = self._contracts.get(key)
        if found is not None:
            return found
        await self._connect(key)
        try:
            found = await self.resolver.one(key)
        except NotFound:
            raise SourceError.of(key, "unknown to the broker", retryable=False) from None
        except ValidationError as exc:
            raise SourceError.of(key, exc.message, retryable=False) from None
        except (Unavailable, BrokerError, Timeout, TimeoutError) as exc:
            raise SourceError.of(key, f"contract lookup failed: {exc}", retryable=True) from None
        self._contracts[key] = found
        return found

    async def describe(self, key: str) -> SymbolMeta:
        """Return what the store keeps beside ``key``'s bars: IB's contract and its exchange's time zone."""
        contract = (await self._contract(key)).contract
        try:
            timezone = calendar_for(contract.primary_exchange or contract.exchange, contract.sec_type).timezone
        except ValidationError:
            timezone = ""
        return SymbolMeta(key=key, source=self.name, timezone=timezone, contract=contract_fields(contract))

    async def windows(self, key: str, bar_size: str, start: pd.Timestamp, end: pd.Timestamp) -> AsyncIterator[Window]:
        """Yield the windows covering ``[start, end)`` in time order, one IB request each."""
        try:
            seconds = parse_bar_size(bar_size)
        except ValueError as exc:
            raise SourceError.of(key, str(exc), retryable=False) from None
        if seconds not in MAX_DURATION:
            raise SourceError.of(key, f"IB serves no {bar_size} bars", retryable=False)
        start, end = utc(start), utc(end)
        details = await self._contract(key)
        contract = details.contract
        what = self.what_to_show or ("MIDPOINT" if contract.sec_type is SecType.CASH else "TRADES")
        size = ib_bar_size(seconds)
        for window_start, window_end, duration in ib_requests(start, end, seconds):
            frame = await self._request(key, contract, window_end, duration, size, what)
            yield Window(window_start, window_end, _clipped(frame, window_start, window_end))

    async def _request(self, key: str, contract: Contract, end: pd.Timestamp, duration: str, size: str,
                       what: str) -> pd.DataFrame | None:
        """Return the bars of one request (None: IB has none); a violation is backed off and retried."""
        end_text = ib_end_text(end)
        await self._connect(key)

        async def once() -> pd.DataFrame:
            return await self.broker.history_frame(contract, end=end_text, duration=duration, bar_size=size,
                                                   what_to_show=what, use_rth=self.use_rth, timeout=self.timeout)

        details: dict[str, Any] = {"end": end_text, "duration": duration, "bar_size": size}
        try:
            return await retry_paced(once, pacer=self.pacer, what=f"IB history of {key} {size} to {end_text}",
                                     policy=self.retry)
        except PacingViolation as exc:
            raise SourceError.of(key, f"IB kept refusing for pacing: {exc.message}", retryable=True,
                                 **details) from None
        except BrokerError as exc:
            if is_no_data(exc.details.get("code"), exc.message):
                log.info("%s: IB has no %s bars in the %s to %s", key, size, duration, end_text)
                return None
            raise SourceError.of(key, exc.message, retryable=False, code=exc.details.get("code"), **details) from None
        except (Timeout, Unavailable) as exc:
            raise SourceError.of(key, exc.message, retryable=True, **details) from None
        except (ConnectionError, OSError) as exc:  # the connection went while the request was out
            raise SourceError.of(key, f"IB connection lost: {exc}", retryable=True, **details) from None
