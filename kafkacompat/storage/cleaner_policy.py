"""When a compacted log needs cleaning and how far a cleaning may go (Kafka's
LogCleanerManager rules): the first dirty offset from the cleaner checkpoint, the first
uncleanable offset, the dirty ratio against ``min.cleanable.dirty.ratio`` and the wait past
``max.compaction.lag.ms``."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from kafkacompat.storage.cleaner_swap import read_cleaner_checkpoint

if TYPE_CHECKING:
    from kafkacompat.storage.partition_log import PartitionLog
    from kafkacompat.storage.segment import LogSegment

__all__ = [
    "dirty_ratio",
    "first_dirty_offset",
    "first_uncleanable_offset",
    "max_compaction_delay_ms",
    "needs_cleaning",
]


def first_dirty_offset(log: PartitionLog) -> int:
    """Where the next cleaning's dirty section starts: the checkpoint, or the log start offset
    when there is none or it lies outside the log (truncation, DeleteRecords)."""
    checkpoint = read_cleaner_checkpoint(log.directory)
    if checkpoint is None or not log.log_start_offset <= checkpoint <= log.log_end_offset:
        return log.log_start_offset
    return checkpoint


def _from_floor(log: PartitionLog, offset: int) -> list[LogSegment]:
    """The closed segments from the one holding ``offset`` on."""
    segments = log.segments[:-1]
    bases = [s.base_offset for s in segments]
    return list(segments[max(bisect_right(bases, offset) - 1, 0) :])


def first_uncleanable_offset(
    log: PartitionLog, first_dirty: int, *, now_ms: int, last_stable_offset: int | None = None
) -> int:
    """The first offset no cleaning may reach: the last stable offset (default: the high
    watermark), the active segment's base, and the base of the first dirty segment whose
    largest timestamp is within ``min.compaction.lag.ms`` of ``now_ms``."""
    bound = min(
        log.active_segment_base,
        log.high_watermark if last_stable_offset is None else last_stable_offset,
    )
    lag = log.config.min_compaction_lag_ms
    if lag > 0:
        for segment in _from_floor(log, first_dirty):
            if segment.largest_timestamp > now_ms - lag:
                return min(bound, segment.base_offset)
    return bound


def _bytes_before(log: PartitionLog, offset: int) -> int:
    """Bytes of the log's segments before the batch holding (or following) ``offset``."""
    total = 0
    for segment in log.segments:
        if segment.base_offset > offset:
            break
        found = segment.find_batch(offset) if segment.next_offset > offset else None
        if found is not None:
            return total + found[0]
        total += segment.size
    return total


def dirty_ratio(log: PartitionLog, first_dirty: int, first_uncleanable: int | None = None) -> float:
    """Bytes of the dirty section [``first_dirty``, ``first_uncleanable``) over the bytes from
    the log's start to ``first_uncleanable`` (default: the active segment's base)."""
    upper = log.active_segment_base if first_uncleanable is None else first_uncleanable
    clean = _bytes_before(log, first_dirty)
    dirty = _bytes_before(log, upper) - clean if upper > first_dirty else 0
    return dirty / (clean + dirty) if dirty > 0 else 0.0


def max_compaction_delay_ms(log: PartitionLog, first_dirty: int, now_ms: int) -> int:
    """How long past ``max.compaction.lag.ms`` the oldest dirty record waits (0: not yet), by
    the first batch timestamps of the dirty closed segments."""
    firsts = [
        s.first_timestamp
        for s in _from_floor(log, first_dirty)
        if s.first_timestamp is not None and s.first_timestamp > 0
    ]
    if not firsts:
        return 0
    return max(0, now_ms - log.config.max_compaction_lag_ms - min(firsts))


def needs_cleaning(
    log: PartitionLog,
    *,
    now_ms: int,
    last_stable_offset: int | None = None,
    first_dirty: int | None = None,
) -> bool:
    """Kafka's rule: a compacted log is cleaned when its dirty ratio is above
    ``min.cleanable.dirty.ratio``, or when it has dirty bytes and a dirty record has waited
    longer than ``max.compaction.lag.ms``."""
    if not log.config.compact_enabled:
        return False
    first = first_dirty_offset(log) if first_dirty is None else first_dirty
    upper = first_uncleanable_offset(
        log, first, now_ms=now_ms, last_stable_offset=last_stable_offset
    )
    ratio = dirty_ratio(log, first, upper)
    return ratio > log.config.min_cleanable_dirty_ratio or (
        ratio > 0 and max_compaction_delay_ms(log, first, now_ms) > 0
    )
