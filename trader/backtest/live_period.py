"""The period a strategy traded live: its fills from the book, its bars (stored, or built from recorded ticks), its backtest.

:func:`drift` is what ``trader strategy drift`` and the daily job run, given
what trader_service's ``orders`` and ``trades`` answered and the market store:

1. The strategy's fills: those of the orders whose ``order_ref`` is its name
   (a bracket child's by its parent), as the strategy service's resync takes them.
2. The period: from the bar whose close decided the first live order (found
   back from its client order id) or ``start``, to ``end`` or the last bar.
3. Its bars per contract key: stored bars of the strategy's size, else the
   recorded ticks aggregated as the live service aggregates them
   (:func:`ticks_to_bars`: buckets on the epoch, the last price else the mid).
   ``strategy.window`` bars before the start are read too, the history the
   live strategy warmed up on.
4. The backtest (:func:`trader.backtest.engine.run`) of the plugin unchanged,
   except that its targets before the start are NaN, which live and backtest
   both skip: so it starts flat at the period's first bar and trades its
   target there, as the live strategy did when it started.
5. The comparison (:func:`trader.backtest.drift.compare`) of the orders
   decided before the last bar (a later one has no next open to fill at).

No fills, or no bars for an instrument, is a NotFound saying which and where.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from trader.backtest.data import load_bars
from trader.backtest.drift import DriftReport, bar_ids, compare, live_frame
from trader.backtest.settings import BacktestSettings
from trader.data.requests import job_key
from trader.data.store import MarketStore
from trader.domain import Fill
from trader.errors import NotFound, ValidationError
from trader.strategy.bars import BAR_COLUMNS, parse_bar_size
from trader.strategy.base import Strategy
from trader.strategy.orders import root_order_id

__all__ = ["drift", "instrument_keys", "period_bars", "strategy_fills", "ticks_to_bars"]

log = logging.getLogger(__name__)

#: How far back the bars before the start are looked for (nights, weekends, holidays), at least.
MIN_LOOKBACK = timedelta(days=7)


def strategy_fills(name: str, orders: Iterable[Any], fills: Iterable[Fill]) -> list[Fill]:
    """Return the fills of strategy ``name``'s orders (``order_ref`` = name; bracket children by their parent)."""
    mine = {o.client_order_id for o in orders if o.order_ref == name}
    return [f for f in fills if f.client_order_id and root_order_id(f.client_order_id) in mine]


def instrument_keys(strategy: Strategy, fills: Iterable[Fill], known: Mapping[str, str] | None = None,
                    today: date | None = None) -> dict[str, str]:
    """Return the strategy's instruments' contract keys (symbol -> key).

    ``known`` first (the strategy service's subscriptions), else a fill's
    contract key that reads as the symbol, else the symbol read without a broker.
    """
    traded = {f.contract.key for f in fills}
    out: dict[str, str] = {}
    for symbol in strategy.instruments:
        if known and symbol in known:
            out[symbol] = known[symbol]
            continue
        try:
            key = job_key(symbol, today or datetime.now(UTC).date())
        except ValidationError:
            starts = sorted(k for k in traded if k.split(".")[0].upper() == symbol.strip().upper())
            if len(starts) != 1:
                raise
            key = starts[0]
        out[symbol] = key
    return out


def ticks_to_bars(ticks: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """Return recorded ``ticks`` as ``seconds`` bars the way the live service builds them.

    A tick's price is its last trade, else its bid/ask mid (positive, finite);
    bars are bucketed on the epoch, ``volume`` sums the traded sizes. A bucket
    without a usable tick has no bar.
    """
    last = ticks["last"].to_numpy(dtype=np.float64)
    mid = (ticks["bid"].to_numpy(dtype=np.float64) + ticks["ask"].to_numpy(dtype=np.float64)) / 2
    has_last = np.isfinite(last)
    price = np.where(has_last, last, mid)
    ok = np.isfinite(price) & (price > 0) & (has_last | (ticks["bid"].to_numpy() > 0) & (ticks["ask"].to_numpy() > 0))
    size = np.where(has_last, np.nan_to_num(ticks["last_size"].to_numpy(dtype=np.float64)), 0.0)
    index = ticks.index[ok]
    step = seconds * 1_000_000_000
    buckets = pd.DatetimeIndex((index.asi8 // step) * step, tz="UTC", name="time")
    frame = pd.DataFrame({"price": price[ok], "size": size[ok]}, index=index)
    grouped = frame.groupby(buckets, sort=True)
    out = pd.DataFrame({"open": grouped["price"].first(), "high": grouped["price"].max(),
                        "low": grouped["price"].min(), "close": grouped["price"].last(),
                        "volume": grouped["size"].sum()})
    out.index = out.index.rename("time")
    return out


def period_bars(store: MarketStore, key: str, bar_size: str, start: datetime, end: datetime | None,
                lookback: int) -> tuple[pd.DataFrame, str]:
    """Return ``key``'s bars from ``lookback`` bars before ``start`` to ``end`` and where they came from.

    Stored bars of ``bar_size`` (or resampled from a finer stored size), read
    as a backtest reads them (:func:`trader.backtest.data.load_bars`; its gap
    list is not wanted here), else recorded ticks aggregated; NotFound naming
    the key and range if neither has any.
    """
    seconds = parse_bar_size(bar_size)
    since = start - max(MIN_LOOKBACK, timedelta(seconds=3 * seconds * lookback))
    source = "bars"
    try:
        (frame,) = load_bars([key], bar_size, BacktestSettings(start=since, end=end), store=store).bars.values()
    except NotFound:  # none stored in the range: the recorded ticks, if any
        frame = pd.DataFrame()
    if frame.empty:
        try:
            ticks = store.read_ticks(key, since, end)
        except NotFound:
            ticks = pd.DataFrame()
        frame = ticks_to_bars(ticks, seconds) if not ticks.empty else pd.DataFrame()
        source = "ticks"
    upto = "the last" if end is None else f"{end:%Y-%m-%d %H:%M}"
    if frame.empty or not (frame.index >= pd.Timestamp(start)).any():
        raise NotFound(f"no {bar_size} bars or recorded ticks of {key} from {start:%Y-%m-%d %H:%M} to {upto} "
                       "(`trader history get` stores them)", key=key)
    frame = frame[list(BAR_COLUMNS)].astype("float64")
    before = frame.index < pd.Timestamp(start)
    first = max(0, int(before.sum()) - lookback)
    return frame.iloc[first:], source


def _first_bar(name: str, fills: list[Fill], bars: Mapping[str, pd.DataFrame], seconds: int) -> pd.Timestamp:
    """Return the bar that decided the first live order: found back from its id, else the bar before its fill's."""
    first = min(fills, key=lambda f: f.time)
    at = pd.Timestamp(first.time)
    near = {k: f[(f.index <= at) & (f.index > at - pd.Timedelta(MIN_LOOKBACK))] for k, f in bars.items()}
    found = bar_ids(name, near).get(root_order_id(first.client_order_id or ""))
    if found is not None:
        return found[1]
    return at.floor(f"{seconds}s") - pd.Timedelta(seconds=seconds)


def _from_start(strategy: Strategy, start: pd.Timestamp) -> Strategy:
    """Return a copy of ``strategy`` whose targets before ``start`` are NaN (no trade), the rest its own."""
    clone = copy.copy(strategy)
    inner = strategy.signals

    def signals(prices: pd.DataFrame) -> pd.Series:
        out = inner(prices)
        return out.where(out.index >= start) if isinstance(out, pd.Series) and len(out) == len(prices) else out

    clone.signals = signals  # type: ignore[method-assign]
    return clone


def drift(strategy: Strategy, orders: Iterable[Any], fills: Iterable[Fill], store: MarketStore, *,
          start: datetime | None = None, end: datetime | None = None, keys: Mapping[str, str] | None = None,
          settings: BacktestSettings | None = None) -> DriftReport:
    """Return the drift of ``strategy``'s live fills from its backtest over the period it traded (module docstring).

    ``orders`` and ``fills`` are trader_service's ``orders`` and ``trades``;
    ``keys`` the symbol -> contract key map the strategy service subscribed.
    """
    name = strategy.name
    mine = [f for f in strategy_fills(name, orders, fills) if end is None or f.time < end]
    if not mine:
        upto = f" before {end:%Y-%m-%d %H:%M}" if end else ""
        raise NotFound(f"no fills of strategy {name}{upto} in trader_service's book: it has not traded live "
                       "or on paper", strategy=name)
    symbol_keys = instrument_keys(strategy, mine, keys)
    seconds = parse_bar_size(strategy.bar_size)
    lookback = strategy.window + 2
    # Without a start, the bars of a week before the first fill hold the bar that decided it.
    probe = start or min(f.time for f in mine) - MIN_LOOKBACK
    bars, sources = {}, {}
    for key in symbol_keys.values():
        bars[key], sources[key] = period_bars(store, key, strategy.bar_size, probe, end, lookback)
    begin = pd.Timestamp(start) if start else _first_bar(name, mine, bars, seconds)
    for key, frame in bars.items():  # the warm-up: ``lookback`` bars before the first bar compared
        bars[key] = frame.iloc[max(0, int((frame.index < begin).sum()) - lookback):]
    last = min(frame.index[-1] for frame in bars.values())
    notes = [f"{key}: bars built from recorded ticks" for key, src in sources.items() if src == "ticks"]
    period = {k: f[(f.index >= begin) & (f.index <= last)] for k, f in bars.items()}
    index = bar_ids(name, bars)  # the warm-up's too: an order decided before the start is left out by its bar
    live = [f for f in mine if _in_period(f, index, begin, last, seconds)]
    if not live:
        raise NotFound(f"no fills of strategy {name} decided from {begin:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
                       "(the bars' range)", strategy=name)
    others = sorted({f.contract.key for f in live} - set(bars))
    if others:  # a future rolled, an instrument taken out of the config
        notes.append(f"fills on {', '.join(others)}, not an instrument of the strategy now: extra, and an open "
                     "position there unmarked")
    if len(live) < len(mine):
        notes.append(f"{len(mine) - len(live)} live fill(s) decided outside {begin:%Y-%m-%d %H:%M} .. "
                     f"{last:%Y-%m-%d %H:%M} (the bars' range, the last bar excluded) not compared")
    # vectorbt and numba are imported only once there is something to compare
    from trader.backtest.engine import run

    # By contract key: the engine reads an instrument's kind (its commission schedule) from it.
    # The period is the live one, not the config's backtest range; no benchmark to load.
    run_settings = (settings or strategy.config.backtest).model_copy(update={"start": None, "end": None,
                                                                             "benchmark": None, "data": None})
    result = run(_from_start(strategy, begin), bars, run_settings)
    decided = pd.to_datetime(result.orders["time"], utc=True)
    orders_bt = result.orders[(decided >= begin) & (decided < last)].reset_index(drop=True)
    log.info("drift of %s: %d live fills, %d backtest orders, %s .. %s", name, len(live), len(orders_bt), begin, last)
    return compare(name, orders_bt, live_frame(live), period, start=begin.to_pydatetime(), end=last.to_pydatetime(),
                   keys=symbol_keys, notes=notes, index=index)


def _in_period(fill: Fill, index: Mapping[str, tuple[str, pd.Timestamp]], begin: pd.Timestamp, last: pd.Timestamp,
               seconds: int) -> bool:
    """Whether ``fill``'s order was decided in [begin, last): by its bar when its id names one, else its time."""
    found = index.get(root_order_id(fill.client_order_id or ""))
    if found is not None:
        return begin <= found[1] < last
    return begin <= pd.Timestamp(fill.time) < last + pd.Timedelta(seconds=seconds)
