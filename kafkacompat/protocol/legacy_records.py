"""Legacy message sets (magic 0 and 1), sans-IO: parsing, and conversion to a v2 batch on append.

Old clients (Produce v0-v2) send these; nested compressed wrappers are flattened, CRC32 checked.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import DEFAULT_MAX_DECOMPRESSED, Codec, decompress
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import (
    COMPRESSION_MASK,
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    Buffer,
    corrupt,
    invalid,
)

_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
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
        raise corrupt("truncated legacy message")
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        return None, pos
    if pos + n > end:
        raise corrupt("truncated legacy message field")
    return bytes(buf[pos : pos + n]), pos + n


def _iter_legacy(buf: Buffer, max_size: int, nested: bool) -> Iterator[LegacyMessage]:
    end, pos = len(buf), 0
    while pos < end:
        if end - pos < _LEGACY_PREFIX.size:
            raise corrupt("truncated legacy message header")
        offset, size, crc, magic, attrs = _LEGACY_PREFIX.unpack_from(buf, pos)
        msg_end = pos + LOG_OVERHEAD + size
        if magic not in (0, 1) or size < (14 if magic == 0 else 22) or msg_end > end:
            raise corrupt("bad legacy message length or magic")
        if zlib.crc32(memoryview(buf)[pos + 16 : msg_end]) != crc:
            raise corrupt("legacy message CRC mismatch")
        p = pos + _LEGACY_PREFIX.size
        timestamp = NO_TIMESTAMP
        if magic == 1:
            (timestamp,) = _I64.unpack_from(buf, p)
            p += 8
        key, p = _legacy_bytes(buf, p, msg_end)
        value, p = _legacy_bytes(buf, p, msg_end)
        if p != msg_end:
            raise corrupt("legacy message size does not match its fields")
        codec = attrs & COMPRESSION_MASK
        if codec == Codec.NONE:
            yield LegacyMessage(offset, magic, attrs, timestamp, key, value)
        elif nested or value is None:
            raise corrupt("nested or empty compressed legacy message")
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


def legacy_to_v2(
    buf: Buffer, *, max_message_bytes: int, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
) -> bytes:
    """Convert a v0/v1 message set into one v2 batch (base offset 0, codec of the first wrapper).

    Each top-level legacy message larger than ``max_message_bytes`` raises MESSAGE_TOO_LARGE;
    keys and values adding up to more than ``max_decompressed`` bytes (many compressed wrappers
    each inflating within the per-wrapper bound) raise CORRUPT_MESSAGE.
    """
    end, pos, codec = len(buf), 0, Codec.NONE
    while pos + LOG_OVERHEAD <= end:
        (size,) = _I32.unpack_from(buf, pos + 8)
        if size + LOG_OVERHEAD > max_message_bytes:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"message of {size} bytes")
        if codec == Codec.NONE and pos + 18 <= end:
            codec = Codec(buf[pos + 17] & COMPRESSION_MASK) if buf[pos + 17] & 7 <= 4 else codec
        pos += LOG_OVERHEAD + max(size, 0)
    messages, total = [], 0
    for message in iter_legacy_messages(buf, max_size=max_decompressed):
        total += len(message.key or b"") + len(message.value or b"")
        if total > max_decompressed:
            raise corrupt(f"legacy message set inflates past {max_decompressed} bytes")
        messages.append(message)
    if not messages:
        raise invalid("no messages")
    records = [Record(i, m.timestamp, m.key, m.value) for i, m in enumerate(messages)]
    return encode_batch(records, base_offset=0, codec=codec)
