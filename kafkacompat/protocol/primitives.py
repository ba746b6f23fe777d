"""Wire primitives: fixed-width structs, varints, (compact) strings, bytes, arrays, tagged fields.

Readers take ``(buf: memoryview, pos: int)`` and return ``(value, new_pos)``; writers append to a
bytearray. Every reader checks lengths against the buffer so a short or lying frame raises
`ProtocolError` (or `struct.error`), never reads past the end.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from pathlib import PurePath
from typing import Protocol

from kafkacompat.errors import ProtocolError

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
UINT16 = struct.Struct(">H")
INT32 = struct.Struct(">i")
UINT32 = struct.Struct(">I")
INT64 = struct.Struct(">q")
FLOAT64 = struct.Struct(">d")
BOOL = struct.Struct(">?")

ZERO_UUID = uuid.UUID(int=0)

#: What decoding malformed input can raise; the framing layer turns these into ProtocolError.
DECODE_ERRORS = (struct.error, ValueError, IndexError, UnicodeDecodeError, ProtocolError)

Buffer = bytes | bytearray | memoryview


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint of at most 5 bytes (a Kafka unsigned varint is 32 bits)."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > 0xFFFFFFFF:
                raise ProtocolError("varint exceeds 32 bits")
            return result, pos
        shift += 7
        if shift > 28:
            raise ProtocolError("varint is longer than 5 bytes")


def read_uvarlong(buf: Buffer, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint of at most 10 bytes."""
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > 0xFFFFFFFFFFFFFFFF:
                raise ProtocolError("varlong exceeds 64 bits")
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varlong is longer than 10 bytes")


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """A zigzag-encoded signed 32-bit varint."""
    raw, pos = read_uvarint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def read_varlong(buf: Buffer, pos: int) -> tuple[int, int]:
    """A zigzag-encoded signed 64-bit varint."""
    raw, pos = read_uvarlong(buf, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def write_uvarint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("unsigned varint cannot be negative")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_varint(out: bytearray, value: int) -> None:
    write_uvarint(out, ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def write_varlong(out: bytearray, value: int) -> None:
    write_uvarint(out, ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def uvarint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _take(buf: Buffer, pos: int, size: int) -> tuple[Buffer, int]:
    end = pos + size
    if end > len(buf):
        raise ProtocolError("field runs past the end of the frame")
    return buf[pos:end], end


# Strings ---------------------------------------------------------------------------------------


def read_string(buf: Buffer, pos: int) -> tuple[str, int]:
    (size,) = INT16.unpack_from(buf, pos)
    if size < 0:
        raise ProtocolError("null string in a non-nullable field")
    raw, pos = _take(buf, pos + 2, size)
    return str(raw, "utf-8"), pos


def read_nullable_string(buf: Buffer, pos: int) -> tuple[str | None, int]:
    (size,) = INT16.unpack_from(buf, pos)
    if size < 0:
        return None, pos + 2
    raw, pos = _take(buf, pos + 2, size)
    return str(raw, "utf-8"), pos


def read_compact_string(buf: Buffer, pos: int) -> tuple[str, int]:
    size, pos = read_uvarint(buf, pos)
    if size == 0:
        raise ProtocolError("null string in a non-nullable field")
    raw, pos = _take(buf, pos, size - 1)
    return str(raw, "utf-8"), pos


def read_compact_nullable_string(buf: Buffer, pos: int) -> tuple[str | None, int]:
    size, pos = read_uvarint(buf, pos)
    if size == 0:
        return None, pos
    raw, pos = _take(buf, pos, size - 1)
    return str(raw, "utf-8"), pos


def write_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out += b"\xff\xff"
        return
    raw = value.encode()
    out += INT16.pack(len(raw))
    out += raw


def write_compact_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out.append(0)
        return
    raw = value.encode()
    write_uvarint(out, len(raw) + 1)
    out += raw


# Bytes and records ------------------------------------------------------------------------------


def read_bytes(buf: Buffer, pos: int) -> tuple[bytes, int]:
    (size,) = INT32.unpack_from(buf, pos)
    if size < 0:
        raise ProtocolError("null bytes in a non-nullable field")
    raw, pos = _take(buf, pos + 4, size)
    return bytes(raw), pos


def read_nullable_bytes(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    (size,) = INT32.unpack_from(buf, pos)
    if size < 0:
        return None, pos + 4
    raw, pos = _take(buf, pos + 4, size)
    return bytes(raw), pos


def read_compact_bytes(buf: Buffer, pos: int) -> tuple[bytes, int]:
    size, pos = read_uvarint(buf, pos)
    if size == 0:
        raise ProtocolError("null bytes in a non-nullable field")
    raw, pos = _take(buf, pos, size - 1)
    return bytes(raw), pos


def read_compact_nullable_bytes(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    size, pos = read_uvarint(buf, pos)
    if size == 0:
        return None, pos
    raw, pos = _take(buf, pos, size - 1)
    return bytes(raw), pos


def read_records(buf: Buffer, pos: int) -> tuple[Buffer | None, int]:
    """A record set: a zero-copy slice of the frame."""
    (size,) = INT32.unpack_from(buf, pos)
    if size < 0:
        return None, pos + 4
    return _take(buf, pos + 4, size)


def read_compact_records(buf: Buffer, pos: int) -> tuple[Buffer | None, int]:
    size, pos = read_uvarint(buf, pos)
    if size == 0:
        return None, pos
    return _take(buf, pos, size - 1)


class FileRegion(Protocol):
    """``size`` bytes of the file at ``path`` from ``position``: what a zero-copy send sends."""

    @property
    def path(self) -> str | PurePath: ...

    @property
    def position(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def inode(self) -> int:
        """The file's identity when the range was taken (0: not checked)."""
        ...


class RecordSource(Protocol):
    """Record data that is not in memory yet, such as stored batches the server may sendfile.

    ``file_regions`` names where its bytes lie (empty when they are not in files): a transport
    that can send from a file does so; any other reads them with ``read_bytes``.
    """

    @property
    def size(self) -> int: ...

    def read_bytes(self) -> bytes: ...

    def file_regions(self) -> Sequence[FileRegion]: ...


class SplicedBuffer(bytearray):
    """An encode buffer that leaves out `RecordSource` data instead of copying it in.

    ``holes`` lists ``(position, source)`` in order: the source's ``size`` bytes belong at that
    position of the buffer when it is sent; ``hole_bytes`` is their total.
    """

    __slots__ = ("hole_bytes", "holes")

    def __init__(self, initial: bytes = b"") -> None:
        super().__init__(initial)
        self.holes: list[tuple[int, RecordSource]] = []
        self.hole_bytes = 0


def _write_source(out: bytearray, source: RecordSource, compact: bool) -> None:
    if isinstance(out, SplicedBuffer):
        size = source.size
        if compact:
            write_uvarint(out, size + 1)
        else:
            out += INT32.pack(size)
        out.holes.append((len(out), source))
        out.hole_bytes += size
        return
    raw = source.read_bytes()
    if compact:
        write_uvarint(out, len(raw) + 1)
    else:
        out += INT32.pack(len(raw))
    out += raw


def write_records(
    out: bytearray, value: bytes | bytearray | memoryview | RecordSource | None
) -> None:
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        write_bytes(out, value)
    else:
        _write_source(out, value, compact=False)


def write_compact_records(
    out: bytearray, value: bytes | bytearray | memoryview | RecordSource | None
) -> None:
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        write_compact_bytes(out, value)
    else:
        _write_source(out, value, compact=True)


def write_bytes(out: bytearray, value: bytes | bytearray | memoryview | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
        return
    out += INT32.pack(len(value))
    out += value


def write_compact_bytes(out: bytearray, value: bytes | bytearray | memoryview | None) -> None:
    if value is None:
        out.append(0)
        return
    write_uvarint(out, len(value) + 1)
    out += value


# Other fixed values -----------------------------------------------------------------------------


def read_uuid(buf: Buffer, pos: int) -> tuple[uuid.UUID, int]:
    raw, end = _take(buf, pos, 16)
    return uuid.UUID(bytes=bytes(raw)), end


def write_uuid(out: bytearray, value: uuid.UUID) -> None:
    out += value.bytes


# Arrays -----------------------------------------------------------------------------------------


def read_array_length(buf: Buffer, pos: int) -> tuple[int, int]:
    """An int32 element count; -1 means null. Counts larger than the bytes left are refused."""
    (count,) = INT32.unpack_from(buf, pos)
    pos += 4
    if count > len(buf) - pos:
        raise ProtocolError("array count exceeds the frame")
    return count, pos


def read_compact_array_length(buf: Buffer, pos: int) -> tuple[int, int]:
    """A compact element count (count + 1, 0 meaning null); returns -1 for null."""
    raw, pos = read_uvarint(buf, pos)
    if raw - 1 > len(buf) - pos:
        raise ProtocolError("array count exceeds the frame")
    return raw - 1, pos


def write_array_length(out: bytearray, count: int) -> None:
    out += INT32.pack(count)


def write_compact_array_length(out: bytearray, count: int) -> None:
    write_uvarint(out, count + 1)


_ARRAY_STRUCTS: dict[tuple[str, int], struct.Struct] = {}


def read_fixed_array(buf: Buffer, pos: int, code: str, width: int, count: int) -> tuple[list, int]:  # type: ignore[type-arg]
    """``count`` fixed-width values of struct format ``code`` (e.g. ``"i"``)."""
    key = (code, count)
    packer = _ARRAY_STRUCTS.get(key)
    if packer is None:
        packer = struct.Struct(f">{count}{code}")
        if count <= 64:
            _ARRAY_STRUCTS[key] = packer
    return list(packer.unpack_from(buf, pos)), pos + width * count


def write_fixed_array(out: bytearray, code: str, values: list) -> None:  # type: ignore[type-arg]
    out += struct.pack(f">{len(values)}{code}", *values)


# Tagged fields ----------------------------------------------------------------------------------


def read_unknown_tag(
    buf: Buffer, pos: int, tag: int, size: int, unknown: list[tuple[int, bytes]] | None
) -> tuple[list[tuple[int, bytes]], int]:
    """Keep a tagged field this version does not know, raw, so it can be written back."""
    raw, pos = _take(buf, pos, size)
    if unknown is None:
        unknown = []
    unknown.append((tag, bytes(raw)))
    return unknown, pos


def read_tagged_fields(buf: Buffer, pos: int) -> tuple[dict[int, bytes], int]:
    """A tagged-field section read whole: tag -> raw value (stored records' values, whose
    tags the reader picks out itself)."""
    count, pos = read_uvarint(buf, pos)
    fields: dict[int, bytes] = {}
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        raw, pos = _take(buf, pos, size)
        fields[tag] = bytes(raw)
    return fields, pos


def write_tagged_fields(out: bytearray, fields: list[tuple[int, bytes]]) -> None:
    """Write tagged fields, given as (tag, encoded value), in ascending tag order."""
    fields.sort(key=lambda item: item[0])
    write_uvarint(out, len(fields))
    for tag, raw in fields:
        write_uvarint(out, tag)
        write_uvarint(out, len(raw))
        out += raw
