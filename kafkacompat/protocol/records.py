"""Kafka record formats, sans-IO.

The append path works on RecordBatch v2 *headers only*: validate, patch the base offset and the
partition leader epoch in place (the CRC does not cover them), optionally rewrite the batch to
LogAppendTime. Records inside a batch are decoded only on slow paths (timestamp lookup,
compaction, down-conversion, tests) by the varint record codec below, and legacy message sets
(magic 0 and 1) are converted into a v2 batch on append.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError, ProtocolError
from kafkacompat.protocol.compression import DEFAULT_MAX_DECOMPRESSED, Codec, compress, decompress
from kafkacompat.protocol.primitives import read_varlong, write_varlong

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
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


class TimestampType(IntEnum):
    """Timestamp type attribute bit of a batch."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


def _corrupt(message: str) -> KafkaError:
    return KafkaError(ErrorCode.CORRUPT_MESSAGE, message)


def _invalid(message: str) -> KafkaError:
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
        return Codec(self.attributes & COMPRESSION_MASK)

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
        raise _corrupt("truncated record batch header")
    header = BatchHeader._make(HEADER.unpack_from(buf, pos))
    if header.magic != 2:
        raise _corrupt(f"unsupported batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise _corrupt(f"batch length {header.batch_length} shorter than its header")
    return header


def iter_batches(buf: Buffer) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each batch in concatenated batches; lengths are checked."""
    end, pos = len(buf), 0
    while pos < end:
        header = read_header(buf, pos)
        if pos + header.size > end:
            raise _corrupt("truncated record batch")
        yield pos, header
        pos += header.size


def verify_crc(buf: Buffer, pos: int, header: BatchHeader) -> None:
    """Raise CORRUPT_MESSAGE unless the CRC32C over attributes..end matches."""
    view = memoryview(buf)[pos + ATTRIBUTES_OFFSET : pos + header.size]
    if crc32c(view) != header.crc:
        raise _corrupt("record batch CRC mismatch")


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
) -> PreparedAppend:
    """Validate every v2 batch in ``buf`` and patch its offsets in place (header-level work only).

    ``log_append_time_ms`` set means the topic uses LogAppendTime: each batch gets the timestamp
    type bit and that max timestamp, and its CRC is recomputed. Raises CORRUPT_MESSAGE,
    INVALID_RECORD or MESSAGE_TOO_LARGE; ``buf`` may be partly patched when it raises.
    """
    mv = memoryview(buf)
    end, pos, next_offset, count_total = len(mv), 0, base_offset, 0
    max_ts, max_ts_offset = NO_TIMESTAMP, base_offset
    batches: list[tuple[int, int, int, int]] = []
    if end == 0:
        raise _invalid("no record batches")
    unpack, pack_i64, pack_i32 = HEADER.unpack_from, _I64.pack_into, _I32.pack_into
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise _corrupt("truncated record batch header")
        _, length, _, magic, crc, attrs, lod, _, mts, pid, pepoch, bseq, count = unpack(mv, pos)
        size = length + LOG_OVERHEAD
        if magic != 2:
            raise _corrupt(f"unexpected batch magic {magic} in a v2 record set")
        if size < HEADER_SIZE or pos + size > end:
            raise _corrupt("record batch length inconsistent with the record set")
        if size > max_batch_size:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"batch of {size} bytes")
        if crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]) != crc:
            raise _corrupt("record batch CRC mismatch")
        if count <= 0 or lod != count - 1:
            raise _invalid(f"{count} records but last offset delta {lod}")
        if attrs & COMPRESSION_MASK > Codec.ZSTD:
            raise _corrupt(f"unknown compression codec {attrs & COMPRESSION_MASK}")
        if attrs & CONTROL_BIT and not allow_control:
            raise _invalid("clients may not write control batches")
        if pid < 0 and attrs & TRANSACTIONAL_BIT:
            raise _invalid("transactional batch without a producer id")
        if pid >= 0 and (pepoch < 0 or (bseq < 0 and not attrs & CONTROL_BIT)):
            raise _invalid("producer id without a producer epoch or base sequence")
        pack_i64(mv, pos, next_offset)
        pack_i32(mv, pos + LEADER_EPOCH_OFFSET, leader_epoch)
        if log_append_time_ms is not None:
            mts = log_append_time_ms
            _I16.pack_into(mv, pos + ATTRIBUTES_OFFSET, attrs | TIMESTAMP_TYPE_BIT)
            pack_i64(mv, pos + MAX_TIMESTAMP_OFFSET, mts)
            _U32.pack_into(mv, pos + CRC_OFFSET, crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]))
        batches.append((pos, size, next_offset, mts))
        if mts > max_ts:
            max_ts, max_ts_offset = mts, next_offset
        count_total += count
        next_offset += count
        pos += size
    return PreparedAppend(batches, base_offset, next_offset - 1, count_total, max_ts, max_ts_offset)


# --- records inside a batch (slow path) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One record with absolute offset and timestamp; header keys are UTF-8 strings."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


#: Record fields use zigzag varlongs (a superset of varints): the wire primitive, under the
#: name the record codec and the state store use.
write_varint = write_varlong


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Decode a zigzag varint/varlong at ``pos``; record data that is cut short is corrupt."""
    try:
        return read_varlong(buf, pos)
    except (IndexError, ProtocolError) as exc:
        raise _corrupt("truncated or overlong varint") from exc


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def _read_bytes(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise _corrupt("truncated record field")
    return bytes(buf[pos : pos + n]), pos + n


def encode_record(record: Record, base_offset: int, base_timestamp: int) -> bytes:
    """Encode one record body (length-prefixed) relative to its batch's base fields."""
    body = bytearray(b"\x00")  # attributes: unused, always 0
    write_varint(body, record.timestamp - base_timestamp)
    write_varint(body, record.offset - base_offset)
    _write_bytes(body, record.key)
    _write_bytes(body, record.value)
    write_varint(body, len(record.headers))
    for hkey, hvalue in record.headers:
        _write_bytes(body, hkey.encode())
        _write_bytes(body, hvalue)
    out = bytearray()
    write_varint(out, len(body))
    return bytes(out + body)


def decode_record(
    buf: Buffer, pos: int, base_offset: int, base_timestamp: int
) -> tuple[Record, int]:
    """Decode the record at ``pos``; return it and the position after it."""
    length, pos = read_varint(buf, pos)
    end = pos + length
    if length < 1 or end > len(buf):
        raise _corrupt("record length out of bounds")
    view = memoryview(buf)[:end]
    ts_delta, p = read_varint(view, pos + 1)
    off_delta, p = read_varint(view, p)
    key, p = _read_bytes(view, p)
    value, p = _read_bytes(view, p)
    nheaders, p = read_varint(view, p)
    if nheaders < 0 or nheaders > length:
        raise _corrupt("bad record header count")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(nheaders):
        hkey, p = _read_bytes(view, p)
        hvalue, p = _read_bytes(view, p)
        if hkey is None:
            raise _corrupt("null record header key")
        try:
            headers.append((hkey.decode(), hvalue))
        except UnicodeDecodeError:
            raise _corrupt("record header key is not UTF-8") from None
    if p != end:
        raise _corrupt("record length does not match its fields")
    record = Record(base_offset + off_delta, base_timestamp + ts_delta, key, value, tuple(headers))
    return record, end


def decode_batch(
    buf: Buffer, pos: int = 0, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> tuple[BatchHeader, list[Record]]:
    """Verify and decode the batch at ``pos`` into its records (decompressing as needed).

    Records of a LogAppendTime batch carry the batch's max timestamp, as clients see them.
    """
    header = read_header(buf, pos)
    if pos + header.size > len(buf):
        raise _corrupt("truncated record batch")
    verify_crc(buf, pos, header)
    body: Buffer = memoryview(buf)[pos + HEADER_SIZE : pos + header.size]
    if header.compression != Codec.NONE:
        body = decompress(header.compression, body, max_size=max_size)
    records: list[Record] = []
    p = 0
    for _ in range(header.records_count):
        record, p = decode_record(body, p, header.base_offset, header.base_timestamp)
        records.append(record)
    if p != len(body):
        raise _corrupt("record count does not match the batch body")
    if header.timestamp_type == TimestampType.LOG_APPEND_TIME:
        records = [
            Record(r.offset, header.max_timestamp, r.key, r.value, r.headers) for r in records
        ]
    return header, records


def encode_batch(
    records: Sequence[Record],
    *,
    base_offset: int | None = None,
    codec: int = Codec.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Build one v2 batch from ``records`` (absolute offsets; gaps allowed, order required)."""
    if not records:
        raise ValueError("a batch needs at least one record")
    base = records[0].offset if base_offset is None else base_offset
    base_ts = records[0].timestamp
    body = b"".join(encode_record(r, base, base_ts) for r in records)
    if codec != Codec.NONE:
        body = compress(codec, body)
    attrs = codec | (timestamp_type << 3)
    attrs |= (TRANSACTIONAL_BIT if transactional else 0) | (CONTROL_BIT if control else 0)
    max_ts = max(r.timestamp for r in records)
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out, 0, base, HEADER_SIZE - LOG_OVERHEAD + len(body), partition_leader_epoch, 2, 0,
        attrs, records[-1].offset - base, base_ts, max_ts, producer_id, producer_epoch,
        base_sequence, len(records),
    )  # fmt: skip
    out += body
    _U32.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)


def recompress_batches(buf: Buffer, codec: int) -> bytes:
    """Re-encode every batch not already compressed with ``codec`` (``compression.type``)."""
    out: list[bytes] = []
    for pos, header in iter_batches(buf):
        if header.compression == codec:
            out.append(bytes(buf[pos : pos + header.size]))
            continue
        _, records = decode_batch(buf, pos)
        out.append(
            encode_batch(
                records,
                base_offset=header.base_offset,
                codec=codec,
                timestamp_type=header.timestamp_type,
                producer_id=header.producer_id,
                producer_epoch=header.producer_epoch,
                base_sequence=header.base_sequence,
                transactional=header.is_transactional,
                control=header.is_control,
                partition_leader_epoch=header.partition_leader_epoch,
            )
        )
    return b"".join(out)


# --- legacy message sets (magic 0 and 1) ------------------------------------------------------

_LEGACY_PREFIX = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_LEGACY_TS_TYPE_BIT = 0x08


@dataclass(frozen=True, slots=True)
class LegacyMessage:
    """One message of a v0/v1 message set (inner messages of compressed wrappers flattened)."""

    offset: int
    magic: int
    attributes: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def _legacy_bytes(buf: Buffer, pos: int, end: int) -> tuple[bytes | None, int]:
    if pos + 4 > end:
        raise _corrupt("truncated legacy message")
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        return None, pos
    if pos + n > end:
        raise _corrupt("truncated legacy message field")
    return bytes(buf[pos : pos + n]), pos + n


def _iter_legacy(buf: Buffer, max_size: int, nested: bool) -> Iterator[LegacyMessage]:
    end, pos = len(buf), 0
    while pos < end:
        if end - pos < _LEGACY_PREFIX.size:
            raise _corrupt("truncated legacy message header")
        offset, size, crc, magic, attrs = _LEGACY_PREFIX.unpack_from(buf, pos)
        msg_end = pos + LOG_OVERHEAD + size
        if magic not in (0, 1) or size < (14 if magic == 0 else 22) or msg_end > end:
            raise _corrupt("bad legacy message length or magic")
        if zlib.crc32(memoryview(buf)[pos + 16 : msg_end]) != crc:
            raise _corrupt("legacy message CRC mismatch")
        p = pos + _LEGACY_PREFIX.size
        timestamp = NO_TIMESTAMP
        if magic == 1:
            (timestamp,) = _I64.unpack_from(buf, p)
            p += 8
        key, p = _legacy_bytes(buf, p, msg_end)
        value, p = _legacy_bytes(buf, p, msg_end)
        if p != msg_end:
            raise _corrupt("legacy message size does not match its fields")
        codec = attrs & COMPRESSION_MASK
        if codec == Codec.NONE:
            yield LegacyMessage(offset, magic, attrs, timestamp, key, value)
        elif nested or value is None:
            raise _corrupt("nested or empty compressed legacy message")
        else:
            inner = decompress(codec, value, magic=magic, max_size=max_size)
            for m in _iter_legacy(inner, max_size, True):
                if magic == 1 and attrs & _LEGACY_TS_TYPE_BIT:
                    m = LegacyMessage(m.offset, m.magic, attrs, timestamp, m.key, m.value)
                yield m
        pos = msg_end


def iter_legacy_messages(
    buf: Buffer, *, max_size: int = DEFAULT_MAX_DECOMPRESSED
) -> Iterator[LegacyMessage]:
    """Yield the messages of a v0/v1 message set, checking CRC32 and lengths."""
    return _iter_legacy(buf, max_size, False)


def legacy_to_v2(buf: Buffer, *, max_message_bytes: int) -> bytes:
    """Convert a v0/v1 message set into one v2 batch (base offset 0, codec of the first wrapper).

    Each top-level legacy message larger than ``max_message_bytes`` raises MESSAGE_TOO_LARGE.
    """
    end, pos, codec = len(buf), 0, Codec.NONE
    while pos + LOG_OVERHEAD <= end:
        (size,) = _I32.unpack_from(buf, pos + 8)
        if size + LOG_OVERHEAD > max_message_bytes:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"message of {size} bytes")
        if codec == Codec.NONE and pos + 18 <= end:
            codec = Codec(buf[pos + 17] & COMPRESSION_MASK) if buf[pos + 17] & 7 <= 4 else codec
        pos += LOG_OVERHEAD + max(size, 0)
    messages = list(iter_legacy_messages(buf))
    if not messages:
        raise _invalid("no messages")
    records = [Record(i, m.timestamp, m.key, m.value) for i, m in enumerate(messages)]
    return encode_batch(records, base_offset=0, codec=codec)
