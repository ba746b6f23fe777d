"""Crash recovery helpers: full verifying scans of a segment file and partition checkpoints.

A scan walks batches from the start of a ``.log`` file, checks lengths, magic, offsets and
CRC32C, and stops at the first bad or torn batch; it also recomputes what the indexes hold.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c

from kafkacompat.protocol.records import ATTRIBUTES_OFFSET, HEADER, HEADER_SIZE, LOG_OVERHEAD
from kafkacompat.storage.fsutil import atomic_write

__all__ = [
    "CHECKPOINT_FILE",
    "CLEAN_SHUTDOWN_FILE",
    "PartitionCheckpoint",
    "ScanResult",
    "read_checkpoint",
    "scan_log",
    "write_checkpoint",
]

CHECKPOINT_FILE = "partition.checkpoint"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
_SCAN_CHUNK = 1 << 20


@dataclass(slots=True)
class ScanResult:
    """What a scan found: the valid prefix and the index entries it implies."""

    valid_size: int = 0
    next_offset: int = 0
    offset_entries: list[tuple[int, int]] = field(default_factory=list)
    time_entries: list[tuple[int, int]] = field(default_factory=list)
    max_timestamp: int = -1
    offset_of_max_timestamp: int = 0
    first_timestamp: int | None = None
    bytes_since_index: int = 0
    error: str | None = None


def scan_log(fd: int, base_offset: int, size: int, index_interval: int) -> ScanResult:
    """Verify batches of the segment file ``fd`` from position 0 up to ``size``.

    Index entries follow the append rule: a batch is indexed once more than ``index_interval``
    bytes were written since the previous entry.
    """
    result = ScanResult(next_offset=base_offset, offset_of_max_timestamp=base_offset)
    buf, buf_start, pos, since = b"", 0, 0, 0
    last_time_entry = -1
    while pos < size:
        rel = pos - buf_start
        if rel + HEADER_SIZE > len(buf):
            buf, buf_start, rel = os.pread(fd, max(_SCAN_CHUNK, HEADER_SIZE), pos), pos, 0
        if len(buf) - rel < HEADER_SIZE:
            result.error = f"truncated batch header at {pos}"
            break
        base, length, _, magic, crc, _, lod, _, mts, _, _, _, count = HEADER.unpack_from(buf, rel)
        batch_size = length + LOG_OVERHEAD
        if magic != 2 or batch_size < HEADER_SIZE or lod < 0 or count < 0:
            result.error = f"invalid batch header at {pos}"
            break
        if base < result.next_offset:
            result.error = f"offset {base} at {pos} goes backwards"
            break
        if pos + batch_size > size:
            result.error = f"truncated batch at {pos}"
            break
        if rel + batch_size > len(buf):
            buf, buf_start, rel = os.pread(fd, max(_SCAN_CHUNK, batch_size), pos), pos, 0
        if len(buf) - rel < batch_size:
            result.error = f"short read at {pos}"
            break
        if crc32c(memoryview(buf)[rel + ATTRIBUTES_OFFSET : rel + batch_size]) != crc:
            result.error = f"CRC mismatch in batch at {pos}"
            break
        if result.first_timestamp is None:
            result.first_timestamp = mts
        if mts > result.max_timestamp:
            result.max_timestamp, result.offset_of_max_timestamp = mts, base
        if since > index_interval:
            result.offset_entries.append((base, pos))
            if result.max_timestamp > last_time_entry:
                last_time_entry = result.max_timestamp
                result.time_entries.append((last_time_entry, result.offset_of_max_timestamp))
            since = 0
        since += batch_size
        pos += batch_size
        result.next_offset = base + lod + 1
    result.valid_size = pos
    result.bytes_since_index = since
    return result


@dataclass(frozen=True, slots=True)
class PartitionCheckpoint:
    """Durable per-partition state: everything below ``recovery_point`` is flushed."""

    recovery_point: int = 0
    log_start_offset: int = 0


def read_checkpoint(directory: Path) -> PartitionCheckpoint:
    """Load the partition checkpoint; a missing or unreadable one means "recover everything"."""
    try:
        data = json.loads((directory / CHECKPOINT_FILE).read_text())
        return PartitionCheckpoint(int(data["recovery_point"]), int(data["log_start_offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return PartitionCheckpoint()


def write_checkpoint(directory: Path, checkpoint: PartitionCheckpoint) -> None:
    """Atomically and durably replace the partition checkpoint."""
    text = json.dumps(
        {
            "version": 1,
            "recovery_point": checkpoint.recovery_point,
            "log_start_offset": checkpoint.log_start_offset,
        }
    )
    atomic_write(directory / CHECKPOINT_FILE, text.encode())
