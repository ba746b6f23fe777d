"""PartitionLog append/read behaviour: byte-for-byte storage, offsets, limits, errors."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.records import read_header
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog

from .helpers import apply_retention, batch, decode, expected_decoded, fixture

V2_FIXTURES = ["v2_none", "v2_gzip", "v2_snappy", "v2_lz4", "v2_zstd", "v2_idempotent"]
V2_FIXTURES += ["v2_multi", "v2_large"]
# Captured from confluent-kafka (librdkafka) by tests/fixtures/capture_librdkafka_batches.py.
LIBRDKAFKA_CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4, "idempotent_zstd": 4}
V2_FIXTURES += [f"librdkafka_{name}" for name in LIBRDKAFKA_CODECS]
FIXTURE_TS = 1_700_000_000_000  # near the fixtures' timestamps: no time-based roll between


def open_log(path: Path, **overrides: str) -> PartitionLog:
    return PartitionLog(path / "t-0", LogConfig.from_overrides(overrides), now_ms=0)


def patched(data: bytes, base_offset: int, epoch: int) -> bytes:
    """What the log must hold: the client's bytes with offsets and leader epochs patched."""
    out, pos, offset = bytearray(data), 0, base_offset
    while pos < len(out):
        header = read_header(out, pos)
        struct.pack_into(">q", out, pos, offset)
        struct.pack_into(">i", out, pos + 12, epoch)
        offset += header.last_offset_delta + 1
        pos += header.size
    return bytes(out)


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path)
    data = batch(3, ts=FIXTURE_TS)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, buf: real_write(fd, bytes(buf)[:50]))
    log.append(data, leader_epoch=0, now_ms=1)
    monkeypatch.undo()
    assert log.read(0, 1 << 20).read_bytes() == patched(data, 0, 0)
    log.close()


@pytest.mark.parametrize("name", V2_FIXTURES)
def test_client_batches_stored_byte_for_byte(tmp_path: Path, name: str) -> None:
    data, expected = fixture(name)
    log = open_log(tmp_path)
    first = log.append(batch(2, ts=FIXTURE_TS), leader_epoch=7, now_ms=1)
    result = log.append(data, leader_epoch=7, now_ms=1)
    assert (result.base_offset, result.last_offset) == (2, 1 + len(expected))
    assert (result.log_append_time, result.log_start_offset) == (-1, 0)
    assert result.record_count == len(expected)
    read = log.read(2, 10 << 20)
    assert read.read_bytes() == patched(data, 2, 7)
    assert decode(read.read_bytes()) == expected_decoded(expected, 2)
    assert (read.high_watermark, read.log_start_offset) == (2 + len(expected), 0)
    on_disk = (tmp_path / "t-0" / "00000000000000000000.log").read_bytes()
    assert on_disk == patched(batch(2, ts=FIXTURE_TS), 0, 7) + patched(data, 2, 7)
    assert first.base_offset == 0
    log.close()


@pytest.mark.parametrize(("name", "codec"), LIBRDKAFKA_CODECS.items())
def test_librdkafka_fixtures_keep_their_compression(name: str, codec: int) -> None:
    data, expected = fixture(f"librdkafka_{name}")
    header = read_header(data, 0)
    assert (header.attributes & 0x7, header.records_count) == (codec, len(expected))
    assert (header.producer_id >= 0) == name.startswith("idempotent")


def test_writable_input_is_patched_in_place(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(1), now_ms=0)
    buf = bytearray(batch(4))
    log.append(memoryview(buf), leader_epoch=3, now_ms=0)
    assert bytes(buf) == patched(batch(4), 1, 3)
    assert log.read(1, 1 << 20).read_bytes() == bytes(buf)


def test_read_mid_batch_returns_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for i in range(4):
        log.append(batch(5, start=5 * i), now_ms=0)
    read = log.read(12, 1 << 20)
    records = decode(read.read_bytes())
    assert [r[0] for r in records] == list(range(10, 20))
    assert records[2][3] is not None and records[2][3].startswith(b"00000012")


def test_read_byte_limit_whole_batches_and_first_batch_always(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"index.interval.bytes": "500"})
    sizes = []
    for i in range(30):
        data = batch(2, start=2 * i)
        sizes.append(len(data))
        log.append(data, now_ms=0)
    assert len(set(sizes[:5])) == 1
    size = sizes[0]
    assert log.read(0, size * 3).size == size * 3
    assert log.read(0, size * 3 + size - 1).size == size * 3
    assert log.read(4, 10).size == size  # larger than the limit: still one batch
    assert log.read(4, 10, min_one=False).slices == ()
    assert log.read(0, 0).size == size
    assert log.read(0, 1 << 30).size == sum(sizes)
    for start in range(0, 30, 3):
        for limit in (sizes[0], 700, 1000, 2500, 5000):
            got = log.read(2 * start + 1, limit).size
            fits = [n for n in range(1, 31 - start) if sum(sizes[start : start + n]) <= limit]
            assert got == sum(sizes[start : start + max(fits, default=1)]), (start, limit)
    assert [r[0] for r in decode(log.read(20, sum(sizes[10:15])).read_bytes())] == list(
        range(20, 30)
    )
    assert log.read(0, 1 << 20, max_offset=7).size == size * 4
    assert log.read(0, 1 << 20, max_offset=6).size == size * 3


def test_offset_out_of_range_and_empty_read_at_end(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3), now_ms=0)
    assert log.read(3, 1000).slices == ()
    assert log.read(3, 1000).high_watermark == 3
    for bad in (4, -1, 100):
        with pytest.raises(KafkaError) as err:
            log.read(bad, 1000)
        assert err.value.code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_empty_log_read(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    result = log.read(0, 100)
    assert (result.slices, result.high_watermark, result.log_start_offset) == ((), 0, 0)


def test_crc_corruption_rejected_and_log_unchanged(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2), now_ms=0)
    bad = bytearray(batch(3))
    bad[-5] ^= 0x40
    with pytest.raises(KafkaError) as err:
        log.append(bytes(bad), now_ms=0)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE
    assert log.log_end_offset == 2
    good_then_bad = batch(1) + bytes(bad)
    with pytest.raises(KafkaError):
        log.append(good_then_bad, now_ms=0)
    assert log.log_end_offset == 2
    assert log.read(0, 1 << 20).read_bytes() == patched(batch(2), 0, -1)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b[:-1], ErrorCode.CORRUPT_MESSAGE),  # truncated
        (lambda b: b + b"\x00" * 10, ErrorCode.CORRUPT_MESSAGE),  # trailing garbage
        (lambda b: b[:16] + b"\x03" + b[17:], ErrorCode.CORRUPT_MESSAGE),  # magic
        (lambda b: b"", ErrorCode.INVALID_RECORD),
    ],
)
def test_malformed_record_sets(tmp_path: Path, mutate: object, code: ErrorCode) -> None:
    log = open_log(tmp_path)
    assert callable(mutate)
    with pytest.raises(KafkaError) as err:
        log.append(mutate(batch(2)), now_ms=0)
    assert err.value.code == code
    assert log.log_end_offset == 0


def _with_crc(data: bytearray) -> bytes:
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return bytes(data)


def test_record_count_must_match_last_offset_delta(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = bytearray(batch(3))
    struct.pack_into(">i", data, 23, 5)
    with pytest.raises(KafkaError) as err:
        log.append(_with_crc(data), now_ms=0)
    assert err.value.code == ErrorCode.INVALID_RECORD


def test_clients_cannot_write_control_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    data = bytearray(batch(1))
    struct.pack_into(">h", data, 21, 0x20)
    struct.pack_into(">qhi", data, 43, 5, 0, -1)
    with pytest.raises(KafkaError) as err:
        log.append(_with_crc(data), now_ms=0)
    assert err.value.code == ErrorCode.INVALID_RECORD
    assert log.append(_with_crc(data), now_ms=0, allow_control=True).base_offset == 0


def test_max_message_bytes(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"max.message.bytes": "1000"})
    small, big = batch(1, value_size=100), batch(1, value_size=2000)
    log.append(small, now_ms=0)
    with pytest.raises(KafkaError) as err:
        log.append(small + big, now_ms=0)
    assert err.value.code == ErrorCode.MESSAGE_TOO_LARGE
    assert log.log_end_offset == 1


def test_record_set_larger_than_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "1000"})
    with pytest.raises(KafkaError) as err:
        log.append(batch(1, value_size=2000), now_ms=0)
    assert err.value.code == ErrorCode.RECORD_LIST_TOO_LARGE


def test_log_append_time(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"message.timestamp.type": "LogAppendTime"})
    data, expected = fixture("v2_multi")
    result = log.append(data, now_ms=1_234_567, leader_epoch=1)
    assert result.log_append_time == 1_234_567
    stored = log.read(0, 1 << 20).read_bytes()
    records = decode(stored)  # kafka-python checks each recomputed CRC
    assert [r[1] for r in records] == [1_234_567] * len(expected)
    assert [r[2:] for r in records] == [r[2:] for r in expected_decoded(expected, 0)]
    header = read_header(stored)
    assert header.timestamp_type == 1 and header.max_timestamp == 1_234_567
    assert stored[61 : header.size] == data[61 : header.size]  # records untouched


def test_compression_type_recompresses(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"compression.type": "zstd"})
    data, expected = fixture("v2_gzip")
    log.append(data, now_ms=0)
    stored = log.read(0, 1 << 20).read_bytes()
    assert read_header(stored).compression == 4
    assert decode(stored) == expected_decoded(expected, 0)


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_legacy_message_sets_converted(tmp_path: Path, magic: int, codec: str) -> None:
    data, expected = fixture(f"v{magic}_{codec}")
    log = open_log(tmp_path)
    log.append(batch(2, ts=FIXTURE_TS), now_ms=0)
    result = log.append(data, now_ms=0, leader_epoch=4)
    assert (result.base_offset, result.last_offset) == (2, 1 + len(expected))
    stored = log.read(2, 1 << 20).read_bytes()
    header = read_header(stored)
    assert (header.magic, header.records_count, header.partition_leader_epoch) == (2, 12, 4)
    assert header.compression == ["none", "gzip", "snappy", "lz4"].index(codec)
    assert decode(stored) == expected_decoded(expected, 2)


def test_legacy_corrupt_and_too_large(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"max.message.bytes": "150"})
    data, _ = fixture("v1_none")
    assert log.append(data, now_ms=0).last_offset == 11  # converted batch may exceed the limit
    bad = bytearray(data)
    bad[40] ^= 1
    with pytest.raises(KafkaError) as err:
        log.append(bytes(bad), now_ms=0)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE
    gz, _ = fixture("v1_gzip")
    with pytest.raises(KafkaError) as err:
        log.append(gz, now_ms=0)
    assert err.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_iter_records(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "600"})
    for i in range(10):
        log.append(batch(3, start=3 * i, ts=100 * i), now_ms=0)
    assert len(log.segment_base_offsets) > 3
    records = list(log.iter_records(4))
    assert [r.offset for r in records] == list(range(4, 30))
    assert records[0].value is not None and records[0].value.startswith(b"00000004")
    assert records[0].timestamp == 101  # second record of the batch stamped 100


def test_max_offset_across_segments_and_vanished_slice(tmp_path: Path) -> None:
    size = len(batch(2))
    log = open_log(tmp_path, **{"segment.bytes": str(size * 2)})
    for i in range(6):
        log.append(batch(2, start=2 * i), now_ms=0)
    assert log.segment_base_offsets == [0, 4, 8]
    read = log.read(0, 1 << 20, max_offset=6)
    assert [s.size for s in read.slices] == [size * 2, size]
    assert [r[0] for r in decode(read.read_bytes())] == [0, 1, 2, 3, 4, 5]
    assert log.read(6, 1 << 20, max_offset=6).slices == ()
    assert log.read(5, 1 << 20, max_offset=5).slices == ()
    assert log.read(5, 1 << 20, max_offset=6).read_bytes() == read.slices[1].read()
    apply_retention(log, now_ms=0)
    log.delete_records_before(8)
    assert read.slices[0].read() == b""  # its segment was deleted meanwhile
