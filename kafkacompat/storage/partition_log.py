"""The log of one topic partition: an ordered list of segments in ``<topic>-<partition>/``."""

from __future__ import annotations

import os
import shutil
import struct
import uuid
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from kafkacompat import clock
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.record_codec import Record
from kafkacompat.protocol.record_validation import RecordRules
from kafkacompat.protocol.records import (
    LAST_OFFSET_DELTA_OFFSET,
    MAGIC_OFFSET,
    PreparedAppend,
    assign_offsets,
    prepare_replicated,
)
from kafkacompat.storage import log_reads
from kafkacompat.storage.append_input import (
    batch_validator,
    record_rules,
    to_writable_v2,
    writable,
)
from kafkacompat.storage.cleaner_swap import CleanedSegments, swap_in
from kafkacompat.storage.file_cache import FileCache, effective_max_open_files
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig
from kafkacompat.storage.log_loader import load_segments
from kafkacompat.storage.recovery import PartitionCheckpoint, read_checkpoint, write_checkpoint
from kafkacompat.storage.results import AppendResult, ReadResult, TimestampOffset
from kafkacompat.storage.retention import segments_to_delete
from kafkacompat.storage.segment import LogSegment
from kafkacompat.storage.txn_index import AbortedTxn, TransactionIndex

__all__ = ["AppendResult", "PartitionLog", "ReadResult", "TimestampOffset"]

_MAX_RELATIVE_OFFSET = 2**31 - 1
#: lastOffsetDelta and recordsCount of a batch header, read from `LAST_OFFSET_DELTA_OFFSET`.
_LOD_AND_COUNT = struct.Struct(">i30xi")
#: A batch being replicated: position, size, base offset, max timestamp, last offset, count.
_Batch = tuple[int, int, int, int, int, int]


#: Directories of deleted partitions awaiting removal end with this.
DELETED_SUFFIX = ".deleted"


class PartitionLog:
    """Append, read, retention, truncation and recovery for one partition (synchronous)."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig = DEFAULT_LOG_CONFIG,
        *,
        clean_shutdown: bool = False,
        fsync_on_append: bool = False,
        now_ms: int | None = None,
        files: FileCache | None = None,
    ) -> None:
        """Open (recovering if needed) or create the log in ``directory``. Segment descriptors
        come from ``files``, the cache shared by a log manager (default: one of its own)."""
        self.directory = directory
        self.config = config
        self._as_sent = config.compression_type == "producer"
        self._rules = self._record_rules(config)
        self.fsync_on_append = fsync_on_append
        self._segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._unflushed_messages = 0
        self._last_flush_ms = clock.now_ms() if now_ms is None else now_ms
        self._files = FileCache(effective_max_open_files()) if files is None else files
        directory.mkdir(parents=True, exist_ok=True)
        self.txn_index = TransactionIndex(directory)
        try:
            self._open(clean_shutdown, self._last_flush_ms)
        except BaseException:
            self.close_files()
            raise

    # --- opening and recovery ----------------------------------------------------------------

    def _new_segment(self, base_offset: int, now_ms: int) -> LogSegment:
        return LogSegment(
            self.directory,
            base_offset,
            index_interval=self.config.index_interval_bytes,
            index_bytes=self.config.segment_index_bytes,
            created_ms=now_ms,
            files=self._files,
        )

    def _open(self, clean_shutdown: bool, now_ms: int) -> None:
        checkpoint = read_checkpoint(self.directory)
        segments = load_segments(
            self.directory,
            checkpoint.recovery_point,
            clean_shutdown=clean_shutdown,
            open_segment=lambda base: self._new_segment(base, now_ms),
        )
        self._segments = segments
        if not segments:
            segments.append(self._new_segment(checkpoint.log_start_offset, now_ms))
        for segment in segments[:-1]:
            segment.evict()
        self._bases = [s.base_offset for s in segments]
        self._log_start_offset = min(
            max(checkpoint.log_start_offset, segments[0].base_offset), self.log_end_offset
        )
        self._recovery_point = self.log_end_offset
        self.txn_index.load(self._bases, self.log_end_offset)

    # --- properties --------------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        """Single replica: everything appended is committed."""
        return self._segments[-1].next_offset

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segment_base_offsets(self) -> list[int]:
        return list(self._bases)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        """The segments, oldest first (the last one is active)."""
        return tuple(self._segments)

    @property
    def active_segment_base(self) -> int:
        """Base offset of the active (last) segment."""
        return self._bases[-1]

    def segment_base_for(self, offset: int) -> int:
        """Base offset of the segment holding ``offset``."""
        return self._bases[max(bisect_right(self._bases, offset) - 1, 0)]

    def record_aborted(self, entry: AbortedTxn) -> None:
        """Add an aborted transaction to the index of the segment holding its marker."""
        self.txn_index.append(entry, self.segment_base_for(entry.last_offset))

    def swap_cleaned(self, cleaned: CleanedSegments) -> bool:
        """Put a compaction's cleaned segments in place of the ones they replace (quick: run
        it under the partition lock; see `cleaner`). False, with the cleaned files deleted, when
        a replaced segment changed meanwhile. An OSError leaves the swap for the next open to
        finish: stop using the log then."""
        segments = swap_in(self._segments, cleaned, self._new_segment)
        if segments is None:
            return False
        self._segments, self._bases = segments, [s.base_offset for s in segments]
        self.txn_index.load(self._bases, self.log_end_offset)
        return True

    # --- append ------------------------------------------------------------------------------

    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = -1,
        now_ms: int,
        allow_control: bool = False,
        auto_flush: bool = True,
    ) -> AppendResult:
        """Validate, assign offsets and append a produced record set (one write).

        v2 batches are stored byte for byte except for the patched base offset and leader epoch
        (and, under LogAppendTime, the timestamp type, max timestamp and CRC). Legacy v0/v1
        message sets are converted to one v2 batch first. With ``auto_flush`` off the caller
        applies the flush policy itself (see `flush_due`), e.g. to fsync off its event loop.
        """
        config = self.config
        # Record-level validation before anything is written; batches the broker writes
        # itself (markers) keep the structure checks only.
        rules = self._rules[allow_control]
        if self._as_sent and len(records) > MAGIC_OFFSET and records[MAGIC_OFFSET] == 2:
            buf, converted = writable(records), False  # the common case, made quick
        else:
            buf, converted = to_writable_v2(records, config, replace(rules, now_ms=now_ms))
        size = len(buf)
        if size > config.segment_bytes:
            raise KafkaError(ErrorCode.RECORD_LIST_TOO_LARGE, f"{size} bytes")
        append_time = now_ms if config.log_append_time else None
        segment = self._segments[-1]
        prepared = assign_offsets(
            buf,
            base_offset=segment.next_offset,
            leader_epoch=leader_epoch,
            log_append_time_ms=append_time,
            # A converted legacy set was size-checked per original message.
            max_batch_size=size if converted else config.max_message_bytes,
            allow_control=allow_control,
            validate=batch_validator(rules, now_ms),
        )
        if segment.size and (
            segment.size + size > config.segment_bytes
            or self._must_roll(segment, prepared.max_timestamp, prepared.last_offset, now_ms)
        ):
            segment = self.roll(now_ms)
        segment.append(buf, prepared)
        if self.fsync_on_append:
            os.fdatasync(segment.fd)
        self._unflushed_messages += prepared.record_count
        if auto_flush and self.flush_due(now_ms):
            self.flush(now_ms)
        return AppendResult(
            prepared.first_offset,
            prepared.last_offset,
            -1 if append_time is None else append_time,
            self._log_start_offset,
            prepared.record_count,
        )

    def append_replicated(
        self,
        records: bytes | bytearray | memoryview,
        *,
        now_ms: int,
        auto_flush: bool = False,
    ) -> AppendResult:
        """Append a leader's batches byte for byte (a follower's append; see CLUSTER.md).

        Batches wholly below the log end are already here and skipped; one holding the log end
        raises OFFSET_OUT_OF_RANGE (the logs diverge: truncate first). The first new batch may
        start above the log end (a gap left by compaction on the leader). Segments roll batch
        by batch by `append`'s rules, so they split where a leader appending one batch at a
        time split them. CORRUPT_MESSAGE (see `prepare_replicated`) writes nothing. The result
        covers the batches appended (none: base offset the log end, count 0). Aborted
        transactions reach the transaction index through the partition's producer state, as
        on the leader (`Partition.append_as_follower`).
        """
        end = self.log_end_offset
        if not records:
            return AppendResult(end, end - 1, -1, self._log_start_offset, 0)
        prepared = prepare_replicated(records)
        data = memoryview(records)
        batches: list[_Batch] = []
        for pos, size, base, max_ts in prepared.batches:
            lod, count = _LOD_AND_COUNT.unpack_from(data, pos + LAST_OFFSET_DELTA_OFFSET)
            if base + lod < end:
                continue  # already here
            if base < end:
                raise KafkaError(
                    ErrorCode.OFFSET_OUT_OF_RANGE,
                    f"batch {base}..{base + lod} holds the log end {end}: the logs diverge",
                )
            batches.append((pos, size, base, max_ts, base + lod, count))
        if not batches:
            return AppendResult(end, end - 1, -1, self._log_start_offset, 0)
        config, segment = self.config, self._segments[-1]
        run, pending, count = 0, 0, 0  # batches[run:i] (``pending`` bytes) wait for a write
        written = False  # to ``segment`` by this call
        for i, (_, size, _, max_ts, last, records_count) in enumerate(batches):
            count += records_count
            if segment.size + pending and (
                segment.size + pending + size > config.segment_bytes
                or self._must_roll(segment, max_ts, last, now_ms)
            ):
                if run < i:
                    _write_run(segment, data, batches[run:i])
                    written = True
                if written and self.fsync_on_append:
                    os.fdatasync(segment.fd)
                segment, run, pending, written = self.roll(now_ms), i, 0, False
            pending += size
            if segment.first_timestamp is None:  # time rolls measure from its first batch
                _write_run(segment, data, batches[run : i + 1])
                run, pending, written = i + 1, 0, True
        if run < len(batches):
            _write_run(segment, data, batches[run:])
        if self.fsync_on_append:
            os.fdatasync(segment.fd)
        self._unflushed_messages += count
        if auto_flush and self.flush_due(now_ms):
            self.flush(now_ms)
        return AppendResult(batches[0][2], batches[-1][4], -1, self._log_start_offset, count)

    def _must_roll(
        self, segment: LogSegment, max_timestamp: int, last_offset: int, now_ms: int
    ) -> bool:
        """Roll reasons other than size: ``segment.ms``, a full index, relative offset range."""
        config = self.config
        return (
            segment.time_waited_for_roll(now_ms, max_timestamp)
            > config.segment_ms - config.segment_jitter_ms
            or segment.offset_index.is_full
            or segment.time_index.is_full
            or last_offset - segment.base_offset > _MAX_RELATIVE_OFFSET
        )

    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end (no-op while the active one is empty)."""
        active = self._segments[-1]
        if active.size == 0:
            return active
        active.seal()
        segment = self._new_segment(
            self.log_end_offset, clock.now_ms() if now_ms is None else now_ms
        )
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        return segment

    # --- read (the segment walks live in `log_reads`) -----------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        min_one: bool = True,
        max_offset: int | None = None,
    ) -> ReadResult:
        """Whole batches from the one holding ``offset``, up to ``max_bytes``.

        The first batch is returned even when larger than ``max_bytes`` if ``min_one``; batches
        starting at or past ``max_offset`` (e.g. the last stable offset) are left out.
        Raises OFFSET_OUT_OF_RANGE outside [log start offset, high watermark].
        """
        hw, lso = self.high_watermark, self._log_start_offset
        if offset < lso or offset > hw:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} not in [{lso}, {hw}]")
        stop = hw if max_offset is None else min(max_offset, hw)
        slices = log_reads.read_slices(
            self._segments, self._bases, offset, stop, max_bytes, min_one=min_one
        )
        return ReadResult(slices, hw, lso)

    def iter_records(self, start_offset: int | None = None) -> Iterator[Record]:
        """Decode records from ``start_offset`` (default: log start) to the end; slow path."""
        offset = self._log_start_offset if start_offset is None else start_offset
        yield from log_reads.iter_records(self._segments, self._bases, offset)

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """ListOffsets: first offset whose timestamp is >= ``timestamp``, or None (see
        `log_reads.offset_for_timestamp` for the special negative timestamps)."""
        return log_reads.offset_for_timestamp(
            self._segments,
            timestamp,
            log_start=self._log_start_offset,
            high_watermark=self.high_watermark,
        )

    # --- deleting data -----------------------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to ``offset`` (-1: high watermark).

        Returns the new low watermark; OFFSET_OUT_OF_RANGE beyond the high watermark.
        """
        hw = self.high_watermark
        if offset == -1:
            offset = hw
        if offset < 0 or offset > hw:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} beyond {hw}")
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self.checkpoint()
            self._delete_oldest(self._retention_count(delete_enabled=False, now_ms=0))
        return self._log_start_offset

    def detach_expired_segments(self, now_ms: int) -> list[LogSegment]:
        """Retention's decision, in memory only: drop the expired segments from the log and
        return them; their files are removed by `LogSegment.delete` (slow, callable elsewhere —
        reads that raced with it see a short or empty `FileSlice`)."""
        count = self._retention_count(
            delete_enabled=self.config.delete_enabled,
            now_ms=now_ms,
            active_deletable=self.high_watermark >= self.log_end_offset,
        )
        if count == len(self._segments):  # the active segment expired too: roll, as Kafka
            self.roll(now_ms)
        return self._detach_oldest(count)

    def _retention_count(
        self, *, delete_enabled: bool, now_ms: int, active_deletable: bool = False
    ) -> int:
        return segments_to_delete(
            self._segments,
            self.config,
            log_start_offset=self._log_start_offset,
            delete_enabled=delete_enabled,
            now_ms=now_ms,
            active_deletable=active_deletable,
        )

    def _delete_oldest(self, count: int) -> None:
        for segment in self._detach_oldest(count):
            segment.delete()

    def _detach_oldest(self, count: int) -> list[LogSegment]:
        detached = self._segments[:count]
        del self._segments[:count]
        del self._bases[:count]
        self._log_start_offset = max(self._log_start_offset, self._bases[0])
        if count:
            self.txn_index.drop_segments_before(self._bases[0])
        return detached

    def truncate_to(self, offset: int, now_ms: int | None = None) -> None:
        """Remove every batch holding an offset >= ``offset`` (a batch holding ``offset`` goes
        whole, so the log end may land below ``offset``). Below the log start offset the log
        is emptied and restarts at ``offset``."""
        if offset >= self.log_end_offset:
            return
        if offset < self._log_start_offset:
            self.truncate_fully(offset, now_ms)
            return
        while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
            self._segments.pop().delete()
            self._bases.pop()
        self._segments[-1].truncate_to(offset)
        self.txn_index.truncate_to(self.log_end_offset)
        self._recovery_point = min(self._recovery_point, self.log_end_offset)
        self.checkpoint()

    def truncate_fully(self, offset: int, now_ms: int | None = None) -> None:
        """Remove every segment and restart the empty log at ``offset`` (any offset: e.g. a
        follower behind its leader's log start starts over there)."""
        for segment in self._segments:
            segment.delete()
        self.txn_index.clear()
        new = self._new_segment(offset, clock.now_ms() if now_ms is None else now_ms)
        self._segments, self._bases = [new], [offset]
        self._log_start_offset = offset
        self._recovery_point = offset
        self.checkpoint()

    # --- durability and lifecycle ------------------------------------------------------------

    def flush(self, now_ms: int | None = None) -> None:
        """fsync every segment written since the recovery point; advance the recovery point."""
        first = max(bisect_right(self._bases, self._recovery_point) - 1, 0)
        for segment in self._segments[first:]:
            segment.sync()
        self._recovery_point = self.log_end_offset
        self._unflushed_messages = 0
        self._last_flush_ms = clock.now_ms() if now_ms is None else now_ms

    def flush_due(self, now_ms: int) -> bool:
        """Whether the flush policy (``flush.messages``, ``flush.ms``) asks for a flush now."""
        return self._unflushed_messages > 0 and (
            self._unflushed_messages >= self.config.flush_messages
            or now_ms - self._last_flush_ms >= self.config.flush_ms
        )

    def checkpoint(self) -> None:
        """Persist the recovery point and log start offset."""
        write_checkpoint(
            self.directory, PartitionCheckpoint(self._recovery_point, self._log_start_offset)
        )

    def _record_rules(self, config: LogConfig) -> tuple[RecordRules, RecordRules]:
        """The record validation rules of ``config``: for produced sets, and for the broker's
        own batches (markers: structure checks only); the time comes with each append."""
        name = self.directory.name
        return (
            record_rules(config, 0, name, producer_rules=True),
            record_rules(config, 0, name, producer_rules=False),
        )

    def update_config(self, config: LogConfig) -> None:
        """Apply new topic configs; size and index settings affect later segments."""
        self.config = config
        self._as_sent = config.compression_type == "producer"
        self._rules = self._record_rules(config)
        for segment in self._segments:
            segment.index_interval = config.index_interval_bytes

    def close(self) -> None:
        """Flush, seal the indexes and checkpoint: reopening needs no recovery. Every
        descriptor is given back, even when the flush fails."""
        if not self._segments or self._segments[-1].closed:
            return
        try:
            self.flush()
            for segment in self._segments:
                segment.close()
            self.checkpoint()
        finally:
            self.close_files()

    def close_files(self) -> None:
        """Give back every segment descriptor for good, writing nothing (the log is unusable
        afterwards)."""
        for segment in self._segments:
            segment.close_file()

    def delete(self) -> None:
        """Close without flushing and remove the partition directory."""
        shutil.rmtree(self.detach(), ignore_errors=True)

    def detach(self) -> Path:
        """Close without flushing and rename the directory aside (``*.deleted``) for removal.

        Renaming is quick, so a caller can answer at once and remove the files elsewhere; a
        crash in between leaves a ``.deleted`` directory that the next start removes.
        """
        self.close_files()
        target = self.directory.with_name(
            f"{self.directory.name}.{uuid.uuid4().hex}{DELETED_SUFFIX}"
        )
        os.rename(self.directory, target)
        return target


def _write_run(segment: LogSegment, data: memoryview, run: list[_Batch]) -> None:
    """Write consecutive batches of ``data`` to ``segment`` with one write and index them."""
    start, stop = run[0][0], run[-1][0] + run[-1][1]
    newest = max(run, key=lambda batch: batch[3])  # the first batch holding the max timestamp
    prepared = PreparedAppend(
        [(pos - start, size, base, max_ts) for pos, size, base, max_ts, _, _ in run],
        run[0][2],
        run[-1][4],
        sum(batch[5] for batch in run),
        newest[3],
        newest[2],
    )
    segment.append(data[start:stop], prepared)
