"""Wire primitives: varints, compact strings, bytes and arrays, tagged fields."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.primitives import (
    DECODE_ERRORS,
    read_array_length,
    read_bytes,
    read_compact_array_length,
    read_compact_bytes,
    read_compact_nullable_bytes,
    read_compact_nullable_string,
    read_compact_records,
    read_compact_string,
    read_fixed_array,
    read_nullable_bytes,
    read_nullable_string,
    read_records,
    read_string,
    read_unknown_tag,
    read_uuid,
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
    uvarint_size,
    write_array_length,
    write_bytes,
    write_compact_array_length,
    write_compact_bytes,
    write_compact_string,
    write_fixed_array,
    write_string,
    write_tagged_fields,
    write_uuid,
    write_uvarint,
    write_varint,
    write_varlong,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)


def written(writer, value) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    writer(out, value)
    return bytes(out)


def read_all(reader, data: bytes):  # type: ignore[no-untyped-def]
    value, pos = reader(memoryview(data), 0)
    assert pos == len(data)
    return value


# -- varints ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x02"),
        (-1, b"\x01"),
        (63, b"\x7e"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (127, b"\xfe\x01"),
        (128, b"\x80\x02"),
        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
        (-(2**31), b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_varint_boundaries(value: int, encoded: bytes) -> None:
    assert written(write_varint, value) == encoded
    assert read_all(read_varint, encoded) == value


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (127, b"\xfe\x01"),
        (128, b"\x80\x02"),
        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
        (-(2**31), b"\xff\xff\xff\xff\x0f"),
        (2**31, b"\x80\x80\x80\x80\x10"),
        (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"),
        (-(2**63), b"\xff" * 9 + b"\x01"),
    ],
)
def test_varlong_boundaries(value: int, encoded: bytes) -> None:
    assert written(write_varlong, value) == encoded
    assert read_all(read_varlong, encoded) == value


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2**31 - 1, b"\xff\xff\xff\xff\x07"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_unsigned_varint_boundaries(value: int, encoded: bytes) -> None:
    assert written(write_uvarint, value) == encoded
    assert read_all(read_uvarint, encoded) == value
    assert read_all(read_uvarlong, encoded) == value
    assert uvarint_size(value) == len(encoded)


@given(INT32)
def test_varint_roundtrip(value: int) -> None:
    encoded = written(write_varint, value)
    assert 1 <= len(encoded) <= 5
    assert read_all(read_varint, encoded) == value


@given(INT64)
def test_varlong_roundtrip(value: int) -> None:
    encoded = written(write_varlong, value)
    assert 1 <= len(encoded) <= 10
    assert read_all(read_varlong, encoded) == value


@given(INT32)
def test_varint_and_varlong_agree_on_int32(value: int) -> None:
    assert written(write_varint, value) == written(write_varlong, value)


@given(UINT32)
def test_unsigned_varint_roundtrip(value: int) -> None:
    encoded = written(write_uvarint, value)
    assert len(encoded) == uvarint_size(value) == max(1, -(-value.bit_length() // 7))
    assert all(b & 0x80 for b in encoded[:-1])
    assert not encoded[-1] & 0x80
    assert read_all(read_uvarint, encoded) == value


@given(UINT32, st.binary(max_size=8))
def test_unsigned_varint_stops_at_its_last_byte(value: int, tail: bytes) -> None:
    encoded = written(write_uvarint, value)
    assert read_uvarint(memoryview(encoded + tail), 0) == (value, len(encoded))


def test_unsigned_varint_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        write_uvarint(bytearray(), -1)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x80\x80\x80\x80\x01",  # six bytes
        b"\xff\xff\xff\xff\xff\x00",
        b"\x80" * 10 + b"\x00",
    ],
)
def test_varint_longer_than_five_bytes_is_rejected(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        read_uvarint(memoryview(data), 0)
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        read_varint(memoryview(data), 0)


def test_five_byte_varint_beyond_32_bits_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="32 bits"):
        read_uvarint(memoryview(b"\xff\xff\xff\xff\x1f"), 0)
    with pytest.raises(ProtocolError, match="32 bits"):
        read_varint(memoryview(b"\x80\x80\x80\x80\x10"), 0)


def test_varlong_longer_than_ten_bytes_or_64_bits_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="longer than 10 bytes"):
        read_uvarlong(memoryview(b"\x80" * 10 + b"\x01"), 0)
    with pytest.raises(ProtocolError, match="64 bits"):
        read_varlong(memoryview(b"\xff" * 9 + b"\x03"), 0)
    assert read_all(read_uvarlong, b"\xff" * 9 + b"\x01") == 2**64 - 1


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff\xff", b"\x80\x80\x80\x80"])
def test_truncated_varint_raises(data: bytes) -> None:
    for reader in (read_uvarint, read_varint, read_uvarlong, read_varlong):
        with pytest.raises(IndexError):
            reader(memoryview(data), 0)


# -- strings and bytes --------------------------------------------------------------------------


@given(st.text(max_size=300))
def test_string_roundtrip(value: str) -> None:
    raw = value.encode()
    encoded = written(write_string, value)
    assert encoded == len(raw).to_bytes(2, "big") + raw
    assert read_all(read_string, encoded) == value
    assert read_all(read_nullable_string, encoded) == value


@given(st.text(max_size=300))
def test_compact_string_roundtrip(value: str) -> None:
    raw = value.encode()
    encoded = written(write_compact_string, value)
    assert encoded == written(write_uvarint, len(raw) + 1) + raw
    assert read_all(read_compact_string, encoded) == value
    assert read_all(read_compact_nullable_string, encoded) == value


def test_null_strings() -> None:
    assert written(write_string, None) == b"\xff\xff"
    assert written(write_compact_string, None) == b"\x00"
    assert read_all(read_nullable_string, b"\xff\xff") is None
    assert read_all(read_compact_nullable_string, b"\x00") is None
    with pytest.raises(ProtocolError, match="null string"):
        read_string(memoryview(b"\xff\xff"), 0)
    with pytest.raises(ProtocolError, match="null string"):
        read_compact_string(memoryview(b"\x00"), 0)


def test_empty_string_is_not_null() -> None:
    assert written(write_string, "") == b"\x00\x00"
    assert written(write_compact_string, "") == b"\x01"
    assert read_all(read_compact_nullable_string, b"\x01") == ""
    assert read_all(read_nullable_string, b"\x00\x00") == ""


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (read_string, b"\x00\x05abcd"),
        (read_nullable_string, b"\x00\x05abcd"),
        (read_compact_string, b"\x06abcd"),
        (read_compact_nullable_string, b"\x06abcd"),
        (read_bytes, b"\x00\x00\x00\x05abcd"),
        (read_nullable_bytes, b"\x00\x00\x00\x05abcd"),
        (read_compact_bytes, b"\x06abcd"),
        (read_compact_nullable_bytes, b"\x06abcd"),
        (read_records, b"\x00\x00\x00\x05abcd"),
        (read_compact_records, b"\x06abcd"),
    ],
)
def test_length_past_the_end_is_rejected(reader, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProtocolError, match="past the end"):
        reader(memoryview(data), 0)


def test_invalid_utf8_raises_a_decode_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        read_string(memoryview(b"\x00\x02\xc3\x28"), 0)
    assert issubclass(UnicodeDecodeError, DECODE_ERRORS)


@given(st.binary(max_size=300) | st.none())
def test_bytes_roundtrip(value: bytes | None) -> None:
    encoded = written(write_bytes, value)
    compact = written(write_compact_bytes, value)
    if value is None:
        assert encoded == b"\xff\xff\xff\xff"
        assert compact == b"\x00"
    else:
        assert encoded == len(value).to_bytes(4, "big") + value
        assert compact == written(write_uvarint, len(value) + 1) + value
        assert read_all(read_bytes, encoded) == value
        assert read_all(read_compact_bytes, compact) == value
    assert read_all(read_nullable_bytes, encoded) == value
    assert read_all(read_compact_nullable_bytes, compact) == value
    assert read_all(read_records, encoded) == value
    assert read_all(read_compact_records, compact) == value


def test_null_bytes_in_non_nullable_field() -> None:
    with pytest.raises(ProtocolError, match="null bytes"):
        read_bytes(memoryview(b"\xff\xff\xff\xff"), 0)
    with pytest.raises(ProtocolError, match="null bytes"):
        read_compact_bytes(memoryview(b"\x00"), 0)


def test_records_are_a_zero_copy_slice() -> None:
    frame = memoryview(b"\x00\x00\x00\x03abcZ")
    value, pos = read_records(frame, 0)
    assert isinstance(value, memoryview)
    assert value.obj is frame.obj
    assert (bytes(value), pos) == (b"abc", 7)


@given(st.uuids())
def test_uuid_roundtrip(value: uuid.UUID) -> None:
    encoded = written(write_uuid, value)
    assert encoded == value.bytes
    assert read_all(read_uuid, encoded) == value


def test_short_uuid_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        read_uuid(memoryview(b"\x00" * 15), 0)


# -- arrays -------------------------------------------------------------------------------------


@given(st.integers(-1, 200), st.integers(0, 50))
def test_array_length_roundtrip(count: int, slack: int) -> None:
    body = b"\x00" * (max(count, 0) + slack)
    encoded = written(write_array_length, count)
    assert encoded == count.to_bytes(4, "big", signed=True)
    assert read_array_length(memoryview(encoded + body), 0) == (count, 4)
    compact = written(write_compact_array_length, count)
    assert compact == written(write_uvarint, count + 1)
    assert read_compact_array_length(memoryview(compact + body), 0) == (count, len(compact))


@given(st.integers(1, 2**31 - 1), st.integers(0, 64))
def test_array_count_larger_than_the_frame_is_rejected(count: int, available: int) -> None:
    body = b"\x00" * min(available, count - 1)
    with pytest.raises(ProtocolError, match="exceeds the frame"):
        read_array_length(memoryview(written(write_array_length, count) + body), 0)
    with pytest.raises(ProtocolError, match="exceeds the frame"):
        read_compact_array_length(memoryview(written(write_compact_array_length, count) + body), 0)


def test_huge_array_count_is_rejected_before_allocating() -> None:
    with pytest.raises(ProtocolError, match="exceeds the frame"):
        read_array_length(memoryview(b"\x7f\xff\xff\xff"), 0)
    with pytest.raises(ProtocolError, match="exceeds the frame"):
        read_compact_array_length(memoryview(b"\xff\xff\xff\xff\x0f"), 0)


@pytest.mark.parametrize(
    ("code", "width", "strategy"),
    [
        ("b", 1, st.integers(-(2**7), 2**7 - 1)),
        ("h", 2, st.integers(-(2**15), 2**15 - 1)),
        ("i", 4, INT32),
        ("q", 8, INT64),
    ],
)
@given(data=st.data())
def test_fixed_array_roundtrip(code: str, width: int, strategy, data) -> None:  # type: ignore[no-untyped-def]
    values = data.draw(st.lists(strategy, max_size=100))
    out = bytearray()
    write_fixed_array(out, code, values)
    assert len(out) == width * len(values)
    assert read_fixed_array(memoryview(bytes(out)), 0, code, width, len(values)) == (
        values,
        len(out),
    )


def test_short_fixed_array_raises() -> None:
    with pytest.raises(DECODE_ERRORS):
        read_fixed_array(memoryview(b"\x00" * 7), 0, "i", 4, 2)


# -- tagged fields ------------------------------------------------------------------------------


@given(
    st.dictionaries(st.integers(0, 2**31 - 1), st.binary(max_size=200), max_size=8),
)
def test_tagged_fields_roundtrip_in_tag_order(fields: dict[int, bytes]) -> None:
    out = bytearray()
    write_tagged_fields(out, list(reversed(fields.items())))
    buf = memoryview(bytes(out))
    count, pos = read_uvarint(buf, 0)
    assert count == len(fields)
    unknown = None
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        unknown, pos = read_unknown_tag(buf, pos, tag, size, unknown)
    assert pos == len(buf)
    assert (unknown or []) == sorted(fields.items())


def test_tagged_field_bytes() -> None:
    out = bytearray()
    write_tagged_fields(out, [(300, b"xy"), (1, b"")])
    assert bytes(out) == b"\x02" + b"\x01\x00" + b"\xac\x02\x02xy"


def test_unknown_tag_longer_than_the_frame_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="past the end"):
        read_unknown_tag(memoryview(b"abc"), 0, 7, 4, None)
