"""Transactions in the log: markers, open transactions and the last stable offset in producer
state, the aborted-transaction index, snapshots and recovery."""

from __future__ import annotations

import time
from pathlib import Path

from kafkacompat.partitions.producer_snapshots import decode_snapshot, encode_snapshot, load_state
from kafkacompat.partitions.producer_state import PartitionProducerState
from kafkacompat.protocol.control_records import (
    ABORT_MARKER,
    COMMIT_MARKER,
    control_batch,
    marker_type,
)
from kafkacompat.protocol.record_codec import Record, decode_batch, encode_batch
from kafkacompat.protocol.records import read_header
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.txn_index import AbortedTxn, TransactionIndex, index_path

NOW = int(time.time() * 1000)


def data_batch(pid: int, values: list[bytes], seq: int = 0) -> bytes:
    records = [Record(i, NOW, None, v) for i, v in enumerate(values)]
    return encode_batch(
        records, producer_id=pid, producer_epoch=0, base_sequence=seq, transactional=True
    )


def write(log: PartitionLog, state: PartitionProducerState, batch: bytes) -> int:
    """What the replica manager does for a data batch or a marker; returns the base offset."""
    header = read_header(batch)
    result = log.append(batch, now_ms=NOW, allow_control=header.is_control)
    marker = marker_type(batch) if header.is_control else -1
    state.apply(header, result.base_offset, marker)
    state.next_offset = log.log_end_offset
    return result.base_offset


def marker(pid: int, commit: bool) -> bytes:
    return control_batch(pid, 0, commit=commit, timestamp=NOW)


def open_log(path: Path, segment_bytes: int = 1 << 20) -> PartitionLog:
    return PartitionLog(path, LogConfig.from_overrides({"segment.bytes": str(segment_bytes)}))


def test_control_batch_is_a_marker() -> None:
    batch = marker(7, commit=True)
    header, (record,) = decode_batch(batch)
    assert (header.is_control, header.is_transactional, header.producer_id) == (True, True, 7)
    assert (header.base_sequence, record.key, record.value) == (
        -1,
        b"\x00\x00\x00\x01",
        b"\x00\x00\x00\x00\x00\x00",
    )
    assert marker_type(batch) == COMMIT_MARKER
    assert marker_type(marker(7, commit=False)) == ABORT_MARKER


def test_last_stable_offset_and_aborted_index(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    state = PartitionProducerState()
    state.on_abort = log.record_aborted
    assert state.first_unstable_offset() is None
    write(log, state, data_batch(1, [b"a", b"b"]))  # 0-1, producer 1
    write(log, state, data_batch(2, [b"x"]))  # 2, producer 2
    assert state.first_unstable_offset() == 0
    write(log, state, data_batch(1, [b"c"], seq=2))  # 3
    assert state.ongoing == {1: 0, 2: 2}
    assert write(log, state, marker(1, commit=True)) == 4
    assert state.first_unstable_offset() == 2
    assert write(log, state, marker(2, commit=False)) == 5
    assert state.first_unstable_offset() is None
    assert log.txn_index.collect(0, 6) == [AbortedTxn(2, 2, 5, 6)]
    write(log, state, data_batch(3, [b"y"]))  # 6
    write(log, state, data_batch(4, [b"z"]))  # 7
    write(log, state, marker(3, commit=False))  # 8: producer 4 still open
    assert log.txn_index.collect(0, 100) == [AbortedTxn(2, 2, 5, 6), AbortedTxn(3, 6, 8, 7)]
    assert log.txn_index.collect(6, 100) == [AbortedTxn(3, 6, 8, 7)]
    assert log.txn_index.collect(0, 2) == [], "data starting at the bound is outside"
    assert log.txn_index.collect(9, 100) == []
    # A marker for a producer without an open transaction ends nothing and indexes nothing.
    write(log, state, marker(9, commit=False))
    assert len(log.txn_index) == 2
    log.close()
    reopened = open_log(tmp_path / "p")
    assert reopened.txn_index.collect(0, 100) == [AbortedTxn(2, 2, 5, 6), AbortedTxn(3, 6, 8, 7)]
    reopened.close()


def test_replay_restores_open_transactions_and_lost_index_entries(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    log = open_log(directory)
    state = PartitionProducerState()
    state.on_abort = log.record_aborted
    write(log, state, data_batch(1, [b"a"]))
    write(log, state, marker(1, commit=False))
    write(log, state, data_batch(2, [b"b"]))
    log.close()
    index_path(directory, 0).unlink()  # as if the entry never reached the disk
    log = open_log(directory)
    assert len(log.txn_index) == 0
    restored = load_state(log)
    assert restored.ongoing == {2: 2}
    assert restored.first_unstable_offset() == 2
    assert log.txn_index.collect(0, 10) == [AbortedTxn(1, 0, 1, 2)]
    again = load_state(log)  # a second replay does not duplicate the entry
    assert again.ongoing == {2: 2} and len(log.txn_index) == 1
    log.close()


def test_snapshot_keeps_open_transactions() -> None:
    state = PartitionProducerState(10)
    state.apply(read_header(data_batch(5, [b"a"])), 4)
    state.next_offset = 10
    decoded = decode_snapshot(encode_snapshot(state))
    assert (decoded.ongoing, decoded.next_offset) == ({5: 4}, 10)
    assert decoded.entries[5].epoch == 0


def test_index_follows_truncation_and_retention(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    log = open_log(directory, segment_bytes=300)
    state = PartitionProducerState()
    state.on_abort = log.record_aborted
    for pid in range(1, 5):
        write(log, state, data_batch(pid, [b"v" * 50]))
        write(log, state, marker(pid, commit=False))
    assert log.segment_base_offsets == [0, 2, 4, 6]
    entries = log.txn_index.collect(0, 100)
    assert [e.last_offset for e in entries] == [1, 3, 5, 7]
    assert sorted(p.name for p in directory.glob("*.txnindex")) == [
        f"{base:020d}.txnindex" for base in (0, 2, 4, 6)
    ]
    log.truncate_to(5)
    assert [e.last_offset for e in log.txn_index.collect(0, 100)] == [1, 3]
    assert not index_path(directory, 4).exists() and not index_path(directory, 6).exists()
    assert log.delete_records_before(4) == 4
    assert log.segment_base_offsets == [4]
    assert len(log.txn_index) == 0 and not list(directory.glob("*.txnindex"))
    log.close()


def test_torn_index_entry_is_ignored(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path)
    index.append(AbortedTxn(1, 0, 5, 6), 0)
    with open(index_path(tmp_path, 0), "ab") as f:
        f.write(b"\x00\x00\x01")
    fresh = TransactionIndex(tmp_path)
    fresh.load([0], 100)
    assert fresh.collect(0, 100) == [AbortedTxn(1, 0, 5, 6)]
    fresh.load([0], 5)  # the marker at 5 is past the log end: dropped, file removed
    assert len(fresh) == 0 and not index_path(tmp_path, 0).exists()
