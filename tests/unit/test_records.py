"""Record formats: v2 headers, validation and patching, the varint record codec, legacy sets."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.legacy_records import LegacyMessage, iter_legacy_messages, legacy_to_v2
from kafkacompat.protocol.record_codec import (
    Record,
    decode_batch,
    decode_record,
    encode_batch,
    encode_record,
    read_varint,
    recompress_batches,
    write_varint,
)
from kafkacompat.protocol.records import (
    HEADER_SIZE,
    TimestampType,
    assign_offsets,
    has_producer_id,
    iter_batches,
    read_header,
    verify_crc,
)

from .storage.helpers import batch, decode, expected_decoded, fixture

V2 = ["v2_none", "v2_gzip", "v2_snappy", "v2_lz4", "v2_zstd", "v2_idempotent", "v2_large"]
LEGACY = [f"v{m}_{c}" for m in (0, 1) for c in ("none", "gzip", "snappy", "lz4")]


def as_records(expected: list[dict[str, Any]], base: int = 0) -> list[Record]:
    return [Record(o, t, k, v, tuple(h)) for o, t, k, v, h in expected_decoded(expected, base)]


def with_offsets(data: bytes) -> bytes:
    buf = bytearray(data)
    assign_offsets(
        buf, base_offset=0, leader_epoch=0, log_append_time_ms=None, max_batch_size=1 << 20
    )
    return bytes(buf)


def test_header_fields() -> None:
    data, expected = fixture("v2_idempotent")
    h = read_header(data)
    assert (h.base_offset, h.batch_length, h.magic, h.records_count) == (0, len(data) - 12, 2, 10)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (4242, 3, 17)
    assert (h.last_offset_delta, h.last_offset, h.size) == (9, 9, len(data))
    assert h.base_timestamp == expected[0]["timestamp"]
    assert h.max_timestamp == max(e["timestamp"] for e in expected)
    assert (h.compression, h.timestamp_type, h.is_transactional, h.is_control) == (
        0,
        TimestampType.CREATE_TIME,
        False,
        False,
    )
    assert h.crc == DefaultRecordBatch(data).crc
    verify_crc(data, 0, h)
    assert HEADER_SIZE == 61


def test_iter_batches() -> None:
    data, _ = fixture("v2_multi")
    found = [(pos, h.records_count, h.compression) for pos, h in iter_batches(data)]
    assert [f[1:] for f in found] == [(5, 0), (6, 1), (7, 4)]
    assert found[0][0] == 0
    with pytest.raises(KafkaError) as err:
        list(iter_batches(data[:-1]))
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE


def test_has_producer_id() -> None:
    plain = encode_batch([Record(0, 1, None, b"v")])
    idempotent, _ = fixture("v2_idempotent")
    transactional = encode_batch(
        [Record(0, 1, None, b"v")], producer_id=7, producer_epoch=0, base_sequence=0,
        transactional=True,
    )  # fmt: skip
    legacy, _ = fixture("v1_none")
    multi, _ = fixture("v2_multi")
    assert not has_producer_id(plain)
    assert not has_producer_id(plain + multi)
    assert not has_producer_id(legacy)
    assert not has_producer_id(b"")
    assert has_producer_id(idempotent)
    assert has_producer_id(transactional)
    assert has_producer_id(plain + idempotent)
    # Broken framing defers to the full parse.
    assert has_producer_id(plain + plain[:30])
    assert has_producer_id(plain + plain[:-1])


def test_assign_offsets_patches_only_offset_and_epoch() -> None:
    data, _ = fixture("v2_multi")
    buf = bytearray(data)
    prepared = assign_offsets(
        buf, base_offset=1000, leader_epoch=9, log_append_time_ms=None, max_batch_size=1 << 20
    )
    assert (prepared.first_offset, prepared.last_offset, prepared.record_count) == (1000, 1017, 18)
    assert [(b[2], b[1]) for b in prepared.batches] == [
        (1000, read_header(data, 0).size),
        (1005, read_header(data, prepared.batches[1][0]).size),
        (1011, read_header(data, prepared.batches[2][0]).size),
    ]
    for pos, size, base, _ in prepared.batches:
        assert struct.unpack_from(">qiib", buf, pos) == (base, size - 12, 9, 2)
        assert buf[pos + 16 : pos + size] == data[pos + 16 : pos + size]
    batches = list(MemoryRecords(bytes(buf)))
    assert all(b.validate_crc() for b in batches)
    assert [b.base_offset for b in batches] == [1000, 1005, 1011]
    assert prepared.max_timestamp == max(b.max_timestamp for b in batches)


def test_assign_offsets_log_append_time() -> None:
    buf = bytearray(batch(4, ts=5))
    prepared = assign_offsets(
        buf, base_offset=0, leader_epoch=0, log_append_time_ms=99, max_batch_size=1 << 20
    )
    assert prepared.max_timestamp == 99
    (b,) = list(MemoryRecords(bytes(buf)))
    assert b.validate_crc() and b.timestamp_type == 1 and b.max_timestamp == 99
    assert [r.timestamp for r in b] == [99] * 4


def _refresh_crc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return buf


def _set(fmt: str, offset: int, *values: int) -> Any:
    def mutate(buf: bytearray) -> bytearray:
        struct.pack_into(fmt, buf, offset, *values)
        return _refresh_crc(buf)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b[:60], ErrorCode.CORRUPT_MESSAGE),
        (lambda b: b[:-1], ErrorCode.CORRUPT_MESSAGE),
        (lambda b: b + b"\x00", ErrorCode.CORRUPT_MESSAGE),
        (_set(">b", 16, 1), ErrorCode.CORRUPT_MESSAGE),
        (_set(">i", 8, 40), ErrorCode.CORRUPT_MESSAGE),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), ErrorCode.CORRUPT_MESSAGE),
        (_set(">h", 21, 5), ErrorCode.CORRUPT_MESSAGE),  # unknown codec
        (_set(">i", 23, 0), ErrorCode.INVALID_RECORD),  # count 3, last offset delta 0
        (_set(">i", 57, 0), ErrorCode.INVALID_RECORD),  # zero records
        (_set(">h", 21, 0x10), ErrorCode.INVALID_RECORD),  # transactional, no producer id
        (_set(">qhi", 43, 7, -1, 0), ErrorCode.INVALID_RECORD),  # producer id, no epoch
        (_set(">qhi", 43, 7, 0, -1), ErrorCode.INVALID_RECORD),  # producer id, no sequence
        (_set(">h", 21, 0x20), ErrorCode.INVALID_RECORD),  # control batch from a client
        (lambda b: b"", ErrorCode.INVALID_RECORD),
    ],
)
def test_validation_errors(mutate: Any, code: ErrorCode) -> None:
    buf = bytearray(mutate(bytearray(batch(3))))
    with pytest.raises(KafkaError) as err:
        assign_offsets(
            buf, base_offset=0, leader_epoch=0, log_append_time_ms=None, max_batch_size=1 << 20
        )
    assert err.value.code == code


def test_max_batch_size() -> None:
    data = bytearray(batch(3))
    kw: dict[str, Any] = {"base_offset": 0, "leader_epoch": 0, "log_append_time_ms": None}
    assign_offsets(bytearray(data), max_batch_size=len(data), **kw)
    with pytest.raises(KafkaError) as err:
        assign_offsets(data, max_batch_size=len(data) - 1, **kw)
    assert err.value.code == ErrorCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize("name", [*V2, "v2_multi"])
def test_decode_matches_kafka_python(name: str) -> None:
    data, expected = fixture(name)
    data = with_offsets(data)  # a client numbers each batch from 0
    ours = [r for pos, _ in iter_batches(data) for r in decode_batch(data, pos)[1]]
    assert ours == as_records(expected)


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_encode_batch_read_by_kafka_python(codec: int) -> None:
    _, expected = fixture("v2_none")
    records = as_records(expected, base=50)
    built = encode_batch(
        records,
        codec=codec,
        producer_id=9,
        producer_epoch=1,
        base_sequence=100,
        transactional=True,
        partition_leader_epoch=4,
    )
    h = read_header(built)
    assert (h.base_offset, h.compression, h.producer_id, h.base_sequence) == (50, codec, 9, 100)
    assert h.is_transactional and h.partition_leader_epoch == 4
    assert decode(built) == expected_decoded(expected, 50)
    assert decode_batch(built)[1] == records


def test_recompress_batches() -> None:
    data, expected = fixture("v2_multi")
    data = with_offsets(data)
    out = recompress_batches(data, 3)
    assert [h.compression for _, h in iter_batches(out)] == [3, 3, 3]
    assert decode(out) == expected_decoded(expected, 0)
    assert recompress_batches(out, 3) == out


def test_record_codec_known_bytes() -> None:
    rec = Record(offset=5, timestamp=1003, key=None, value=b"v", headers=(("h", None),))
    encoded = encode_record(rec, base_offset=4, base_timestamp=1000)
    # length 10, attributes 0, ts delta 3, offset delta 1, key -1, value len 1 "v",
    # 1 header: key len 1 "h", value -1
    assert encoded == bytes([20, 0, 6, 2, 1, 2, ord("v"), 2, 2, ord("h"), 1])
    assert decode_record(encoded, 0, 4, 1000) == (rec, len(encoded))


def test_record_decode_errors() -> None:
    good = encode_record(Record(0, 0, b"k", b"v"), 0, 0)
    for bad in (
        good[:-1],
        b"\x02\x00",
        b"\xff" * 11,
        bytes([good[0] + 2]) + good[1:] + b"\x00\x00",
    ):
        with pytest.raises(KafkaError) as err:
            decode_record(bad, 0, 0, 0)
        assert err.value.code == ErrorCode.CORRUPT_MESSAGE


headers_st = st.lists(
    st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=20))), max_size=4
)
record_st = st.builds(
    Record,
    offset=st.integers(0, 2**31 - 1),
    timestamp=st.integers(-1, 2**45),
    key=st.one_of(st.none(), st.binary(max_size=50)),
    value=st.one_of(st.none(), st.binary(max_size=200)),
    headers=headers_st.map(tuple),
)


@given(st.integers(-(2**63), 2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    assert read_varint(bytes(out) + b"\xff", 0) == (value, len(out))
    assert len(out) <= 10


@given(record_st, st.integers(0, 2**31 - 1), st.integers(-1, 2**45))
def test_record_round_trip(record: Record, base_offset: int, base_ts: int) -> None:
    encoded = encode_record(record, base_offset, base_ts)
    assert decode_record(encoded, 0, base_offset, base_ts) == (record, len(encoded))


@given(st.lists(record_st, min_size=1, max_size=8), st.sampled_from([0, 1, 2, 3, 4]))
def test_batch_round_trip(records: list[Record], codec: int) -> None:
    ordered = [
        Record(i * 2, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(records)
    ]  # offsets ascending, with gaps as compaction leaves them
    header, decoded = decode_batch(encode_batch(ordered, codec=codec))
    assert decoded == ordered
    assert header.last_offset_delta == ordered[-1].offset


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_messages(name: str) -> None:
    data, expected = fixture(name)
    magic = int(name[1])
    messages = list(iter_legacy_messages(data))
    assert [(m.magic, m.timestamp, m.key, m.value) for m in messages] == [
        (magic, r.timestamp, r.key, r.value) for r in as_records(expected)
    ]
    converted = legacy_to_v2(data, max_message_bytes=1 << 20)
    assert decode(converted) == expected_decoded(expected, 0)
    assert read_header(converted).compression == ["none", "gzip", "snappy", "lz4"].index(name[3:])


def test_legacy_log_append_time_wrapper() -> None:
    data, expected = fixture("v1_gzip")
    buf = bytearray(data)
    # Wrapper: offset 8, size 4, crc 4, magic 1, attributes 1, timestamp 8.
    buf[17] |= 0x08
    struct.pack_into(">q", buf, 18, 424242)
    struct.pack_into(">I", buf, 12, zlib.crc32(bytes(buf[16:])))
    messages = list(iter_legacy_messages(bytes(buf)))
    assert {m.timestamp for m in messages} == {424242}
    assert len(messages) == len(expected)


def test_legacy_errors() -> None:
    data, _ = fixture("v0_none")
    for bad, code in [
        (data[:-1], ErrorCode.CORRUPT_MESSAGE),
        (data[:20] + bytes([data[20] ^ 1]) + data[21:], ErrorCode.CORRUPT_MESSAGE),
    ]:
        with pytest.raises(KafkaError) as err:
            legacy_to_v2(bad, max_message_bytes=1 << 20)
        assert err.value.code == code
    with pytest.raises(KafkaError) as err:
        legacy_to_v2(data, max_message_bytes=20)
    assert err.value.code == ErrorCode.MESSAGE_TOO_LARGE
    assert LegacyMessage(0, 0, 0, -1, None, None).key is None
