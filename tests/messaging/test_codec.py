"""Tests for the codec: exact round trips, refusals on encode, and decode's one error type."""

from __future__ import annotations

import contextlib
import enum
import math
import struct
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

import trader.domain as domain
import trader.domain.enums as domain_enums
from trader.domain import (
    AccountValue,
    Action,
    Bar,
    Contract,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Right,
    SecType,
    Tick,
    TimeInForce,
)
from trader.errors import ProtocolError, ValidationError
from trader.messaging import codec
from trader.messaging.codec import decode, encode

I64_MIN, U64_MAX = -(2**63), 2**64 - 1

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def roundtrip(value: Any) -> Any:
    return decode(encode(value))


def decode_or_protocol_error(data: bytes) -> None:
    """Decode ``data``; the only acceptable failure is ProtocolError."""
    with contextlib.suppress(ProtocolError):
        decode(data)


# --- Strategies ---------------------------------------------------------------

offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
# Keep a day away from the ends so any offset still converts to a UTC year 1..9999.
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)
utc_datetimes = st.datetimes(timezones=st.just(UTC))
decimals = st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [
        Decimal("-0"),
        Decimal("0E-30"),
        Decimal("1E+30"),
        Decimal("-1.50"),
        Decimal("12345678901234567890.123456789"),
    ]
)
members = st.sampled_from([m for _, cls in codec.ENUM_CODES for m in cls])
money = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4)
symbols = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
    min_size=1,
    max_size=8,
).filter(str.strip)

stocks = st.builds(
    Contract,
    symbols,
    st.sampled_from([SecType.STK, SecType.IND, SecType.CMDTY]),
    exchange=st.sampled_from(["SMART", "NYSE", "ARCA"]),
    currency=st.sampled_from(["USD", "EUR"]),
    conid=st.none() | st.integers(1, 2**31),
)
futures = st.builds(
    Contract,
    symbols,
    st.just(SecType.FUT),
    exchange=st.just("CME"),
    expiry=st.dates(),
    multiplier=st.none() | money,
)
options = st.builds(
    Contract,
    symbols,
    st.just(SecType.OPT),
    expiry=st.dates(),
    strike=money,
    right=st.sampled_from(Right),
    multiplier=st.just(Decimal(100)),
)
contracts = stocks | futures | options


@st.composite
def orders(draw: st.DrawFn) -> Order:
    order_type = draw(st.sampled_from(OrderType))
    prices: dict[str, Decimal | None] = {}
    if order_type in (OrderType.LMT, OrderType.STP_LMT):
        prices["limit_price"] = draw(money)
    if order_type in (OrderType.STP, OrderType.STP_LMT):
        prices["stop_price"] = draw(money)
    if order_type is OrderType.TRAIL:
        key = draw(st.sampled_from(["trail_amount", "trail_percent"]))
        prices[key] = draw(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2)
        )
    quantity = draw(st.integers(1, 10_000))
    filled = draw(st.integers(0, quantity))
    return Order(
        draw(st.text(min_size=1, max_size=12).filter(str.strip)),
        draw(contracts),
        draw(st.sampled_from(Action)),
        Decimal(quantity),
        order_type,
        tif=draw(st.sampled_from(TimeInForce)),
        outside_rth=draw(st.booleans()),
        oca_group=draw(st.none() | st.just("oca-1")),
        order_ref=draw(st.sampled_from(["manual", "sma_cross"])),
        status=draw(st.sampled_from(OrderStatus)),
        filled_quantity=Decimal(filled),
        avg_fill_price=draw(money) if filled else None,
        broker_order_id=draw(st.none() | st.integers(1, 2**31)),
        perm_id=draw(st.none() | st.integers(1, 2**31)),
        created_at=draw(utc_datetimes),
        **prices,
    )


fills = st.builds(
    Fill,
    st.text(min_size=1, max_size=20).filter(str.strip),
    st.none() | st.just("o-1"),
    contracts,
    st.sampled_from(Action),
    money,
    st.decimals(min_value=-1000, max_value=100000, places=6),
    aware_datetimes,
    commission=st.none() | money,
    broker_order_id=st.none() | st.integers(1, 2**31),
)
positions = st.builds(
    Position,
    st.just("DU123456"),
    contracts,
    st.decimals(min_value=-(10**6), max_value=10**6, places=2),
    money,
    unrealized_pnl=st.none() | st.decimals(min_value=-(10**6), max_value=10**6, places=2),
)
market_floats = st.none() | st.floats(allow_nan=False, allow_infinity=False)
ticks = st.builds(
    Tick,
    st.just("ES.FUT.202612"),
    utc_datetimes,
    bid=market_floats,
    ask=market_floats,
    last=market_floats,
    bid_size=market_floats,
    volume=market_floats,
)


@st.composite
def bars(draw: st.DrawFn) -> Bar:
    prices = sorted(draw(st.lists(st.floats(0, 1e6), min_size=4, max_size=4)))
    low, a, b, high = prices
    return Bar(
        "AAPL.STK",
        draw(utc_datetimes),
        "1 min",
        a,
        high,
        low,
        b,
        draw(st.floats(0, 1e9)),
        draw(st.none() | st.integers(0, 10**6)),
    )


account_values = st.builds(
    AccountValue, st.just("DU1"), st.just("NetLiquidation"), st.text(), st.sampled_from(["", "USD"])
)
records = contracts | orders() | fills | positions | ticks | bars() | account_values

plain = (
    st.none()
    | st.booleans()
    | st.integers(I64_MIN, U64_MAX)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
extension = (
    utc_datetimes | st.dates() | st.timedeltas() | decimals | members | contracts | ticks | fills
)
keys = st.text() | st.integers(I64_MIN, U64_MAX) | members | st.dates()
values = st.recursive(
    plain | extension,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=20,
)


# --- Round trips ----------------------------------------------------------------


@FAST
@given(values)
def test_nested_values_round_trip_exactly(value: Any) -> None:
    assert roundtrip(value) == value


@FAST
@given(plain)
def test_plain_values_keep_their_type(value: Any) -> None:
    result = roundtrip(value)
    assert result == value
    assert type(result) is type(value)


@FAST
@given(aware_datetimes)
@example(datetime(1, 1, 1, tzinfo=UTC))
@example(datetime.max.replace(tzinfo=UTC))
@example(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
def test_aware_datetimes_decode_as_the_same_instant_in_utc(value: datetime) -> None:
    result = roundtrip(value)
    assert result == value
    assert result.tzinfo is UTC
    assert result.utcoffset() == timedelta(0)


@FAST
@given(st.decimals(allow_nan=True, allow_infinity=True))
@example(Decimal("-0"))
@example(Decimal("-0E+5"))
@example(Decimal("1.2345E-40"))
@example(Decimal("sNaN123"))
@example(Decimal("-NaN"))
@example(Decimal("-Infinity"))
@example(Decimal("1" * 200))
def test_decimals_round_trip_with_sign_digits_and_exponent(value: Decimal) -> None:
    result = roundtrip(value)
    assert type(result) is Decimal
    assert result.as_tuple() == value.as_tuple()


@FAST
@given(st.dates())
def test_dates_round_trip(value: date) -> None:
    result = roundtrip(value)
    assert result == value
    assert type(result) is date


@FAST
@given(st.timedeltas())
@example(timedelta.min)
@example(timedelta.max)
@example(timedelta(microseconds=-1))
def test_timedeltas_round_trip_exactly(value: timedelta) -> None:
    result = roundtrip(value)
    assert result == value
    assert type(result) is timedelta


@given(members)
@settings(max_examples=60, deadline=None)
def test_registered_enum_members_come_back_as_themselves(member: enum.Enum) -> None:
    assert roundtrip(member) is member
    assert roundtrip({member: [member]}) == {member: [member]}


@FAST
@given(records)
def test_domain_records_round_trip_as_equal_objects(record: Any) -> None:
    result = roundtrip(record)
    assert type(result) is type(record)
    assert result == record


def test_a_contract_is_decoded_once_and_shared_by_every_message_carrying_it() -> None:
    aapl, msft = Contract("AAPL", conid=265598), Contract("MSFT", conid=272093)
    first = decode(encode(Order("c-1", aapl, Action.BUY, Decimal(1))))
    second = decode(encode({"order": Order("c-2", aapl, Action.SELL, Decimal(2))}))["order"]
    assert first.contract == aapl and second.contract is first.contract  # frozen: safe to share
    assert decode(encode(msft)) == msft and decode(encode(msft)) is not first.contract
    with pytest.raises(ProtocolError):  # a bad contract is still refused, cached or not
        decode(msgpack.packb(msgpack.ExtType(7, msgpack.packb([1, {"symbol": "AAPL", "conid": -5}]))))
    for n in range(codec._CONTRACT_CACHE_SIZE + 10):  # bounded: distinct contracts do not grow it for ever
        decode(encode(Contract(f"S{n}")))
    assert len(codec._CONTRACT_CACHE) <= codec._CONTRACT_CACHE_SIZE


def test_a_contract_instance_is_encoded_once() -> None:
    aapl = Contract("AAPL", conid=265598, exchange="SMART", primary_exchange="NASDAQ")
    once = encode(aapl)
    assert codec._CONTRACT_EXT[id(aapl)][0] is aapl
    assert encode(aapl) == once == encode(Contract("AAPL", conid=265598, exchange="SMART", primary_exchange="NASDAQ"))
    assert decode(encode(Order("c-1", aapl, Action.BUY, Decimal(1)))).contract == aapl
    with pytest.raises(ValidationError, match="nest"):  # the nesting limit holds for a cached contract too
        codec._encode_contract(aapl, codec.MAX_DEPTH)
    for n in range(codec._CONTRACT_CACHE_SIZE + 10):  # bounded: distinct contracts do not grow it for ever
        encode(Contract(f"S{n}"))
    assert len(codec._CONTRACT_EXT) <= codec._CONTRACT_CACHE_SIZE


@FAST
@given(st.integers(I64_MIN, U64_MAX).map(lambda ns: ns // 2))
def test_pandas_timestamps_round_trip_to_the_nanosecond(ns: int) -> None:
    ns = max(min(ns, 2**63 - 1), I64_MIN + 1)  # I64_MIN itself is NaT's sentinel
    value = pd.Timestamp(ns, unit="ns", tz="UTC")
    result = roundtrip(value)
    assert isinstance(result, pd.Timestamp)
    assert result.value == ns
    assert str(result.tz) == "UTC"


def test_pandas_timestamp_in_another_zone_decodes_as_the_same_instant_in_utc() -> None:
    value = pd.Timestamp("2024-03-10 09:30:00.123456789", tz="America/New_York")
    result = roundtrip(value)
    assert result == value
    assert result.value == value.value
    assert str(result.tz) == "UTC"


def test_nat_and_pandas_timedelta_round_trip() -> None:
    assert roundtrip(pd.NaT) is pd.NaT
    value = pd.Timedelta(123_456_789_012, unit="ns")
    result = roundtrip(value)
    assert isinstance(result, pd.Timedelta)
    assert result.value == value.value


def test_tuples_and_subclasses_decode_as_their_base_types() -> None:
    class Name(str):
        pass

    assert roundtrip((1, (2, "x"))) == [1, [2, "x"]]
    result = roundtrip({"a": Name("abc")})
    assert result == {"a": "abc"}
    assert type(result["a"]) is str


def test_numpy_scalars_decode_as_python_numbers() -> None:
    result = roundtrip(
        [np.int64(-5), np.uint64(2**64 - 1), np.float32(1.5), np.float64(2.25), np.bool_(True)]
    )
    assert result == [-5, 2**64 - 1, 1.5, 2.25, True]
    assert [type(v) for v in result] == [int, int, float, float, bool]


def test_nan_float_round_trips() -> None:
    assert math.isnan(roundtrip(float("nan")))


def test_concurrent_encoding_keeps_each_thread_s_values_apart() -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        contract = Contract(f"S{n}")
        for i in range(400):
            value = {"n": n, "i": i, "c": contract, "d": Decimal(i) / 7}
            if roundtrip(value) != value:
                errors.append(f"thread {n} item {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- DataFrames and Series ------------------------------------------------------


def sample_frames() -> list[pd.DataFrame]:
    index = pd.date_range("2024-01-02 14:30", periods=5, freq="min", tz="UTC", name="time")
    prices = pd.DataFrame(
        {
            "open": [1.0, 2.0, 3.0, 4.0, 5.5],
            "volume": np.arange(5, dtype="int64"),
            "symbol": ["ES", "ES", "NQ", None, "ES"],
            "ts": pd.date_range("2030-01-01", periods=5, freq="37ns", tz="UTC"),
            "flag": [True, False, True, True, False],
        },
        index=index,
    )
    unindexed = pd.DataFrame({"a": [1.5, np.nan, -0.0], "b": ["x", "y", "z"]})
    labelled = pd.DataFrame(np.arange(6.0).reshape(2, 3))  # integer column labels
    labelled.columns.name = "field"
    irregular = prices.iloc[[0, 2, 3]]
    return [
        prices,
        unindexed,
        labelled,
        irregular,
        pd.DataFrame({"a": pd.Series([], dtype="float64")}),
    ]


@pytest.mark.parametrize("frame", sample_frames())
def test_dataframes_round_trip(frame: pd.DataFrame) -> None:
    result = roundtrip(frame)
    pd.testing.assert_frame_equal(result, frame)
    assert getattr(result.index, "freq", None) == getattr(frame.index, "freq", None)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.0, 2.0, 3.0], name="close"),
        pd.Series([1, 2], name=7),
        pd.Series(["a", None]),
        pd.Series(
            [0.5, -1.0],
            index=pd.date_range("2024-01-01", periods=2, freq="D", tz="UTC"),
            name="signal",
        ),
        pd.Series(pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC"), name="t"),
    ],
)
def test_series_round_trip_with_name_and_index(series: pd.Series) -> None:
    pd.testing.assert_series_equal(roundtrip(series), series)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hpd.data_frames(
        [
            hpd.column("f", dtype=float),
            hpd.column("i", dtype="int64"),
            hpd.column("s", elements=st.text(max_size=5)),
        ],
        index=hpd.range_indexes(max_size=20),
    )
)
def test_generated_dataframes_round_trip(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(roundtrip(frame), frame)


def test_dataframes_nest_inside_messages() -> None:
    frame = sample_frames()[0]
    result = roundtrip({"job": "download", "bars": [frame], "at": datetime(2024, 1, 1, tzinfo=UTC)})
    pd.testing.assert_frame_equal(result["bars"][0], frame)


# --- Refusals on encode ------------------------------------------------------------


class Colour(enum.StrEnum):
    RED = "RED"


class Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (1j, "complex"),
        (np.arange(3), "ndarray"),
        (Colour.RED, "Colour"),
        (Level.LOW, "Level"),
        (2**64, "int"),
        (I64_MIN - 1, "int"),
        (datetime(2024, 1, 1), "naive datetime"),
        (pd.Timestamp("2024-01-01"), "naive pandas.Timestamp"),
    ],
)
def test_unsupported_values_are_refused_with_their_type_named(value: Any, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        encode(value)
    with pytest.raises(ValidationError, match=named):
        encode({"nested": [value]})


def test_multiindex_columns_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    with pytest.raises(ValidationError, match="MultiIndex"):
        encode(frame)


def test_mixed_object_column_is_refused_as_validation_error() -> None:
    with pytest.raises(ValidationError):
        encode(pd.DataFrame({"a": [1, "x", 2.5]}))


def test_a_cycle_is_refused_not_a_crash() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValidationError):
        encode(loop)


# --- Decode: ProtocolError and nothing else ------------------------------------------


def ext(code: int, payload: bytes) -> bytes:
    """Return an ext32 frame by hand: msgpack.ExtType refuses the negative codes we need."""
    return b"\xc9" + struct.pack(">Ib", len(payload), code) + payload


def dataclass_ext(code: Any, fields: Any) -> bytes:
    return ext(codec.EXT_DATACLASS, msgpack.packb([code, fields]))


def contract_fields() -> dict[str, Any]:
    body = msgpack.unpackb(msgpack.unpackb(encode(Contract("AAPL")), ext_hook=lambda c, d: d))
    return body[1]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\xc1", "never-used byte"),
        (b"\x92\x01", "truncated array"),
        (b"\x01\x02", "trailing bytes"),
        (b"\xdd\xff\xff\xff\xff", "array declaring 4 billion items"),
        (b"\xdf\xff\xff\xff\xff", "map declaring 4 billion pairs"),
        (b"\xdb\xff\xff\xff\xffabc", "str declaring 4 GiB"),
        (b"\xc9\xff\xff\xff\xff\x07", "ext declaring 4 GiB"),
        (b"\xa2\xff\xfe", "invalid UTF-8"),
        (ext(42, b"x"), "unknown ext code"),
        (ext(-2, b"x"), "unknown negative ext code"),
        (ext(-1, b"\x00" * 5), "bad msgpack timestamp length"),
        (ext(codec.EXT_DECIMAL, b"1.2.3"), "malformed decimal"),
        (ext(codec.EXT_DECIMAL, b"\xff"), "non-ASCII decimal"),
        (ext(codec.EXT_DATE, b"\x00\x00\x00\x00"), "date ordinal 0"),
        (ext(codec.EXT_DATE, b"\x01"), "short date"),
        (
            ext(codec.EXT_TIMEDELTA, b"\x7f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
            "timedelta overflow",
        ),
        (ext(codec.EXT_PD_TIMESTAMP, b"\x01\x02"), "short pandas timestamp"),
        (ext(codec.EXT_ENUM, msgpack.packb([99, "X"])), "unknown enum code"),
        (ext(codec.EXT_ENUM, msgpack.packb([1, "NOPE"])), "unknown enum value"),
        (dataclass_ext(999, {}), "unknown dataclass code"),
        (dataclass_ext("1", {}), "non-int dataclass code"),
        (dataclass_ext(1, {**contract_fields(), "colour": "red"}), "unknown field"),
        (dataclass_ext(1, {"sec_type": "STK"}), "missing required field"),
        (dataclass_ext(1, {**contract_fields(), "symbol": ""}), "constructor validation fails"),
        (dataclass_ext(1, {1: "AAPL"}), "non-string field name"),
        (dataclass_ext(1, ["AAPL"]), "fields not a map"),
        (ext(codec.EXT_DATACLASS, msgpack.packb([1])), "payload not [code, fields]"),
        (ext(codec.EXT_DATAFRAME, msgpack.packb([b"not arrow", {}])), "not Arrow IPC"),
        (ext(codec.EXT_SERIES, b"\x00"), "series payload not a list"),
        ("text, not bytes", "wrong input type"),
    ],
)
def test_malformed_input_raises_protocol_error(data: Any, why: str) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


def test_deeply_nested_extensions_are_refused_before_the_stack_runs_out() -> None:
    payload = msgpack.packb(None)
    for _ in range(3000):
        payload = msgpack.packb([1, {"symbol": msgpack.ExtType(codec.EXT_DATACLASS, payload)}])
    with pytest.raises(ProtocolError, match="nest"):
        decode(ext(codec.EXT_DATACLASS, payload))


def arrow_frame_ext(frame: pd.DataFrame, compression: str | None) -> bytes:
    table = pa.Table.from_pandas(frame.set_axis(["__col0__"], axis=1))
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    meta = {"columns": ["a"], "columns_name": None, "freq": None}
    return ext(codec.EXT_DATAFRAME, msgpack.packb([sink.getvalue().to_pybytes(), meta]))


def test_compressed_arrow_bodies_are_refused() -> None:
    frame = pd.DataFrame({"a": np.zeros(10_000)})
    pd.testing.assert_frame_equal(decode(arrow_frame_ext(frame, None)), frame)
    with pytest.raises(ProtocolError, match="compressed"):
        decode(arrow_frame_ext(frame, "zstd"))


def test_frame_whose_labels_do_not_match_its_columns_is_refused() -> None:
    body = msgpack.unpackb(
        msgpack.unpackb(encode(pd.DataFrame({"a": [1]})), ext_hook=lambda c, d: d)
    )
    body[1]["columns"] = ["a", "b"]
    with pytest.raises(ProtocolError):
        decode(ext(codec.EXT_DATAFRAME, msgpack.packb(body)))


def corpus() -> list[bytes]:
    """Valid encodings covering every extension type, for truncation and bit-flip fuzzing."""
    contract = Contract("ES", SecType.FUT, exchange="CME", expiry=date(2026, 12, 18))
    order = Order(
        "o-1", contract, Action.BUY, Decimal(2), OrderType.LMT, limit_price=Decimal("5000.25")
    )
    samples: list[Any] = [
        {"s": "AAPL", "b": 189.12, "a": 189.14, "t": 1_700_000_000_123_456_789},
        [Decimal("-1.5E+3"), date(2024, 1, 2), timedelta(days=-1, microseconds=5), SecType.OPT],
        {"at": datetime(2024, 1, 1, tzinfo=UTC), "ts": pd.Timestamp(1, tz="UTC"), "nat": pd.NaT},
        order,
        Fill(
            "e1",
            "o-1",
            contract,
            Action.BUY,
            Decimal(1),
            Decimal("5000"),
            datetime(2024, 1, 1, tzinfo=UTC),
        ),
        Tick("ES.FUT.202612", datetime(2024, 1, 1, tzinfo=UTC), bid=1.0, ask=1.25),
        sample_frames()[0],
        pd.Series([1.0, 2.0], name="x"),
    ]
    return [encode(sample) for sample in samples]


CORPUS = corpus()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    decode_or_protocol_error(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=48))
def test_random_extension_payloads_decode_or_raise_protocol_error(
    code: int, payload: bytes
) -> None:
    decode_or_protocol_error(ext(code - 128, payload))
    decode_or_protocol_error(ext(code % 10, payload))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-3, 12),
    st.recursive(
        plain,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=8,
    ),
)
def test_structured_garbage_in_extension_payloads_raises_protocol_error(
    code: int, body: Any
) -> None:
    decode_or_protocol_error(ext(codec.EXT_DATACLASS, msgpack.packb([code, body])))
    decode_or_protocol_error(ext(codec.EXT_ENUM, msgpack.packb([code, body])))
    decode_or_protocol_error(ext(codec.EXT_DATAFRAME, msgpack.packb([body, body])))


def test_every_truncation_of_valid_encodings_raises_protocol_error() -> None:
    for data in CORPUS:
        # Large frames: every prefix near the ends, a stride through the middle.
        cuts = set(range(min(len(data), 400))) | set(range(max(0, len(data) - 400), len(data)))
        cuts |= set(range(0, len(data), 97))
        for cut in sorted(cuts):
            with pytest.raises(ProtocolError):
                decode(data[:cut])


@settings(max_examples=2500, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_bit_flipped_valid_encodings_decode_or_raise_protocol_error(
    data: bytes, draw: st.DataObject
) -> None:
    corrupted = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(corrupted) - 1))
        corrupted[position] ^= 1 << draw.draw(st.integers(0, 7))
    decode_or_protocol_error(bytes(corrupted))


# --- The registry ----------------------------------------------------------------


def test_registry_codes_are_unique_and_cover_the_domain() -> None:
    enum_codes = [code for code, _ in codec.ENUM_CODES]
    class_codes = [code for code, _ in codec.DATACLASS_CODES]
    assert len(set(enum_codes)) == len(enum_codes)
    assert len(set(class_codes)) == len(class_codes)
    domain_enum_classes = {
        value
        for value in vars(domain_enums).values()
        if isinstance(value, type)
        and issubclass(value, enum.Enum)
        and value.__module__ == domain_enums.__name__
    }
    assert {cls for _, cls in codec.ENUM_CODES} == domain_enum_classes
    domain_dataclasses = {
        getattr(domain, name)
        for name in domain.__all__
        if hasattr(getattr(domain, name), "__dataclass_fields__")
    }
    assert {cls for _, cls in codec.DATACLASS_CODES} == domain_dataclasses


def test_extension_codes_are_the_documented_ones() -> None:
    # The numbers are a wire contract: changing one breaks every stored journal.
    assert (
        codec.EXT_DECIMAL,
        codec.EXT_DATE,
        codec.EXT_TIMEDELTA,
        codec.EXT_PD_TIMESTAMP,
        codec.EXT_PD_TIMEDELTA,
        codec.EXT_ENUM,
        codec.EXT_DATACLASS,
        codec.EXT_DATAFRAME,
        codec.EXT_SERIES,
    ) == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert encode(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == b"\xd6\xff\x00\x00\x00\x01"
    assert encode(Decimal("-0.10")) == b"\xc7\x05\x01-0.10"
    assert encode(date(1, 1, 1)) == b"\xd6\x02\x00\x00\x00\x01"
