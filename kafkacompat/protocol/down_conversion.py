"""Down-conversion of stored RecordBatch v2 data to legacy message sets (magic 0 and 1).

Fetch v0-v1 answers with message format v0 and fetch v2-v3 with v1; this is the only read path
that decodes records. The rules are Kafka's:

- control batches are dropped (legacy formats have no control records);
- an uncompressed batch keeps only the records at or after the fetch offset, each written as a
  plain message with its absolute offset;
- a compressed batch keeps all its records (old consumers skip the ones before their offset) in
  one wrapper message: its offset is the last inner offset; inner offsets are relative to the
  first record under magic 1 and absolute under magic 0;
- record headers cannot be expressed and are dropped; magic 1 keeps timestamps and the
  LogAppendTime attribute bit, magic 0 has no timestamps;
- zstd has no legacy encoding: UNSUPPORTED_COMPRESSION_TYPE.

Stored data that turns out damaged is CORRUPT_MESSAGE, never another exception.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import Codec, compress, xxh32
from kafkacompat.protocol.primitives import DECODE_ERRORS
from kafkacompat.protocol.record_codec import Record, decode_batch
from kafkacompat.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    Buffer,
    TimestampType,
    corrupt,
    read_header,
)

__all__ = ["down_convert", "encode_legacy_message", "iter_complete_batches"]

_TIMESTAMP_TYPE_BIT = 0x08
_OFFSET_SIZE = struct.Struct(">qi")
_CRC = struct.Struct(">I")
_MAGIC_ATTRS = struct.Struct(">bb")
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        out += _I32.pack(-1)
    else:
        out += _I32.pack(len(data))
        out += data


def encode_legacy_message(
    offset: int,
    magic: int,
    attributes: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
) -> bytes:
    """One message of a v0/v1 message set: offset, size, CRC32 (magic..end) and body."""
    body = bytearray(_MAGIC_ATTRS.pack(magic, attributes))
    if magic == 1:
        body += _I64.pack(timestamp)
    _write_bytes(body, key)
    _write_bytes(body, value)
    crc = zlib.crc32(body)
    return _OFFSET_SIZE.pack(offset, len(body) + 4) + _CRC.pack(crc) + bytes(body)


def _legacy_compress(codec: Codec, data: bytes, magic: int) -> bytes:
    out = compress(codec, data)
    if codec == Codec.LZ4 and magic == 0 and out.startswith(_LZ4_MAGIC) and len(out) > 6:
        # Message format v0 carries the lz4 header checksum as Kafka 0.8 computed it: over the
        # frame magic as well as the descriptor (KAFKA-3160); v0 readers expect exactly that.
        flg = out[4]
        hc_pos = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
        hc = (xxh32(out[:hc_pos]) >> 8) & 0xFF
        out = out[:hc_pos] + bytes([hc]) + out[hc_pos + 1 :]
    return out


def _convert_batch(
    header: BatchHeader, records: Sequence[Record], magic: int, first_offset: int
) -> bytes:
    log_append = header.timestamp_type == TimestampType.LOG_APPEND_TIME
    ts_bit = _TIMESTAMP_TYPE_BIT if magic == 1 and log_append else 0
    codec = header.compression
    if codec == Codec.NONE:
        return b"".join(
            encode_legacy_message(r.offset, magic, ts_bit, r.timestamp, r.key, r.value)
            for r in records
            if r.offset >= first_offset
        )
    if not records:
        return b""
    base = records[0].offset
    inner = b"".join(
        encode_legacy_message(
            r.offset - base if magic == 1 else r.offset, magic, ts_bit, r.timestamp, r.key, r.value
        )
        for r in records
    )
    wrapper_ts = header.max_timestamp if log_append else max(r.timestamp for r in records)
    value = _legacy_compress(codec, inner, magic)
    return encode_legacy_message(records[-1].offset, magic, codec | ts_bit, wrapper_ts, None, value)


def iter_complete_batches(buf: Buffer) -> Iterator[tuple[int, BatchHeader]]:
    """``(position, header)`` of each whole v2 batch; a truncated trailing batch is ignored."""
    end, pos = len(buf), 0
    while end - pos >= HEADER_SIZE:
        header = read_header(buf, pos)
        if pos + header.size > end:
            return
        yield pos, header
        pos += header.batch_length + LOG_OVERHEAD


def down_convert(
    buf: Buffer, magic: int, first_offset: int, *, max_bytes: int | None = None
) -> bytes:
    """Convert concatenated v2 batches to a magic ``magic`` message set.

    Whole converted batches are kept while the total stays within ``max_bytes``; the first
    non-empty one is always kept, so a consumer can make progress.
    """
    if magic not in (0, 1):
        raise ValueError(f"cannot down-convert to magic {magic}")
    parts: list[bytes] = []
    total = 0
    for pos, header in iter_complete_batches(buf):
        if header.is_control:
            continue
        if header.compression == Codec.ZSTD:
            raise KafkaError(
                ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                "zstd-compressed batches cannot be down-converted",
            )
        if header.compression == Codec.NONE and header.last_offset < first_offset:
            continue
        try:
            _, records = decode_batch(buf, pos)
            converted = _convert_batch(header, records, magic, first_offset)
        except DECODE_ERRORS as exc:  # damaged stored data, e.g. a timestamp past int64
            raise corrupt(f"cannot down-convert the batch at offset {header.base_offset}") from exc
        if not converted:
            continue
        if parts and max_bytes is not None and total + len(converted) > max_bytes:
            break
        parts.append(converted)
        total += len(converted)
    return b"".join(parts)
