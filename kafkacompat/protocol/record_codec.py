"""The records inside a v2 batch as objects, for slow paths: timestamp lookup, compaction,
down-conversion, building batches (control markers, tests). Damaged data is CORRUPT_MESSAGE."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from crc32c import crc32c

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.compression import DEFAULT_MAX_DECOMPRESSED, Codec, compress, decompress
from kafkacompat.protocol.primitives import read_varlong, write_varlong
from kafkacompat.protocol.records import (
    ATTRIBUTES_OFFSET,
    CONTROL_BIT,
    CRC_OFFSET,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    NO_PRODUCER_ID,
    TRANSACTIONAL_BIT,
    BatchHeader,
    Buffer,
    TimestampType,
    corrupt,
    iter_batches,
    read_header,
    verify_crc,
)

_U32 = struct.Struct(">I")

__all__ = [
    "Record",
    "decode_batch",
    "decode_record",
    "encode_batch",
    "encode_record",
    "read_varint",
    "recompress_batches",
    "write_varint",
]


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
        raise corrupt("truncated or overlong varint") from exc


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
        raise corrupt("truncated record field")
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
        raise corrupt("record length out of bounds")
    view = memoryview(buf)[:end]
    ts_delta, p = read_varint(view, pos + 1)
    off_delta, p = read_varint(view, p)
    key, p = _read_bytes(view, p)
    value, p = _read_bytes(view, p)
    nheaders, p = read_varint(view, p)
    if nheaders < 0 or nheaders > length:
        raise corrupt("bad record header count")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(nheaders):
        hkey, p = _read_bytes(view, p)
        hvalue, p = _read_bytes(view, p)
        if hkey is None:
            raise corrupt("null record header key")
        try:
            headers.append((hkey.decode(), hvalue))
        except UnicodeDecodeError:
            raise corrupt("record header key is not UTF-8") from None
    if p != end:
        raise corrupt("record length does not match its fields")
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
        raise corrupt("truncated record batch")
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
        raise corrupt("record count does not match the batch body")
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
    last_offset_delta: int | None = None,
) -> bytes:
    """Build one v2 batch from ``records`` (absolute offsets; gaps allowed, order required).

    ``last_offset_delta`` overrides the delta of the last record's offset, for a batch that
    keeps the offset range of the batch it was filtered from (compaction: the producer's
    sequence range follows from it).
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    base = records[0].offset if base_offset is None else base_offset
    delta = records[-1].offset - base
    if last_offset_delta is not None:
        if last_offset_delta < delta:
            raise ValueError(f"last offset delta {last_offset_delta} below the records' {delta}")
        delta = last_offset_delta
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
        attrs, delta, base_ts, max_ts, producer_id, producer_epoch,
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
        out.append(rebatch(header, records, codec=codec))
    return b"".join(out)


def rebatch(
    header: BatchHeader,
    records: Sequence[Record],
    *,
    codec: int,
    last_offset_delta: int | None = None,
) -> bytes:
    """``records`` as a batch like the one ``header`` describes: the same base offset, producer
    fields, attributes and leader epoch, compressed with ``codec``."""
    return encode_batch(
        records,
        base_offset=header.base_offset,
        last_offset_delta=last_offset_delta,
        codec=codec,
        timestamp_type=header.timestamp_type,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        transactional=header.is_transactional,
        control=header.is_control,
        partition_leader_epoch=header.partition_leader_epoch,
    )
