"""Idempotent producer state: sequences, duplicates, epochs, wrap, snapshots and log replay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafkacompat.coordinators.producer_ids import ProducerIdAndEpoch, ProducerIdManager
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.partition import Partition
from kafkacompat.partitions.producer_snapshots import (
    decode_snapshot,
    encode_snapshot,
    load_state,
    snapshot_files,
    write_snapshot,
)
from kafkacompat.partitions.producer_state import (
    MAX_SEQUENCE,
    PRODUCER_ID_EXPIRATION_MS,
    BatchMetadata,
    PartitionProducerState,
    in_sequence,
    last_sequence,
)
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import BatchHeader, read_header
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.state_store import StateStore

NOW = int(time.time() * 1000)


def header(pid: int, epoch: int, seq: int, count: int = 1, offset: int = 0) -> BatchHeader:
    return BatchHeader(offset, 100, 0, 2, 0, 0, count - 1, NOW, NOW, pid, epoch, seq, count)


def append(state: PartitionProducerState, h: BatchHeader) -> BatchMetadata | None:
    """What the append path does: check, then record at the next offset."""
    duplicate = state.check([h])
    if duplicate is None:
        base = state.next_offset
        state.applied([h], base, base + h.records_count)
    return duplicate


def error_of(state: PartitionProducerState, h: BatchHeader) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        state.check([h])
    return info.value.code


def test_sequence_arithmetic_wraps_at_int32_max() -> None:
    assert last_sequence(0, 4) == 4
    assert last_sequence(MAX_SEQUENCE - 1, 3) == 1
    assert in_sequence(4, 5)
    assert in_sequence(MAX_SEQUENCE, 0)
    assert not in_sequence(4, 6)
    assert not in_sequence(4, 4)
    assert not in_sequence(MAX_SEQUENCE, 1)


def test_in_sequence_batches_are_accepted_and_remembered() -> None:
    state = PartitionProducerState()
    assert append(state, header(7, 0, 0, count=3)) is None
    assert append(state, header(7, 0, 3, count=2)) is None
    entry = state.entries[7]
    assert entry.epoch == 0
    assert entry.batches == [BatchMetadata(0, 2, 0, 2), BatchMetadata(3, 4, 3, 4)]
    assert state.next_offset == 5


def test_retried_duplicate_of_the_last_five_batches_returns_the_original() -> None:
    state = PartitionProducerState()
    for seq in range(6):
        append(state, header(7, 0, seq))
    # Offsets 1..5 hold sequences 1..5; sequence 0 fell out of the five remembered batches.
    assert state.check([header(7, 0, 3)]) == BatchMetadata(3, 3, 3, 3)
    assert state.check([header(7, 0, 1)]) == BatchMetadata(1, 1, 1, 1)
    assert error_of(state, header(7, 0, 0)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.next_offset == 6


def test_duplicate_needs_the_same_sequence_range() -> None:
    state = PartitionProducerState()
    append(state, header(7, 0, 0, count=3))
    assert error_of(state, header(7, 0, 0, count=2)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_gap_is_out_of_order() -> None:
    state = PartitionProducerState()
    append(state, header(7, 0, 0, count=2))
    assert error_of(state, header(7, 0, 3)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.entries[7].last_seq == 1


def test_sequence_wraps_from_int32_max_to_zero() -> None:
    state = PartitionProducerState()
    assert append(state, header(7, 0, MAX_SEQUENCE - 1, count=2)) is None
    assert state.entries[7].last_seq == MAX_SEQUENCE
    assert append(state, header(7, 0, 0, count=1)) is None
    # A batch spanning the wrap: base 2**31-2, three records, last sequence 0.
    wrapped = PartitionProducerState()
    append(wrapped, header(8, 0, MAX_SEQUENCE - 1, count=3))
    assert wrapped.entries[8].last_seq == 0
    assert append(wrapped, header(8, 0, 1)) is None


def test_stale_epoch_is_fenced_and_new_epoch_starts_at_zero() -> None:
    state = PartitionProducerState()
    append(state, header(7, 1, 0, count=5))
    assert error_of(state, header(7, 0, 5)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert error_of(state, header(7, 2, 5)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert append(state, header(7, 2, 0)) is None
    entry = state.entries[7]
    assert (entry.epoch, entry.batches) == (2, [BatchMetadata(0, 0, 5, 5)])
    # The old epoch's batches are gone: its retry is now fenced, not a duplicate.
    assert error_of(state, header(7, 1, 0, count=5)) == ErrorCode.INVALID_PRODUCER_EPOCH


def test_unknown_producer_may_start_at_any_sequence() -> None:
    state = PartitionProducerState()
    assert append(state, header(9, 3, 42)) is None
    assert state.entries[9].last_seq == 42


def test_non_idempotent_batches_are_not_tracked() -> None:
    state = PartitionProducerState()
    assert append(state, header(-1, -1, -1, count=4)) is None
    assert state.entries == {}
    assert state.next_offset == 4


def test_check_changes_nothing_and_sees_earlier_batches_of_the_same_set() -> None:
    state = PartitionProducerState()
    append(state, header(7, 0, 0))
    assert state.check([header(7, 0, 1), header(7, 0, 2)]) is None
    assert state.entries[7].last_seq == 0
    with pytest.raises(KafkaError) as info:
        state.check([header(7, 0, 1), header(7, 0, 3)])
    assert info.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_expiry_forgets_idle_producers() -> None:
    state = PartitionProducerState()
    append(state, header(7, 0, 0))
    state.expire(NOW + 1000, max_idle_ms=10_000)
    assert 7 in state.entries
    state.expire(NOW + 20_000, max_idle_ms=10_000)
    assert state.entries == {}


def test_snapshot_round_trip_and_corruption_detected() -> None:
    state = PartitionProducerState()
    for seq in range(7):
        append(state, header(7, 2, seq))
    append(state, header(11, 0, 0, count=3))
    data = encode_snapshot(state)
    loaded = decode_snapshot(data)
    assert loaded.next_offset == state.next_offset == 10
    assert loaded.entries == state.entries
    damaged = bytearray(data)
    damaged[-1] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        decode_snapshot(bytes(damaged))
    with pytest.raises(ValueError, match="CRC"):
        decode_snapshot(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        decode_snapshot(data[:10])


# --- against a real partition log ----------------------------------------------------------------


def idempotent_batch(pid: int, epoch: int, seq: int, count: int = 1) -> bytes:
    records = [Record(i, NOW, b"k", b"v%d" % (seq + i)) for i in range(count)]
    return encode_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def open_log(directory: Path) -> PartitionLog:
    return PartitionLog(directory, LogConfig.from_overrides({}), now_ms=NOW)


def log_append(plog: PartitionLog, data: bytes) -> None:
    plog.append(data, leader_epoch=0, now_ms=NOW)


def test_replay_rebuilds_the_state_from_batch_headers(tmp_path: Path) -> None:
    plog = open_log(tmp_path / "t-0")
    log_append(plog, idempotent_batch(5, 0, 0, count=2))
    log_append(plog, encode_batch([Record(0, NOW, None, b"plain")]))
    log_append(plog, idempotent_batch(5, 0, 2, count=3))
    log_append(plog, idempotent_batch(6, 1, 10))
    state = load_state(plog)
    assert state.next_offset == 7
    assert state.entries[5].batches == [BatchMetadata(0, 1, 0, 1), BatchMetadata(2, 4, 3, 5)]
    assert state.entries[6].batches == [BatchMetadata(10, 10, 6, 6)]
    assert state.check([read_header(idempotent_batch(5, 0, 2, count=3))]) == BatchMetadata(
        2, 4, 3, 5
    )


def test_snapshot_plus_replay_of_the_rest(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    plog = open_log(directory)
    log_append(plog, idempotent_batch(5, 0, 0))
    state = load_state(plog)
    write_snapshot(directory, encode_snapshot(state), state.next_offset)
    log_append(plog, idempotent_batch(5, 0, 1))
    log_append(plog, idempotent_batch(5, 0, 2))
    plog.close()
    reopened = open_log(directory)
    rebuilt = load_state(reopened)
    assert [s for s, _ in snapshot_files(directory)] == [1]
    assert rebuilt.next_offset == 3
    assert rebuilt.entries[5].batches == [
        BatchMetadata(0, 0, 0, 0),
        BatchMetadata(1, 1, 1, 1),
        BatchMetadata(2, 2, 2, 2),
    ]


def test_snapshot_trusted_over_the_log_it_covers(tmp_path: Path) -> None:
    """A snapshot is the state as of its offset: the batches before it are not re-read."""
    directory = tmp_path / "t-0"
    plog = open_log(directory)
    log_append(plog, idempotent_batch(5, 0, 0))
    fake = PartitionProducerState(1)
    append_at = header(77, 4, 9)
    fake.apply(append_at, 0)
    write_snapshot(directory, encode_snapshot(fake), 1)
    state = load_state(plog)
    assert set(state.entries) == {77}


def test_snapshot_beyond_the_log_end_is_deleted(tmp_path: Path) -> None:
    """After a crash loses unflushed data, a snapshot past the log end cannot be used."""
    directory = tmp_path / "t-0"
    plog = open_log(directory)
    log_append(plog, idempotent_batch(5, 0, 0))
    ahead = PartitionProducerState(9)
    ahead.apply(header(77, 0, 0, offset=8), 8)
    write_snapshot(directory, encode_snapshot(ahead), 9)
    behind = PartitionProducerState(0)
    write_snapshot(directory, encode_snapshot(behind), 0)
    state = load_state(plog)
    assert set(state.entries) == {5}
    assert [s for s, _ in snapshot_files(directory)] == [0]


def test_corrupt_snapshot_falls_back_to_an_older_one(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    plog = open_log(directory)
    log_append(plog, idempotent_batch(5, 0, 0))
    log_append(plog, idempotent_batch(5, 0, 1))
    write_snapshot(directory, encode_snapshot(PartitionProducerState(0)), 0)
    (directory / f"{2:020d}.snapshot").write_bytes(b"KCPS garbage")
    state = load_state(plog)
    assert state.entries[5].last_seq == 1
    assert [s for s, _ in snapshot_files(directory)] == [0]


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    for offset in (3, 1, 7, 5):
        write_snapshot(tmp_path, encode_snapshot(PartitionProducerState(offset)), offset)
    assert [s for s, _ in snapshot_files(tmp_path)] == [5, 7]


def test_partition_replays_appends_made_around_it(tmp_path: Path) -> None:
    plog = open_log(tmp_path / "t-0")
    partition = Partition(
        "t", 0, plog, producer_expiration_ms=PRODUCER_ID_EXPIRATION_MS, durable=False
    )
    state = partition.producer_state_now()
    assert state.next_offset == plog.log_end_offset
    log_append(plog, idempotent_batch(5, 0, 0))  # not through the partition
    state = partition.producer_state_now()
    assert state.entries[5].last_seq == 0
    partition.snapshot_producer_state()
    assert [s for s, _ in snapshot_files(plog.directory)] == [1]


# --- producer ids ---------------------------------------------------------------------------------


def test_producer_ids_are_never_reused_after_a_restart(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    ids = ProducerIdManager(store.namespace("producer_ids"))
    first = [ids.allocate() for _ in range(3)]
    assert first == [ProducerIdAndEpoch(0, 0), ProducerIdAndEpoch(1, 0), ProducerIdAndEpoch(2, 0)]
    store.close()  # as after kill -9: nothing else was written
    store = StateStore(tmp_path)
    again = ProducerIdManager(store.namespace("producer_ids"))
    assert again.allocate() == ProducerIdAndEpoch(1000, 0)
    store.close()
