"""Producer-state snapshots: ``<offset>.snapshot`` files in the partition directory.

A snapshot holds a partition's producer state as of ``offset`` (written at every segment roll and
on clean shutdown); loading takes the newest snapshot not beyond the log end and replays the
batch headers after it. Snapshots beyond the log end (their data was lost in a crash) are
deleted, so they can never be trusted later.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from crc32c import crc32c

from kafkacompat.partitions.producer_state import (
    BatchMetadata,
    PartitionProducerState,
    ProducerEntry,
)
from kafkacompat.protocol.control_records import marker_type
from kafkacompat.protocol.records import iter_batches
from kafkacompat.storage.fsutil import atomic_write
from kafkacompat.storage.partition_log import PartitionLog

__all__ = [
    "decode_snapshot",
    "delete_snapshots_after",
    "encode_snapshot",
    "load_state",
    "replay",
    "snapshot_bytes",
    "snapshot_files",
    "write_snapshot",
]

logger = logging.getLogger("kafkacompat.producer_state")

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 2
_REPLAY_CHUNK = 1 << 20

_SNAPSHOT_MAGIC = b"KCPS"
_SNAPSHOT_VERSION = 2
_ONGOING = struct.Struct(">qq")  # producer id, first offset of its open transaction
_SNAPSHOT_HEADER = struct.Struct(">4sHIqI")  # magic, version, crc32c of the rest, offset, count
_ENTRY = struct.Struct(">qhqB")  # producer id, epoch, last timestamp, batch count
_BATCH = struct.Struct(">iiqq")  # first sequence, last sequence, first offset, last offset


def encode_snapshot(state: PartitionProducerState) -> bytes:
    body = bytearray()
    for entry in state.entries.values():
        body += _ENTRY.pack(
            entry.producer_id, entry.epoch, entry.last_timestamp, len(entry.batches)
        )
        for b in entry.batches:
            body += _BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset)
    body += struct.pack(">I", len(state.ongoing))
    for pid, first in state.ongoing.items():
        body += _ONGOING.pack(pid, first)
    offset_and_count = struct.pack(">qI", state.next_offset, len(state.entries))
    crc = crc32c(offset_and_count + body)
    header = _SNAPSHOT_HEADER.pack(
        _SNAPSHOT_MAGIC, _SNAPSHOT_VERSION, crc, state.next_offset, len(state.entries)
    )
    return header + bytes(body)


def decode_snapshot(data: bytes) -> PartitionProducerState:
    """Parse a snapshot; ValueError when it is not a whole, valid one."""
    if len(data) < _SNAPSHOT_HEADER.size:
        raise ValueError("truncated snapshot")
    magic, version, crc, offset, count = _SNAPSHOT_HEADER.unpack_from(data)
    if magic != _SNAPSHOT_MAGIC or version not in (1, _SNAPSHOT_VERSION):
        raise ValueError("not a producer state snapshot")
    if crc32c(data[_SNAPSHOT_HEADER.size - 12 :]) != crc:
        raise ValueError("snapshot CRC mismatch")
    state = PartitionProducerState(offset)
    pos = _SNAPSHOT_HEADER.size
    try:
        for _ in range(count):
            pid, epoch, timestamp, batches = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            entry = ProducerEntry(pid, epoch, last_timestamp=timestamp)
            for _ in range(batches):
                entry.batches.append(BatchMetadata(*_BATCH.unpack_from(data, pos)))
                pos += _BATCH.size
            state.entries[pid] = entry
        if version >= 2:
            (open_count,) = struct.unpack_from(">I", data, pos)
            pos += 4
            for _ in range(open_count):
                pid, first = _ONGOING.unpack_from(data, pos)
                state.ongoing[pid] = first
                pos += _ONGOING.size
    except struct.error as exc:
        raise ValueError("truncated snapshot") from exc
    if pos != len(data):
        raise ValueError("trailing bytes in snapshot")
    return state


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    """``(offset, path)`` of the partition's snapshots, oldest first."""
    found = []
    for path in directory.glob(f"*{SNAPSHOT_SUFFIX}"):
        stem = path.name[: -len(SNAPSHOT_SUFFIX)]
        if len(stem) == 20 and stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def write_snapshot(directory: Path, data: bytes, offset: int) -> None:
    """Durably write a snapshot and drop all but the newest few."""
    atomic_write(snapshot_path(directory, offset), data)
    for _, old in snapshot_files(directory)[:-SNAPSHOTS_KEPT]:
        old.unlink(missing_ok=True)


def load_state(log: PartitionLog) -> PartitionProducerState:
    """The partition's producer state: newest usable snapshot plus a replay of later headers."""
    end = log.log_end_offset
    state: PartitionProducerState | None = None
    for offset, path in reversed(snapshot_files(log.directory)):
        if offset > end:
            path.unlink(missing_ok=True)
            continue
        if state is not None:
            continue
        try:
            state = decode_snapshot(path.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("ignoring producer state snapshot %s: %s", path, exc)
            path.unlink(missing_ok=True)
    if state is None:
        state = PartitionProducerState(log.log_start_offset)
    state.on_abort = log.record_aborted
    replay(state, log)
    return state


def replay(state: PartitionProducerState, log: PartitionLog) -> None:
    """Apply the log's batches from ``state.next_offset`` to the log end (headers only)."""
    offset = max(state.next_offset, log.log_start_offset)
    end = log.log_end_offset
    while offset < end:
        result = log.read(offset, _REPLAY_CHUNK)
        if not result.slices:
            break
        for piece in result.slices:
            data = piece.read()
            for pos, header in iter_batches(data):
                if header.last_offset >= offset:
                    marker = marker_type(data, pos) if header.is_control else -1
                    state.apply(header, header.base_offset, marker)
                    offset = header.last_offset + 1
    state.next_offset = end


def snapshot_bytes(
    state: PartitionProducerState, log: PartitionLog, now_ms: int, expiration_ms: int
) -> tuple[bytes, int]:
    """Expire idle producers and encode the state; ``(data, offset)`` for `write_snapshot`."""
    state.expire(now_ms, expiration_ms)
    state.snapshot_segment_base = log.active_segment_base
    return encode_snapshot(state), state.next_offset


def delete_snapshots_after(directory: Path, offset: int) -> None:
    """Remove the snapshots beyond ``offset`` (all of them for -1): the log was cut there, and
    what it holds past ``offset`` from now on is other data."""
    for at, path in snapshot_files(directory):
        if at > offset:
            path.unlink(missing_ok=True)
