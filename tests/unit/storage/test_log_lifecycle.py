"""Segment rolls, retention, timestamp lookup, DeleteRecords, truncation and flushing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog, TimestampOffset

from .helpers import apply_retention, batch, decode

DAY = 86_400_000


def open_log(path: Path, **overrides: str) -> PartitionLog:
    return PartitionLog(path / "t-0", LogConfig.from_overrides(overrides), now_ms=0)


def files(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "t-0").iterdir() if p.suffix == ".log")


def test_roll_by_segment_bytes(tmp_path: Path) -> None:
    size = len(batch(2))
    log = open_log(tmp_path, **{"segment.bytes": str(size * 3)})
    for i in range(7):
        log.append(batch(2, start=2 * i), now_ms=0)
    assert log.segment_base_offsets == [0, 6, 12]
    assert files(tmp_path) == [f"{b:020d}.log" for b in (0, 6, 12)]
    assert [p.stat().st_size for p in sorted((tmp_path / "t-0").glob("*.log"))] == [
        size * 3,
        size * 3,
        size,
    ]
    assert [r[0] for r in decode(log.read(0, 1 << 20).read_bytes())] == list(range(14))


def test_roll_by_segment_ms_uses_record_time(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.ms": "1000"})
    log.append(batch(1, ts=10_000), now_ms=0)
    log.append(batch(1, ts=10_999), now_ms=0)  # 999 ms after the first batch
    log.append(batch(1, ts=11_000), now_ms=0)  # 1000 ms: not yet more than segment.ms
    assert log.segment_base_offsets == [0]
    log.append(batch(1, ts=11_001), now_ms=0)
    assert log.segment_base_offsets == [0, 3]


def test_roll_by_segment_ms_without_timestamps_uses_wall_time(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.ms": "1000"})
    log.append(batch(1, magic=0), now_ms=0)  # v0: no timestamps
    log.append(batch(1, magic=0), now_ms=1000)
    assert log.segment_base_offsets == [0]
    log.append(batch(1, magic=0), now_ms=1001)
    assert log.segment_base_offsets == [0, 2]


def test_roll_when_index_full(tmp_path: Path) -> None:
    # index.interval.bytes=0 indexes every batch but a segment's first; 24 bytes hold three
    # offset entries or two time entries.
    overrides = {"index.interval.bytes": "0", "segment.index.bytes": "24"}
    log = open_log(tmp_path / "a", **overrides)
    for i in range(8):
        log.append(batch(1, ts=1000 + i, start=i), now_ms=0)
    assert log.segment_base_offsets == [0, 3, 6]  # time index full after 3 batches
    log = open_log(tmp_path / "b", **overrides)
    for i in range(8):
        log.append(batch(1, ts=1000, start=i), now_ms=0)
    assert log.segment_base_offsets == [0, 4]  # same timestamps: the offset index fills


def test_retention_by_time(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "700", "retention.ms": str(DAY)})
    for i in range(6):
        log.append(batch(2, ts=i * DAY, start=2 * i), now_ms=0)
    assert log.segment_base_offsets == [0, 4, 8]
    assert apply_retention(log, now_ms=2 * DAY + 1) == 0  # segment 0 max ts is DAY + 1
    assert apply_retention(log, now_ms=2 * DAY + 2) == 1
    assert (log.segment_base_offsets, log.log_start_offset) == ([4, 8], 4)
    assert not (tmp_path / "t-0" / f"{0:020d}.log").exists()
    assert not (tmp_path / "t-0" / f"{0:020d}.index").exists()
    with pytest.raises(KafkaError) as err:
        log.read(3, 100)
    assert err.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert [r[0] for r in decode(log.read(8, 1 << 20).read_bytes())] == [8, 9, 10, 11]
    # As Kafka: an expired active segment goes too; a new, empty one starts at the log end.
    assert apply_retention(log, now_ms=100 * DAY) == 2
    assert (log.segment_base_offsets, log.log_start_offset) == ([12], 12)
    assert log.log_end_offset == 12
    assert apply_retention(log, now_ms=200 * DAY) == 0  # never an empty active segment


def test_retention_forever_and_compact_policy(tmp_path: Path) -> None:
    for overrides in ({"retention.ms": "-1"}, {"cleanup.policy": "compact"}):
        log = open_log(tmp_path / str(len(overrides)), **{"segment.bytes": "700"}, **overrides)
        for i in range(6):
            log.append(batch(2, ts=i, start=2 * i), now_ms=0)
        assert apply_retention(log, now_ms=10**15) == 0


def test_retention_by_bytes(tmp_path: Path) -> None:
    size = len(batch(2))
    log = open_log(tmp_path, **{"segment.bytes": str(size * 2), "retention.bytes": str(size * 3)})
    for i in range(7):
        log.append(batch(2, start=2 * i), now_ms=0)
    assert log.segment_base_offsets == [0, 4, 8, 12]
    assert apply_retention(log, now_ms=0) == 2  # 7 batches - 2 segments = 3 batches left
    assert (log.segment_base_offsets, log.log_start_offset, log.size_in_bytes) == (
        [8, 12],
        8,
        size * 3,
    )


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "1500", "index.interval.bytes": "300"})
    assert log.offset_for_timestamp(0) is None
    assert log.offset_for_timestamp(-3) is None
    for i in range(20):
        log.append(batch(3, ts=1000 + 10 * i, start=3 * i), now_ms=0)
    assert len(log.segment_base_offsets) > 3
    # batch i holds offsets 3i..3i+2 with timestamps 1000+10i .. 1000+10i+2
    assert log.offset_for_timestamp(1000) == TimestampOffset(1000, 0)
    assert log.offset_for_timestamp(1001) == TimestampOffset(1001, 1)
    assert log.offset_for_timestamp(1003) == TimestampOffset(1010, 3)
    assert log.offset_for_timestamp(1092) == TimestampOffset(1092, 29)
    assert log.offset_for_timestamp(1190) == TimestampOffset(1190, 57)
    assert log.offset_for_timestamp(1193) is None
    assert log.offset_for_timestamp(0) == TimestampOffset(1000, 0)
    assert log.offset_for_timestamp(-1) == TimestampOffset(-1, 60)
    assert log.offset_for_timestamp(-2) == TimestampOffset(-1, 0)
    assert log.offset_for_timestamp(-3) == TimestampOffset(1192, 59)
    log.delete_records_before(31)
    assert log.offset_for_timestamp(1000) == TimestampOffset(1101, 31)
    assert log.offset_for_timestamp(-2) == TimestampOffset(-1, 31)
    log.close()
    reopened = PartitionLog(tmp_path / "t-0", log.config, clean_shutdown=True)
    assert reopened.offset_for_timestamp(1092) == TimestampOffset(1101, 31)
    assert reopened.offset_for_timestamp(1111) == TimestampOffset(1111, 34)
    assert reopened.offset_for_timestamp(-3) == TimestampOffset(1192, 59)


def test_offset_for_timestamp_out_of_order_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"index.interval.bytes": "0"})
    for i, ts in enumerate([5000, 1000, 7000, 3000]):
        log.append(batch(1, ts=ts, start=i), now_ms=0)
    assert log.offset_for_timestamp(2000) == TimestampOffset(5000, 0)
    assert log.offset_for_timestamp(6000) == TimestampOffset(7000, 2)
    assert log.offset_for_timestamp(-3) == TimestampOffset(7000, 2)


def test_delete_records_before(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "700"})
    for i in range(6):
        log.append(batch(2, start=2 * i), now_ms=0)
    assert log.segment_base_offsets == [0, 4, 8]
    assert log.delete_records_before(5) == 5
    assert log.segment_base_offsets == [4, 8]
    assert log.delete_records_before(3) == 5  # never moves back
    read = log.read(5, 1 << 20)
    assert read.log_start_offset == 5
    assert decode(read.read_bytes())[0][0] == 4  # the whole batch; clients skip offset 4
    with pytest.raises(KafkaError) as err:
        log.read(4, 100)
    assert err.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    with pytest.raises(KafkaError) as err:
        log.delete_records_before(13)
    assert err.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.delete_records_before(-1) == 12
    assert log.read(12, 100).slices == ()
    log.append(batch(1), now_ms=0)
    log.close()
    reopened = PartitionLog(tmp_path / "t-0", log.config)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (12, 13)


def test_truncate_to(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"segment.bytes": "700"})
    for i in range(6):
        log.append(batch(2, start=2 * i), now_ms=0)
    log.truncate_to(12)
    assert log.log_end_offset == 12
    log.truncate_to(9)  # mid-batch: the batch 8..9 goes whole
    assert (log.log_end_offset, log.segment_base_offsets) == (8, [0, 4, 8])
    log.truncate_to(4)
    assert (log.log_end_offset, log.segment_base_offsets) == (4, [0])
    assert log.append(batch(1), now_ms=0).base_offset == 4
    assert [r[0] for r in decode(log.read(0, 1 << 20).read_bytes())] == [0, 1, 2, 3, 4]
    log.delete_records_before(2)
    log.truncate_to(1)  # below the log start offset: emptied, restarts at 1
    assert (log.log_start_offset, log.log_end_offset, log.segment_base_offsets) == (1, 1, [1])
    assert log.append(batch(1), now_ms=0).base_offset == 1
    log.close()
    reopened = PartitionLog(tmp_path / "t-0", log.config)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (1, 2)


def test_flush_policy(tmp_path: Path) -> None:
    log = open_log(tmp_path, **{"flush.messages": "5"})
    log.append(batch(3), now_ms=0)
    assert log.recovery_point == 0
    log.append(batch(3), now_ms=0)
    assert log.recovery_point == 6
    timed = open_log(tmp_path / "b", **{"flush.ms": "100"})
    timed.append(batch(1), now_ms=50)
    assert timed.recovery_point == 0
    assert not timed.flush_due(now_ms=99)
    assert timed.flush_due(now_ms=100)
    timed.flush(100)
    assert timed.recovery_point == 1
    timed.append(batch(1), now_ms=250)  # flush.ms elapsed since the last flush
    assert timed.recovery_point == 2
    log.flush()
    assert log.recovery_point == 6
