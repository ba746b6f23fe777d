"""Reading a partition's segment list: batch ranges for fetch, decoded records, timestamps."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.record_codec import Record, decode_batch
from kafkacompat.storage.file_slice import FileSlice
from kafkacompat.storage.results import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    TimestampOffset,
)
from kafkacompat.storage.segment import LogSegment

__all__ = ["end_position", "iter_records", "offset_for_timestamp", "read_slices"]


def read_slices(
    segments: Sequence[LogSegment],
    bases: Sequence[int],
    offset: int,
    stop: int,
    max_bytes: int,
    *,
    min_one: bool,
) -> tuple[FileSlice, ...]:
    """Whole batches from the one holding ``offset`` up to ``max_bytes``, none starting at or
    past ``stop``; the first batch comes even when larger than ``max_bytes`` if ``min_one``."""
    slices: list[FileSlice] = []
    remaining = max_bytes
    i = max(bisect_right(bases, offset) - 1, 0)
    while offset < stop and i < len(segments):
        segment = segments[i]
        part = segment.read(
            offset,
            remaining,
            min_one=min_one and not slices,
            end_position=end_position(segment, stop),
        )
        if part is None:
            if slices or stop <= segment.next_offset:
                break
            i += 1  # ``offset`` lies past this segment's data
            continue
        slices.append(part)
        remaining -= part.size
        if remaining <= 0 or part.position + part.size < segment.size:
            break
        i += 1
    return tuple(slices)


def end_position(segment: LogSegment, stop: int) -> int:
    """File position before the first batch of ``segment`` that starts at or past ``stop``."""
    if stop >= segment.next_offset:
        return segment.size
    found = segment.find_batch(stop)
    if found is None:
        return segment.size
    pos, header = found
    return pos if header.base_offset >= stop else pos + header.size


def iter_records(
    segments: Sequence[LogSegment], bases: Sequence[int], offset: int
) -> Iterator[Record]:
    """Decode records from ``offset`` to the end of the log; slow path. A damaged batch
    raises CORRUPT_MESSAGE."""
    for segment in segments[max(bisect_right(bases, offset) - 1, 0) :]:
        found = segment.find_batch(offset)
        if found is None:
            continue
        for pos, header in segment.iter_headers(found[0]):
            _, records = decode_batch(segment.read_batch_bytes(pos, header.size))
            for record in records:
                if record.offset >= offset:
                    yield record


def offset_for_timestamp(
    segments: Sequence[LogSegment], timestamp: int, *, log_start: int, high_watermark: int
) -> TimestampOffset | None:
    """ListOffsets: first offset whose timestamp is >= ``timestamp``, or None.

    ``-1`` latest (high watermark), ``-2``/``-4`` earliest (log start offset), ``-3`` the
    record with the largest timestamp. A damaged batch that has to be decoded to answer
    raises CORRUPT_MESSAGE (as Kafka fails the lookup); batches skipped by their header's
    max timestamp are not looked into.
    """
    if timestamp == LATEST_TIMESTAMP:
        return TimestampOffset(-1, high_watermark)
    if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
        return TimestampOffset(-1, log_start)
    live = [s for s in segments if s.next_offset > log_start and s.max_timestamp >= 0]
    if timestamp == MAX_TIMESTAMP:
        if not live:
            return None
        best = max(live, key=lambda s: s.max_timestamp)  # first segment among equals
        found = best.find_timestamp(best.max_timestamp, log_start)
        return TimestampOffset(*found) if found else None
    if timestamp < 0:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"unsupported timestamp {timestamp}")
    for segment in live:
        if segment.max_timestamp >= timestamp:
            found = segment.find_timestamp(timestamp, log_start)
            if found is not None:
                return TimestampOffset(*found)
    return None
