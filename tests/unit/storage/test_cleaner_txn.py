"""Log compaction and producers: aborted data, transaction markers, the last batch of a
producer kept (empty) so idempotence survives."""

from __future__ import annotations

from pathlib import Path

from kafka.record.memory_records import MemoryRecords

from kafkacompat.partitions.producer_snapshots import load_state
from kafkacompat.storage.cleaner import clean, clean_log, plan_cleaning
from kafkacompat.storage.partition_log import PartitionLog

from .cleaner_helpers import compact_config, headers, kv_batch, rows, value, write_txn

NOW = 10**7
ALL = 2**62


def new_log(directory: Path) -> PartitionLog:
    return PartitionLog(directory, compact_config(segment_bytes="100000"), now_ms=0)


def overwrite(log: PartitionLog, *keys: bytes, ts: int = 2000) -> None:
    for key in keys:
        log.append(kv_batch([(key, value("plain"))], ts=ts), now_ms=0)


def test_aborted_data_goes_then_its_marker_and_index_entry(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    overwrite(log, b"a")
    first, marker = write_txn(log, 5, [(b"a", value("aborted")), (b"b", b"x")], commit=False)
    overwrite(log, b"c")
    log.roll()
    clean_log(log, now_ms=NOW)
    # The aborted records are gone (the batch stays empty: it is producer 5's last); the
    # marker stays while this cleaning removes its data, and so does the index entry.
    assert [r[:2] for r in rows(log) if r[0] != marker] == [(0, b"a"), (4, b"c")]
    batch, kept_marker = [h for h in headers(log) if h.producer_id == 5]
    assert (batch.base_offset, batch.records_count, batch.last_offset_delta) == (first, 0, 1)
    assert kept_marker.is_control and kept_marker.base_offset == marker
    assert [e.last_offset for e in log.txn_index.collect(0, ALL)] == [marker]
    # The empty batch of producer 5 keeps the marker (its transaction still has a batch).
    overwrite(log, b"d")
    log.roll()
    clean_log(log, now_ms=NOW)
    assert [h.base_offset for h in headers(log) if h.producer_id == 5] == [first, marker]


def test_marker_goes_once_its_transaction_has_no_batch_left(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    first1, marker1 = write_txn(log, 5, [(b"a", value("t1"))], commit=False)
    _, marker2 = write_txn(log, 5, [(b"b", value("t2"))], commit=True, sequence=1)
    log.roll()
    clean_log(log, now_ms=NOW)  # txn 1's data goes (not the producer's last batch)
    assert [h.base_offset for h in headers(log)] == [marker1, marker2 - 1, marker2]
    overwrite(log, b"z")
    log.roll()
    clean_log(log, now_ms=1500)  # within delete.retention.ms of the segment's timestamps
    assert marker1 in [h.base_offset for h in headers(log)]
    overwrite(log, b"y")
    log.roll()
    clean_log(log, now_ms=NOW)
    assert marker1 not in [h.base_offset for h in headers(log)]
    assert log.txn_index.collect(0, ALL) == []
    assert first1 not in [r[0] for r in rows(log)]
    assert (marker2 - 1, b"b", value("t2")) in rows(log)


def test_committed_data_is_compacted_and_its_marker_kept_while_data_remains(
    tmp_path: Path,
) -> None:
    log = new_log(tmp_path)
    first1, marker1 = write_txn(log, 5, [(b"a", value("t1"))], commit=True)
    first2, marker2 = write_txn(log, 5, [(b"a", value("t2"))], commit=True, sequence=1)
    overwrite(log, b"a")
    log.roll()
    clean_log(log, now_ms=NOW)
    pid5 = [h for h in headers(log) if h.producer_id == 5]
    # txn 1's batch is gone, its marker waits a cleaning; txn 2's batch stays empty.
    assert [(h.base_offset, h.records_count) for h in pid5] == [
        (marker1, 1),
        (first2, 0),
        (marker2, 1),
    ]
    overwrite(log, b"q")
    log.roll()
    clean_log(log, now_ms=NOW)
    assert [h.base_offset for h in headers(log) if h.producer_id == 5] == [first2, marker2]
    assert first1 == 0


def test_last_batch_of_a_producer_stays_empty_with_its_sequence_range(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    pairs = [(b"a", value("1")), (b"b", value("2")), (b"c", value("3"))]
    log.append(
        kv_batch(pairs, producer_id=9, producer_epoch=2, base_sequence=0), now_ms=0
    )  # offsets 0-2, sequences 0-2
    overwrite(log, b"a", b"b", b"c")
    log.roll()
    clean_log(log, now_ms=NOW)
    empty = headers(log)[0]
    assert (empty.base_offset, empty.last_offset_delta, empty.records_count) == (0, 2, 0)
    assert (empty.producer_id, empty.producer_epoch, empty.base_sequence) == (9, 2, 0)
    assert [r[0] for r in rows(log)] == [3, 4, 5]
    data = log.read(0, 1 << 30).read_bytes()
    batches = list(MemoryRecords(data))  # a stock client reads the empty batch
    assert [len(list(b)) for b in batches][:1] == [0]
    log.close()
    reopened = PartitionLog(tmp_path, compact_config(segment_bytes="100000"))
    state = load_state(reopened)
    assert state.entries[9].last_seq == 2 and state.entries[9].epoch == 2
    assert reopened.read(1, 1000).slices  # a read inside the empty batch's range


def test_an_expired_producer_loses_its_emptied_last_batch(tmp_path: Path) -> None:
    log = new_log(tmp_path)
    for pid in (9, 10):
        log.append(kv_batch([(b"a", value(str(pid)))], producer_id=pid, producer_epoch=0,
                            base_sequence=0), now_ms=0)  # fmt: skip
    overwrite(log, b"a")
    log.roll()
    plan = plan_cleaning(log, now_ms=NOW, active_producers={10})  # 9 has expired
    assert plan is not None
    assert log.swap_cleaned(clean(plan).cleaned)
    assert [(h.producer_id, h.records_count) for h in headers(log)] == [(10, 0), (-1, 1)]
