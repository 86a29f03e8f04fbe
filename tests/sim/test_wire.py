"""The wire layer without I/O: field encoding, framing, splitting, reading typed fields."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from trader.errors import FrameTooLarge
from trader.sim.msgids import In, ServerVersion, negotiate_version
from trader.sim.wire import (
    UNSET_DOUBLE,
    UNSET_INTEGER,
    FieldReader,
    FrameSplitter,
    WireError,
    decode_fields,
    encode_field,
    encode_message,
    frame,
    parse_version_range,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "1"),
        (False, "0"),
        (42, "42"),
        (-1, "-1"),
        (In.REQ_IDS, "8"),
        (150.25, "150.25"),
        (100.0, "100"),
        (1e-05, "1e-05"),
        (UNSET_DOUBLE, "1.7976931348623157E308"),
        (float("inf"), "Infinity"),
        (Decimal("0.00005"), "0.00005"),
        (Decimal("1E+2"), "100"),
        (Decimal("231.50"), "231.50"),
        ("EUR.USD", "EUR.USD"),
    ],
)
def test_fields_are_written_like_tws(value: object, text: str) -> None:
    assert encode_field(value) == text  # type: ignore[arg-type]


def test_unencodable_values_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_field("a\0b")
    with pytest.raises(ValueError):
        encode_field(float("nan"))
    with pytest.raises(TypeError):
        encode_field(object())  # type: ignore[arg-type]


def test_a_message_is_length_prefixed_and_nul_terminated() -> None:
    data = encode_message([9, 1, 17])
    assert data == struct.pack(">I", 7) + b"9\x001\x0017\x00"
    assert decode_fields(data[4:]) == ["9", "1", "17"]


def test_empty_fields_survive_a_round_trip() -> None:
    data = encode_message([4, 2, -1, 2104, "", None])
    assert decode_fields(data[4:]) == ["4", "2", "-1", "2104", "", ""]


def test_a_payload_without_final_nul_keeps_its_last_field() -> None:
    assert decode_fields(b"v157..178") == ["v157..178"]


def test_bad_utf8_becomes_escapes_not_an_exception() -> None:
    assert decode_fields(b"1\x00\xff\x00") == ["1", "\\xff"]


def test_splitter_handles_frames_cut_anywhere() -> None:
    stream = encode_message([49, 1]) + encode_message([8, 1, 5]) + encode_message([61, 1])
    for cut in range(len(stream) + 1):
        splitter = FrameSplitter()
        got = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert [decode_fields(p) for p in got] == [["49", "1"], ["8", "1", "5"], ["61", "1"]]
        assert splitter.pending == 0


def test_splitter_byte_by_byte() -> None:
    stream = encode_message(["x" * 300])
    splitter = FrameSplitter()
    got = [p for b in stream for p in splitter.feed(bytes([b]))]
    assert decode_fields(got[0]) == ["x" * 300]


def test_splitter_refuses_an_oversized_announcement() -> None:
    splitter = FrameSplitter(max_bytes=100)
    with pytest.raises(FrameTooLarge):
        splitter.feed(struct.pack(">I", 101) + b"x")
    with pytest.raises(FrameTooLarge):
        frame(b"x" * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v157..178", (157, 178, "")),
        ("v100..187 +PACEAPI", (100, 187, "+PACEAPI")),
        ("v157", (157, 157, "")),
    ],
)
def test_version_range(text: str, expected: tuple[int, int, str]) -> None:
    assert parse_version_range(text) == expected


@pytest.mark.parametrize("text", ["157..178", "vX..Y", "v178..157", "v0..1", ""])
def test_bad_version_range(text: str) -> None:
    with pytest.raises(WireError):
        parse_version_range(text)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (157, 178, 178),
        (100, 187, 178),
        (100, 157, 157),
        (100, 158, 157),
        (157, 158, 157),
        (158, 158, None),  # never 158: stepping down to 157 leaves the client's range
        (158, 159, 159),
        (157, 170, 170),
        (100, 150, None),
        (179, 190, None),
    ],
)
def test_version_negotiation(low: int, high: int, expected: int | None) -> None:
    assert negotiate_version(low, high) == expected
    assert ServerVersion.MAX == 178


def test_reader_reads_types_and_unset_markers() -> None:
    r = FieldReader(["7", "", str(UNSET_INTEGER), "1.5", "1.7976931348623157E308", "1", "", "Infinite", "x"], "t")
    assert r.integer("a") == 7
    assert r.optional_integer("b") is None
    assert r.optional_integer("c") is None
    assert r.decimal("d") == Decimal("1.5")
    assert r.optional_decimal("e") is None
    assert r.flag("f") is True
    assert r.flag("g") is False
    assert r.optional_decimal("h") == Decimal("Infinity")
    assert r.string("i") == "x"
    r.expect_end()


def test_reader_accepts_integral_floats_as_integers() -> None:
    assert FieldReader(["100.0"], "t").integer("qty") == 100


@pytest.mark.parametrize(
    ("fields", "call"),
    [
        ([], lambda r: r.integer("reqId")),
        (["abc"], lambda r: r.integer("reqId")),
        (["1.5"], lambda r: r.integer("reqId")),
        ([""], lambda r: r.integer("reqId")),
        (["x1"], lambda r: r.decimal("price")),
        (["NaN"], lambda r: r.decimal("price")),
    ],
)
def test_reader_errors_name_the_field(fields: list[str], call: object) -> None:
    r = FieldReader(fields, "reqThing")
    with pytest.raises(WireError, match="reqThing"):
        call(r)  # type: ignore[operator]


def test_reader_refuses_trailing_fields() -> None:
    r = FieldReader(["1", "2"], "t")
    r.integer("a")
    with pytest.raises(WireError, match="trailing"):
        r.expect_end()
