"""The log cleaner's first pass: the latest offset of every key in the dirty section.

The map is a dict from a key's 16-byte digest (`cleaner_records.key_digest`) to its latest
offset, capped by an estimate of its memory (`MAP_ENTRY_BYTES` per entry): when a new key
would not fit, the pass stops after the last batch it read whole, and the cleaning covers the
log only up to there (the next cleaning goes on from there), as Kafka's cleaner does.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kafkacompat.protocol.records import BatchHeader
from kafkacompat.storage.cleaner_records import key_digest, read_batches, record_keys
from kafkacompat.storage.txn_index import AbortedTxn

if TYPE_CHECKING:
    from kafkacompat.storage.segment import LogSegment

__all__ = [
    "DEFAULT_DEDUPE_BUFFER_BYTES",
    "MAP_ENTRY_BYTES",
    "AbortedRanges",
    "CleaningAborted",
    "MapResult",
    "OffsetMap",
    "SourceSegment",
    "build_offset_map",
]

#: Kafka's default ``log.cleaner.dedupe.buffer.size``.
DEFAULT_DEDUPE_BUFFER_BYTES = 128 * 1024 * 1024
#: Measured cost of one map entry in CPython (digest bytes, offset int, dict slot).
MAP_ENTRY_BYTES = 160


class CleaningAborted(Exception):
    """The caller's ``should_stop`` asked the cleaning to stop."""


@dataclass(frozen=True, slots=True)
class SourceSegment:
    """A closed segment as the cleaner reads it (a snapshot taken under the partition lock)."""

    segment: LogSegment
    base: int
    size: int
    next_offset: int
    largest_timestamp: int
    mtime_ns: int
    index_entries: int

    @property
    def path(self) -> Path:
        return self.segment.log_path


class OffsetMap:
    """Key digest -> latest offset, holding at most ``capacity_bytes // MAP_ENTRY_BYTES``."""

    def __init__(self, capacity_bytes: int) -> None:
        self.slots = max(1, capacity_bytes // MAP_ENTRY_BYTES)
        self.offsets: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, key: memoryview | bytes) -> int | None:
        """Latest offset of ``key`` in the dirty section, None when it has none there."""
        return self.offsets.get(key_digest(key))

    @property
    def utilization(self) -> float:
        return len(self.offsets) / self.slots


class AbortedRanges:
    """Which transactional batches belong to aborted transactions: per producer id, the
    ranges from a transaction's first offset to its abort marker."""

    def __init__(self, aborted: Iterable[AbortedTxn]) -> None:
        self._firsts: dict[int, list[int]] = {}
        self._lasts: dict[int, list[int]] = {}
        for txn in sorted(aborted, key=lambda t: t.first_offset):
            self._firsts.setdefault(txn.producer_id, []).append(txn.first_offset)
            self._lasts.setdefault(txn.producer_id, []).append(txn.last_offset)

    def covers(self, header: BatchHeader) -> bool:
        """Whether ``header``'s batch is transactional data of an aborted transaction."""
        if not header.is_transactional or header.is_control:
            return False
        firsts = self._firsts.get(header.producer_id)
        if firsts is None:
            return False
        i = bisect_right(firsts, header.base_offset) - 1
        return i >= 0 and self._lasts[header.producer_id][i] >= header.base_offset


@dataclass(slots=True)
class MapResult:
    """What the first pass found: the map, where the cleaning ends, and per producer id the
    last offset of its last data batch below that end."""

    offset_map: OffsetMap
    end_offset: int
    partial: bool
    producer_last: dict[int, int] = field(default_factory=dict)
    bytes_read: int = 0
    records_read: int = 0


def build_offset_map(
    sources: Sequence[SourceSegment],
    *,
    first_dirty_offset: int,
    upper_bound: int,
    aborted: AbortedRanges,
    capacity_bytes: int,
    should_stop: Callable[[], bool] | None = None,
) -> MapResult:
    """Read ``sources`` up to ``upper_bound``: headers of the clean section (producer ids),
    keys of the dirty section [``first_dirty_offset``, ``upper_bound``) into the map.

    Records of aborted transactions and control records never enter the map. The result's
    end offset is ``upper_bound`` when everything below it was mapped (less when a batch
    reaches past it), else one past the last batch mapped whole (the map is never so small that no batch fits: the first dirty batch
    is always taken whole).
    """
    offset_map = OffsetMap(capacity_bytes)
    offsets, slots = offset_map.offsets, offset_map.slots
    result = MapResult(offset_map, first_dirty_offset, partial=False)
    producer_last = result.producer_last
    mapped_one, end = False, upper_bound
    for source in sources:
        if source.base >= end:
            break
        for _, header, view in read_batches(source.path, source.size):
            if header.last_offset >= end:
                end = min(end, header.base_offset)  # no batch reaching past the bound
                break
            if should_stop is not None and should_stop():
                raise CleaningAborted("the cleaning was asked to stop")
            if header.last_offset >= first_dirty_offset:
                if not header.is_control and not aborted.covers(header):
                    for offset, key, _ in record_keys(view, header):
                        result.records_read += 1
                        if key is None or offset < first_dirty_offset:
                            continue
                        digest = key_digest(key)
                        if mapped_one and len(offsets) >= slots and digest not in offsets:
                            result.partial = True
                            return result
                        offsets[digest] = offset
                mapped_one = True
                result.end_offset = header.last_offset + 1
            if header.producer_id >= 0 and not header.is_control:
                producer_last[header.producer_id] = header.last_offset
            result.bytes_read += header.size
    result.end_offset = max(result.end_offset, end)
    return result
