"""Down-conversion of v2 batches to message format v0/v1, read back with kafka-python's reader."""

from __future__ import annotations

import lz4.frame
import pytest
from kafka.record import MemoryRecords

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import Codec, decompress
from kafkacompat.protocol.down_conversion import down_convert, encode_legacy_message
from kafkacompat.protocol.legacy_records import iter_legacy_messages
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import TimestampType

Row = tuple[int, int | None, bytes | None, bytes | None]


def records(first: int, count: int, ts: int = 1_000) -> list[Record]:
    return [
        Record(
            first + i,
            ts + first + i,
            f"k{first + i}".encode(),
            f"v{first + i}".encode(),
            (("h", b"x"),),
        )
        for i in range(count)
    ]


def read_legacy(data: bytes, magic: int) -> list[tuple[int, Row]]:
    """(wrapper offset, (offset, timestamp, key, value)) per message, via kafka-python."""
    out: list[tuple[int, Row]] = []
    memory = MemoryRecords(data)
    while memory.has_next():
        batch = memory.next_batch()
        if batch is None:
            break
        assert batch.magic == magic
        assert batch.validate_crc()
        for record in batch:
            assert record.headers == []
            out.append(
                (batch.base_offset, (record.offset, record.timestamp, record.key, record.value))
            )
    return out


def rows(recs: list[Record], magic: int) -> list[Row]:
    return [(r.offset, r.timestamp if magic == 1 else None, r.key, r.value) for r in recs]


@pytest.mark.parametrize("magic", [0, 1])
def test_uncompressed_batches_become_plain_messages_from_the_fetch_offset(magic: int) -> None:
    data = encode_batch(records(0, 3)) + encode_batch(records(3, 2))
    converted = down_convert(data, magic, 1)
    got = read_legacy(converted, magic)
    assert [row for _, row in got] == rows(records(0, 5)[1:], magic)
    assert [wrapper for wrapper, _ in got] == [1, 2, 3, 4]  # each message is its own entry
    assert len(converted) == sum(
        len(encode_legacy_message(r.offset, magic, 0, r.timestamp, r.key, r.value))
        for r in records(0, 5)[1:]
    )


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.SNAPPY])
def test_compressed_batch_becomes_one_wrapper_with_every_record(magic: int, codec: Codec) -> None:
    data = encode_batch(records(10, 4), codec=codec)
    converted = down_convert(data, magic, 12)
    got = read_legacy(converted, magic)
    # Old consumers skip records before their offset themselves: all four are kept.
    assert [row for _, row in got] == rows(records(10, 4), magic)
    # kafka-python reports the wrapper's offset: the last inner offset.
    assert {wrapper for wrapper, _ in got} == {13}


@pytest.mark.parametrize("magic", [0, 1])
def test_inner_offsets_relative_under_v1_and_absolute_under_v0(magic: int) -> None:
    converted = down_convert(encode_batch(records(100, 3), codec=Codec.GZIP), magic, 100)
    (wrapper,) = iter_legacy_messages_raw(converted)
    assert wrapper[0] == 102
    inner = decompress(Codec.GZIP, wrapper[1])
    offsets = [m.offset for m in iter_legacy_messages(inner)]
    assert offsets == ([0, 1, 2] if magic == 1 else [100, 101, 102])


def iter_legacy_messages_raw(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, value) of top-level messages, without decompressing."""
    import struct

    out, pos = [], 0
    while pos < len(data):
        offset, size = struct.unpack_from(">qi", data, pos)
        magic = data[pos + 16]
        body = pos + 12 + 4 + 2 + (8 if magic == 1 else 0)
        (klen,) = struct.unpack_from(">i", data, body)
        body += 4 + max(klen, 0)
        (vlen,) = struct.unpack_from(">i", data, body)
        out.append((offset, data[body + 4 : body + 4 + vlen]))
        pos += 12 + size
    return out


def test_lz4_v1_is_a_standard_frame_and_kafka_python_reads_it() -> None:
    converted = down_convert(encode_batch(records(0, 3), codec=Codec.LZ4), 1, 0)
    assert [row for _, row in read_legacy(converted, 1)] == rows(records(0, 3), 1)
    ((_, value),) = iter_legacy_messages_raw(converted)
    assert lz4.frame.decompress(value)


def test_lz4_v0_carries_the_kafka_3160_header_checksum() -> None:
    converted = down_convert(encode_batch(records(0, 3), codec=Codec.LZ4), 0, 0)
    ((_, value),) = iter_legacy_messages_raw(converted)
    with pytest.raises(RuntimeError):
        lz4.frame.decompress(value)  # the standard header checksum does not match
    inner = decompress(Codec.LZ4, value, magic=0)
    assert [(m.offset, m.key, m.value) for m in iter_legacy_messages(inner)] == [
        (r.offset, r.key, r.value) for r in records(0, 3)
    ]


def test_log_append_time_sets_the_attribute_and_batch_timestamp_under_v1() -> None:
    data = encode_batch(records(0, 2), timestamp_type=TimestampType.LOG_APPEND_TIME)
    memory = MemoryRecords(down_convert(data, 1, 0))
    batch = memory.next_batch()
    assert batch.timestamp_type == 1
    # decode_batch gives LogAppendTime records the batch's max timestamp.
    assert [r.timestamp for r in batch] == [1_001]
    compressed = encode_batch(
        records(0, 2), codec=Codec.GZIP, timestamp_type=TimestampType.LOG_APPEND_TIME
    )
    wrapper = MemoryRecords(down_convert(compressed, 1, 0)).next_batch()
    assert wrapper.timestamp_type == 1
    assert [r.timestamp for r in wrapper] == [1_001, 1_001]


def test_null_keys_and_values_survive() -> None:
    data = encode_batch([Record(0, 5, None, None), Record(1, 6, b"", b"")])
    assert [row for _, row in read_legacy(down_convert(data, 1, 0), 1)] == [
        (0, 5, None, None),
        (1, 6, b"", b""),
    ]


def test_control_batches_are_dropped_and_batches_before_the_offset_skipped() -> None:
    control = encode_batch(
        [Record(3, 0, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")],
        control=True,
        transactional=True,
        producer_id=7,
        producer_epoch=0,
    )
    data = encode_batch(records(0, 3)) + control + encode_batch(records(4, 1))
    got = read_legacy(down_convert(data, 1, 0), 1)
    assert [row[0] for _, row in got] == [0, 1, 2, 4]
    assert down_convert(encode_batch(records(0, 3)), 1, 3) == b""


def test_zstd_cannot_be_down_converted() -> None:
    with pytest.raises(KafkaError) as info:
        down_convert(encode_batch(records(0, 1), codec=Codec.ZSTD), 1, 0)
    assert info.value.code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


def test_max_bytes_keeps_whole_converted_batches_but_always_the_first() -> None:
    first, second = encode_batch(records(0, 2)), encode_batch(records(2, 2))
    one = down_convert(first, 1, 0)
    assert down_convert(first + second, 1, 0, max_bytes=len(one)) == one
    assert down_convert(first + second, 1, 0, max_bytes=1) == one
    assert len(read_legacy(down_convert(first + second, 1, 0), 1)) == 4


def test_a_truncated_trailing_batch_is_ignored() -> None:
    first, second = encode_batch(records(0, 2)), encode_batch(records(2, 2))
    data = first + second[:-5]
    assert down_convert(data, 0, 0) == down_convert(first, 0, 0)
    assert down_convert(b"", 0, 0) == b""


def test_only_legacy_magics() -> None:
    with pytest.raises(ValueError):
        down_convert(encode_batch(records(0, 1)), 2, 0)
