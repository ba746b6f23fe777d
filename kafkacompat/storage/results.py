"""What PartitionLog calls return, and ListOffsets' special timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from kafkacompat.storage.file_slice import FileSlice

__all__ = [
    "EARLIEST_LOCAL_TIMESTAMP",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_TIMESTAMP",
    "AppendResult",
    "ReadResult",
    "TimestampOffset",
]

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4


class AppendResult(NamedTuple):
    """Outcome of an append; ``log_append_time`` is -1 unless the topic uses LogAppendTime."""

    base_offset: int
    last_offset: int
    log_append_time: int
    log_start_offset: int
    record_count: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole batches as file slices, with the partition's watermarks at read time."""

    slices: tuple[FileSlice, ...]
    high_watermark: int
    log_start_offset: int

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slices)

    def read_bytes(self) -> bytes:
        return b"".join(s.read() for s in self.slices)

    def file_regions(self) -> tuple[FileSlice, ...]:
        """Where the batches lie, for a zero-copy send."""
        return self.slices


@dataclass(frozen=True, slots=True)
class TimestampOffset:
    """A ListOffsets answer: the offset found and its record timestamp (-1 when not looked up)."""

    timestamp: int
    offset: int
