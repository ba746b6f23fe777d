"""Log compaction for one partition (Kafka's log cleaner), synchronous and trio-free.

A compacted log keeps, for every key, at least its latest record. A cleaning covers the log from
its first segment up to an end offset that never reaches the first uncleanable offset (the last
stable offset, the active segment's base, the first segment younger than
``min.compaction.lag.ms``): it maps each key of the dirty section (from the cleaner checkpoint on)
to its latest offset (`cleaner_map`), then recopies the segments keeping what compaction keeps
(`cleaner_copy`: superseded records, expired tombstones and markers and aborted transactional
data go; offsets never change) and puts the copies in place crash-safely (`cleaner_swap`).

The API, and where each step runs::

    plan = plan_cleaning(log, now_ms=now, last_stable_offset=lso)  # under the partition lock
    if plan is not None:                                           # (quick: no data is read)
        result = clean(plan, dedupe_buffer_bytes=n)   # worker thread, NO lock: reads and writes
        with partition_lock:                          # only files of closed segments
            log.swap_cleaned(result.cleaned)          # quick: renames, reopens the new segments

`clean_log` does the three in a row (tests, offline tools). `needs_cleaning`, `dirty_ratio` and
`max_compaction_delay_ms` (from `cleaner_policy`) decide when to clean (``min.cleanable.dirty.ratio``,
``max.compaction.lag.ms``); `first_dirty_offset` reads the per-partition checkpoint
(``cleaner-offset.checkpoint``) that `PartitionLog.swap_cleaned` advances.

What may change while `clean` runs: appends to the active segment, rolls (a rolled segment is
not part of the plan), reads. Retention, DeleteRecords and truncation should be held off until
the swap (the caller keeps a "cleaning in flight" flag per partition): when one of them changed
a planned segment anyway,
`swap_cleaned` refuses the result (returns False, deleting its files) and no harm is done, but
the work is lost. Closing or deleting the log must wait for `clean` to return (``should_stop``
makes it return early, raising `CleaningAborted`); an unswapped result is dropped with
`CleaningResult.discard`. One cleaning at a time per partition: two would write the same
``*.cleaned`` files.

Reads keep working on compacted logs: a read starting at a removed offset gets the next batch.
A read result is file slices (path, position, size) and the swap replaces a segment's file under
the same path: a slice sent after the swap would read the new file at the old positions, so the
sender has to notice the file changed (a `FileSlice` does not carry the file's identity yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kafkacompat.storage.cleaner_copy import Recopier
from kafkacompat.storage.cleaner_map import (
    DEFAULT_DEDUPE_BUFFER_BYTES,
    AbortedRanges,
    CleaningAborted,
    SourceSegment,
    build_offset_map,
)
from kafkacompat.storage.cleaner_policy import (
    dirty_ratio,
    first_dirty_offset,
    first_uncleanable_offset,
    max_compaction_delay_ms,
    needs_cleaning,
)
from kafkacompat.storage.cleaner_swap import CleanedSegments, SwapGroup, discard_cleaned, step
from kafkacompat.storage.fsutil import fsync_dir
from kafkacompat.storage.txn_index import AbortedTxn

if TYPE_CHECKING:
    from kafkacompat.storage.partition_log import PartitionLog

__all__ = [
    "DEFAULT_DEDUPE_BUFFER_BYTES",
    "CleanerStats",
    "CleaningAborted",
    "CleaningPlan",
    "CleaningResult",
    "clean",
    "clean_log",
    "dirty_ratio",
    "first_dirty_offset",
    "first_uncleanable_offset",
    "max_compaction_delay_ms",
    "needs_cleaning",
    "plan_cleaning",
]

_MAX_RELATIVE_OFFSET = 2**31 - 1
_NO_LIMIT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CleaningPlan:
    """What one cleaning covers, snapshotted under the partition lock by `plan_cleaning`."""

    directory: Path
    sources: tuple[SourceSegment, ...]
    first_dirty_offset: int
    upper_bound: int
    now_ms: int
    delete_horizon_ms: int
    aborted: tuple[AbortedTxn, ...]
    active_producers: frozenset[int] | None
    segment_bytes: int
    index_interval: int
    max_index_entries: int
    dirty_ratio: float


@dataclass(slots=True)
class CleanerStats:
    """What a cleaning did (``end_offset`` is the next first dirty offset)."""

    first_dirty_offset: int
    dirty_ratio: float
    end_offset: int = 0
    partial: bool = False  # the offset map filled up before the upper bound
    map_entries: int = 0
    map_utilization: float = 0.0
    map_bytes_read: int = 0
    map_records_read: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    batches_copied: int = 0
    batches_rebuilt: int = 0
    batches_emptied: int = 0
    batches_removed: int = 0
    segments_read: int = 0
    segments_written: int = 0
    map_seconds: float = 0.0
    seconds: float = 0.0


@dataclass(slots=True)
class CleaningResult:
    """The cleaned segments awaiting `PartitionLog.swap_cleaned`, and the stats."""

    cleaned: CleanedSegments
    stats: CleanerStats

    def discard(self) -> None:
        """Delete the cleaned files instead of swapping them in."""
        self.cleaned.discard()


# --- cleaning ----------------------------------------------------------------------------------


def plan_cleaning(
    log: PartitionLog,
    *,
    now_ms: int,
    last_stable_offset: int | None = None,
    first_dirty: int | None = None,
    aborted: Sequence[AbortedTxn] | None = None,
    active_producers: Collection[int] | None = None,
) -> CleaningPlan | None:
    """Snapshot what a cleaning needs (call under the partition lock); None when the topic is
    not compacted (``cleanup.policy``) or there is no dirty data below the first uncleanable
    offset.

    ``aborted`` must hold every aborted transaction whose marker is in the planned segments
    (default: the log's transaction index). ``active_producers`` are the producer ids the
    partition's producer state still holds: only their last batches are kept when emptied
    (default: every producer id's).
    """
    if not log.config.compact_enabled:
        return None
    first = first_dirty_offset(log) if first_dirty is None else first_dirty
    upper = first_uncleanable_offset(
        log, first, now_ms=now_ms, last_stable_offset=last_stable_offset
    )
    if first >= upper:
        return None
    sources = tuple(
        SourceSegment(
            s,
            s.base_offset,
            s.size,
            s.next_offset,
            s.largest_timestamp,
            s.log_path.stat().st_mtime_ns,
            len(s.offset_index),
        )
        for s in log.segments[:-1]
        if s.base_offset < upper
    )
    if not sources:
        return None
    config = log.config
    return CleaningPlan(
        directory=log.directory,
        sources=sources,
        first_dirty_offset=first,
        upper_bound=upper,
        now_ms=now_ms,
        delete_horizon_ms=now_ms - config.delete_retention_ms,
        aborted=tuple(log.txn_index.collect(0, _NO_LIMIT) if aborted is None else aborted),
        active_producers=None if active_producers is None else frozenset(active_producers),
        segment_bytes=config.segment_bytes,
        index_interval=config.index_interval_bytes,
        max_index_entries=config.segment_index_bytes // 12,
        dirty_ratio=dirty_ratio(log, first, upper),
    )


def _groups(plan: CleaningPlan, sources: Sequence[SourceSegment]) -> list[list[SourceSegment]]:
    """Consecutive sources merged while their bytes fit ``segment.bytes``, their index entries
    the index size and their offsets the 32-bit relative range (Kafka's grouping)."""
    groups: list[list[SourceSegment]] = []
    size = entries = 0
    for source in sources:
        if groups and (
            size + source.size <= plan.segment_bytes
            and entries + source.index_entries < plan.max_index_entries
            and source.next_offset - 1 - groups[-1][0].base <= _MAX_RELATIVE_OFFSET
        ):
            groups[-1].append(source)
            size += source.size
            entries += source.index_entries
        else:
            groups.append([source])
            size, entries = source.size, source.index_entries
    return groups


def clean(
    plan: CleaningPlan,
    *,
    dedupe_buffer_bytes: int = DEFAULT_DEDUPE_BUFFER_BYTES,
    should_stop: Callable[[], bool] | None = None,
) -> CleaningResult:
    """Map the dirty section and write the cleaned segments as durable ``*.cleaned`` files.

    Slow: run it on a worker thread, without the partition lock. On failure (or
    `CleaningAborted`) every file written is deleted before the exception propagates.
    """
    started = time.monotonic()
    stats = CleanerStats(plan.first_dirty_offset, plan.dirty_ratio)
    aborted = AbortedRanges(plan.aborted)
    mapped = build_offset_map(
        plan.sources,
        first_dirty_offset=plan.first_dirty_offset,
        upper_bound=plan.upper_bound,
        aborted=aborted,
        capacity_bytes=dedupe_buffer_bytes,
        should_stop=should_stop,
    )
    stats.map_seconds = time.monotonic() - started
    stats.end_offset, stats.partial = mapped.end_offset, mapped.partial
    stats.map_entries, stats.map_utilization = len(mapped.offset_map), mapped.offset_map.utilization
    stats.map_bytes_read, stats.map_records_read = mapped.bytes_read, mapped.records_read
    recopier = Recopier(
        plan.directory,
        mapped,
        first_dirty_offset=plan.first_dirty_offset,
        aborted=aborted,
        aborted_entries=plan.aborted,
        active_producers=plan.active_producers,
        delete_horizon_ms=plan.delete_horizon_ms,
        index_interval=plan.index_interval,
        should_stop=should_stop,
    )
    in_range = [s for s in plan.sources if s.base < mapped.end_offset]
    groups = _groups(plan, in_range)
    written: list[SwapGroup] = []
    try:
        for i, sources in enumerate(groups):
            changes = _changes(recopier)
            group = recopier.write_group(sources)
            if len(sources) == 1 and _changes(recopier) == changes:
                discard_cleaned(plan.directory, [group.base])  # it stays as it is
            else:
                written.append(group)
            if i == 0 and len(groups) > 1:
                step("cleaned-partial")
        fsync_dir(plan.directory)
    except BaseException:
        discard_cleaned(plan.directory, [g[0].base for g in groups])
        raise
    cleaned = CleanedSegments(plan.directory, tuple(written), mapped.end_offset)
    step("cleaned-written")
    copy = recopier.stats
    stats.bytes_read, stats.bytes_written = copy.bytes_read, copy.bytes_written
    stats.records_read, stats.records_kept = copy.records_read, copy.records_kept
    stats.batches_copied, stats.batches_rebuilt = copy.batches_copied, copy.batches_rebuilt
    stats.batches_emptied, stats.batches_removed = copy.batches_emptied, copy.batches_removed
    stats.segments_read, stats.segments_written = len(in_range), len(written)
    stats.seconds = time.monotonic() - started
    return CleaningResult(cleaned, stats)


def _changes(recopier: Recopier) -> int:
    """Batches not copied as they were, so far."""
    s = recopier.stats
    return s.batches_rebuilt + s.batches_emptied + s.batches_removed


def clean_log(
    log: PartitionLog,
    *,
    now_ms: int,
    last_stable_offset: int | None = None,
    dedupe_buffer_bytes: int = DEFAULT_DEDUPE_BUFFER_BYTES,
) -> CleanerStats | None:
    """Plan, clean and swap in one call (no concurrency); None when nothing was dirty."""
    plan = plan_cleaning(log, now_ms=now_ms, last_stable_offset=last_stable_offset)
    if plan is None:
        return None
    result = clean(plan, dedupe_buffer_bytes=dedupe_buffer_bytes)
    if not log.swap_cleaned(result.cleaned):
        raise RuntimeError("the log changed under a cleaning run without concurrency")
    return result.stats
