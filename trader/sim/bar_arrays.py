"""Bars as parallel numpy arrays, and one-second bars drawn inside minutes that add back up to them.

:class:`BarArrays` is what tws-sim's history is built in: minutes (synthetic or
recorded), stored bars or recorded ticks, aggregated into any bar size by
:func:`trader.sim.history.bar_rows`. :func:`seconds_from_minutes` draws the
seconds inside each minute (a seeded Brownian bridge per ``(seed, conid,
minute)``), so bars under a minute agree with the minutes they lie in.
"""

from __future__ import annotations

import numpy as np

from trader.sim.market_state import MinuteBar

__all__ = ["BarArrays", "seconds_from_minutes"]

_SUBSTEPS = 4  # path points per second inside a minute: what gives one-second bars their wicks

_FIELDS = ("start", "open", "high", "low", "close", "volume", "count")  # BarArrays' arrays, in its order


class BarArrays:
    """Bars as parallel numpy arrays: start (epoch seconds), open, high, low, close, volume, count."""

    __slots__ = ("close", "count", "high", "low", "open", "start", "volume")

    def __init__(self, start: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                 close: np.ndarray, volume: np.ndarray, count: np.ndarray) -> None:
        self.start, self.open, self.high, self.low = start, open_, high, low
        self.close, self.volume, self.count = close, volume, count

    @classmethod
    def of(cls, bars: list[MinuteBar]) -> BarArrays:
        """Return recorded minute bars as arrays."""
        return cls(
            np.array([b.minute * 60 for b in bars], dtype=np.int64),
            np.array([b.open for b in bars], dtype=np.float64), np.array([b.high for b in bars], dtype=np.float64),
            np.array([b.low for b in bars], dtype=np.float64), np.array([b.close for b in bars], dtype=np.float64),
            np.array([b.volume for b in bars], dtype=np.float64), np.array([b.count for b in bars], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.start)

    def __add__(self, other: BarArrays) -> BarArrays:
        return BarArrays(*(np.concatenate([getattr(self, name), getattr(other, name)]) for name in _FIELDS))

    def select(self, which: np.ndarray) -> BarArrays:
        """Return the bars ``which`` (a boolean mask or indices) picks."""
        return BarArrays(*(getattr(self, name)[which] for name in _FIELDS))


_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _mix(z: np.ndarray) -> np.ndarray:
    """Return splitmix64's finaliser of ``z`` (uint64, wrapping), a counter-based random stream."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, conid: int, minutes: np.ndarray, count: int) -> np.ndarray:
    """Return ``count`` uniforms in (0, 1) for each minute, a function of ``(seed, conid, minute)`` only."""
    golden = np.uint64(_GOLDEN)
    key = _mix(np.array([seed & _MASK64], dtype=np.uint64) + golden)
    key = _mix((key ^ np.uint64(conid & _MASK64)) + golden)
    keys = _mix((key ^ minutes.astype(np.uint64)) + golden)
    counters = np.arange(1, count + 1, dtype=np.uint64) * golden
    bits = _mix(keys[:, None] + counters[None, :])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def seconds_from_minutes(minutes: BarArrays, spans: np.ndarray, *, seed: int, conid: int, tick: float,
                         grid_offset: float = 0.0) -> BarArrays:
    """Return one-second bars inside each minute that add back up to exactly that minute.

    Minute ``i`` is spread over its first ``spans[i]`` seconds (60 for a whole minute; fewer
    for the live market's open minute). Its price path starts at the open, touches the high
    and the low at seeded times, ends at the close and never leaves [low, high]; between
    those points it is a Brownian bridge snapped to the grid ``grid_offset + k * tick``. The
    volume and the trade count are split over the seconds, in whole units where the minute's
    are whole. Every draw is a function of ``(seed, conid, minute)``, so a minute's seconds do
    not depend on the request that asks for them.
    """
    n = len(minutes)
    if n == 0:
        return minutes
    spans = np.clip(np.asarray(spans, dtype=np.int64), 1, 60)
    points = 60 * _SUBSTEPS
    lengths = spans * _SUBSTEPS  # the path of minute i runs over substeps 0 .. lengths[i]
    draws = _uniforms(seed, conid, minutes.start // 60, points + 2 + 60)
    half = points // 2
    radius = np.sqrt(-2.0 * np.log(draws[:, :half]))
    angle = 2.0 * np.pi * draws[:, half:points]
    normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # Box-Muller
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(normals, axis=1)], axis=1)
    # The high and the low are touched at two distinct substeps strictly inside the path.
    at_high = 1 + (draws[:, points] * (lengths - 1)).astype(np.int64)
    at_low = 1 + (draws[:, points + 1] * (lengths - 2)).astype(np.int64)
    at_low += at_low >= at_high
    high_first = at_high < at_low
    o, h, lo, c = minutes.open, minutes.high, minutes.low, minutes.close
    times = np.stack([np.zeros(n, dtype=np.int64), np.minimum(at_high, at_low), np.maximum(at_high, at_low),
                      lengths], axis=1)
    values = np.stack([o, np.where(high_first, h, lo), np.where(high_first, lo, h), c], axis=1)
    # The bridge is the walk minus its chord through the four points, added to the line through
    # their prices: the walk plus one piecewise-linear function, written with hinges.
    scale = (0.5 * (h - lo) / np.sqrt(lengths))[:, None]
    knots = values - scale * np.take_along_axis(walk, times, 1)
    slopes = np.diff(knots, axis=1) / np.diff(times, axis=1)
    step = np.arange(points + 1)[None, :]
    path = (scale * walk + knots[:, :1] + slopes[:, :1] * step
            + (slopes[:, 1:2] - slopes[:, :1]) * np.maximum(step - times[:, 1:2], 0)
            + (slopes[:, 2:3] - slopes[:, 1:2]) * np.maximum(step - times[:, 2:3], 0))
    if tick > 0:
        path = grid_offset + np.round((path - grid_offset) / tick) * tick
    path = np.clip(path, lo[:, None], h[:, None])
    np.put_along_axis(path, times, values, 1)  # the open, high, low and close exactly, off the grid or not

    body = path[:, :points].reshape(n, 60, _SUBSTEPS)
    closes = path[:, _SUBSTEPS::_SUBSTEPS]
    highs = np.maximum(body.max(axis=2), closes)
    lows = np.minimum(body.min(axis=2), closes)
    second = np.arange(60)[None, :]
    elapsed = second < spans[:, None]
    weights = np.where(elapsed, -np.log(draws[:, points + 2:]), 0.0)
    share = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    share[second >= spans[:, None] - 1] = 1.0
    so_far = minutes.volume[:, None] * share
    whole = (minutes.volume == np.round(minutes.volume))[:, None]
    so_far = np.where(whole, np.floor(so_far), so_far)
    volume = np.diff(so_far, axis=1, prepend=0.0)
    trades = np.diff(np.floor(minutes.count[:, None] * share).astype(np.int64), axis=1, prepend=0)
    starts = minutes.start[:, None] + second
    return BarArrays(starts[elapsed], body[:, :, 0][elapsed], highs[elapsed], lows[elapsed], closes[elapsed],
                     volume[elapsed], trades[elapsed])
