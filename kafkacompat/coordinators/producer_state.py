"""Idempotent producer state per partition: sequence checks, duplicate detection, snapshots.

Each partition keeps, per producer id, the current epoch and the sequence and offset ranges of
the last five batches appended. Only batch headers are looked at, never records.

Durability follows Kafka's log: the state is a function of the log's batch headers, so it is
rebuilt by replaying headers. ``<offset>.snapshot`` files in the partition directory hold the
state as of ``offset`` (written on a segment roll and on clean shutdown); opening loads the
newest snapshot not beyond the log end and replays the headers after it. Snapshots beyond the
log end (their data was lost in a crash) are deleted, so they can never be trusted later.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c

from kafkacompat.coordinators.control_records import ABORT_MARKER, marker_type
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.records import BatchHeader, iter_batches
from kafkacompat.storage.fsutil import atomic_write
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.txn_index import AbortedTxn

__all__ = [
    "BatchMetadata",
    "PartitionProducerState",
    "ProducerEntry",
    "ProducerStateManager",
    "batch_headers",
    "decode_snapshot",
    "encode_snapshot",
    "in_sequence",
    "last_sequence",
]

logger = logging.getLogger("kafkacompat.producer_state")

MAX_SEQUENCE = 2**31 - 1
NO_PRODUCER_EPOCH = -1
#: How many recent batches per producer are remembered for duplicate detection (Kafka's value;
#: clients cap in-flight requests per connection at 5 for idempotence).
BATCHES_RETAINED = 5
#: Kafka's default ``producer.id.expiration.ms``: producers idle this long are forgotten.
PRODUCER_ID_EXPIRATION_MS = 86_400_000
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 2
_REPLAY_CHUNK = 1 << 20

_SNAPSHOT_MAGIC = b"KCPS"
_SNAPSHOT_VERSION = 2
_ONGOING = struct.Struct(">qq")  # producer id, first offset of its open transaction
_SNAPSHOT_HEADER = struct.Struct(">4sHIqI")  # magic, version, crc32c of the rest, offset, count
_ENTRY = struct.Struct(">qhqB")  # producer id, epoch, last timestamp, batch count
_BATCH = struct.Struct(">iiqq")  # first sequence, last sequence, first offset, last offset


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """The sequence of a batch's last record; sequences wrap from 2**31-1 to 0."""
    return (base_sequence + last_offset_delta) % (MAX_SEQUENCE + 1)


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == MAX_SEQUENCE)


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    """What a partition remembers of one producer id."""

    producer_id: int
    epoch: int = NO_PRODUCER_EPOCH
    batches: list[BatchMetadata] = field(default_factory=list)
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.producer_id, self.epoch, list(self.batches), self.last_timestamp)

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def add_batch(self, epoch: int, batch: BatchMetadata | None, timestamp: int) -> None:
        """Record an appended batch (None: a control batch, which only moves the epoch)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches.clear()
        if batch is not None:
            self.batches.append(batch)
            del self.batches[:-BATCHES_RETAINED]
        self.last_timestamp = max(self.last_timestamp, timestamp)


def batch_headers(records: bytes | bytearray | memoryview | None) -> list[BatchHeader]:
    """Headers of a v2 record set ([] for a legacy v0/v1 set or one whose framing is broken:
    storage rejects the latter with the right error)."""
    if not records or len(records) <= 16 or records[16] != 2:
        return []
    try:
        return [header for _, header in iter_batches(records)]
    except KafkaError:
        return []


class PartitionProducerState:
    """Producer entries of one partition, valid for the log up to ``next_offset``.

    ``ongoing`` maps producers with an open transaction to its first offset; a control batch
    ends it, and an abort is reported to ``on_abort`` (the partition's aborted-txn index).
    """

    def __init__(self, next_offset: int = 0) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}
        self.on_abort: Callable[[AbortedTxn], None] | None = None
        self.next_offset = next_offset
        #: Base offset of the active segment when the last snapshot was taken.
        self.snapshot_segment_base = -1

    def check(self, headers: Sequence[BatchHeader]) -> BatchMetadata | None:
        """Validate a produced record set against the state, changing nothing.

        Returns the original batch when the set retries one of a producer's recent batches
        (Kafka then answers with that batch's offsets and appends nothing). Raises
        INVALID_PRODUCER_EPOCH for an epoch older than the producer's current one and
        OUT_OF_ORDER_SEQUENCE_NUMBER for a sequence gap. An unknown producer may start at any
        sequence, as in Kafka since KIP-360: its state may have expired or been removed with
        the log by retention.
        """
        scratch: dict[int, ProducerEntry] = {}
        for header in headers:
            pid = header.producer_id
            if pid < 0 or header.is_control:
                continue
            entry = scratch.get(pid)
            if entry is None:
                known = self.entries.get(pid)
                entry = scratch[pid] = known.copy() if known else ProducerEntry(pid)
            epoch, first = header.producer_epoch, header.base_sequence
            last = last_sequence(first, header.last_offset_delta)
            duplicate = entry.find_duplicate(epoch, first, last)
            if duplicate is not None:
                return duplicate
            if epoch < entry.epoch:
                raise KafkaError(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"producer {pid} epoch {epoch} is older than the current epoch {entry.epoch}",
                )
            if epoch != entry.epoch:
                if first != 0 and entry.epoch != NO_PRODUCER_EPOCH:
                    raise KafkaError(
                        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                        f"producer {pid} new epoch {epoch} must start at sequence 0, not {first}",
                    )
            elif entry.batches and not in_sequence(entry.last_seq, first):
                raise KafkaError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"producer {pid} epoch {epoch}: sequence {first} after {entry.last_seq}",
                )
            entry.add_batch(epoch, BatchMetadata(first, last, -1, -1), header.max_timestamp)
        return None

    def first_unstable_offset(self) -> int | None:
        """First offset of the earliest open transaction (None: none is open)."""
        return min(self.ongoing.values()) if self.ongoing else None

    def apply(self, header: BatchHeader, first_offset: int, marker: int = -1) -> None:
        """Record a batch appended at ``first_offset`` (no checks: the log is the truth);
        ``marker`` is the control type of a control batch."""
        pid = header.producer_id
        if pid >= 0 and header.is_transactional:
            if not header.is_control:
                self.ongoing.setdefault(pid, first_offset)
            else:
                started = self.ongoing.pop(pid, None)
                if started is not None and marker == ABORT_MARKER and self.on_abort is not None:
                    unstable = self.first_unstable_offset()
                    lso = first_offset + 1 if unstable is None else unstable
                    self.on_abort(AbortedTxn(pid, started, first_offset, lso))
        if pid >= 0:
            entry = self.entries.get(pid)
            if entry is None:
                entry = self.entries[pid] = ProducerEntry(pid)
            batch = None
            if not header.is_control and header.base_sequence >= 0:
                first = header.base_sequence
                batch = BatchMetadata(
                    first,
                    last_sequence(first, header.last_offset_delta),
                    first_offset,
                    first_offset + header.last_offset_delta,
                )
            entry.add_batch(header.producer_epoch, batch, header.max_timestamp)
        self.next_offset = max(self.next_offset, first_offset + header.last_offset_delta + 1)

    def applied(self, headers: Iterable[BatchHeader], base_offset: int, next_offset: int) -> None:
        """Record a record set appended from ``base_offset``; the log now ends at ``next_offset``."""
        offset = base_offset
        for header in headers:
            self.apply(header, offset)
            offset += header.last_offset_delta + 1
        self.next_offset = next_offset

    def expire(self, now_ms: int, max_idle_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        """Forget producers whose last batch is older than ``max_idle_ms``."""
        cutoff = now_ms - max_idle_ms
        idle = [p for p, e in self.entries.items() if e.last_timestamp < cutoff]
        for pid in [p for p in idle if p not in self.ongoing]:
            del self.entries[pid]


# --- snapshots ----------------------------------------------------------------------------------


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


class ProducerStateManager:
    """The producer state of every partition, loaded on a partition's first produce."""

    def __init__(self, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self._states: dict[tuple[str, int], PartitionProducerState] = {}
        self.expiration_ms = expiration_ms

    def loaded(self, topic: str, partition: int) -> PartitionProducerState | None:
        return self._states.get((topic, partition))

    def is_current(self, topic: str, partition: int, log: PartitionLog) -> bool:
        """True when the state is loaded and covers exactly the log (no replay needed)."""
        return self.current(topic, partition, log) is not None

    def current(
        self, topic: str, partition: int, log: PartitionLog
    ) -> PartitionProducerState | None:
        """The state when it is loaded and covers exactly the log, else None (see `state_for`)."""
        state = self._states.get((topic, partition))
        if state is not None and state.next_offset == log.log_end_offset:
            return state
        return None

    def state_for(self, topic: str, partition: int, log: PartitionLog) -> PartitionProducerState:
        """Load the state or bring it up to the log end (slow: reads the log; run it off the
        loop unless ``is_current``)."""
        key = (topic, partition)
        state = self._states.get(key)
        if state is None or state.next_offset > log.log_end_offset:
            state = self._states[key] = load_state(log)
            state.snapshot_segment_base = log.active_segment_base
        elif state.next_offset < log.log_end_offset:
            replay(state, log)
        return state

    def snapshot_due(self, state: PartitionProducerState, log: PartitionLog) -> bool:
        """Kafka snapshots at every segment roll, bounding the replay after a crash."""
        return log.active_segment_base != state.snapshot_segment_base

    def snapshot_bytes(
        self, state: PartitionProducerState, log: PartitionLog, now_ms: int
    ) -> tuple[bytes, int]:
        state.expire(now_ms, self.expiration_ms)
        state.snapshot_segment_base = log.active_segment_base
        return encode_snapshot(state), state.next_offset

    def snapshot_all(self, logs: Iterable[tuple[str, int, PartitionLog]], now_ms: int) -> None:
        """On clean shutdown: snapshot every loaded partition at its log end."""
        for topic, partition, plog in logs:
            state = self._states.get((topic, partition))
            if state is None:
                continue
            try:
                state = self.state_for(topic, partition, plog)
                data, offset = self.snapshot_bytes(state, plog, now_ms)
                write_snapshot(plog.directory, data, offset)
            except (OSError, KafkaError) as exc:
                logger.warning("producer state snapshot of %s-%d failed: %s", topic, partition, exc)

    def forget_topic(self, topic: str) -> None:
        for key in [k for k in self._states if k[0] == topic]:
            del self._states[key]
