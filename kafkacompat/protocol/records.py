"""Kafka record formats, sans-IO.

The append path validates RecordBatch v2 headers here and the records inside through the
validator it is given (`record_validation`, which reads varints in place), then patches the base
offset and the partition leader epoch in place (the CRC does not cover them), and where needed
the max timestamp and the LogAppendTime bit. Records are decoded into objects only on slow paths,
by `record_codec`. Legacy message sets (magic 0 and 1) are in `legacy_records`. A follower's
append checks the leader's batches and patches nothing (`prepare_replicated`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import Codec

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_LAST_CODEC = int(Codec.ZSTD)  # the highest codec id
#: batchLength and producerId of a batch header, read from its offset 8.
_LENGTH_AND_PRODUCER_ID = struct.Struct(">i31xq")


class TimestampType(IntEnum):
    """Timestamp type attribute bit of a batch."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


def corrupt(message: str) -> KafkaError:
    return KafkaError(ErrorCode.CORRUPT_MESSAGE, message)


def invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_RECORD, message)


class BatchHeader(NamedTuple):
    """The 61-byte RecordBatch v2 header, field for field."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Whole batch size in bytes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> Codec:
        """The codec; CORRUPT_MESSAGE for an id no codec has (damaged data)."""
        codec = self.attributes & COMPRESSION_MASK
        if codec > _LAST_CODEC:
            raise corrupt(f"unknown compression codec {codec}")
        return Codec(codec)

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType((self.attributes & TIMESTAMP_TYPE_BIT) >> 3)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)


Buffer = bytes | bytearray | memoryview


def read_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Parse the batch header at ``pos``; CORRUPT_MESSAGE if it is truncated or not v2."""
    if len(buf) - pos < HEADER_SIZE:
        raise corrupt("truncated record batch header")
    header = BatchHeader._make(HEADER.unpack_from(buf, pos))
    if header.magic != 2:
        raise corrupt(f"unsupported batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise corrupt(f"batch length {header.batch_length} shorter than its header")
    return header


def iter_batches(buf: Buffer) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each batch in concatenated batches; lengths are checked."""
    end, pos = len(buf), 0
    while pos < end:
        header = read_header(buf, pos)
        if pos + header.size > end:
            raise corrupt("truncated record batch")
        yield pos, header
        pos += header.size


def has_producer_id(buf: Buffer) -> bool:
    """Whether some batch of a v2 record set carries a producer id (idempotent or transactional).

    False for a legacy v0/v1 set (no producer ids). Reads two header fields per batch and
    validates nothing (storage does): batch lengths that do not add up to the set answer True,
    leaving the verdict to the full header parse.
    """
    end = len(buf)
    if end <= MAGIC_OFFSET or buf[MAGIC_OFFSET] != 2:
        return False
    pos = 0
    while pos < end:
        if end - pos < HEADER_SIZE:
            return True
        length, producer_id = _LENGTH_AND_PRODUCER_ID.unpack_from(buf, pos + 8)
        if producer_id >= 0 or length < HEADER_SIZE - LOG_OVERHEAD:
            return True
        pos += length + LOG_OVERHEAD
    return pos != end


def verify_crc(buf: Buffer, pos: int, header: BatchHeader) -> None:
    """Raise CORRUPT_MESSAGE unless the CRC32C over attributes..end matches."""
    view = memoryview(buf)[pos + ATTRIBUTES_OFFSET : pos + header.size]
    if crc32c(view) != header.crc:
        raise corrupt("record batch CRC mismatch")


#: Record-level check of the batch at a position of a buffer: returns the largest record
#: timestamp or raises (`record_validation.validate_batch` with its rules bound).
BatchValidator = Callable[[memoryview, int, BatchHeader], int]


@dataclass(slots=True)
class PreparedAppend:
    """Offsets assigned to a validated record set; ``batches`` holds per batch
    ``(position, size, base_offset, max_timestamp)``."""

    batches: list[tuple[int, int, int, int]]
    first_offset: int
    last_offset: int
    record_count: int
    max_timestamp: int
    offset_of_max_timestamp: int


def assign_offsets(
    buf: bytearray | memoryview,
    *,
    base_offset: int,
    leader_epoch: int,
    log_append_time_ms: int | None,
    max_batch_size: int,
    allow_control: bool = False,
    validate: BatchValidator | None = None,
) -> PreparedAppend:
    """Validate every v2 batch in ``buf`` and patch its offsets in place.

    Header-level checks first (sizes, magic, CRC, count, attributes); then ``validate``, when
    given, checks the records of the batch (see `record_validation`) and returns their largest
    timestamp, which becomes the batch's max timestamp when the header says otherwise (Kafka
    sets it from the records too). ``log_append_time_ms`` set means the topic uses
    LogAppendTime: each batch gets the timestamp type bit and that max timestamp. A changed
    max timestamp means a recomputed CRC. Raises CORRUPT_MESSAGE, INVALID_RECORD,
    MESSAGE_TOO_LARGE or what ``validate`` raises; ``buf`` may be partly patched when it raises.
    """
    mv = memoryview(buf)
    end, pos, next_offset, count_total = len(mv), 0, base_offset, 0
    max_ts, max_ts_offset = NO_TIMESTAMP, base_offset
    batches: list[tuple[int, int, int, int]] = []
    if end == 0:
        raise invalid("no record batches")
    unpack, pack_i64, pack_i32 = HEADER.unpack_from, _I64.pack_into, _I32.pack_into
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise corrupt("truncated record batch header")
        fields = unpack(mv, pos)
        _, length, _, magic, crc, attrs, lod, _, mts, pid, pepoch, bseq, count = fields
        size = length + LOG_OVERHEAD
        if magic != 2:
            raise corrupt(f"unexpected batch magic {magic} in a v2 record set")
        if size < HEADER_SIZE or pos + size > end:
            raise corrupt("record batch length inconsistent with the record set")
        if size > max_batch_size:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"batch of {size} bytes")
        if crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]) != crc:
            raise corrupt("record batch CRC mismatch")
        if count <= 0 or lod != count - 1:
            raise invalid(f"{count} records but last offset delta {lod}")
        if attrs & COMPRESSION_MASK > _LAST_CODEC:
            raise corrupt(f"unknown compression codec {attrs & COMPRESSION_MASK}")
        if attrs & CONTROL_BIT and not allow_control:
            raise invalid("clients may not write control batches")
        if pid < 0 and attrs & TRANSACTIONAL_BIT:
            raise invalid("transactional batch without a producer id")
        if pid >= 0 and (pepoch < 0 or (bseq < 0 and not attrs & CONTROL_BIT)):
            raise invalid("producer id without a producer epoch or base sequence")
        new_max_ts = False
        if validate is not None:
            records_max_ts = validate(mv, pos, BatchHeader._make(fields))
            new_max_ts = records_max_ts != mts
            mts = records_max_ts
        pack_i64(mv, pos, next_offset)
        pack_i32(mv, pos + LEADER_EPOCH_OFFSET, leader_epoch)
        if log_append_time_ms is not None:
            mts, new_max_ts = log_append_time_ms, True
            _I16.pack_into(mv, pos + ATTRIBUTES_OFFSET, attrs | TIMESTAMP_TYPE_BIT)
        if new_max_ts:
            pack_i64(mv, pos + MAX_TIMESTAMP_OFFSET, mts)
            _U32.pack_into(mv, pos + CRC_OFFSET, crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]))
        batches.append((pos, size, next_offset, mts))
        if mts > max_ts:
            max_ts, max_ts_offset = mts, next_offset
        count_total += count
        next_offset += count
        pos += size
    return PreparedAppend(batches, base_offset, next_offset - 1, count_total, max_ts, max_ts_offset)


def prepare_replicated(buf: Buffer) -> PreparedAppend:
    """Validate a v2 record set as a partition leader stored it, patching nothing.

    Checks sizes, magic, CRC and codec of each batch, and that offsets increase from batch to
    batch. Compaction on the leader may have left gaps between batches, fewer records than the
    offset range (``lastOffsetDelta`` above ``count - 1``) or none at all (an emptied batch kept
    for its producer state); control batches are allowed. Raises CORRUPT_MESSAGE, or
    INVALID_RECORD for an empty set. ``last_offset`` is that of the last batch.
    """
    mv = memoryview(buf)
    end, pos, previous_last, count_total = len(mv), 0, -1, 0
    max_ts, max_ts_offset = NO_TIMESTAMP, -1
    batches: list[tuple[int, int, int, int]] = []
    if end == 0:
        raise invalid("no record batches")
    unpack = HEADER.unpack_from
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise corrupt("truncated record batch header")
        base, length, _, magic, crc, attrs, lod, _, mts, _, _, _, count = unpack(mv, pos)
        size = length + LOG_OVERHEAD
        if magic != 2:
            raise corrupt(f"unexpected batch magic {magic} in a v2 record set")
        if size < HEADER_SIZE or pos + size > end:
            raise corrupt("record batch length inconsistent with the record set")
        if crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]) != crc:
            raise corrupt("record batch CRC mismatch")
        if count < 0 or lod < max(count - 1, 0):
            raise corrupt(f"{count} records but last offset delta {lod}")
        if attrs & COMPRESSION_MASK > _LAST_CODEC:
            raise corrupt(f"unknown compression codec {attrs & COMPRESSION_MASK}")
        if base <= previous_last:
            raise corrupt(f"batch at offset {base} does not follow offset {previous_last}")
        batches.append((pos, size, base, mts))
        if mts > max_ts:
            max_ts, max_ts_offset = mts, base
        count_total += count
        previous_last = base + lod
        pos += size
    first = batches[0][2]
    max_ts_offset = first if max_ts_offset < 0 else max_ts_offset
    return PreparedAppend(batches, first, previous_last, count_total, max_ts, max_ts_offset)
