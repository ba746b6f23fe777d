"""Bad input stops nobody and poisons nothing: seeded fuzzing of a subprocess broker.

Valid request frames are built with the generated codecs around record batches captured from real
clients (tests/fixtures/batches), then mutated (bit flips, boundary bytes, lying lengths and
counts, truncation, inserted and duplicated chunks, random API keys and versions, huge declared
sizes, batch-internal damage with the CRC32C recomputed) and sent one case per connection; a few
cases pipeline several frames or send junk. Crafted batches with a valid CRC and broken records
inside are refused with an exact error and nothing stored.

Every `CHECK_EVERY` cases and at the end: a long-lived bystander connection has kept getting the
same Metadata/ApiVersions answers promptly, the control topic (written first by confluent-kafka,
acks=all) reads back exactly with confluent-kafka (check.crcs=true), every other partition holding
data reads to its end the same way, and the broker log holds no traceback or internal error. At
the end the broker's descriptors and RSS are back near their start, taken after a warm-up (see
`warm_up`): within `FD_TOLERANCE` and `RSS_TOLERANCE_KB`.

``--fuzz-seconds=N`` (default 30) and ``--fuzz-seed=N`` (default 1, so CI repeats itself; always reported) run
longer or reproduce a run; case ``i`` of seed ``s`` is `make_case(corpus, s, i)` alone.
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard
from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.compression import compress, decompress, xxh32
from kafkacompat.protocol.headers import request_header_version, response_header_version
from kafkacompat.protocol.messages import APIS, request_header
from kafkacompat.protocol.messages import api_versions_request as av
from kafkacompat.protocol.messages import create_topics_request as ct
from kafkacompat.protocol.messages import delete_records_request as dr
from kafkacompat.protocol.messages import describe_configs_request as dc
from kafkacompat.protocol.messages import fetch_request as fr
from kafkacompat.protocol.messages import find_coordinator_request as fc
from kafkacompat.protocol.messages import init_producer_id_request as ip
from kafkacompat.protocol.messages import list_offsets_request as lo
from kafkacompat.protocol.messages import metadata_request as md
from kafkacompat.protocol.messages import offset_commit_request as oc
from kafkacompat.protocol.messages import offset_fetch_request as of
from kafkacompat.protocol.messages import produce_request as pr
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.testing import BrokerProcess
from tests.integration.raw import RawClient

pytestmark = pytest.mark.integration

BATCHES = Path(__file__).parents[1] / "fixtures" / "batches"
#: Fuzzed frames never name the control topic (nor carry its id), so no mutation can aim at it.
CONTROL = "ctl-known"
FUZZ_A, FUZZ_B = "fz-a", "fz-b"
CONTROL_RECORDS = 30  # per partition, two partitions
SETTINGS: dict[str, int | bool | str] = {"max.broker.partitions": 200}

CHECK_EVERY = 500  # cases between full checks
READ_TIMEOUT = 0.25  # s: reading the answer to a case whose connection stays open
HALF_CLOSED_TIMEOUT = 1.0  # s: reading until EOF after shutting down our side
BYSTANDER_MAX_LATENCY = 2.0  # s: one ApiVersions + Metadata round trip, 2 shared cores
FD_TOLERANCE = 20  # descriptors above the start, after a settle of up to SETTLE_SECONDS
RSS_TOLERANCE_KB = 30 * 1024
SETTLE_SECONDS = 10.0
BAD_LOG = re.compile(r"Traceback|internal error")

BOUNDARY_BYTES = (0x00, 0x7F, 0x80, 0xFF)
BOUNDARY_INTS: tuple[int, ...] = (0, 1, -1, -2, 0x7F, 0x80, 0xFF, 0x7FFF, -0x8000, 0xFFFF)
BOUNDARY_INTS += (1 << 20, 0x7FFFFFFF, -0x80000000, 1 << 31, 1 << 62, -(1 << 63))
HUGE_SIZES = (0x7FFFFFFF, 104857600, 104857601, 64 << 20, (1 << 20) + 1, -1, -0x80000000)
LONG_VARINTS = (
    b"\xff\xff\xff\xff\x0f",
    b"\xff" * 10 + b"\x01",
    b"\x80" * 12,
    b"\xfe\xff\xff\xff\x07",
)
ENDINGS = ("half-close",) * 7 + ("wait", "reset", "close")

RECOVERABLE_PRODUCE = {
    ErrorCode.NONE,
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
    ErrorCode.UNKNOWN_PRODUCER_ID,
    ErrorCode.INVALID_PRODUCER_EPOCH,
    ErrorCode.DUPLICATE_SEQUENCE_NUMBER,
}
RECORD_ERRORS = {ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD}


# -- frames ---------------------------------------------------------------------------------------


def encode_frame(api_key: int, version: int, request: Any, correlation_id: int) -> bytes:
    """A whole request frame: size prefix, the header its version calls for, the body."""
    body = bytearray()
    APIS[api_key][0].ENCODERS[version](request, body)
    header = bytearray()
    header_version = request_header_version(api_key, version)
    request_header.ENCODERS[header_version](
        RequestHeader(api_key, version, correlation_id, "fuzz"), header
    )
    return struct.pack(">i", len(header) + len(body)) + bytes(header) + bytes(body)


def decode_response(api_key: int, version: int, frame: bytes, correlation_id: int) -> Any:
    assert struct.unpack_from(">i", frame)[0] == correlation_id
    pos = 4 + (1 if response_header_version(api_key, version) >= 1 else 0)
    response, end = APIS[api_key][1].DECODERS[version](memoryview(frame), pos)
    assert end == len(frame), f"api {api_key} v{version}: trailing bytes after the response"
    return response


@dataclass(frozen=True)
class BaseFrame:
    """A valid request; `rebuild` wraps other records in the same request (Produce only)."""

    name: str
    api_key: int
    version: int
    frame: bytes
    batch: bytes | None = None
    rebuild: Callable[[bytes], bytes] | None = None


def produce_frame(version: int, records: bytes, topic: str, partition: int, acks: int) -> bytes:
    data = pr.PartitionProduceData(index=partition, records=records)
    request = pr.ProduceRequest(None, acks, 5000, [pr.TopicProduceData(topic, [data])])
    return encode_frame(0, version, request, 1000 + version)


def pick_versions(served: dict[int, tuple[int, int]], api_key: int, wanted: list[int]) -> list[int]:
    low, high = served[api_key]
    module = APIS[api_key][0]
    low, high = max(low, module.MIN_VERSION), min(high, module.MAX_VERSION)
    return sorted({min(max(v, low), high) for v in wanted} | {high})


def build_corpus(served: dict[int, tuple[int, int]], ids: dict[str, uuid.UUID]) -> list[BaseFrame]:
    """Valid frames of the APIs clients use most, over old, middle and newest served versions."""
    corpus: list[BaseFrame] = []
    for i, path in enumerate(sorted(BATCHES.glob("*.bin"))):
        data = path.read_bytes()
        magic, codec = data[16], data[22] & 7 if data[16] == 2 else 0
        if magic == 2:
            first = data[: 12 + struct.unpack_from(">i", data, 8)[0]]
            versions = pick_versions(served, 0, [3, 7 if codec == 4 else 5, 9])
            versions = [v for v in versions if codec != 4 or v >= 7]
        else:
            first, versions = data, pick_versions(served, 0, [0, 2])
            versions = [v for v in versions if v <= 2]
        for version in versions:
            topic, partition = (FUZZ_A, i % 3) if i % 4 else (FUZZ_B, 0)

            def rebuild(
                records: bytes, v: int = version, t: str = topic, p: int = partition
            ) -> bytes:
                return produce_frame(v, records, t, p, -1)

            frame = rebuild(first)
            corpus.append(BaseFrame(f"produce {path.stem}", 0, version, frame, first, rebuild))

    def add(name: str, api_key: int, wanted: list[int], make: Callable[[int], Any]) -> None:
        for version in pick_versions(served, api_key, wanted):
            frame = encode_frame(api_key, version, make(version), 2000 + 37 * api_key + version)
            corpus.append(BaseFrame(name, api_key, version, frame))

    def fetch(version: int) -> fr.FetchRequest:
        topics = [
            fr.FetchTopic(
                t, ids[t], [fr.FetchPartition(p, -1, 0, -1, -1, 256 << 10) for p in range(n)]
            )
            for t, n in ((FUZZ_A, 3), (FUZZ_B, 1))
        ]
        return fr.FetchRequest(None, -1, fr.ReplicaState(), 5, 1, 1 << 20, 0, 0, -1, topics)

    def topics(*names: str) -> list[md.MetadataRequestTopic]:
        return [md.MetadataRequestTopic(ids.get(n, uuid.UUID(int=0)), n) for n in names]

    add("fetch", 1, [4, 11, 12, 13], fetch)
    add("metadata", 3, [1, 9], lambda v: md.MetadataRequest(topics(FUZZ_A, FUZZ_B)))
    add("metadata all", 3, [4], lambda v: md.MetadataRequest(None))
    add("metadata auto-create", 3, [4, 10], lambda v: md.MetadataRequest(topics("fz-auto"), True))
    add(
        "list offsets",
        2,
        [1, 5],
        lambda v: lo.ListOffsetsRequest(
            -1,
            0,
            [
                lo.ListOffsetsTopic(FUZZ_A, [lo.ListOffsetsPartition(p, -1, -1 - p % 2, 1)])
                for p in range(3)
            ],
        ),
    )
    add(
        "offset commit",
        8,
        [2, 8],
        lambda v: oc.OffsetCommitRequest(
            "fz-group",
            -1,
            "",
            None,
            -1,
            [
                oc.OffsetCommitRequestTopic(
                    FUZZ_A, [oc.OffsetCommitRequestPartition(0, 1, -1, -1, "m")]
                )
            ],
        ),
    )
    add(
        "offset fetch",
        9,
        [1, 7, 8],
        lambda v: of.OffsetFetchRequest(
            "fz-group",
            [of.OffsetFetchRequestTopic(FUZZ_A, [0, 1])],
            [
                of.OffsetFetchRequestGroup(
                    "fz-group", None, -1, [of.OffsetFetchRequestTopics(FUZZ_A, [0, 1])]
                )
            ],
        ),
    )
    add(
        "find coordinator",
        10,
        [1, 4],
        lambda v: fc.FindCoordinatorRequest("fz-group", 0, ["fz-group"]),
    )
    add("api versions", 18, [0, 3], lambda v: av.ApiVersionsRequest("fuzz", "1.0"))
    add(
        "create topics (validate only)",
        19,
        [2, 5],
        lambda v: ct.CreateTopicsRequest(
            [
                ct.CreatableTopic(
                    "fz-new", 3, 1, [], [ct.CreatableTopicConfig("cleanup.policy", "compact")]
                )
            ],
            5000,
            True,
        ),
    )
    add(
        "delete records",
        21,
        [0, 2],
        lambda v: dr.DeleteRecordsRequest(
            [dr.DeleteRecordsTopic(FUZZ_B, [dr.DeleteRecordsPartition(0, 0)])], 5000
        ),
    )
    add("init producer id", 22, [0, 4], lambda v: ip.InitProducerIdRequest(None, 60000, -1, -1))
    add(
        "describe configs",
        32,
        [1, 4],
        lambda v: dc.DescribeConfigsRequest([dc.DescribeConfigsResource(2, FUZZ_A, None)]),
    )
    return corpus


# -- crafted batches ------------------------------------------------------------------------------


def zigzag(value: int) -> bytes:
    n, out = (value << 1) ^ (value >> 63), bytearray()
    n &= (1 << 64) - 1
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record(
    delta: int,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    length_change: int = 0,
    key_length: int | None = None,
    header_count: int | None = None,
) -> bytes:
    """One v2 record; the keyword arguments make it lie about its lengths or counts."""
    body = bytearray(b"\x00") + zigzag(delta) + zigzag(delta)
    if key_length is not None:
        body += zigzag(key_length) + (key or b"")
    else:
        body += zigzag(-1) if key is None else zigzag(len(key)) + key
    body += zigzag(-1) if value is None else zigzag(len(value)) + value
    body += zigzag(len(headers) if header_count is None else header_count)
    for name, data in headers:
        body += zigzag(len(name)) + name + zigzag(len(data)) + data
    return zigzag(len(body) + length_change) + bytes(body)


def batch(
    records: bytes,
    count: int,
    *,
    last_delta: int | None = None,
    attributes: int = 0,
    timestamp: int | None = None,
) -> bytes:
    """A RecordBatch v2 around ``records`` with a correct CRC32C, whatever it says."""
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    last = count - 1 if last_delta is None else last_delta
    tail = struct.pack(">hiqqqhii", attributes, last, ts, ts + max(last, 0), -1, -1, -1, count)
    tail += records
    return (
        struct.pack(">qiib", 0, 4 + 1 + 4 + len(tail), -1, 2)
        + struct.pack(">I", crc32c(tail))
        + tail
    )


def fix_crc(data: bytes) -> bytes:
    """Recompute the CRC32C over attributes..end of a (possibly damaged) v2 batch."""
    if len(data) < 21:
        return data
    return data[:17] + struct.pack(">I", crc32c(data[21:])) + data[21:]


def zeros_compressed(
    codec: str, size: int, params: zstandard.ZstdCompressionParameters | None = None
) -> bytes:
    """``size`` zero bytes, gzip- or zstd-compressed a MiB at a time (a bomb a few KB long)."""
    chunk = bytes(1 << 20)
    if codec == "gzip":
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join([gz.compress(chunk) for _ in range(size >> 20)] + [gz.flush()])
    if params is not None:
        zs = zstandard.ZstdCompressor(compression_params=params).compressobj()
    else:
        zs = zstandard.ZstdCompressor(level=3).compressobj(size=size)
    return b"".join([zs.compress(chunk) for _ in range(size >> 20)] + [zs.flush()])


@cache
def crafted_batches() -> list[tuple[str, bytes, set[int]]]:
    """(what is wrong, the batch with a valid CRC, the error codes the broker must answer: Kafka's,
    or a refusal where Kafka's reading would store something librdkafka cannot read)."""
    r = [record(i, b"key-%d" % i, b"value-%d" % i, ((b"h", b"x"),)) for i in range(3)]
    good = b"".join(r)
    gz, lz, zs = 1, 3, 4
    bomb = 96 << 20
    zstd_bomb = bytearray(zeros_compressed("zstd", bomb))
    wide = zstandard.ZstdCompressionParameters.from_level(3, window_log=27, write_content_size=0)
    wide_zstd_bomb = zeros_compressed("zstd", bomb, wide)
    lying_zstd = bytes(zstd_bomb[:6] + struct.pack("<I", 100) + zstd_bomb[10:])
    gzip_bomb = zeros_compressed("gzip", bomb)
    lying_gzip = gzip_bomb[:-4] + struct.pack("<I", 100)
    lz4_frame = bytes(lz4.frame.compress(bytes(bomb >> 2), store_size=True))
    lying_lz4 = lz4_frame[:6] + struct.pack("<q", 100) + lz4_frame[14:]
    lying_lz4 = lying_lz4[:14] + bytes([(xxh32(lying_lz4[4:14]) >> 8) & 0xFF]) + lying_lz4[15:]
    small = zstandard.ZstdCompressor().compress(good)
    bad_value = b"\x00\x00\x00" + zigzag(1) + b"k" + zigzag(-7) + zigzag(0)
    bad_value = zigzag(len(bad_value)) + bad_value
    bad_header = b"\x00\x00\x00" + zigzag(-1) + zigzag(-1) + zigzag(1) + zigzag(-2) + zigzag(0)
    bad_header = zigzag(len(bad_header)) + bad_header
    long = b"\x00" + b"\xff" * 10 + b"\x01" + zigzag(0) + zigzag(-1) + zigzag(-1) + zigzag(0)
    bad = RECORD_ERRORS
    cases = [
        ("record length runs past the batch", batch(r[0] + record(1, length_change=500), 2), bad),
        ("record length varint cut short", batch(good + b"\xff", 4), bad),
        ("trailing bytes after the last record", batch(good + b"\x00\x00\x07", 3), bad),
        ("record count larger than present", batch(good, 5), bad),
        ("record count smaller than present", batch(good, 2), bad),
        ("count disagrees with last offset delta", batch(good, 3, last_delta=7), bad),
        ("zero records", batch(b"", 0), bad),
        ("negative record count", batch(good, -1, last_delta=2), bad),
        ("offset deltas out of order", batch(r[0] + record(2) + record(1), 3), bad),
        ("offset deltas repeated", batch(r[0] + r[0] + r[0], 3), bad),
        # Kafka reads any negative length as null; librdkafka then stalls on the partition.
        ("key length below -1", batch(record(0, b"", key_length=-5), 1), bad),
        ("value length below -1", batch(bad_value, 1), bad),
        ("negative header key length", batch(bad_header, 1), bad),
        ("key length past the record", batch(record(0, b"k", key_length=9000), 1), bad),
        ("negative header count", batch(record(0, header_count=-3), 1), bad),
        ("header count past the record", batch(record(0, header_count=1 << 20), 1), bad),
        ("varint of eleven bytes", batch(zigzag(len(long)) + long, 1), bad),
        (
            "gzip payload that does not decompress",
            batch(b"\x1f\x8b" + bytes(40), 3, attributes=gz),
            bad,
        ),
        ("truncated gzip stream", batch(compress(1, good)[:-12], 3, attributes=gz), bad),
        (
            "zstd payload that does not decompress",
            batch(b"\x28\xb5\x2f\xfd" + b"\x55" * 40, 3, attributes=zs),
            bad,
        ),
        (
            "lz4 payload that does not decompress",
            batch(b"\x04\x22\x4d\x18" + b"\x66" * 30, 3, attributes=lz),
            bad,
        ),
        (
            "snappy payload that does not decompress",
            batch(
                b"\x82SNAPPY\x00" + bytes(8) + b"\x00\x00\x00\x09" + b"\xff" * 9, 3, attributes=2
            ),
            bad,
        ),
        ("zstd bomb of 96 MiB of zeros", batch(bytes(zstd_bomb), 1, attributes=zs), bad),
        ("zstd bomb with a 128 MiB window", batch(wide_zstd_bomb, 1, attributes=zs), bad),
        (
            "zstd frame declaring 100 bytes, holding 96 MiB",
            batch(lying_zstd, 1, attributes=zs),
            bad,
        ),
        (
            "zstd records followed by a 96 MiB frame",
            batch(small + bytes(zstd_bomb), 3, attributes=zs),
            bad,
        ),
        ("gzip bomb of 96 MiB, trailer says 100", batch(lying_gzip, 1, attributes=gz), bad),
        ("lz4 frame inflating to 24 MiB of zeros", batch(lz4_frame, 1, attributes=lz), bad),
        ("lz4 frame declaring 100 bytes, holding 24 MiB", batch(lying_lz4, 1, attributes=lz), bad),
        (
            "compression codec 7",
            batch(good, 3, attributes=7),
            bad | {ErrorCode.UNSUPPORTED_COMPRESSION_TYPE},
        ),
        ("control batch from a client", batch(good, 3, attributes=0x20), bad),
        (
            "timestamp a day ahead",
            batch(good, 3, timestamp=int(time.time() * 1000) + 86400000),
            {ErrorCode.INVALID_TIMESTAMP},
        ),
    ]
    return [(name, data, {int(code) for code in codes}) for name, data, codes in cases]


# -- mutations ------------------------------------------------------------------------------------


def mutate_bytes(
    rng: random.Random, data: bytearray, low: int, notes: list[str], high: int | None = None
) -> bytearray:
    """One mutation at a position in ``[low, high)`` (default: to the end)."""
    high = len(data) if high is None else min(high, len(data))
    if high <= low:
        notes.append("append zeros")
        return data + bytes(rng.randrange(1, 9))
    pos = rng.randrange(low, high)
    op = rng.choice(("flip", "byte", "int", "int", "varint", "truncate", "dup", "insert", "delete"))
    if op == "flip":
        bit = rng.randrange(8)
        data[pos] ^= 1 << bit
        notes.append(f"flip bit {bit} at {pos}")
    elif op == "byte":
        data[pos] = rng.choice(BOUNDARY_BYTES)
        notes.append(f"byte {data[pos]:#x} at {pos}")
    elif op == "int":
        width = rng.choice((1, 2, 4, 4, 8))
        value = rng.choice((*BOUNDARY_INTS, len(data) - pos, len(data) - pos + 1))
        raw = (value & ((1 << 8 * width) - 1)).to_bytes(width, "big")
        data[pos : pos + width] = raw
        notes.append(f"int{8 * width} {value} at {pos}")
    elif op == "varint":
        data[pos : pos + 1] = rng.choice(LONG_VARINTS)
        notes.append(f"long varint at {pos}")
    elif op == "truncate":
        del data[pos:]
        notes.append(f"truncate at {pos}")
    elif op == "dup":
        end = min(len(data), pos + rng.randrange(1, 64))
        at = rng.randrange(low, len(data) + 1)
        data[at:at] = data[pos:end]
        notes.append(f"duplicate [{pos}:{end}] at {at}")
    elif op == "insert":
        chunk = bytes(rng.choice(BOUNDARY_BYTES) for _ in range(rng.randrange(1, 17)))
        data[pos:pos] = chunk
        notes.append(f"insert {chunk.hex()} at {pos}")
    else:
        end = min(len(data), pos + rng.randrange(1, 33))
        del data[pos:end]
        notes.append(f"delete [{pos}:{end}]")
    return data


BATCH_FIELDS = (
    (8, 4),
    (12, 4),
    (16, 1),
    (21, 2),
    (23, 4),
    (27, 8),
    (35, 8),
    (43, 8),
    (51, 2),
    (53, 4),
    (57, 4),
)


def inflate(data: bytes) -> bytes | None:
    """The records of a compressed v2 batch, or None when it is not one."""
    if len(data) <= 61 or data[16] != 2 or not 1 <= data[22] & 7 <= 4:
        return None
    try:
        return decompress(data[22] & 7, data[61:])
    except KafkaError:
        return None


def mutate_batch(rng: random.Random, source: bytes, notes: list[str]) -> bytes:
    """Damage a v2 batch: a header field, its records, or its decompressed records; usually the
    batch length and CRC are then made right again, so the records themselves are judged."""
    data = bytearray(source)
    choice = rng.random()
    if choice < 0.3:
        offset, width = rng.choice(BATCH_FIELDS)
        if offset == 21:
            value = rng.choice((0, 1, 2, 3, 4, 5, 6, 7)) | rng.choice((0, 0x08, 0x10, 0x20, 0x40))
        else:
            old = int.from_bytes(data[offset : offset + width], "big", signed=True)
            value = rng.choice((*BOUNDARY_INTS, old + 1, old - 1, old * 2))
        data[offset : offset + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "big")
        notes.append(f"batch field at {offset} = {value}")
    elif choice < 0.5 and (records := inflate(source)) is not None:
        codec, inner = source[22] & 7, bytearray(records)
        for _ in range(rng.randrange(1, 3)):
            inner = mutate_bytes(rng, inner, 0, notes)
        data[61:] = compress(codec, bytes(inner))
        notes.append(f"records recompressed with codec {codec}")
    else:
        for _ in range(rng.randrange(1, 3)):
            data = mutate_bytes(rng, data, 61, notes)
    if rng.random() < 0.9:
        data[8:12] = struct.pack(">i", len(data) - 12)
    if rng.random() < 0.9:
        notes.append("CRC recomputed")
        return fix_crc(bytes(data))
    return bytes(data)


def mutate_frame(rng: random.Random, frame: bytes, notes: list[str]) -> bytes:
    """Damage a whole frame: header or body; then usually a truthful size prefix."""
    body = bytearray(frame[4:])
    for _ in range(1 + (rng.random() < 0.4) + (rng.random() < 0.15)):
        roll = rng.random()
        if roll < 0.12 and len(body) >= 4:
            key = rng.choice((rng.randrange(-2, 100), -1, 0x7FFF, -0x8000))
            version = rng.choice((rng.randrange(-1, 20), -1, 0x7FFF, -0x8000))
            body[0:4] = struct.pack(">hh", key, version)
            notes.append(f"api key {key} version {version}")
        elif roll < 0.25:
            body = mutate_bytes(rng, body, 4, notes, high=16)  # correlation id, client id
        else:
            body = mutate_bytes(rng, body, 0, notes)
    roll = rng.random()
    if roll < 0.85:
        size = len(body)
    elif roll < 0.93:
        size = len(body) + rng.randrange(1, 200)
        notes.append(f"size prefix {size} for {len(body)} bytes")
    elif roll < 0.97:
        size = max(0, len(body) - rng.randrange(1, 20))
        notes.append(f"size prefix {size} for {len(body)} bytes")
    else:
        size = rng.choice(HUGE_SIZES)
        notes.append(f"huge size prefix {size}")
    return struct.pack(">i", size) + bytes(body)


@dataclass
class Case:
    """What one connection sends, and how it ends (half-close, wait, reset or close)."""

    index: int
    description: str
    chunks: list[bytes]
    ending: str

    def reproducer(self, limit: int = 400) -> str:
        sent = b"".join(self.chunks)
        shown = sent[:limit].hex() + ("..." if len(sent) > limit else "")
        return f"case {self.index} [{self.description}], {self.ending}, {len(sent)} bytes: {shown}"


@dataclass
class Corpus:
    frames: list[BaseFrame]
    crafted: list[tuple[str, bytes, set[int]]]
    by_api: dict[int, list[BaseFrame]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for base in self.frames:
            self.by_api.setdefault(base.api_key, []).append(base)


def make_case(corpus: Corpus, seed: int, index: int) -> Case:
    """Case ``index`` of a run: a function of the seed and the index alone."""
    rng = random.Random(f"{seed}/{index}")
    notes: list[str] = []
    kind = rng.choices(("mutate", "crafted", "multi", "junk"), (72, 10, 10, 8))[0]
    if kind == "crafted":
        name, data, _ = rng.choice(corpus.crafted)
        notes.append(f"crafted: {name}")
        if rng.random() < 0.3:
            data = mutate_batch(rng, data, notes)
        base = rng.choice([b for b in corpus.by_api[0] if b.batch and b.version >= 7])
        assert base.rebuild is not None
        frame = base.rebuild(data)
        notes.insert(0, f"{base.name} v{base.version}")
        chunks = [frame]
    elif kind == "multi":
        frames = []
        for _ in range(rng.randrange(2, 6)):
            base = rng.choice(corpus.by_api[rng.choice(list(corpus.by_api))])
            notes.append(f"{base.name} v{base.version}")
            frames.append(
                base.frame if rng.random() < 0.5 else mutate_frame(rng, base.frame, notes)
            )
        joined = b"".join(frames)
        cuts = sorted(rng.sample(range(1, len(joined)), min(len(joined) - 1, rng.randrange(0, 4))))
        chunks = [joined[a:b] for a, b in zip([0, *cuts], [*cuts, len(joined)], strict=True)]
    elif kind == "junk":
        roll = rng.random()
        if roll < 0.3:
            chunks = [rng.randbytes(rng.randrange(1, 48))]
            notes.append("random bytes")
        elif roll < 0.6:
            size = rng.choice((0, 1, 2, 3, 4, 5, 6, 9, *HUGE_SIZES))
            chunks = [struct.pack(">i", size) + rng.randbytes(rng.randrange(0, 12))]
            notes.append(f"size {size} then random bytes")
        else:
            base = rng.choice(corpus.frames)
            count = min(rng.randrange(20, 120), (128 << 10) // len(base.frame) + 1)
            chunks = [base.frame * count]
            notes.append(f"{count} pipelined {base.name} v{base.version}")
    else:
        base = rng.choice(corpus.by_api[rng.choice(list(corpus.by_api))])
        notes.append(f"{base.name} v{base.version}")
        frame = base.frame
        if base.batch is not None and base.rebuild is not None and rng.random() < 0.6:
            frame = base.rebuild(mutate_batch(rng, base.batch, notes))
            if rng.random() < 0.3:
                frame = mutate_frame(rng, frame, notes)
        else:
            frame = mutate_frame(rng, frame, notes)
        chunks = [frame]
    return Case(index, "; ".join(notes), chunks, rng.choice(ENDINGS))


# -- running cases --------------------------------------------------------------------------------


def complete_frames(data: bytes) -> bool:
    """Whether ``data`` is a run of whole response frames, each with at least a correlation id."""
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            return False
        (size,) = struct.unpack_from(">i", data, pos)
        if size < 4 or pos + 4 + size > len(data):
            return False
        pos += 4 + size
    return True


def run_case(port: int, case: Case) -> str | None:
    """Send the case on a fresh connection and read what comes back. Returns a violation, if any:
    a response cut short although the broker closed the connection cleanly."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    received, clean_eof = bytearray(), False
    try:
        for chunk in case.chunks:
            sock.sendall(chunk)
        if case.ending == "close":
            return None
        if case.ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None
        if case.ending == "half-close":
            sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + (
            HALF_CLOSED_TIMEOUT if case.ending == "half-close" else READ_TIMEOUT
        )
        while (left := deadline - time.monotonic()) > 0 and len(received) < 32 << 20:
            sock.settimeout(left)
            chunk = sock.recv(1 << 20)
            if not chunk:
                clean_eof = True
                break
            received += chunk
    except OSError:  # timed out, reset, or shut down by the broker first: all fine
        pass
    finally:
        sock.close()
    if clean_eof and not complete_frames(bytes(received)):
        return f"response cut short: {len(received)} bytes ending {bytes(received[-16:]).hex()}"
    return None


# -- broker observation ---------------------------------------------------------------------------


def descriptors(pid: int) -> tuple[int, int]:
    """(all open descriptors, sockets among them) of a process."""
    names = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for name in names:
        with suppress(OSError):
            sockets += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    return len(names), sockets


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match, status
    return int(match[1])


class LogWatch:
    """Reads the broker log as it grows and attributes bad lines to the case that preceded them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.findings: list[tuple[int, str]] = []

    def poll(self, case_index: int) -> None:
        size = self.path.stat().st_size
        if size <= self.offset:
            return
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            new = log.read(size - self.offset).decode(errors="replace")
        self.offset = size
        for match in BAD_LOG.finditer(new):
            start = new.rfind("\n", 0, max(0, match.start() - 300)) + 1
            self.findings.append((case_index, new[start : match.end() + 1500]))


class Bystander(threading.Thread):
    """A long-lived connection asking ApiVersions and Metadata every 50 ms; it records any answer
    that differs from the first one and the slowest round trip."""

    def __init__(self, port: int) -> None:
        super().__init__(name="fuzz-bystander", daemon=True)
        self.port = port
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.rounds = 0
        self.slowest = 0.0
        self.expected: tuple[Any, Any] | None = None
        self.ready = threading.Event()

    def answer(self, client: RawClient, correlation_id: int) -> tuple[Any, Any]:
        versions = client.call(18, 3, av.ApiVersionsRequest("bystander", "1.0"), correlation_id)
        topic = md.MetadataRequestTopic(name=CONTROL)
        metadata = client.call(3, 1, md.MetadataRequest([topic]), correlation_id + 1)
        return versions, metadata

    def run(self) -> None:
        try:
            with RawClient(self.port, timeout=10.0) as client:
                self.expected = self.answer(client, 1)
                self.ready.set()
                correlation_id = 10
                while not self.stop_event.wait(0.05):
                    started = time.monotonic()
                    got = self.answer(client, correlation_id)
                    self.slowest = max(self.slowest, time.monotonic() - started)
                    correlation_id += 2
                    if got != self.expected:
                        self.errors.append(f"round {self.rounds}: {got!r}")
                        return
                    self.rounds += 1
        except Exception as exc:
            self.errors.append(f"after {self.rounds} rounds: {exc!r}")
        finally:
            self.ready.set()


#: (offset, key, value, headers) as confluent-kafka hands them out.
Consumed = tuple[int, bytes | None, bytes | None, list[tuple[str, Any]]]


def consume_to_end(
    bootstrap: str, partitions: list[tuple[str, int]], timeout: float = 20.0
) -> tuple[dict[tuple[str, int], list[Consumed]], list[str]]:
    """Every record of the partitions, as confluent-kafka with check.crcs=true reads them, and the
    errors met on the way (including a partition whose position does not reach its end)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fuzz-check",
            "enable.auto.commit": False,
            "check.crcs": True,
            "enable.partition.eof": True,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 50,
        }
    )
    records: dict[tuple[str, int], list[Consumed]] = {tp: [] for tp in partitions}
    errors: list[str] = []
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
        pending, deadline = set(partitions), time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                key = (str(msg.topic()), int(msg.partition() or 0))
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(key)
                elif error is not None:
                    errors.append(f"{key}: {error}")
                else:
                    record: Any = (msg.offset(), msg.key(), msg.value(), msg.headers() or [])
                    records[key].append(record)
        for tp in consumer.position([TopicPartition(t, p) for t, p in partitions]):
            topic, partition = str(tp.topic), int(tp.partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            read = records[(topic, partition)]
            stalled = read[-1][0] + 1 if read else low
            position = tp.offset if tp.offset >= 0 else low  # nothing consumed: none to read
            if (topic, partition) in pending or position != high:
                port = int(bootstrap.rsplit(":", 1)[1])
                errors.append(
                    f"{topic}-{partition}: no end reached in {timeout:g} s, read to {stalled},"
                    f" end {high}; stored batch there: "
                    + stored_batch(port, topic, partition, stalled)
                )
    finally:
        consumer.close()
    return records, errors


def stored_batch(port: int, topic: str, partition: int, offset: int, limit: int = 600) -> str:
    """Hex of the stored batch holding ``offset``: what a consumer stalled on."""
    wanted = fr.FetchPartition(partition, -1, offset, -1, -1, 1 << 20)
    topics = [fr.FetchTopic(topic, uuid.UUID(int=0), [wanted])]
    request = fr.FetchRequest(None, -1, fr.ReplicaState(), 0, 1, 1 << 20, 0, 0, -1, topics)
    with RawClient(port) as client:
        answer = client.call(1, 4, request).responses[0].partitions[0]
    records = bytes(answer.records or b"")
    if answer.error_code or len(records) < 12:
        return f"(error {answer.error_code}, {len(records)} bytes)"
    batch = records[: 12 + struct.unpack_from(">i", records, 8)[0]]
    return batch[:limit].hex() + ("..." if len(batch) > limit else "")


def partitions_with_data(bootstrap: str, port: int) -> list[tuple[str, int]]:
    """Every partition but the control topic's that holds records (start < end)."""
    from confluent_kafka import Consumer, TopicPartition

    with RawClient(port) as client:
        metadata = client.call(3, 1, md.MetadataRequest(None))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fuzz-watermarks"})
    found = []
    try:
        for topic in metadata.topics:
            if topic.name == CONTROL or topic.error_code:
                continue
            for part in topic.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic.name, part.partition_index), timeout=10
                )
                if high > low:
                    found.append((topic.name, part.partition_index))
    finally:
        consumer.close()
    return found


# -- the broker under test ------------------------------------------------------------------------


@dataclass
class FuzzBroker:
    broker: BrokerProcess
    control: dict[tuple[str, int], list[Consumed]]
    corpus: Corpus
    log: LogWatch

    @property
    def port(self) -> int:
        return self.broker.port


def create_topics(port: int) -> dict[str, uuid.UUID]:
    topics = [
        ct.CreatableTopic(CONTROL, 2, 1),
        ct.CreatableTopic(FUZZ_A, 3, 1),
        # The broker recompresses what is produced to fz-b: another path for the records.
        ct.CreatableTopic(
            FUZZ_B, 1, 1, configs=[ct.CreatableTopicConfig("compression.type", "gzip")]
        ),
    ]
    with RawClient(port) as client:
        created = client.call(19, 5, ct.CreateTopicsRequest(topics, 10000, False))
        assert [(t.name, t.error_code) for t in created.topics] == [(t.name, 0) for t in topics]
        names = [md.MetadataRequestTopic(name=t.name) for t in topics]
        metadata = client.call(3, 12, md.MetadataRequest(names))
    return {t.name: t.topic_id for t in metadata.topics if t.name is not None}


def write_control(bootstrap: str) -> dict[tuple[str, int], list[Consumed]]:
    """Known records, acks=all, from confluent-kafka; returns them as a consumer must see them."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "lz4", "linger.ms": 5}
    )
    expected: dict[tuple[str, int], list[Consumed]] = {(CONTROL, 0): [], (CONTROL, 1): []}
    delivered: list[tuple[int, int, bytes | None]] = []
    failures: list[str] = []

    def on_delivery(error: Any, msg: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            delivered.append((msg.partition(), msg.offset(), msg.key()))

    for i in range(2 * CONTROL_RECORDS):
        partition, n = i % 2, i // 2
        key = None if n % 5 == 0 else f"key-{partition}-{n}".encode()
        value = None if n == 7 else f"value-{partition}-{n}|".encode() * (n % 9 + 1)
        headers: list[tuple[str, str | bytes | None]] = []
        if n % 3 == 0:
            headers = [("n", str(n).encode()), ("empty", b"")]
        producer.produce(CONTROL, value, key, partition, on_delivery=on_delivery, headers=headers)
        expected[(CONTROL, partition)].append((n, key, value, headers))
    assert producer.flush(30) == 0
    assert failures == []
    assert sorted((p, o) for p, o, _ in delivered) == sorted(
        (p, o) for p in (0, 1) for o in range(CONTROL_RECORDS)
    )
    return expected


def served_versions(port: int) -> dict[int, tuple[int, int]]:
    with RawClient(port) as client:
        response = client.call(18, 3, av.ApiVersionsRequest("fuzz", "1.0"))
    return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}


def check_corpus(port: int, corpus: Corpus) -> None:
    """Every unmutated frame is answered in full; real clients' batches are accepted."""
    for base in corpus.frames:
        with RawClient(port) as client:
            client.send_raw(base.frame)
            answer = client.read_frame()
        correlation_id = struct.unpack_from(">i", base.frame, 8)[0]
        response = decode_response(base.api_key, base.version, answer, correlation_id)
        if base.api_key == 0:
            codes = {p.error_code for t in response.responses for p in t.partition_responses}
            allowed = RECOVERABLE_PRODUCE if "idempotent" in base.name else {ErrorCode.NONE}
            assert codes <= {int(c) for c in allowed}, (base.name, base.version, response)


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBroker]:
    root = tmp_path_factory.mktemp("fuzz")
    broker = BrokerProcess(root / "data", SETTINGS)
    broker.start()
    try:
        ids = create_topics(broker.port)
        control = write_control(broker.bootstrap)
        corpus = Corpus(build_corpus(served_versions(broker.port), ids), crafted_batches())
        check_corpus(broker.port, corpus)
        yield FuzzBroker(broker, control, corpus, LogWatch(broker.log_path))
    finally:
        broker.kill()


def warm_up(port: int, pid: int, corpus: Corpus) -> int:
    """Load every request codec, and send every compressed crafted batch but the wide-window one
    twice; returns the highest RSS seen. glibc keeps heap freed after a decompression to the
    limit (up to ~60 MB here, which malloc_trim gives back), so that high-water mark is part of
    the start figure. The 128 MiB-window zstd bomb stays out: what it may leave behind is a
    decompressor's window, not allocator slack."""
    for api_key, (module, _) in APIS.items():
        header = struct.pack(">hhih", api_key, module.MAX_VERSION, 1, -1)
        run_case(port, Case(-1, "codec", [struct.pack(">i", len(header)) + header], "half-close"))
    peak = rss_kb(pid)
    for _ in range(2):
        for name, data, _ in corpus.crafted:
            if data[22] & 7 and "window" not in name:
                frame = produce_frame(9, data, FUZZ_A, 0, -1)
                run_case(port, Case(-1, name, [frame], "half-close"))
                peak = max(peak, rss_kb(pid))
    return peak


def settled_rss(pid: int) -> int:
    """The lowest of a few RSS samples over a second: a case still being handled inflates one."""
    samples = []
    for _ in range(5):
        samples.append(rss_kb(pid))
        time.sleep(0.25)
    return min(samples)


# -- tests ----------------------------------------------------------------------------------------


def produce_answer(port: int, frame: bytes, version: int) -> Any:
    with RawClient(port) as client:
        client.send_raw(frame)
        answer = client.read_frame()
    return decode_response(0, version, answer, 1000 + version)


def end_offset(port: int, topic: str, partition: int) -> int:
    request = lo.ListOffsetsRequest(
        -1, 0, [lo.ListOffsetsTopic(topic, [lo.ListOffsetsPartition(partition, -1, -1)])]
    )
    with RawClient(port) as client:
        response = client.call(2, 1, request)
    answer = response.topics[0].partitions[0]
    assert answer.error_code == 0, answer
    return int(answer.offset)


def test_crafted_batches_are_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    """Each crafted batch (valid CRC, broken records) gets its error; the log end stays put."""
    with BrokerProcess(tmp_path / "data", SETTINGS) as broker:
        port = broker.port
        create_topics(port)
        log = LogWatch(broker.log_path)
        wrong = []
        for i, (name, data, codes) in enumerate(crafted_batches()):
            partition = i % 3
            before = end_offset(port, FUZZ_A, partition)
            response = produce_answer(port, produce_frame(9, data, FUZZ_A, partition, -1), 9)
            answer = response.responses[0].partition_responses[0]
            after = end_offset(port, FUZZ_A, partition)
            if answer.error_code not in codes or after != before:
                code = ErrorCode(answer.error_code).name
                wrong.append(f"{name}: {code} {answer.error_message!r}, end {before} -> {after}")
            log.poll(i)
        assert wrong == [], "\n".join(wrong)
        assert log.findings == []
        _, errors = consume_to_end(broker.bootstrap, [(FUZZ_A, p) for p in range(3)])
        assert errors == []


def test_fuzzing_stops_nobody_and_poisons_nothing(
    fuzz_broker: FuzzBroker, request: pytest.FixtureRequest
) -> None:
    """Fuzz for --fuzz-seconds, checking every CHECK_EVERY cases (see the module docstring)."""
    seconds = float(request.config.getoption("--fuzz-seconds"))
    seed_option = request.config.getoption("--fuzz-seed")
    seed = int(seed_option) if seed_option is not None else random.SystemRandom().randrange(1 << 32)
    timeout = float(
        request.config.getoption("timeout", None) or request.config.getini("timeout") or 0
    )
    needed = 1.3 * seconds + 70  # set-up, warm-up and the checks every CHECK_EVERY cases
    if timeout and timeout < needed:
        pytest.fail(f"--fuzz-seconds={seconds:g} needs --timeout={int(needed) + 10} or more")
    print(f"fuzz seed {seed}, {seconds:g} s")
    broker, corpus, log = fuzz_broker.broker, fuzz_broker.corpus, fuzz_broker.log
    pid, port = broker.pid, broker.port
    recent: deque[Case] = deque(maxlen=5)
    violations: list[str] = []
    rss_seen: list[tuple[int, int]] = []

    def context(index: int) -> str:
        return (
            f"seed {seed} (rerun: --fuzz-seed={seed}), after case {index}; last cases:\n"
            + "\n".join(c.reproducer() for c in recent)
        )

    def full_check(index: int) -> None:
        assert broker.proc is not None and broker.proc.poll() is None, context(index)
        assert bystander.is_alive() and bystander.errors == [], (bystander.errors, context(index))
        assert bystander.slowest < BYSTANDER_MAX_LATENCY, (bystander.slowest, context(index))
        rounds = bystander.rounds
        with RawClient(port) as fresh:
            assert fresh.call(18, 0, av.ApiVersionsRequest()).error_code == 0
        records, errors = consume_to_end(broker.bootstrap, sorted(fuzz_broker.control))
        assert errors == [] and records == fuzz_broker.control, (errors, context(index))
        stored = partitions_with_data(broker.bootstrap, port)
        _, errors = consume_to_end(broker.bootstrap, stored)
        assert errors == [], (errors, stored, context(index))
        rss_seen.append((index, rss_kb(pid)))
        log.poll(index)
        found = [f"case {i}:\n{text}" for i, text in log.findings]
        assert found == [], f"broker log, {context(index)}\n" + "\n".join(found[:3])
        assert violations == [], (violations[:5], context(index))
        deadline = time.monotonic() + 5
        while bystander.rounds == rounds and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bystander.rounds > rounds, ("bystander stalled", context(index))

    bystander = Bystander(port)
    bystander.start()
    bystander.ready.wait(10)
    index = 0
    try:
        full_check(-1)
        peak = warm_up(port, pid, corpus)
        full_check(-1)
        time.sleep(0.5)
        start_fds, start_sockets = descriptors(pid)
        start_rss = max(peak, settled_rss(pid))
        print(f"start: {start_fds} descriptors ({start_sockets} sockets), RSS {start_rss} kB")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            case = make_case(corpus, seed, index)
            recent.append(case)
            try:
                problem = run_case(port, case)
            except OSError as exc:  # only connecting raises
                pytest.fail(f"cannot connect: {exc!r}; {context(index)}")
            if problem is not None:
                violations.append(f"{problem}; {case.reproducer()}")
            if broker.proc is None or broker.proc.poll() is not None:
                pytest.fail(f"broker exited; {context(index)}\n{broker.log_tail()}")
            log.poll(index)
            index += 1
            if index % CHECK_EVERY == 0:
                full_check(index)
        full_check(index)
    finally:
        bystander.stop_event.set()
        bystander.join(10)
    settle = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < settle and descriptors(pid)[0] > start_fds + FD_TOLERANCE:
        time.sleep(0.2)
    rss = settled_rss(pid)
    fds, sockets = descriptors(pid)
    print(
        f"{index} cases; fds {start_fds} -> {fds} (sockets {start_sockets} -> {sockets}); "
        f"RSS {start_rss} -> {rss} kB; bystander slowest {bystander.slowest:.3f} s"
    )
    assert fds <= start_fds + FD_TOLERANCE, (
        f"descriptors {start_fds} -> {fds} (sockets {start_sockets} -> {sockets}); seed {seed}"
    )
    assert rss <= start_rss + RSS_TOLERANCE_KB, (
        f"RSS {start_rss} -> {rss} kB (after case, kB: {rss_seen}); seed {seed}"
    )
    assert broker.stop() == 0, f"unclean shutdown; seed {seed}\n{broker.log_tail()}"
    log.poll(index)
    assert log.findings == [], f"seed {seed}: {log.findings[:3]}"
