"""The recorder's batch decoding: a key's payloads into columns as the codec reads them, the rest refused and counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from bench.store_recorder import tick
from trader.data.frames import TICK_COLUMNS
from trader.data.recorder_decode import decode
from trader.domain import Tick
from trader.messaging import codec

KEY = "AAPL.STK"
BASE = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def by_codec(payloads: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Return what the payloads mean, read one by one with the codec: times (ns) and TICK_COLUMNS values."""
    times, rows = [], []
    for p in payloads:
        plain = codec.decode(codec.encode(p))
        stamp = plain["time"]
        times.append((stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000)
        rows.append([np.nan if plain.get(c) is None else float(plain[c]) for c in TICK_COLUMNS])
    return np.array(times, dtype="int64"), np.array(rows, dtype="float64").reshape(len(rows), len(TICK_COLUMNS))


def run(payloads: list[Any]) -> tuple[np.ndarray, np.ndarray, list[bytes], list[str]]:
    bodies = [p if isinstance(p, bytes) else codec.encode(p) for p in payloads]
    reasons: list[str] = []
    times, values, good = decode(KEY, bodies, lambda reason, body: reasons.append(reason))
    return times, values, good, reasons


def test_a_batch_of_one_layout_reads_as_the_codec_reads_it() -> None:
    # timestamp 64 (microseconds), NaN, negative and huge floats, every column present
    payloads = [{"instrument": KEY, "time": BASE + timedelta(microseconds=7 * i), "bid": -1.5 * i, "ask": 1e300,
                 "last": float("nan") if i % 3 == 0 else 2.25, "bid_size": 100.0, "ask_size": 0.0,
                 "last_size": 5e-324, "volume": float(i)} for i in range(1, 500)]
    times, values, good, reasons = run(payloads)
    want_times, want_values = by_codec(payloads)
    assert reasons == [] and len(good) == len(payloads)
    np.testing.assert_array_equal(times, want_times)
    np.testing.assert_array_equal(values, want_values)  # NaN where NaN


def test_mixed_layouts_keep_their_order_and_values() -> None:
    # whole seconds (timestamp 32), Nones in different columns (same length, other skeleton), missing
    # columns, an int price (the codec path), a Tick dataclass (the codec path), extra string field
    payloads: list[Any] = []
    for i in range(60):
        t = BASE + timedelta(seconds=i) if i % 4 == 0 else BASE + timedelta(seconds=i, microseconds=3)
        kind = i % 6
        if kind == 0:
            payloads.append(tick(KEY, i) | {"time": t})
        elif kind == 1:
            payloads.append(tick(KEY, i) | {"time": t, "bid": None, "last": 3.0})
        elif kind == 2:
            payloads.append({"instrument": KEY, "time": t, "last": float(i)})
        elif kind == 3:
            payloads.append(tick(KEY, i) | {"time": t, "bid": i})  # int: not float64 in the bytes
        elif kind == 4:
            payloads.append(Tick(KEY, t, bid=float(i), volume=2.0))
        else:
            payloads.append(tick(KEY, i) | {"time": t, "venue": "ARCA"})
    times, values, good, reasons = run(payloads)
    plain = [p if isinstance(p, dict) else {"instrument": p.instrument, "time": p.time,
                                             **{c: getattr(p, c) for c in TICK_COLUMNS}} for p in payloads]
    want_times, want_values = by_codec(plain)
    assert reasons == [] and len(good) == len(payloads)
    np.testing.assert_array_equal(times, want_times)
    np.testing.assert_array_equal(values, want_values)


@pytest.mark.parametrize("bad, reason", [
    ({"instrument": "MSFT.STK"}, "instrument 'MSFT.STK'"),  # same length as KEY: the skeleton must differ
    ({"instrument": "AAPL.STX"}, "instrument 'AAPL.STX'"),
    ({"time": "yesterday's!"}, "time"),
    ({"bid": "189.5"}, "not a number"),
    ({"bid": True}, "not a number"),
])
def test_a_payload_that_is_not_a_tick_of_the_key_is_refused_among_good_ones(bad: dict[str, Any], reason: str) -> None:
    payloads = [tick(KEY, i) for i in range(1, 40)]
    payloads[0] = tick(KEY, 1) | bad  # the first: it would be the layout read
    payloads[20] = tick(KEY, 21) | bad  # in the middle of a run of good ones
    times, values, good, reasons = run(payloads)
    assert len(reasons) == 2 and all(reason in r for r in reasons), reasons
    kept = [p for i, p in enumerate(payloads) if i not in (0, 20)]
    want_times, want_values = by_codec(kept)
    np.testing.assert_array_equal(times, want_times)
    np.testing.assert_array_equal(values, want_values)
    assert len(good) == len(kept)


def test_bytes_that_are_not_msgpack_or_not_a_map_are_refused() -> None:
    good = codec.encode(tick(KEY, 1))
    broken = bytearray(good)
    broken[0] = 0x8A  # a map of ten entries where there are nine: same length as the good ones
    payloads: list[Any] = [bytes(broken), b"", b"\xc1", codec.encode("hello"), good]
    times, _, kept, reasons = run(payloads)
    assert len(reasons) == 4 and any("undecodable" in r for r in reasons), reasons
    assert kept == [good] and len(times) == 1


def test_a_time_beyond_int64_nanoseconds_is_refused_not_wrapped() -> None:
    far = tick(KEY, 1) | {"time": datetime(2300, 1, 1, 0, 0, 0, 5, tzinfo=UTC)}  # > 2262: no int64 ns
    times, _, _, reasons = run([tick(KEY, 2), far])
    assert len(reasons) == 1 and "time" in reasons[0]
    assert len(times) == 1 and times[0] > 0
