"""The cleaner's batch tools: key listing without building records, rebuilt and empty batches."""

from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatch

from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.record_codec import Record, decode_batch, encode_batch
from kafkacompat.protocol.records import read_header, verify_crc
from kafkacompat.storage.cleaner_records import empty_batch, rebuild_batch, record_keys

RECORDS = [
    Record(100, 5000, b"a", b"1"),
    Record(101, 5001, None, b"2"),
    Record(103, 5003, b"c", None, (("h", b"x"),)),
]


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP, Codec.ZSTD])
def test_record_keys_lists_offsets_keys_and_tombstones(codec: Codec) -> None:
    data = encode_batch(RECORDS, codec=codec)
    keys = [
        (o, None if k is None else bytes(k), t)
        for o, k, t in record_keys(memoryview(data), read_header(data))
    ]
    assert keys == [(100, b"a", False), (101, None, False), (103, b"c", True)]


def test_encode_batch_keeps_an_overridden_last_offset_delta() -> None:
    data = encode_batch(RECORDS[:1], base_offset=100, last_offset_delta=9)
    header, records = decode_batch(data)
    assert (header.base_offset, header.last_offset, records) == (100, 109, RECORDS[:1])
    with pytest.raises(ValueError, match="below"):
        encode_batch(RECORDS, last_offset_delta=1)


def test_rebuild_batch_keeps_the_batch_fields() -> None:
    data = encode_batch(
        RECORDS,
        codec=Codec.LZ4,
        producer_id=4,
        producer_epoch=1,
        base_sequence=10,
        transactional=True,
        partition_leader_epoch=3,
    )
    original = read_header(data)
    rebuilt = rebuild_batch(memoryview(data), original, {101})
    header, records = decode_batch(rebuilt)
    assert records == [RECORDS[1]]
    assert header._replace(batch_length=0, crc=0, base_timestamp=0, max_timestamp=0, records_count=0) == original._replace(
        batch_length=0, crc=0, base_timestamp=0, max_timestamp=0, records_count=0
    )  # fmt: skip


def test_empty_batch_is_a_valid_header_only_batch() -> None:
    data = encode_batch(RECORDS, codec=Codec.GZIP, producer_id=4, producer_epoch=1, base_sequence=7)
    original = read_header(data)
    empty = empty_batch(original)
    header = read_header(empty)
    verify_crc(empty, 0, header)
    assert (header.records_count, header.size, header.compression) == (0, 61, Codec.NONE)
    assert (header.base_offset, header.last_offset_delta, header.base_sequence) == (100, 3, 7)
    assert (header.producer_id, header.producer_epoch) == (4, 1)
    assert decode_batch(empty)[1] == []
    stock = DefaultRecordBatch(empty)  # a stock client's reader agrees
    assert stock.validate_crc() and list(stock) == [] and stock.base_sequence == 7
