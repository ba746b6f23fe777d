"""Produced batches are validated as Kafka's log validator does: refused whole, with Kafka's
error codes, per-record errors from Produce v8, and nothing stored, so the partition stays
readable to its end by a client that checks CRCs."""

from __future__ import annotations

import struct
import time
from functools import partial

import pytest
from confluent_kafka import KafkaError, Producer
from crc32c import crc32c

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import ATTRIBUTES_OFFSET, CRC_OFFSET
from kafkacompat.testing import BrokerThread
from tests.integration.clients import read_to_end
from tests.integration.raw import RawClient
from tests.integration.test_produce import produce
from tests.internals import internals

pytestmark = pytest.mark.integration

LENGTH_OFFSET, COUNT_OFFSET = 8, 57


def now_ms() -> int:
    return int(time.time() * 1000)


def records(n: int, *, key: bytes | None = b"k", ts: int | None = None) -> list[Record]:
    base = now_ms() if ts is None else ts
    return [Record(i, base + i, key, f"value-{i}".encode()) for i in range(n)]


def with_crc(batch: bytes | bytearray) -> bytes:
    """Fix the batch length and CRC after its records were changed: only what is inside fails."""
    out = bytearray(batch)
    struct.pack_into(">i", out, LENGTH_OFFSET, len(out) - 12)
    struct.pack_into(">I", out, CRC_OFFSET, crc32c(bytes(out[ATTRIBUTES_OFFSET:])))
    return bytes(out)


def record_length_past_the_batch() -> bytes:
    batch = bytearray(encode_batch(records(2)))
    batch[61] = 0x7E  # first record's length varint: 63 bytes, more than the batch holds
    return with_crc(batch)


def trailing_bytes() -> bytes:
    return with_crc(encode_batch(records(2)) + b"\x00\x01\x02")


def count_too_large() -> bytes:
    batch = bytearray(encode_batch(records(2)))
    struct.pack_into(">i", batch, COUNT_OFFSET, 3)
    return with_crc(batch)


def compressed_garbage() -> bytes:
    batch = bytearray(encode_batch(records(3), codec=Codec.LZ4))
    batch[70:90] = b"\xff" * 20
    return with_crc(batch)


def offset_deltas_out_of_order() -> bytes:
    """Offset deltas 0, 2, 2: the count and the last delta agree, the records do not."""
    base = now_ms()
    return encode_batch([Record(o, base, b"k", b"v") for o in (0, 2, 2)])


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (record_length_past_the_batch, ErrorCode.INVALID_RECORD),
        (trailing_bytes, ErrorCode.INVALID_RECORD),
        (count_too_large, ErrorCode.INVALID_RECORD),
        (compressed_garbage, ErrorCode.CORRUPT_MESSAGE),
        (offset_deltas_out_of_order, ErrorCode.INVALID_RECORD),
    ],
)
def test_broken_records_inside_a_valid_crc_are_refused_and_nothing_is_stored(
    broker: BrokerThread, make: partial[bytes], code: ErrorCode
) -> None:
    view = internals(broker)
    view.create_topic("v", 1)
    with RawClient(broker.port) as client:
        assert produce(client, "v", encode_batch(records(2))).error_code == 0
        result = produce(client, "v", make(), version=9)
        assert result.error_code == code
        assert result.error_message
        assert produce(client, "v", encode_batch(records(1))).error_code == 0
    assert view.partition("v", 0).log_end_offset == 3
    assert [v for _, _, v in read_to_end(broker.bootstrap, "v")] == [
        b"value-0",
        b"value-1",
        b"value-0",
    ]


def test_timestamps_out_of_bounds_name_each_record(broker: BrokerThread) -> None:
    view = internals(broker)
    view.create_topic("t", 1, {"message.timestamp.before.max.ms": "60000"})
    now = now_ms()
    batch = encode_batch(
        [
            Record(0, now, b"k", b"fine"),
            Record(1, now + 2 * 3_600_000, b"k", b"future"),  # after.max.ms: one hour
            Record(2, now - 120_000, b"k", b"past"),
        ]
    )
    with RawClient(broker.port) as client:
        result = produce(client, "t", batch, version=9)
    assert result.error_code == ErrorCode.INVALID_TIMESTAMP
    assert [e.batch_index for e in result.record_errors] == [1, 2]
    assert all(e.batch_index_error_message for e in result.record_errors)
    assert result.error_message
    assert view.partition("t", 0).log_end_offset == 0


def test_keyless_records_are_refused_on_a_compacted_topic(broker: BrokerThread) -> None:
    view = internals(broker)
    view.create_topic("c", 1, {"cleanup.policy": "compact"})
    with RawClient(broker.port) as client:
        mixed = encode_batch([Record(0, now_ms(), b"k", b"a"), Record(1, now_ms(), None, b"b")])
        result = produce(client, "c", mixed, version=9)
    assert result.error_code == ErrorCode.INVALID_RECORD
    assert [e.batch_index for e in result.record_errors] == [1]
    assert "without key" in (result.record_errors[0].batch_index_error_message or "")
    # A real client is told the same.
    failed: list[int] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    producer.produce("c", value=b"no key", on_delivery=lambda err, _m: failed.append(err.code()))
    producer.flush(10)
    producer.produce("c", key=b"k", value=b"keyed", on_delivery=lambda err, _m: failed.append(err))
    producer.flush(10)
    assert failed == [KafkaError.INVALID_RECORD, None]
    assert [v for _, _, v in read_to_end(broker.bootstrap, "c")] == [b"keyed"]
