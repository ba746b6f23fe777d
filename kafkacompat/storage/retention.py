"""Which old segments retention deletes: by time, by size and below the log start offset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkacompat.storage.log_config import LogConfig
    from kafkacompat.storage.segment import LogSegment

__all__ = ["SegmentStats", "deletable_prefix", "segments_to_delete"]


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """What retention needs to know about one segment."""

    base_offset: int
    size: int
    largest_timestamp: int


def deletable_prefix(
    segments: Sequence[SegmentStats],
    *,
    now_ms: int,
    retention_ms: int,
    retention_bytes: int,
    log_start_offset: int,
    delete_enabled: bool = True,
    active_deletable: bool = False,
) -> int:
    """Number of oldest segments to delete.

    A segment goes when its largest timestamp is more than ``retention_ms`` old, when the log is
    over ``retention_bytes`` even without it, or when it lies wholly below the log start offset.
    Time and size retention apply only with ``delete_enabled`` (``cleanup.policy`` has delete);
    a negative ``retention_ms`` / ``retention_bytes`` disables that limit. The last (active)
    segment counts for time and size only when ``active_deletable`` (as Kafka: non-empty and
    wholly below the high watermark; the caller rolls a new one before deleting it).
    """
    kept = 1 if not active_deletable or segments[-1].size == 0 else 0
    candidates = len(segments) - kept
    count = 0
    # Below the log start offset: the next segment starts at or before it.
    while count < len(segments) - 1 and segments[count + 1].base_offset <= log_start_offset:
        count += 1
    if delete_enabled and retention_ms >= 0:
        by_time = 0
        while by_time < candidates and now_ms - segments[by_time].largest_timestamp > retention_ms:
            by_time += 1
        count = max(count, by_time)
    if delete_enabled and retention_bytes >= 0:
        excess = sum(s.size for s in segments) - retention_bytes
        by_size = 0
        while by_size < candidates and excess - segments[by_size].size >= 0:
            excess -= segments[by_size].size
            by_size += 1
        count = max(count, by_size)
    return count


def segments_to_delete(
    segments: Sequence[LogSegment],
    config: LogConfig,
    *,
    log_start_offset: int,
    delete_enabled: bool,
    now_ms: int,
    active_deletable: bool = False,
) -> int:
    """`deletable_prefix` of a partition's segments under ``config``'s retention limits."""
    return deletable_prefix(
        [SegmentStats(s.base_offset, s.size, s.largest_timestamp) for s in segments],
        now_ms=now_ms,
        retention_ms=config.retention_ms,
        retention_bytes=config.retention_bytes,
        log_start_offset=log_start_offset,
        delete_enabled=delete_enabled,
        active_deletable=active_deletable,
    )
