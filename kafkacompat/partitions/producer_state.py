"""Idempotent producer state of one partition: sequence checks and duplicate detection.

Each partition keeps, per producer id, the current epoch and the sequence and offset ranges of
the last five batches appended, and the first offset of each open transaction. Only batch
headers are looked at, never records. The state is a function of the log's batch headers, so it
is rebuilt by replaying them (see `producer_snapshots`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.control_records import ABORT_MARKER
from kafkacompat.protocol.records import BatchHeader, iter_batches
from kafkacompat.storage.txn_index import AbortedTxn

__all__ = [
    "BatchMetadata",
    "PartitionProducerState",
    "ProducerEntry",
    "batch_headers",
    "in_sequence",
    "last_sequence",
]

MAX_SEQUENCE = 2**31 - 1
NO_PRODUCER_EPOCH = -1
#: How many recent batches per producer are remembered for duplicate detection (Kafka's value;
#: clients cap in-flight requests per connection at 5 for idempotence).
BATCHES_RETAINED = 5
#: Kafka's default ``producer.id.expiration.ms``: producers idle this long are forgotten.
PRODUCER_ID_EXPIRATION_MS = 86_400_000


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
