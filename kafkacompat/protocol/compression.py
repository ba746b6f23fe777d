"""Record batch compression codecs (none, gzip, snappy, lz4, zstd) with bounded decompression.

Sans-IO: pure functions on bytes. Every decompressor stops once ``max_size`` output bytes are
exceeded, so a small hostile payload cannot make the broker allocate without limit.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

import lz4.frame
import snappy
import zstandard

from kafkacompat.errors import ErrorCode, KafkaError

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED",
    "XERIAL_HEADER",
    "Codec",
    "codec_from_name",
    "compress",
    "decompress",
]

DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024
XERIAL_HEADER = b"\x82SNAPPY\x00"
_XERIAL_PREAMBLE = XERIAL_HEADER + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_ZSTD_MIN_STEP = 256
_ZSTD_MAX_RATIO_BITS = 15  # 32 KiB of output per input byte, at worst
_ZSTD_CONTEXTS_KEPT = 8
#: Contexts that decoded windows up to this size are pooled (producers' batches use less).
_ZSTD_POOLED_WINDOW = 1 << 21
#: Idle zstd decompression contexts (list append and pop are atomic: safe across threads).
_ZSTD_CONTEXTS: list[zstandard.ZstdDecompressor] = []
_LZ4_FIRST_CHUNK = 64 * 1024


class Codec(IntEnum):
    """Compression codec ids as stored in the low three attribute bits."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


_NAMES = {"uncompressed": Codec.NONE, "none": Codec.NONE, "gzip": Codec.GZIP}
_NAMES |= {"snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


def codec_from_name(name: str) -> Codec:
    """Map a ``compression.type`` value (other than ``producer``) to its codec."""
    try:
        return _NAMES[name]
    except KeyError:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown compression type {name!r}") from None


def compress(codec: int, data: bytes | bytearray | memoryview, *, xerial: bool = True) -> bytes:
    """Compress ``data`` with ``codec``; snappy uses xerial framing unless ``xerial`` is false.

    Xerial framing is what the Java client writes and every client reads, raw or framed.
    """
    raw = bytes(data)
    if codec == Codec.NONE:
        return raw
    if codec == Codec.GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(raw) + c.flush()
    if codec == Codec.SNAPPY:
        if not xerial:
            return bytes(snappy.compress(raw))
        parts = [_XERIAL_PREAMBLE]
        for start in range(0, len(raw), _XERIAL_BLOCK):
            block = bytes(snappy.compress(raw[start : start + _XERIAL_BLOCK]))
            parts.append(struct.pack(">i", len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == Codec.LZ4:
        return bytes(lz4.frame.compress(raw, block_linked=False))
    if codec == Codec.ZSTD:
        return bytes(zstandard.ZstdCompressor().compress(raw))
    raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"unknown codec {codec}")


def decompress(
    codec: int,
    data: bytes | bytearray | memoryview,
    *,
    magic: int = 2,
    max_size: int = DEFAULT_MAX_DECOMPRESSED,
) -> bytes:
    """Decompress ``data``; raise CORRUPT_MESSAGE when it is invalid or inflates past ``max_size``.

    ``magic`` selects the lz4 quirk of message format v0 (KAFKA-3160: a header checksum computed
    over the frame magic as well).
    """
    raw = bytes(data)
    try:
        if codec == Codec.NONE:
            out = raw
        elif codec == Codec.GZIP:
            out = _gunzip(raw, max_size)
        elif codec == Codec.SNAPPY:
            out = _unsnappy(raw, max_size)
        elif codec == Codec.LZ4:
            out = _unlz4(_fix_kafka3160(raw) if magic == 0 else raw, max_size)
        elif codec == Codec.ZSTD:
            out = _unzstd(raw, max_size)
        else:
            raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"unknown codec {codec}")
    except KafkaError:
        raise
    except Exception as exc:
        raise KafkaError(
            ErrorCode.CORRUPT_MESSAGE, f"cannot decompress {Codec(codec).name}: {exc}"
        ) from exc
    if len(out) > max_size:
        raise _too_big(max_size)
    return out


def _too_big(max_size: int) -> KafkaError:
    return KafkaError(ErrorCode.CORRUPT_MESSAGE, f"decompressed data exceeds {max_size} bytes")


def _gunzip(raw: bytes, max_size: int) -> bytes:
    d = zlib.decompressobj(47)  # gzip or zlib header, detected
    out = d.decompress(raw, max_size + 1)
    if len(out) > max_size:
        raise _too_big(max_size)
    if not d.eof:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "truncated gzip stream")
    return out


def _raw_snappy_length(block: bytes) -> int:
    result = shift = 0
    for i in range(min(len(block), 5)):
        b = block[i]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7
    raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "bad snappy length preamble")


def _unsnappy(raw: bytes, max_size: int) -> bytes:
    if not raw.startswith(XERIAL_HEADER):
        if _raw_snappy_length(raw) > max_size:
            raise _too_big(max_size)
        return bytes(snappy.decompress(raw))
    pos, out, total = 16, [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "truncated xerial snappy block")
        (n,) = struct.unpack_from(">i", raw, pos)
        block = raw[pos + 4 : pos + 4 + n]
        if n < 0 or len(block) != n:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "truncated xerial snappy block")
        total += _raw_snappy_length(block)
        if total > max_size:
            raise _too_big(max_size)
        out.append(bytes(snappy.decompress(block)))
        pos += 4 + n
    return b"".join(out)


def _unlz4(raw: bytes, max_size: int) -> bytes:
    # The decompressor allocates ``max_length`` up front: ask for what 256:1 would give (one
    # call for nearly all real data), then for more, rather than for max_size at once (64 MiB
    # for each small batch costs more than the decompression).
    d = lz4.frame.LZ4FrameDecompressor()
    chunks: list[bytes] = []
    total, chunk_size, data = 0, max(_LZ4_FIRST_CHUNK, len(raw) << 8), raw
    while True:
        chunk = d.decompress(data, max_length=min(chunk_size, max_size + 1 - total))
        data = b""
        total += len(chunk)
        if total > max_size:
            raise _too_big(max_size)
        chunks.append(chunk)
        if d.eof:
            return b"".join(chunks)
        if d.needs_input:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "truncated lz4 frame")
        chunk_size *= 4


def _unzstd(raw: bytes, max_size: int) -> bytes:
    # Input goes in small steps so the output cannot overshoot max_size by much: a zstd block
    # of a few bytes may inflate to 128 KiB, so a step of n bytes yields at most about
    # n * 32 KiB, and steps shrink as the room left does. Consecutive frames are read one after
    # another. Decompressor contexts are costly to create: idle ones are kept for reuse.
    chunks: list[bytes] = []
    total, pos = 0, 0
    # A context keeps buffers as large as the largest window it decoded: only contexts that
    # decoded small windows go back to the pool, so a crafted frame cannot pin its memory.
    poolable = True
    try:
        dctx = _ZSTD_CONTEXTS.pop()
    except IndexError:
        dctx = zstandard.ZstdDecompressor()
    try:
        while pos < len(raw):
            if poolable and _window_size(raw, pos) > _ZSTD_POOLED_WINDOW:
                poolable = False
            d = dctx.decompressobj()
            while not d.eof and pos < len(raw):
                step_size = max(_ZSTD_MIN_STEP, (max_size - total) >> _ZSTD_MAX_RATIO_BITS)
                step = raw[pos : pos + step_size]
                pos += len(step)
                chunk = d.decompress(step)
                total += len(chunk)
                if total > max_size:
                    raise _too_big(max_size)
                chunks.append(chunk)
            if not d.eof:
                raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "truncated zstd frame")
            pos -= len(d.unused_data)
    finally:
        if poolable and len(_ZSTD_CONTEXTS) < _ZSTD_CONTEXTS_KEPT:
            _ZSTD_CONTEXTS.append(dctx)
    return b"".join(chunks)


def _window_size(raw: bytes, pos: int) -> int:
    """The window the zstd frame at ``pos`` asks for (0 when its header cannot be read: the
    decompression itself then reports the damage)."""
    try:
        return int(zstandard.get_frame_parameters(raw[pos : pos + 18]).window_size)
    except zstandard.ZstdError:
        return 0


def _fix_kafka3160(raw: bytes) -> bytes:
    """Rewrite the lz4 frame header checksum that Kafka 0.8/0.9 computed over the wrong bytes."""
    if len(raw) < 7 or not raw.startswith(_LZ4_MAGIC):
        return raw
    flg = raw[4]
    hc_pos = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if len(raw) <= hc_pos:
        return raw
    hc = (xxh32(raw[4:hc_pos]) >> 8) & 0xFF
    return raw[:hc_pos] + bytes([hc]) + raw[hc_pos + 1 :]


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 hash (used only for lz4 frame header checksums, so inputs are a few bytes)."""
    n, pos = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed, (seed - _P1) & _M32]
        while pos + 16 <= n:
            for i in range(4):
                (lane,) = struct.unpack_from("<I", data, pos)
                v[i] = (_rotl((v[i] + lane * _P2) & _M32, 13) * _P1) & _M32
                pos += 4
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while pos + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, pos)
        h = (_rotl((h + lane * _P3) & _M32, 17) * _P4) & _M32
        pos += 4
    while pos < n:
        h = (_rotl((h + data[pos] * _P5) & _M32, 11) * _P1) & _M32
        pos += 1
    h = ((h ^ (h >> 15)) * _P2) & _M32
    h = ((h ^ (h >> 13)) * _P3) & _M32
    return h ^ (h >> 16)
