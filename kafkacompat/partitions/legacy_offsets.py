"""ListOffsets v0's answer: segment base offsets chosen by the segment files' modification times."""

from __future__ import annotations

import os

from kafkacompat.clock import now_ms
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

__all__ = ["legacy_offsets"]


def _segment_times(log: PartitionLog) -> list[tuple[int, int]]:
    """v0's view of a log: (first offset, file modification time) per segment, plus
    (log end offset, now) when the active segment holds data."""
    entries: list[tuple[int, int]] = []
    bases = log.segment_base_offsets
    for base in bases:
        try:
            mtime = int(os.stat(log.directory / f"{base:020d}.log").st_mtime * 1000)
        except FileNotFoundError:
            mtime = 0
        entries.append((max(base, log.log_start_offset), mtime))
    if log.log_end_offset > bases[-1]:
        entries.append((log.log_end_offset, now_ms()))
    return entries


def legacy_offsets(
    log: PartitionLog, high_watermark: int, timestamp: int, max_num_offsets: int
) -> list[int]:
    """ListOffsets v0: up to ``max_num_offsets`` offsets, newest first."""
    entries = _segment_times(log)
    if timestamp == LATEST_TIMESTAMP:
        start = len(entries) - 1
    elif timestamp == EARLIEST_TIMESTAMP:
        start = 0
    else:
        start = len(entries) - 1
        while start >= 0 and entries[start][1] > timestamp:
            start -= 1
    count = max(0, min(max_num_offsets, start + 1))
    offsets = sorted((entries[start - j][0] for j in range(count)), reverse=True)
    if any(o > high_watermark for o in offsets):
        offsets = [high_watermark] + [o for o in offsets if o <= high_watermark]
    return offsets
