"""The batch-level tools of the log cleaner: read a segment file batch by batch, list the keys
of a batch's records without building them, build the batch that keeps some of its records.

A batch that loses records is rebuilt with its base offset, last offset delta, producer fields,
attributes and codec unchanged; one that loses them all but must stay (the last batch of a
producer) becomes an empty batch: its header alone, with a record count of 0.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Container, Iterator
from pathlib import Path

from crc32c import crc32c

from kafkacompat.protocol.compression import Codec, decompress
from kafkacompat.protocol.record_codec import decode_batch, read_varint, rebatch
from kafkacompat.protocol.records import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_MASK,
    CRC_OFFSET,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    corrupt,
    read_header,
)

__all__ = [
    "READ_CHUNK",
    "RecordKey",
    "empty_batch",
    "key_digest",
    "read_batches",
    "rebuild_batch",
    "record_keys",
]

#: Bytes read from a segment file at a time (a larger batch is read whole).
READ_CHUNK = 1 << 20
_U32 = struct.Struct(">I")

#: ``(offset, key, tombstone)`` of one record; the key is a view into the batch body.
RecordKey = tuple[int, memoryview | None, bool]


def key_digest(key: memoryview | bytes) -> bytes:
    """The 16-byte digest that stands for a key in the offset map."""
    return hashlib.blake2b(key, digest_size=16).digest()


def read_batches(
    path: Path, size: int, start: int = 0
) -> Iterator[tuple[int, BatchHeader, memoryview]]:
    """``(position, header, batch bytes)`` of the batches of a segment file up to ``size``.

    The file is read with a descriptor of its own in chunks of `READ_CHUNK`; a batch that
    does not fit the rest of the file is damage (CORRUPT_MESSAGE), as closed segments were
    verified when written or recovered.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pos, buf, buf_start = start, memoryview(b""), start
        while pos < size:
            rel = pos - buf_start
            if rel + HEADER_SIZE > len(buf):
                buf, buf_start, rel = memoryview(os.pread(fd, READ_CHUNK, pos)), pos, 0
            header = read_header(buf, rel)
            end = pos + header.size
            if end > size:
                raise corrupt(f"batch at {pos} of {path.name} runs past the segment end")
            if rel + header.size > len(buf):
                buf = memoryview(os.pread(fd, max(READ_CHUNK, header.size), pos))
                buf_start, rel = pos, 0
                if len(buf) < header.size:
                    raise corrupt(f"short read of the batch at {pos} of {path.name}")
            yield pos, header, buf[rel : rel + header.size]
            pos = end
    finally:
        os.close(fd)


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint; the one-byte case without a call."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    return read_varint(buf, pos)


def record_keys(batch: memoryview, header: BatchHeader) -> Iterator[RecordKey]:
    """Offset, key and whether the value is null of each record, reading only the fields
    before the value (the body is decompressed first when the batch is compressed)."""
    body: bytes | memoryview = batch[HEADER_SIZE:]
    codec = header.attributes & COMPRESSION_MASK
    if codec != Codec.NONE:
        body = memoryview(decompress(header.compression, body))
    base, pos, end = header.base_offset, 0, len(body)
    try:
        for _ in range(header.records_count):
            length, pos = _varint(body, pos)
            record_end = pos + length
            _, p = _varint(body, pos + 1)  # after attributes: timestamp delta
            delta, p = _varint(body, p)
            key_len, p = _varint(body, p)
            key = None
            if key_len >= 0:
                key = memoryview(body)[p : p + key_len]
                p += key_len
            value_len, p = _varint(body, p)
            if length < 1 or record_end > end or p > record_end:
                raise corrupt("record length out of bounds")
            yield base + delta, key, value_len < 0
            pos = record_end
    except IndexError as exc:
        raise corrupt("truncated record") from exc


def rebuild_batch(batch: memoryview, header: BatchHeader, keep: Container[int]) -> bytes:
    """The batch with only the records whose offset is in ``keep`` (at least one), offsets,
    producer fields, attributes and codec unchanged."""
    _, records = decode_batch(batch)
    kept = [r for r in records if r.offset in keep]
    return rebatch(
        header, kept, codec=header.compression, last_offset_delta=header.last_offset_delta
    )


def empty_batch(header: BatchHeader) -> bytes:
    """The header of ``header``'s batch with no records: same offsets, timestamps, producer
    fields and attribute bits, uncompressed (there is nothing to compress)."""
    out = bytearray(HEADER_SIZE)
    HEADER.pack_into(
        out, 0, header.base_offset, HEADER_SIZE - LOG_OVERHEAD, header.partition_leader_epoch,
        2, 0, header.attributes & ~COMPRESSION_MASK, header.last_offset_delta,
        header.base_timestamp, header.max_timestamp, header.producer_id, header.producer_epoch,
        header.base_sequence, 0,
    )  # fmt: skip
    _U32.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)
