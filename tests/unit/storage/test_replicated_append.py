"""A follower's append: a leader's batches stored byte for byte, skipped when already present,
refused when damaged or when they straddle the log end, and rolled into the same segments."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.producer_snapshots import load_state
from kafkacompat.protocol.control_records import control_batch
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import iter_batches, prepare_replicated
from kafkacompat.storage.cleaner_records import empty_batch
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import AppendResult
from kafkacompat.storage.txn_index import AbortedTxn

TS = 1_700_000_000_000
NOW = TS + 60_000
CONFIG = replace(DEFAULT_LOG_CONFIG, segment_bytes=600, index_interval_bytes=100)


def records(count: int, first: int = 0, *, ts: int = TS) -> list[Record]:
    return [
        Record(first + i, ts + first + i, b"k%03d" % (first + i), b"v" * 40) for i in range(count)
    ]


def plain(count: int, *, ts: int = TS) -> bytes:
    return encode_batch(records(count, ts=ts))


def idempotent(count: int, seq: int, *, pid: int = 7, transactional: bool = False) -> bytes:
    return encode_batch(
        records(count),
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        transactional=transactional,
    )


def open_log(directory: Path, config: LogConfig = CONFIG) -> PartitionLog:
    return PartitionLog(directory, config, now_ms=NOW)


def all_bytes(log: PartitionLog, offset: int = 0) -> bytes:
    return log.read(offset, 1 << 30).read_bytes()


def files(log: PartitionLog) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(log.directory.iterdir())}


def write_leader(log: PartitionLog) -> None:
    """Three leader epochs of batches: plain, idempotent, and an aborted transaction."""
    appends = [
        (0, plain(3), False),
        (0, idempotent(2, 0), False),
        (0, plain(4), False),
        (1, idempotent(2, 0, pid=9, transactional=True), False),
        (1, plain(1), False),
        (1, control_batch(9, 0, commit=False, timestamp=TS + 50), True),
        (2, idempotent(3, 2), False),
        (2, plain(2, ts=TS + 100), False),
        (2, plain(5), False),
    ]
    for epoch, data, control in appends:
        log.append(data, leader_epoch=epoch, now_ms=NOW, allow_control=control, auto_flush=False)
    # The partition's producer state records aborted transactions in the index.
    load_state(log)


def test_replicated_log_is_byte_identical_to_the_leaders(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader" / "t-0")
    write_leader(leader)
    assert leader.segment_base_offsets == [0, 5, 12, 18]
    follower = open_log(tmp_path / "follower" / "t-0")
    result = follower.append_replicated(all_bytes(leader), now_ms=NOW)
    assert result == AppendResult(0, 22, -1, 0, 23)
    load_state(follower)
    assert follower.segment_base_offsets == leader.segment_base_offsets
    assert follower.log_end_offset == leader.log_end_offset == 23
    epochs = [h.partition_leader_epoch for _, h in iter_batches(all_bytes(follower))]
    assert epochs == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    aborted = [AbortedTxn(9, 9, 12, 13)]
    assert follower.txn_index.collect(0, 23) == leader.txn_index.collect(0, 23) == aborted
    for offset in (0, 3, 4, 6, 9, 12, 13, 16, 21, 23):
        assert all_bytes(follower, offset) == all_bytes(leader, offset)
    for ts in (TS - 1, TS, TS + 4, TS + 50, TS + 100, TS + 101, TS + 1000):
        assert follower.offset_for_timestamp(ts) == leader.offset_for_timestamp(ts)
    assert follower.offset_for_timestamp(TS + 100) is not None
    leader.close()
    follower.close()
    assert files(follower) == files(leader)


def test_batch_by_batch_and_repeated_fetches(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader" / "t-0")
    write_leader(leader)
    follower = open_log(tmp_path / "follower" / "t-0")
    offset = 0
    while offset < leader.log_end_offset:
        chunk = leader.read(offset, 1).read_bytes()  # one whole batch
        result = follower.append_replicated(chunk, now_ms=NOW)
        assert result.base_offset == offset
        again = follower.append_replicated(chunk, now_ms=NOW)  # a fetch answered twice
        assert again == AppendResult(result.last_offset + 1, result.last_offset, -1, 0, 0)
        offset = result.last_offset + 1
    # A fetch overlapping what is here appends only what is new: nothing.
    assert follower.append_replicated(all_bytes(leader, 4), now_ms=NOW).record_count == 0
    assert follower.append_replicated(b"", now_ms=NOW) == AppendResult(23, 22, -1, 0, 0)
    load_state(follower)
    assert follower.txn_index.collect(0, 23) == [AbortedTxn(9, 9, 12, 13)]
    leader.close()
    follower.close()
    assert files(follower) == files(leader)


def test_overlapping_fetch_appends_only_the_new_batches(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader" / "t-0")
    write_leader(leader)
    follower = open_log(tmp_path / "follower" / "t-0")
    follower.append_replicated(leader.read(0, 1).read_bytes(), now_ms=NOW)
    assert follower.log_end_offset == 3
    result = follower.append_replicated(all_bytes(leader), now_ms=NOW)
    assert result == AppendResult(3, 22, -1, 0, 20)
    assert all_bytes(follower) == all_bytes(leader)


def test_compacted_batches_with_gaps_and_empty_batches(tmp_path: Path) -> None:
    kept = [Record(0, TS, b"a", b"1"), Record(2, TS + 2, b"c", b"3")]
    first = encode_batch(kept, last_offset_delta=4)  # offsets 0..4, two records left
    second = encode_batch([Record(10, TS + 10, b"d", b"4")], partition_leader_epoch=1)
    producer = encode_batch(
        records(3, 11), producer_id=5, producer_epoch=0, base_sequence=0, last_offset_delta=2
    )
    emptied = empty_batch(next(iter_batches(producer))[1])  # offsets 11..13, no records
    data = first + second + emptied
    prepared = prepare_replicated(data)
    assert (prepared.first_offset, prepared.last_offset, prepared.record_count) == (0, 13, 3)
    assert [(b[0], b[2]) for b in prepared.batches] == [
        (0, 0),
        (len(first), 10),
        (len(first + second), 11),
    ]
    log = open_log(tmp_path / "t-0")
    assert log.append_replicated(data, now_ms=NOW) == AppendResult(0, 13, -1, 0, 3)
    assert log.log_end_offset == 14
    assert all_bytes(log) == data
    assert all_bytes(log, 6) == second + emptied  # offset 6 went with compaction
    # A gap before the first new batch is accepted too.
    later = encode_batch([Record(20, TS + 20, b"e", b"5")])
    assert log.append_replicated(later, now_ms=NOW) == AppendResult(20, 20, -1, 0, 1)
    log.close()
    reopened = open_log(tmp_path / "t-0")
    assert reopened.log_end_offset == 21
    assert all_bytes(reopened) == data + later
    reopened.close()


def corrupted(data: bytes, at: int) -> bytes:
    damaged = bytearray(data)
    damaged[at] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a, b: a + corrupted(b, len(b) - 3), id="crc"),
        pytest.param(lambda a, b: a + b[:-1], id="truncated"),
        pytest.param(lambda a, b: b + a, id="offsets-go-back"),
        pytest.param(lambda a, b: a + a, id="offset-repeated"),
        pytest.param(lambda a, b: a + corrupted(b, 16), id="magic"),
    ],
)
def test_damaged_sets_are_corrupt_and_write_nothing(tmp_path: Path, make: object) -> None:
    log = open_log(tmp_path / "t-0")
    a = encode_batch(records(2))
    b = encode_batch(records(2, 2))
    with pytest.raises(KafkaError) as raised:
        log.append_replicated(make(a, b), now_ms=NOW)  # type: ignore[operator]
    assert raised.value.code == ErrorCode.CORRUPT_MESSAGE
    assert log.log_end_offset == 0
    assert log.segments[-1].size == 0
    assert (tmp_path / "t-0" / "00000000000000000000.log").stat().st_size == 0


def test_fewer_offsets_than_records_is_corrupt() -> None:
    damaged = bytearray(encode_batch(records(3)))
    damaged[23:27] = (1).to_bytes(4, "big")  # lastOffsetDelta 1 for 3 records
    damaged[17:21] = crc32c(bytes(damaged[21:])).to_bytes(4, "big")
    with pytest.raises(KafkaError) as raised:
        prepare_replicated(bytes(damaged))
    assert raised.value.code == ErrorCode.CORRUPT_MESSAGE
    assert "last offset delta 1" in str(raised.value)


def test_batch_straddling_the_log_end_is_out_of_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0")
    log.append_replicated(encode_batch(records(3)) + encode_batch(records(3, 3)), now_ms=NOW)
    straddling = encode_batch(records(4, 4))  # offsets 4..7 against a log ending at 6
    with pytest.raises(KafkaError) as raised:
        log.append_replicated(encode_batch(records(3)) + straddling, now_ms=NOW)
    assert raised.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.log_end_offset == 6
    assert len(all_bytes(log)) == 2 * len(encode_batch(records(3)))


def test_segments_roll_by_size_batch_by_batch(tmp_path: Path) -> None:
    batches = [encode_batch(records(2, 2 * i)) for i in range(7)]
    size = len(batches[0])
    config = replace(CONFIG, segment_bytes=3 * size)
    log = PartitionLog(tmp_path / "t-0", config, now_ms=NOW, fsync_on_append=True)
    log.append_replicated(b"".join(batches[:5]), now_ms=NOW)
    assert log.segment_base_offsets == [0, 6]
    assert [s.size for s in log.segments] == [3 * size, 2 * size]
    log.append_replicated(b"".join(batches[5:]), now_ms=NOW)
    assert log.segment_base_offsets == [0, 6, 12]
    assert all_bytes(log) == b"".join(batches)
    # One batch larger than a segment gets a segment of its own.
    big = encode_batch(records(10, 14))
    assert len(big) > 3 * size
    log.append_replicated(big, now_ms=NOW)
    assert log.segment_base_offsets == [0, 6, 12, 14]
    assert log.log_end_offset == 24
    assert [s.size for s in log.segments] == [3 * size, 3 * size, size, len(big)]
    log.close()


def test_segments_roll_by_time_as_on_the_leader(tmp_path: Path) -> None:
    config = replace(CONFIG, segment_ms=1000)
    batches = [encode_batch(records(1, i, ts=TS + gap)) for i, gap in enumerate((0, 500, 1500))]
    leader = open_log(tmp_path / "leader" / "t-0", config)
    for data in batches:
        leader.append(data, now_ms=NOW)
    follower = open_log(tmp_path / "follower" / "t-0", config)
    follower.append_replicated(b"".join(batches), now_ms=NOW)
    assert follower.segment_base_offsets == leader.segment_base_offsets == [0, 2]
    assert all_bytes(follower) == all_bytes(leader)
