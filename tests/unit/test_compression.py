"""Compression codecs: round trips, interop with kafka-python, xerial snappy, KAFKA-3160, bounds."""

from __future__ import annotations

import lz4.frame
import pytest
import snappy
from kafka import codec as kcodec

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import (
    XERIAL_HEADER,
    Codec,
    codec_from_name,
    compress,
    decompress,
    xxh32,
)

PAYLOADS = [b"", b"x", b"hello kafka " * 5000, bytes(range(256)) * 400]


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("payload", PAYLOADS, ids=["empty", "one", "text", "binary"])
def test_round_trip(codec: Codec, payload: bytes) -> None:
    assert decompress(codec, compress(codec, payload)) == payload
    assert decompress(codec, memoryview(compress(codec, payload))) == payload


def test_reads_what_kafka_python_writes() -> None:
    data = PAYLOADS[2]
    assert decompress(Codec.GZIP, kcodec.gzip_encode(data)) == data
    assert decompress(Codec.SNAPPY, kcodec.snappy_encode(data)) == data  # xerial framed
    assert decompress(Codec.SNAPPY, kcodec.snappy_encode(data, xerial_compatible=False)) == data
    assert decompress(Codec.LZ4, kcodec.lz4_encode(data)) == data
    assert decompress(Codec.ZSTD, kcodec.zstd_encode(data)) == data


def test_kafka_python_reads_what_we_write() -> None:
    data = PAYLOADS[3]
    assert kcodec.gzip_decode(compress(Codec.GZIP, data)) == data
    assert kcodec.snappy_decode(compress(Codec.SNAPPY, data)) == data
    assert kcodec.snappy_decode(compress(Codec.SNAPPY, data, xerial=False)) == data
    assert kcodec.lz4_decode(compress(Codec.LZ4, data)) == data
    assert kcodec.zstd_decode(compress(Codec.ZSTD, data)) == data


def test_snappy_framing_is_xerial_by_default() -> None:
    framed = compress(Codec.SNAPPY, b"abc" * 50000)
    assert framed.startswith(XERIAL_HEADER)
    assert len(framed) > 16 + 4 * 4  # several 32 KiB blocks
    raw = compress(Codec.SNAPPY, b"abc", xerial=False)
    assert raw == snappy.compress(b"abc")


def test_xxh32_matches_lz4_frame_header_checksums() -> None:
    assert xxh32(b"") == 0x02CC5D05
    for kwargs in ({"store_size": False}, {"store_size": True}, {"content_checksum": True}):
        frame = lz4.frame.compress(b"data" * 100, **kwargs)
        flg = frame[4]
        hc_pos = 6 + (8 if flg & 0x08 else 0)
        assert frame[hc_pos] == (xxh32(frame[4:hc_pos]) >> 8) & 0xFF
    long_input = bytes(range(40))
    assert xxh32(long_input) == xxh32(bytearray(long_input)) != xxh32(long_input[:-1])


def test_kafka_3160_lz4_header_checksum_in_magic_0() -> None:
    data = b"legacy lz4 " * 100
    frame = bytearray(lz4.frame.compress(data, store_size=False))
    frame[6] = (xxh32(bytes(frame[0:6])) >> 8) & 0xFF  # checksum over the magic too
    if frame[6] == lz4.frame.compress(data, store_size=False)[6]:
        pytest.skip("broken and correct checksums coincide")
    assert decompress(Codec.LZ4, bytes(frame), magic=0) == data
    with pytest.raises(KafkaError) as err:
        decompress(Codec.LZ4, bytes(frame), magic=1)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", [c for c in Codec if c != Codec.NONE])
def test_decompression_is_bounded(codec: Codec) -> None:
    bomb = compress(codec, b"\x00" * 1_000_000)
    assert len(decompress(codec, bomb, max_size=1_000_000)) == 1_000_000
    with pytest.raises(KafkaError) as err:
        decompress(codec, bomb, max_size=999_999)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", [c for c in Codec if c != Codec.NONE])
@pytest.mark.parametrize(
    "garbage", [b"\xff" * 40, b"", b"\x82SNAPPY\x00\x00\x00\x00\x01" + b"\x00" * 8]
)
def test_garbage_is_corrupt_message(codec: Codec, garbage: bytes) -> None:
    if garbage == b"" and codec == Codec.ZSTD:
        assert decompress(codec, garbage) == b""  # an empty zstd stream is empty
        return
    with pytest.raises(KafkaError) as err:
        decompress(codec, garbage)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE


def test_truncated_streams_are_corrupt() -> None:
    for codec in (Codec.GZIP, Codec.LZ4, Codec.SNAPPY, Codec.ZSTD):
        whole = compress(codec, PAYLOADS[3])
        with pytest.raises(KafkaError) as err:
            decompress(codec, whole[: len(whole) // 2])
        assert err.value.code == ErrorCode.CORRUPT_MESSAGE, codec


def test_codec_names_and_unknown_codec() -> None:
    assert [codec_from_name(n) for n in ("uncompressed", "gzip", "snappy", "lz4", "zstd")] == [
        Codec.NONE,
        Codec.GZIP,
        Codec.SNAPPY,
        Codec.LZ4,
        Codec.ZSTD,
    ]
    with pytest.raises(KafkaError) as err:
        codec_from_name("brotli")
    assert err.value.code == ErrorCode.INVALID_CONFIG
    for call in (lambda: compress(7, b"x"), lambda: decompress(7, b"x")):
        with pytest.raises(KafkaError) as err:
            call()
        assert err.value.code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


def test_concatenated_zstd_frames() -> None:
    data = compress(Codec.ZSTD, b"a" * 100_000) + compress(Codec.ZSTD, bytes(range(256)) * 10)
    assert decompress(Codec.ZSTD, data) == b"a" * 100_000 + bytes(range(256)) * 10
