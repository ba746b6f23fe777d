"""Record-level validation of produced v2 batches (Kafka's LogValidator rules), alone and on append."""

from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import pytest
import zstandard
from crc32c import crc32c

from kafkacompat.config import BROKER_DEFAULTS, Config
from kafkacompat.errors import ErrorCode, KafkaError, RecordValidationError
from kafkacompat.protocol.compression import DEFAULT_MAX_DECOMPRESSED, Codec, compress
from kafkacompat.protocol.down_conversion import encode_legacy_message
from kafkacompat.protocol.legacy_records import legacy_to_v2
from kafkacompat.protocol.record_codec import Record, encode_batch, write_varint
from kafkacompat.protocol.record_validation import (
    DECOMPRESSION_CEILING,
    LONG_MAX,
    MAX_ERROR_MESSAGES,
    RecordRules,
    ValidatedBatch,
    decompression_limit,
    validate_batch,
)
from kafkacompat.protocol.records import (
    CRC_OFFSET,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAX_TIMESTAMP_OFFSET,
    read_header,
)
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog

from .storage.helpers import fixture

NOW = 1_700_000_000_000
HOUR = 3_600_000
RULES = RecordRules(now_ms=NOW, topic_partition="t-0", timestamp_after_max_ms=HOUR)
CODECS = [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]


# --- building batches, well-formed or not -------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    write_varint(out, value)
    return bytes(out)


def raw_record(
    offset_delta: int,
    *,
    ts_delta: int = 0,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: bytes = varint(0),
    length: int | None = None,
) -> bytes:
    """One record body with its length prefix; ``headers`` is the raw header section."""
    body = b"\x00" + varint(ts_delta) + varint(offset_delta)
    for field in (key, value):
        body += varint(-1) if field is None else varint(len(field)) + field
    body += headers
    return varint(len(body) if length is None else length) + body


def make_batch(
    body: bytes,
    count: int,
    *,
    codec: int = Codec.NONE,
    last_offset_delta: int | None = None,
    base_ts: int = NOW,
    max_ts: int | None = None,
    attributes: int = 0,
) -> bytes:
    """A v2 batch around raw record bytes (compressed with ``codec``) with a valid CRC."""
    payload = compress(codec, body) if codec else body
    out = bytearray(HEADER_SIZE)
    lod = count - 1 if last_offset_delta is None else last_offset_delta
    HEADER.pack_into(
        out, 0, 0, HEADER_SIZE - LOG_OVERHEAD + len(payload), -1, 2, 0, codec | attributes,
        lod, base_ts, base_ts if max_ts is None else max_ts, -1, -1, -1, count,
    )  # fmt: skip
    out += payload
    struct.pack_into(">I", out, CRC_OFFSET, crc32c(memoryview(out)[21:]))
    return bytes(out)


def records_batch(n: int, *, codec: int = Codec.NONE, ts: int = NOW, **kw: object) -> bytes:
    records = [Record(i, ts + i, f"k{i}".encode(), b"v" * 10) for i in range(n)]
    return encode_batch(records, codec=codec, **kw)  # type: ignore[arg-type]


def check(data: bytes, rules: RecordRules = RULES) -> ValidatedBatch:
    return validate_batch(data, read_header(data), rules)


def refused(data: bytes, rules: RecordRules = RULES) -> RecordValidationError:
    with pytest.raises(RecordValidationError) as err:
        check(data, rules)
    return err.value


# --- well-formed batches ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_well_formed_batches_pass(codec: int) -> None:
    data = records_batch(100, codec=codec)
    result = check(data)
    assert result.max_timestamp == NOW + 99
    assert (result.decompressed_size > 0) == (codec != Codec.NONE)


@pytest.mark.parametrize(
    "name",
    ["v2_none", "v2_gzip", "v2_snappy", "v2_lz4", "v2_zstd", "v2_idempotent", "v2_large"]
    + [f"librdkafka_{c}" for c in ("none", "gzip", "snappy", "lz4", "zstd")],
)
def test_client_fixtures_pass(name: str) -> None:
    data, expected = fixture(name)
    rules = RecordRules(now_ms=0)  # the fixtures' timestamps are not checked: defaults
    assert check(data, rules).max_timestamp == max(e["timestamp"] for e in expected)


def test_records_with_headers_and_long_varints_pass() -> None:
    headers = varint(2) + varint(1) + b"h" + varint(-1) + varint(2) + b"hh" + varint(3) + b"abc"
    body = raw_record(0, ts_delta=10**9, key=b"k" * 300, value=None, headers=headers)
    body += raw_record(1, ts_delta=-5, key=b"", value=b"v" * 20000)
    unbounded = RecordRules(now_ms=NOW)
    assert check(make_batch(body, 2), unbounded).max_timestamp == NOW + 10**9


# --- structure: the batch as a whole, INVALID_RECORD, no record errors ---------------------------


STRUCTURE_FAULTS = {
    "fewer records than declared": (raw_record(0) + raw_record(1), 3),
    "bytes after the last record": (raw_record(0) + raw_record(1) + b"\x00", 2),
    "record length past the batch": (raw_record(0, length=200), 1),
    "record length zero": (raw_record(0, length=0) + b"\x00" * 6, 1),
    "negative record length": (raw_record(0, length=-3), 1),
    "record length shorter than its fields": (raw_record(0, value=b"abc", length=7), 1),
    "key length past the record": (raw_record(0, key=b"k")[:4] + varint(100) + b"k" * 6, 1),
    "header count larger than the record": (raw_record(0, headers=varint(1000)), 1),
    "negative header count": (raw_record(0, headers=varint(-2)), 1),
    "negative header key length": (raw_record(0, headers=varint(1) + varint(-1) + varint(-1)), 1),
    "header value past the record": (
        raw_record(0, headers=varint(1) + varint(1) + b"h" + varint(50)),
        1,
    ),
    "varint cut short": (b"\x80", 1),
    "varint of eleven bytes": (b"\xff" * 11, 1),
}


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.LZ4])
@pytest.mark.parametrize("fault", list(STRUCTURE_FAULTS))
def test_structure_faults(fault: str, codec: int) -> None:
    body, count = STRUCTURE_FAULTS[fault]
    err = refused(make_batch(body, count, codec=codec))
    assert err.code == ErrorCode.INVALID_RECORD
    assert err.record_errors == []
    assert "t-0" in err.message


def test_every_truncation_and_byte_flip_is_a_validation_error() -> None:
    """No damage to the record bytes escapes as anything but RecordValidationError."""
    body = raw_record(0, headers=varint(1) + varint(1) + b"h" + varint(1) + b"v")
    body += raw_record(1, ts_delta=300, key=None, value=b"x" * 130)
    for cut in range(len(body)):
        with pytest.raises(RecordValidationError):
            check(make_batch(body[:cut], 2))
    for i in range(len(body)):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(body)
            damaged[i] ^= flip
            with contextlib.suppress(RecordValidationError):
                check(make_batch(bytes(damaged), 2))


def test_count_beyond_the_body_of_a_record_set_with_more_batches() -> None:
    """The uncompressed walk reads the whole set in place; it must stop at its own batch."""
    first = make_batch(raw_record(0), 2)  # declares 2, holds 1
    data = first + records_batch(3)
    with pytest.raises(RecordValidationError) as err:
        validate_batch(data, read_header(data), RULES)
    assert err.value.code == ErrorCode.INVALID_RECORD


# --- per-record rules ---------------------------------------------------------------------------


def test_offset_deltas_must_be_the_record_indexes() -> None:
    body = raw_record(0) + raw_record(0) + raw_record(2) + raw_record(5)
    err = refused(make_batch(body, 4, last_offset_delta=3))
    assert err.code == ErrorCode.INVALID_RECORD
    assert [i for i, _ in err.record_errors] == [1, 3]
    assert "Inner record offset delta 0 is not 1 in topic partition t-0" in str(
        err.record_errors[0][1]
    )
    assert "2 record errors" in err.message


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP])
def test_compacted_topic_needs_keys(codec: int) -> None:
    rules = RecordRules(now_ms=NOW, topic_partition="t-0", compacted=True)
    body = raw_record(0) + raw_record(1, key=None) + raw_record(2, key=b"")
    err = refused(make_batch(body, 3, codec=codec), rules)
    assert err.code == ErrorCode.INVALID_RECORD
    assert err.record_errors == [
        (1, "Compacted topic cannot accept message without key in topic partition t-0.")
    ]
    assert check(make_batch(body, 3, codec=codec)).max_timestamp == NOW  # not compacted


def test_many_faulty_records_beyond_the_first_are_reported_by_index() -> None:
    rules = RecordRules(now_ms=NOW, compacted=True)
    count = MAX_ERROR_MESSAGES + 50
    err = refused(make_batch(b"".join(raw_record(i, key=None) for i in range(count)), count), rules)
    assert [i for i, _ in err.record_errors] == list(range(count))
    assert all(m for _, m in err.record_errors[:MAX_ERROR_MESSAGES])
    assert not any(m for _, m in err.record_errors[MAX_ERROR_MESSAGES:])
    assert f"{count} record errors" in err.message


def test_create_time_bounds() -> None:
    late, early = NOW + HOUR + 1, NOW - 1000
    body = raw_record(0) + raw_record(1, ts_delta=HOUR) + raw_record(2, ts_delta=HOUR + 1)
    err = refused(make_batch(body, 3))
    assert err.code == ErrorCode.INVALID_TIMESTAMP
    assert err.message == "One or more records have been rejected due to invalid timestamp"
    assert [i for i, _ in err.record_errors] == [2]
    assert f"Timestamp {late} " in str(err.record_errors[0][1])
    before = RecordRules(now_ms=NOW, timestamp_before_max_ms=999)
    err = refused(make_batch(raw_record(0, ts_delta=-1000), 1), before)
    assert err.code == ErrorCode.INVALID_TIMESTAMP
    assert f"Timestamp {early} " in str(err.record_errors[0][1])
    # At the bounds, and records without a timestamp, are fine.
    assert check(make_batch(raw_record(0, ts_delta=-999), 1), before).max_timestamp == NOW - 999
    no_ts = make_batch(raw_record(0) + raw_record(1), 2, base_ts=-1, max_ts=-1)
    assert check(no_ts, before).max_timestamp == -1


def test_log_append_time_topic_checks_no_timestamp() -> None:
    rules = RecordRules(now_ms=NOW, log_append_time=True, timestamp_after_max_ms=0)
    data = make_batch(raw_record(0, ts_delta=10 * HOUR), 1)
    assert check(data, rules).max_timestamp == NOW + 10 * HOUR


def test_producers_may_not_set_log_append_time() -> None:
    lat = 0x08
    data = make_batch(raw_record(0) + raw_record(1), 2, attributes=lat)
    err = refused(data, RecordRules(now_ms=NOW, log_append_time=True))
    assert err.code == ErrorCode.INVALID_TIMESTAMP
    assert [i for i, _ in err.record_errors] == [0, 1]
    # On a CreateTime topic the records carry the batch's max timestamp, which is checked.
    assert check(data).max_timestamp == NOW
    future = make_batch(raw_record(0), 1, attributes=lat, max_ts=NOW + 2 * HOUR)
    assert refused(future).code == ErrorCode.INVALID_TIMESTAMP
    none = make_batch(raw_record(0), 1, attributes=lat, base_ts=-1, max_ts=-1)
    assert refused(none).code == ErrorCode.INVALID_TIMESTAMP


def test_one_error_per_record_offset_first() -> None:
    rules = RecordRules(now_ms=NOW, compacted=True, timestamp_after_max_ms=0)
    body = raw_record(0, key=None) + raw_record(5, key=None, ts_delta=1) + raw_record(2)
    err = refused(make_batch(body, 3), rules)
    assert err.code == ErrorCode.INVALID_RECORD  # no timestamp fault among the reported
    assert [i for i, _ in err.record_errors] == [0, 1]
    assert "without key" in str(err.record_errors[0][1])
    assert "offset delta 5" in str(err.record_errors[1][1])


def test_broker_written_batches_skip_the_producer_rules() -> None:
    rules = RecordRules(now_ms=NOW, compacted=True, timestamp_after_max_ms=0, producer_rules=False)
    body = raw_record(0, key=None, ts_delta=10 * HOUR) + raw_record(7)
    assert check(make_batch(body, 2), rules).max_timestamp == NOW + 10 * HOUR
    with pytest.raises(RecordValidationError):
        check(make_batch(body, 3), rules)  # the structure still counts


# --- compression --------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_decompression_is_bounded(codec: int) -> None:
    rules = RecordRules(now_ms=NOW, max_decompressed=64 * 1024)
    big = raw_record(0, value=b"\x00" * 200_000)
    err = refused(make_batch(big, 1, codec=codec), rules)
    assert err.code == ErrorCode.CORRUPT_MESSAGE
    assert err.record_errors == []
    assert check(make_batch(big, 1, codec=codec)).decompressed_size == len(big)


def test_zstd_bomb_is_not_inflated_whole() -> None:
    """256 MiB of zeros in a few KiB of zstd, with no content size: refused past 1 MiB."""
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
    chunk = bytes(1 << 20)
    frame = b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()
    data = bytearray(make_batch(b"", 1, codec=Codec.ZSTD)[:HEADER_SIZE]) + frame
    struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
    struct.pack_into(">I", data, CRC_OFFSET, crc32c(memoryview(data)[21:]))
    err = refused(bytes(data), RecordRules(now_ms=NOW, max_decompressed=1 << 20))
    assert err.code == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_invalid_compressed_stream(codec: int) -> None:
    good = make_batch(raw_record(0), 1, codec=codec)
    payload = bytearray(good[HEADER_SIZE:])
    payload[len(payload) // 2 :] = b"\x17" * (len(payload) - len(payload) // 2)
    data = bytearray(good[:HEADER_SIZE]) + payload
    struct.pack_into(">I", data, CRC_OFFSET, crc32c(memoryview(data)[21:]))
    with pytest.raises(RecordValidationError) as err:
        check(bytes(data))
    assert err.value.code in (ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD)


def test_decompression_limit() -> None:
    assert decompression_limit(1048588) == DEFAULT_MAX_DECOMPRESSED
    assert decompression_limit(10 * 1024 * 1024) == 160 * 1024 * 1024
    assert decompression_limit(2**31 - 1) == DECOMPRESSION_CEILING


# --- on the append path -------------------------------------------------------------------------


def open_log(path: Path, **configs: str) -> PartitionLog:
    overrides = {"message.timestamp.after.max.ms": str(HOUR), **configs}
    return PartitionLog(path / "t-0", LogConfig.from_overrides(overrides), now_ms=NOW)


def test_append_refuses_before_writing(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(records_batch(2), now_ms=NOW)
    size = log.size_in_bytes
    bad = make_batch(raw_record(0) + raw_record(1, ts_delta=2 * HOUR), 2)
    for records in (bad, records_batch(3) + bad):  # a bad second batch refuses the whole set
        with pytest.raises(RecordValidationError) as err:
            log.append(records, now_ms=NOW)
        assert err.value.code == ErrorCode.INVALID_TIMESTAMP
        assert err.value.record_errors[0][0] == 1
    assert (log.size_in_bytes, log.log_end_offset) == (size, 2)
    log.close()


def test_append_crc_is_checked_before_the_records(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = bytearray(make_batch(raw_record(0) + raw_record(1), 3))
    data[-1] ^= 0xFF
    with pytest.raises(KafkaError) as err:
        log.append(data, now_ms=NOW)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE
    log.close()


def test_append_sets_max_timestamp_from_the_records(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    body = raw_record(0, ts_delta=5) + raw_record(1, ts_delta=40) + raw_record(2)
    log.append(make_batch(body, 3, max_ts=NOW + 7), now_ms=NOW)  # the header lies
    stored = log.read(0, 1 << 20).read_bytes()
    assert read_header(stored).max_timestamp == NOW + 40
    assert struct.unpack_from(">q", stored, MAX_TIMESTAMP_OFFSET)[0] == NOW + 40
    assert crc32c(stored[21:]) == read_header(stored).crc
    assert log.offset_for_timestamp(NOW + 10) is not None
    log.close()


def test_append_compacted_topic(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"cleanup.policy": "compact,delete"})
    with pytest.raises(RecordValidationError) as err:
        log.append(make_batch(raw_record(0, key=None), 1), now_ms=NOW)
    assert err.value.record_errors == [
        (0, "Compacted topic cannot accept message without key in topic partition t-0.")
    ]
    log.close()


def test_append_control_batches_skip_producer_rules(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"cleanup.policy": "compact"})
    far = make_batch(raw_record(0, key=b"\x00\x00\x00\x01", ts_delta=5 * HOUR), 1)
    control = bytearray(far)
    struct.pack_into(">h", control, 21, 0x30)  # transactional | control
    struct.pack_into(">qhi", control, 43, 7, 0, -1)  # producer id and epoch, no sequence
    struct.pack_into(">I", control, CRC_OFFSET, crc32c(memoryview(control)[21:]))
    assert log.append(bytes(control), now_ms=NOW, allow_control=True).last_offset == 0
    log.close()


def test_append_recompressed_and_legacy_sets_are_validated(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"compression.type": "gzip"})
    with pytest.raises(RecordValidationError) as err:
        log.append(make_batch(raw_record(0) + raw_record(1), 3), now_ms=NOW)
    assert err.value.code == ErrorCode.INVALID_RECORD  # not CORRUPT_MESSAGE from decoding
    future = encode_legacy_message(0, 1, 0, NOW + 2 * HOUR, b"k", b"v")
    for config in ({"compression.type": "gzip"}, {}):
        legacy_log = open_log(tmp_path / str(len(config)), **config)
        with pytest.raises(RecordValidationError) as err:
            legacy_log.append(encode_legacy_message(0, 1, 0, NOW, b"k", b"v") + future, now_ms=NOW)
        assert err.value.code == ErrorCode.INVALID_TIMESTAMP
        assert err.value.record_errors[0][0] == 1
        legacy_log.close()
    log.close()


def test_legacy_conversion_bounds_the_whole_set() -> None:
    inner = encode_legacy_message(0, 1, 0, NOW, None, b"\x00" * 50_000)
    wrapper = encode_legacy_message(0, 1, Codec.GZIP, NOW, None, zlib.compress(inner))
    with pytest.raises(KafkaError) as err:
        legacy_to_v2(wrapper * 5, max_message_bytes=1 << 20, max_decompressed=200_000)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE
    assert legacy_to_v2(wrapper * 3, max_message_bytes=1 << 20, max_decompressed=200_000)


def test_timestamp_settings() -> None:
    config = LogConfig.from_overrides(
        {"message.timestamp.before.max.ms": "5", "message.timestamp.after.max.ms": "6"}
    )
    assert (config.message_timestamp_before_max_ms, config.message_timestamp_after_max_ms) == (5, 6)
    assert LogConfig().message_timestamp_before_max_ms == LONG_MAX
    assert BROKER_DEFAULTS["log.message.timestamp.after.max.ms"] == HOUR
    assert BROKER_DEFAULTS["log.message.timestamp.before.max.ms"] == LONG_MAX
    assert Config().get_int("log.message.timestamp.after.max.ms") == HOUR
