"""The log cleaner's second pass: recopy segments keeping what compaction keeps.

Per batch below the end of the cleaned section (the batches past it are copied as they are):

- a control batch (transaction marker) goes once its transaction has no batch left in the log
  (none was read since the producer's previous marker) and it is past the delete horizon;
- a batch of an aborted transaction loses all its records;
- otherwise a record goes when a later offset of its key is in the offset map, or when it is a
  tombstone (null value) past the delete horizon; records without a key stay;
- a batch that loses every record stays as an empty batch when it is the last data batch of a
  producer still active (its sequence numbers keep idempotent producers going), else it goes;
- a batch that loses nothing is copied byte for byte; one that loses some is rebuilt.

The delete horizon: a tombstone or marker may go only in a cleaning after the one that first
cleaned it (its batch lies below the first dirty offset) and once the largest timestamp of its
segment is more than ``delete.retention.ms`` before the cleaning's ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafkacompat.protocol.records import read_header
from kafkacompat.storage.cleaner_map import (
    AbortedRanges,
    CleaningAborted,
    MapResult,
    SourceSegment,
)
from kafkacompat.storage.cleaner_records import (
    empty_batch,
    key_digest,
    read_batches,
    rebuild_batch,
    record_keys,
)
from kafkacompat.storage.cleaner_swap import CleanedSegmentWriter, SwapGroup
from kafkacompat.storage.txn_index import AbortedTxn

__all__ = ["CopyStats", "Recopier"]


@dataclass(slots=True)
class CopyStats:
    """Counters of the second pass."""

    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    batches_copied: int = 0
    batches_rebuilt: int = 0
    batches_emptied: int = 0
    batches_removed: int = 0


class Recopier:
    """Writes the cleaned segment of each group of source segments, in offset order."""

    def __init__(
        self,
        directory: Path,
        mapped: MapResult,
        *,
        first_dirty_offset: int,
        aborted: AbortedRanges,
        aborted_entries: Sequence[AbortedTxn],
        active_producers: Container[int] | None,
        delete_horizon_ms: int,
        index_interval: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.directory = directory
        self.stats = CopyStats()
        self._offsets = mapped.offset_map.offsets
        self._end = mapped.end_offset
        self._producer_last = (
            mapped.producer_last
            if active_producers is None
            else {p: o for p, o in mapped.producer_last.items() if p in active_producers}
        )
        self._first_dirty = first_dirty_offset
        self._aborted = aborted
        self._aborted_entries = aborted_entries
        self._horizon = delete_horizon_ms
        self._interval = index_interval
        self._should_stop = should_stop
        self._txn_data: set[int] = set()  # producers with a batch read since their last marker
        self._removed_markers: set[int] = set()

    def write_group(self, sources: Sequence[SourceSegment]) -> SwapGroup:
        """Clean ``sources`` into one new segment named after the first; fsynced."""
        base = sources[0].base
        writer = CleanedSegmentWriter(self.directory, base, self._interval)
        try:
            for source in sources:
                self._copy_segment(source, writer)
            end = sources[-1].next_offset
            entries = [
                e
                for e in self._aborted_entries
                if base <= e.last_offset < end and e.last_offset not in self._removed_markers
            ]
            writer.finish(max(s.mtime_ns for s in sources), entries)
        except BaseException:
            writer.close()
            raise
        self.stats.bytes_written += writer.size
        return SwapGroup(
            base, tuple(s.segment for s in sources), tuple(s.size for s in sources), bool(entries)
        )

    def _copy_segment(self, source: SourceSegment, writer: CleanedSegmentWriter) -> None:
        stats, end, first_dirty = self.stats, self._end, self._first_dirty
        expired = source.largest_timestamp < self._horizon
        for _, header, view in read_batches(source.path, source.size):
            if self._should_stop is not None and self._should_stop():
                raise CleaningAborted("the cleaning was asked to stop")
            stats.bytes_read += header.size
            stats.records_read += header.records_count
            if header.base_offset >= end:  # past the cleaned section: as it is
                self._keep(writer, view, header.base_offset, header.max_timestamp)
                stats.records_kept += header.records_count
                continue
            pid = header.producer_id
            past_horizon = expired and header.last_offset < first_dirty
            if header.is_control:
                had_data = pid in self._txn_data
                self._txn_data.discard(pid)
                if not had_data and (past_horizon or header.records_count == 0):
                    self._removed_markers.add(header.base_offset)
                    stats.batches_removed += 1
                else:
                    self._keep(writer, view, header.base_offset, header.max_timestamp)
                    stats.records_kept += header.records_count
                continue
            if header.is_transactional and pid >= 0:
                self._txn_data.add(pid)
            kept: list[int] = []
            if header.records_count and not self._aborted.covers(header):
                offsets = self._offsets
                if not offsets and not past_horizon:
                    self._keep(writer, view, header.base_offset, header.max_timestamp)
                    stats.records_kept += header.records_count
                    continue
                for offset, key, tombstone in record_keys(view, header):
                    if key is not None:
                        latest = offsets.get(key_digest(key))
                        if (latest is not None and offset < latest) or (tombstone and past_horizon):
                            continue
                    kept.append(offset)
                if len(kept) == header.records_count:
                    self._keep(writer, view, header.base_offset, header.max_timestamp)
                    stats.records_kept += len(kept)
                    continue
            stats.records_kept += len(kept)
            if kept:
                rebuilt = rebuild_batch(view, header, set(kept))
                writer.append(rebuilt, header.base_offset, read_header(rebuilt).max_timestamp)
                stats.batches_rebuilt += 1
            elif pid >= 0 and self._producer_last.get(pid) == header.last_offset:
                if header.records_count == 0:  # emptied by an earlier cleaning
                    self._keep(writer, view, header.base_offset, header.max_timestamp)
                else:
                    writer.append(empty_batch(header), header.base_offset, header.max_timestamp)
                    stats.batches_emptied += 1
            else:
                stats.batches_removed += 1

    def _keep(
        self, writer: CleanedSegmentWriter, view: memoryview, base: int, max_timestamp: int
    ) -> None:
        writer.append(view, base, max_timestamp)
        self.stats.batches_copied += 1
