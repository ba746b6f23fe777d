"""Log compaction: what a cleaning keeps, what it removes, and that offsets never move."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.records import iter_batches
from kafkacompat.storage.cleaner import (
    CleaningAborted,
    clean,
    clean_log,
    first_dirty_offset,
    plan_cleaning,
)
from kafkacompat.storage.cleaner_map import MAP_ENTRY_BYTES
from kafkacompat.storage.cleaner_swap import CLEANER_CHECKPOINT_FILE
from kafkacompat.storage.partition_log import PartitionLog

from .cleaner_helpers import (
    KV,
    cleaned_files,
    compact_config,
    fill,
    headers,
    kv_batch,
    latest,
    raw_batches,
    rows,
    value,
)

NOW = 10**7


def make_log(directory: Path, batches: int = 40, keys: int = 5, **config: str) -> PartitionLog:
    log = PartitionLog(directory, compact_config(**config), now_ms=0)
    fill(log, batches, keys)
    return log


def test_keeps_the_latest_record_of_each_key_at_its_offset(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    before = rows(log)
    active = log.active_segment_base
    stats = clean_log(log, now_ms=NOW)
    assert stats is not None and stats.end_offset == active
    after = rows(log)
    in_active = [r for r in before if r[0] >= active]
    cleaned = [r for r in after if r[0] < active]
    # Below the active segment (the cleaned section): the latest record of each key there.
    assert cleaned == sorted(latest([r for r in before if r[0] < active]).values())
    assert [r for r in after if r[0] >= active] == in_active
    assert latest(after) == latest(before)
    assert stats.records_read == active and stats.records_kept == len(cleaned)
    assert stats.bytes_written < stats.bytes_read
    assert log.log_end_offset == before[-1][0] + 1


def test_cleaned_log_survives_reopen_and_appends_continue(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    stats = clean_log(log, now_ms=NOW)
    assert stats is not None
    after = rows(log)
    end = log.log_end_offset
    log.close()
    for clean_shutdown in (True, False):
        reopened = PartitionLog(tmp_path, compact_config(), clean_shutdown=clean_shutdown)
        assert rows(reopened) == after
        assert reopened.log_end_offset == end
        reopened.close()
    reopened = PartitionLog(tmp_path, compact_config())
    assert reopened.append(kv_batch([(b"k1", b"new")]), now_ms=0).base_offset == end
    assert first_dirty_offset(reopened) == stats.end_offset


def test_untouched_batches_are_copied_byte_for_byte(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(), now_ms=0)
    for i in range(12):  # unique keys: nothing to remove
        log.append(kv_batch([(f"u{i}".encode(), value(str(i)))]), now_ms=0)
    fill(log, 12, 3)
    before = raw_batches(log)
    clean_log(log, now_ms=NOW)
    after = raw_batches(log)
    for base in range(12):
        assert after[base] == before[base]


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_rebuilt_batches_keep_offsets_producer_fields_and_codec(
    tmp_path: Path, codec: Codec
) -> None:
    log = PartitionLog(tmp_path, compact_config(segment_bytes="100000"), now_ms=0)
    pairs: list[KV] = [(b"a", value("a1")), (b"b", value("b1")), (b"c", value("c1"))]
    log.append(
        kv_batch(pairs, codec=codec, producer_id=7, producer_epoch=3, base_sequence=0),
        now_ms=0,
    )
    log.append(kv_batch([(b"b", value("b2"))], producer_id=7, producer_epoch=3, base_sequence=3),
               now_ms=0)  # fmt: skip
    log.roll()
    original = headers(log)[0]
    clean_log(log, now_ms=NOW)
    rebuilt = headers(log)[0]
    assert (rebuilt.base_offset, rebuilt.last_offset_delta, rebuilt.records_count) == (0, 2, 2)
    assert rebuilt.compression == codec
    for name in ("producer_id", "producer_epoch", "base_sequence", "attributes"):
        assert getattr(rebuilt, name) == getattr(original, name), name
    assert [r[:2] for r in rows(log)] == [(0, b"a"), (2, b"c"), (3, b"b")]


def test_active_segment_and_offsets_past_the_last_stable_offset_stay(tmp_path: Path) -> None:
    log = make_log(tmp_path, batches=40, keys=2)
    bases = log.segment_base_offsets
    lso = bases[3] + 3  # a batch boundary inside a closed segment
    before = rows(log)
    stats = clean_log(log, now_ms=NOW, last_stable_offset=lso)
    assert stats is not None and stats.end_offset == lso
    after = rows(log)
    assert [r for r in after if r[0] >= lso] == [r for r in before if r[0] >= lso]
    assert len([r for r in after if r[0] < lso]) <= 2
    assert first_dirty_offset(log) == lso


def test_min_compaction_lag_leaves_young_segments(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(min_compaction_lag_ms="5000"), now_ms=0)
    fill(log, 20, 2, ts=1000)
    fill(log, 20, 2, ts=100_000)  # young at now=102_000
    young = next(s.base_offset for s in log.segments if s.largest_timestamp >= 100_000)
    before = rows(log)
    stats = clean_log(log, now_ms=102_000)
    assert stats is not None and stats.end_offset == young
    assert [r for r in rows(log) if r[0] >= young] == [r for r in before if r[0] >= young]


def test_tombstones_stay_until_a_later_cleaning_past_delete_retention(tmp_path: Path) -> None:
    log = make_log(tmp_path, batches=8, keys=3)
    log.append(kv_batch([(b"k0", None)], ts=5000), now_ms=0)
    deleted_at = log.log_end_offset - 1
    log.roll()
    clean_log(log, now_ms=NOW)  # its first cleaning: the tombstone stays, k0's values go
    assert [r for r in rows(log) if r[1] == b"k0"] == [(deleted_at, b"k0", None)]
    for i, now in enumerate((5800, NOW)):
        log.append(kv_batch([(f"n{i}".encode(), b"x")], ts=6000), now_ms=0)
        log.roll()
        clean_log(log, now_ms=now)
        # At 5800 its segment (largest timestamp 5000) is within delete.retention.ms.
        assert ((deleted_at, b"k0", None) in rows(log)) == (now == 5800)
    assert all(r[1] != b"k0" for r in rows(log))


def test_records_without_a_key_are_kept(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(cleanup_policy="delete"), now_ms=0)
    log.append(kv_batch([(None, b"old-1"), (b"a", b"1"), (None, b"old-2")]), now_ms=0)
    log.append(kv_batch([(b"a", b"2")]), now_ms=0)
    log.roll()
    log.update_config(compact_config())
    clean_log(log, now_ms=NOW)
    assert rows(log) == [(0, None, b"old-1"), (2, None, b"old-2"), (3, b"a", b"2")]


def test_full_offset_map_cleans_up_to_where_it_got(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(), now_ms=0)
    for i in range(30):  # 30 distinct keys, each written twice
        log.append(kv_batch([(f"k{i}".encode(), value(f"a{i}"))]), now_ms=0)
    for i in range(30):
        log.append(kv_batch([(f"k{i}".encode(), value(f"b{i}"))]), now_ms=0)
    log.roll()
    expected = latest(rows(log))
    stats = clean_log(log, now_ms=NOW, dedupe_buffer_bytes=10 * MAP_ENTRY_BYTES)
    assert stats is not None and stats.partial and stats.map_entries == 10
    assert stats.end_offset == 10
    assert first_dirty_offset(log) == 10
    rounds = 1
    while clean_log(log, now_ms=NOW, dedupe_buffer_bytes=10 * MAP_ENTRY_BYTES) is not None:
        rounds += 1
    assert rounds == 6
    assert latest(rows(log)) == expected
    assert len(rows(log)) == 30


def test_small_segments_are_grouped(tmp_path: Path) -> None:
    log = make_log(tmp_path, batches=60, keys=3)
    clean_log(log, now_ms=NOW)
    count = len(log.segment_base_offsets)
    fill(log, 4, 3, tag="z")
    log.roll()
    after_first = rows(log)
    stats = clean_log(log, now_ms=NOW)
    assert stats is not None and stats.segments_written < stats.segments_read
    assert len(log.segment_base_offsets) < count
    assert latest(rows(log)) == latest(after_first)
    bases = log.segment_base_offsets
    names = {p.name for p in tmp_path.glob("*.log")}
    assert names == {f"{b:020d}.log" for b in bases}
    cleaned = rows(log)
    log.close()
    assert rows(PartitionLog(tmp_path, compact_config())) == cleaned


def test_nothing_to_clean_and_an_unchanged_log(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(), now_ms=0)
    assert clean_log(log, now_ms=NOW) is None  # only the active segment
    for i in range(10):
        log.append(kv_batch([(f"u{i}".encode(), value(str(i)))]), now_ms=0)
    log.roll()
    log.update_config(compact_config(cleanup_policy="delete"))
    assert plan_cleaning(log, now_ms=NOW) is None  # not a compacted topic
    log.update_config(compact_config())
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")}
    stats = clean_log(log, now_ms=NOW)
    assert stats is not None and stats.segments_written == 0
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.log")} == mtimes
    assert (tmp_path / CLEANER_CHECKPOINT_FILE).exists()
    assert clean_log(log, now_ms=NOW) is None


def test_stopping_a_cleaning_leaves_no_files(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    plan = plan_cleaning(log, now_ms=NOW)
    assert plan is not None
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 30  # in the second pass

    with pytest.raises(CleaningAborted):
        clean(plan, should_stop=stop)
    assert cleaned_files(tmp_path) == []


def test_appends_during_a_cleaning_and_a_refused_swap(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    plan = plan_cleaning(log, now_ms=NOW)
    assert plan is not None
    fill(log, 10, 5, tag="late")  # the active segment fills and rolls meanwhile
    appended = [r for r in rows(log) if r[0] >= plan.upper_bound]
    result = clean(plan)
    assert log.swap_cleaned(result.cleaned)
    assert [r for r in rows(log) if r[0] >= plan.upper_bound] == appended
    assert cleaned_files(tmp_path) == []

    fill(log, 10, 5, tag="again")
    plan = plan_cleaning(log, now_ms=NOW)
    assert plan is not None
    result = clean(plan)
    log.delete_records_before(log.segment_base_offsets[2])  # drops planned segments
    before = rows(log)
    assert not log.swap_cleaned(result.cleaned)
    assert rows(log) == before
    assert cleaned_files(tmp_path) == []


def test_every_batch_is_whole_after_cleaning(tmp_path: Path) -> None:
    log = make_log(tmp_path, batches=50, keys=4)
    clean_log(log, now_ms=NOW)
    data = log.read(0, 1 << 30).read_bytes()
    offsets = [h.base_offset for _, h in iter_batches(data)]
    assert offsets == sorted(offsets)
    for _, h in iter_batches(data):
        assert h.records_count >= 1
