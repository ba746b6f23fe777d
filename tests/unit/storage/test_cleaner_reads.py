"""Reads over compacted logs (gaps in offsets) and the when-to-clean helpers."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from kafkacompat.protocol.records import iter_batches
from kafkacompat.storage.cleaner import (
    clean_log,
    dirty_ratio,
    first_dirty_offset,
    first_uncleanable_offset,
    max_compaction_delay_ms,
    needs_cleaning,
)
from kafkacompat.storage.cleaner_swap import write_cleaner_checkpoint
from kafkacompat.storage.partition_log import PartitionLog

from .cleaner_helpers import compact_config, fill, headers, kv_batch, rows, value

NOW = 10**7


def gapped_log(directory: Path) -> PartitionLog:
    """Keys ``keep-i`` survive; runs of ``x`` records in between (also at segment ends) go."""
    log = PartitionLog(directory, compact_config(index_interval_bytes="1"), now_ms=0)
    for i in range(30):
        key = b"x" if i % 3 else f"keep-{i}".encode()
        log.append(kv_batch([(key, value(str(i)))], ts=1000 + 10 * i), now_ms=0)
    log.append(kv_batch([(b"x", value("last"))], ts=9000), now_ms=0)
    log.roll()
    clean_log(log, now_ms=NOW)
    return log


@pytest.mark.parametrize("reopen", [False, True])
def test_reads_starting_in_a_removed_range_get_the_next_batch(tmp_path: Path, reopen: bool) -> None:
    log = gapped_log(tmp_path)
    if reopen:
        log.close()
        log = PartitionLog(tmp_path, compact_config(index_interval_bytes="1"))
    kept = [h.base_offset for h in headers(log)]
    assert kept == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert any(s.next_offset < n.base_offset for s, n in pairwise(log.segments))
    for offset in range(log.log_end_offset):
        first = next(b for b in kept if b >= offset)
        data = log.read(offset, 1).read_bytes()
        assert next(iter_batches(data))[1].base_offset == first, offset
        assert [r[0] for r in rows(log, offset)] == [b for b in kept if b >= offset]
        # A bound inside the gap before the next batch leaves the read empty.
        assert log.read(offset, 1 << 20, max_offset=first).slices == ()


def test_offset_for_timestamp_over_gaps(tmp_path: Path) -> None:
    log = gapped_log(tmp_path)
    kept = {h.base_offset: h.max_timestamp for h in headers(log)}
    for ts in range(995, 1300, 5):
        found = log.offset_for_timestamp(ts)
        expected = next(((o, t) for o, t in kept.items() if t >= ts), None)
        assert (None if found is None else (found.offset, found.timestamp)) == expected
    largest = log.offset_for_timestamp(-3)
    assert largest is not None and (largest.offset, largest.timestamp) == (30, 9000)


def test_dirty_ratio_and_needs_cleaning(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(), now_ms=0)
    assert dirty_ratio(log, 0) == 0.0 and not needs_cleaning(log, now_ms=NOW)
    fill(log, 30, 90)  # unique keys: the clean section stays as large
    assert dirty_ratio(log, 0) == 1.0 and needs_cleaning(log, now_ms=NOW)
    clean_log(log, now_ms=NOW)
    first = first_dirty_offset(log)
    assert first == log.active_segment_base
    assert dirty_ratio(log, first) == 0.0 and not needs_cleaning(log, now_ms=NOW)
    fill(log, 3, 3)
    log.roll()
    segments = log.segments
    clean_bytes = sum(s.size for s in segments if s.base_offset < first)
    dirty_bytes = sum(s.size for s in segments[:-1] if s.base_offset >= first)
    assert dirty_ratio(log, first) == pytest.approx(dirty_bytes / (clean_bytes + dirty_bytes))
    assert 0 < dirty_ratio(log, first) < 0.5 and not needs_cleaning(log, now_ms=NOW)
    log.update_config(compact_config(min_cleanable_dirty_ratio="0.1"))
    assert needs_cleaning(log, now_ms=NOW)
    log.update_config(compact_config(max_compaction_lag_ms="1000"))
    oldest = min(s.first_timestamp or 0 for s in segments[:-1] if s.base_offset >= first)
    assert max_compaction_delay_ms(log, first, now_ms=NOW) == NOW - 1000 - oldest
    assert needs_cleaning(log, now_ms=NOW)
    assert not needs_cleaning(log, now_ms=1500)
    log.update_config(compact_config(cleanup_policy="delete"))
    assert not needs_cleaning(log, now_ms=NOW)


def test_first_uncleanable_offset(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(min_compaction_lag_ms="500"), now_ms=0)
    fill(log, 10, 3, ts=1000)
    fill(log, 10, 3, ts=5000)
    active = log.active_segment_base
    assert first_uncleanable_offset(log, 0, now_ms=NOW) == active
    assert first_uncleanable_offset(log, 0, now_ms=NOW, last_stable_offset=7) == 7
    young = next(s.base_offset for s in log.segments if s.largest_timestamp >= 5000)
    assert first_uncleanable_offset(log, 0, now_ms=5100) == young
    assert first_uncleanable_offset(log, 0, now_ms=1100) == 0


def test_first_dirty_offset_falls_back_to_the_log_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path, compact_config(), now_ms=0)
    fill(log, 20, 3)
    assert first_dirty_offset(log) == 0
    write_cleaner_checkpoint(tmp_path, 15)
    assert first_dirty_offset(log) == 15
    write_cleaner_checkpoint(tmp_path, log.log_end_offset + 1)
    assert first_dirty_offset(log) == 0
    log.delete_records_before(30)
    write_cleaner_checkpoint(tmp_path, 15)
    assert first_dirty_offset(log) == 30
    log.append(kv_batch([(b"k", b"v")]), now_ms=0)
