"""Produce from four stock clients and from hand-made requests; what is stored is read back from
the partition log itself (no consumer involved)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from kafkacompat.errors import ErrorCode
from kafkacompat.partitions.producer_snapshots import snapshot_files
from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.messages import (
    produce_request,
)
from kafkacompat.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkacompat.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.produce_response import PartitionProduceResponse
from kafkacompat.protocol.records import iter_batches
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.clients import (
    Message,
    produce_aiokafka,
    produce_confluent,
    produce_kafka_python,
    produce_kcat,
)
from tests.integration.raw import RawClient
from tests.integration.test_bad_input import api_versions_roundtrip
from tests.internals import internals

pytestmark = pytest.mark.integration

StoredRecord = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": Codec.NONE, "gzip": Codec.GZIP, "snappy": Codec.SNAPPY}
CODEC_IDS |= {"lz4": Codec.LZ4, "zstd": Codec.ZSTD}
_WORDS = [bytes(random.Random(w).choices(b"abcdefghij", k=8)) for w in range(64)]
#: 900 KiB of words from a small vocabulary: every codec, LZ-only ones too, shrinks it.
BIG_VALUE = b"".join(random.Random(7).choices(_WORDS, k=900 * 128))
FIND_COORDINATOR = 10

MESSAGES: list[Message] = [
    (b"k0", b"v0", [("h1", b"x"), ("h2", b"")]),
    (None, b"no key", []),
    (b"empty", b"", [("h", b"y")]),
    (b"tombstone", None, []),
    (b"big", BIG_VALUE, []),
    ("ключ".encode(), b"\x00\xff binary", [("utf8-ключ", "значение".encode())]),
]


# --- reading back what was stored ----------------------------------------------------------------


def stored(broker: BrokerThread, topic: str, partition: int = 0) -> list[StoredRecord]:
    log = internals(broker).log(topic, partition)
    return [(r.offset, r.key, r.value, r.headers) for r in log.iter_records()]


def stored_codecs(broker: BrokerThread, topic: str, partition: int = 0) -> dict[int, Codec]:
    """The compression of the stored batch holding each offset."""
    data = internals(broker).read(topic, partition, 0, 1 << 30).read_bytes()
    return {
        offset: header.compression
        for _, header in iter_batches(data)
        for offset in range(header.base_offset, header.last_offset + 1)
    }


def librdkafka_sends(broker: BrokerThread, codec: str) -> Codec:
    """librdkafka takes a broker without FindCoordinator for one too old for lz4 (and then
    sends lz4 batches uncompressed)."""
    if codec == "lz4" and FIND_COORDINATOR not in broker.running.broker.pipeline.handlers:
        return Codec.NONE
    return CODEC_IDS[codec]


def assert_compression_kept(
    broker: BrokerThread, topic: str, codec: str, big: int, *, librdkafka: bool = False
) -> None:
    """Clients leave a batch uncompressed when compressing does not shrink it; the big,
    compressible value's batch is compressed, and stored as it was sent."""
    codecs = stored_codecs(broker, topic)
    assert codecs[big] == (librdkafka_sends(broker, codec) if librdkafka else CODEC_IDS[codec])
    assert set(codecs.values()) <= {CODEC_IDS[codec], Codec.NONE}


def expected(messages: list[Message]) -> list[StoredRecord]:
    return [(i, k, v, tuple(h)) for i, (k, v, h) in enumerate(messages)]


# --- the four clients ---------------------------------------------------------------------------


# --- clients and codecs ------------------------------------------------------------------------


CLIENTS = {
    "kafka-python": produce_kafka_python,
    "aiokafka": produce_aiokafka,
    "confluent-kafka": produce_confluent,
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_produce_is_stored_exactly(broker: BrokerThread, client: str, codec: str) -> None:
    topic = f"produce-{client}-{codec}"
    internals(broker).create_topic(topic, 1)
    results = CLIENTS[client](broker.bootstrap, topic, MESSAGES, codec)
    assert results == [(0, offset) for offset in range(len(MESSAGES))]
    assert stored(broker, topic) == expected(MESSAGES)
    assert_compression_kept(broker, topic, codec, big=4, librdkafka=client == "confluent-kafka")


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produce_is_stored_exactly(broker: BrokerThread, codec: str) -> None:
    topic = f"produce-kcat-{codec}"
    internals(broker).create_topic(topic, 1)
    messages: list[Message] = [
        (b"k0", b"v0", []),
        (None, b"no key", []),
        (b"tombstone", None, []),
        (b"big", BIG_VALUE, []),
    ]
    headers = [("origin", b"kcat"), ("codec", codec.encode())]
    produce_kcat(broker.bootstrap, topic, messages, codec, headers=headers)
    assert stored(broker, topic) == expected([(k, v, headers) for k, v, _ in messages])
    assert_compression_kept(broker, topic, codec, big=3, librdkafka=True)


def test_client_auto_creates_the_topic_through_metadata(broker: BrokerThread) -> None:
    results = produce_kafka_python(broker.bootstrap, "auto-created", MESSAGES[:2], "none")
    assert results == [(0, 0), (0, 1)]
    assert stored(broker, "auto-created") == expected(MESSAGES[:2])


# --- key stickiness ------------------------------------------------------------------------------

KEYS = [f"user-{i}".encode() for i in range(12)]


def keyed_messages(rounds: int = 3) -> list[Message]:
    return [(key, b"%s-%d" % (key, r), []) for r in range(rounds) for key in KEYS]


def partitions_by_key(broker: BrokerThread, topic: str, partitions: int) -> dict[bytes, set[int]]:
    found: dict[bytes, set[int]] = {}
    total = 0
    for p in range(partitions):
        records = stored(broker, topic, p)
        assert [r[0] for r in records] == list(range(len(records))), "contiguous offsets"
        total += len(records)
        for _, key, _, _ in records:
            assert key is not None
            found.setdefault(key, set()).add(p)
    assert total == len(KEYS) * 3
    return found


@pytest.mark.parametrize("client", [*CLIENTS, "kcat"])
def test_same_key_same_partition(broker: BrokerThread, client: str) -> None:
    topic = f"sticky-{client}"
    internals(broker).create_topic(topic, 6)
    messages = keyed_messages()
    if client == "kcat":
        produce_kcat(broker.bootstrap, topic, messages, "none")
    else:
        results = CLIENTS[client](broker.bootstrap, topic, messages, "none")
        by_key: dict[bytes | None, set[int]] = {}
        for (key, _, _), (partition, _) in zip(messages, results, strict=True):
            by_key.setdefault(key, set()).add(partition)
        assert all(len(p) == 1 for p in by_key.values())
    found = partitions_by_key(broker, topic, 6)
    assert sorted(found) == sorted(KEYS)
    assert all(len(p) == 1 for p in found.values()), found
    assert len(set().union(*found.values())) > 1, "keys spread over partitions"
    for key, (partition,) in found.items():
        values = [v for _, k, v, _ in stored(broker, topic, partition) if k == key]
        assert values == [b"%s-%d" % (key, r) for r in range(3)], "per-key order kept"


# --- hand-made requests -------------------------------------------------------------------------


def produce_request_for(
    topic: str, records: bytes | None, *, acks: int = -1, partition: int = 0
) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=acks,
        timeout_ms=5000,
        topic_data=[TopicProduceData(topic, [PartitionProduceData(partition, records)])],
    )


def produce(
    client: RawClient,
    topic: str,
    records: bytes | None,
    *,
    version: int = 9,
    acks: int = -1,
    partition: int = 0,
) -> PartitionProduceResponse:
    response = client.call(
        0, version, produce_request_for(topic, records, acks=acks, partition=partition)
    )
    assert [t.name for t in response.responses] == [topic]
    (result,) = response.responses[0].partition_responses
    assert result.index == partition
    return result  # type: ignore[no-any-return]


def init_producer_id(
    client: RawClient,
    *,
    transactional_id: str | None = None,
    producer_id: int = -1,
    epoch: int = -1,
    version: int = 4,
) -> InitProducerIdResponse:
    request = InitProducerIdRequest(transactional_id, 60000, producer_id, epoch)
    return client.call(22, version, request)  # type: ignore[no-any-return]


def v2_batch(
    values: list[bytes],
    *,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    codec: int = 0,
) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, False, pid, epoch, seq, 1 << 22)
    now = int(time.time() * 1000)  # producers idle for a day are expired by timestamp
    for i, value in enumerate(values):
        builder.append(i, now + i, b"key", value, [])
    return bytes(builder.build())


def legacy_set(values: list[bytes], magic: int, codec: int = 0) -> bytes:
    builder = LegacyRecordBatchBuilder(magic, codec, 1 << 22)
    for i, value in enumerate(values):
        builder.append(i, 1_700_000_000_000 + i if magic else None, b"key", value)
    return bytes(builder.build())


def stored_values(broker: BrokerThread, topic: str) -> list[tuple[int, bytes | None]]:
    return [(offset, value) for offset, _, value, _ in stored(broker, topic)]


@pytest.fixture
def raw(broker: BrokerThread) -> Iterator[RawClient]:
    with RawClient(broker.port) as client:
        yield client


def test_every_produce_version(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("versions", 1)
    offset = 0
    for version in range(12):
        if version < 3:
            records = legacy_set([b"a%d" % version, b"b%d" % version], 0 if version < 2 else 1)
        else:
            records = v2_batch([b"a%d" % version, b"b%d" % version])
        result = produce(raw, "versions", records, version=version)
        assert (result.error_code, result.base_offset) == (ErrorCode.NONE, offset), version
        assert result.log_append_time_ms == -1
        assert result.log_start_offset == (0 if version >= 5 else -1)
        assert result.error_message is None
        offset += 2
    assert stored_values(broker, "versions") == [
        (2 * v + i, b"%s%d" % (name, v)) for v in range(12) for i, name in enumerate((b"a", b"b"))
    ]


def test_log_append_time_is_reported(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("append-time", 1, {"message.timestamp.type": "LogAppendTime"})
    result = produce(raw, "append-time", v2_batch([b"x"]), version=11)
    assert result.error_code == ErrorCode.NONE
    assert result.log_append_time_ms > 1_700_000_000_000
    (record,) = internals(broker).log("append-time", 0).iter_records()
    assert record.timestamp == result.log_append_time_ms


def test_acks_zero_sends_no_response(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("acks0", 1)
    body = bytearray()
    produce_request.ENCODERS[9](produce_request_for("acks0", v2_batch([b"fire"]), acks=0), body)
    raw.request(0, 9, bytes(body), correlation_id=1, header_version=2)
    # The next request's response is the first frame on the connection.
    assert produce(raw, "acks0", v2_batch([b"then"]), acks=1).base_offset == 1
    assert stored_values(broker, "acks0") == [(0, b"fire"), (1, b"then")]


def test_acks_zero_error_closes_the_connection(broker: BrokerThread, raw: RawClient) -> None:
    body = bytearray()
    produce_request.ENCODERS[9](produce_request_for("missing", v2_batch([b"x"]), acks=0), body)
    raw.request(0, 9, bytes(body), correlation_id=1, header_version=2)
    assert raw.is_closed_by_peer()
    assert api_versions_roundtrip(broker.port).error_code == ErrorCode.NONE


def test_flush_messages_one_acks_after_fsync(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data")
    config = config.with_settings(settings={"log.flush.interval.messages": 1})
    with running_broker(config) as broker, RawClient(broker.port) as client:
        internals(broker).create_topic("synced", 1)
        internals(broker).create_topic("lazy", 1, {"flush.messages": "1000"})
        for topic in ("synced", "lazy"):
            assert produce(client, topic, v2_batch([b"a", b"b"])).base_offset == 0
        synced = internals(broker).log("synced", 0)
        lazy = internals(broker).log("lazy", 0)
        assert (synced.recovery_point, synced.log_end_offset) == (2, 2)
        assert (lazy.recovery_point, lazy.log_end_offset) == (0, 2)


# --- idempotence --------------------------------------------------------------------------------


def test_init_producer_id_hands_out_unique_ids(broker: BrokerThread, raw: RawClient) -> None:
    first = init_producer_id(raw, version=0)
    second = init_producer_id(raw, version=4)
    assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0)
    assert (second.error_code, second.producer_epoch) == (ErrorCode.NONE, 0)
    assert second.producer_id == first.producer_id + 1
    # As Kafka: without a transactional id, naming the current id and epoch (KIP-360) still
    # gets a fresh producer id.
    again = init_producer_id(raw, producer_id=second.producer_id, epoch=0, version=3)
    assert (again.error_code, again.producer_id, again.producer_epoch) == (
        ErrorCode.NONE,
        second.producer_id + 1,
        0,
    )
    half = init_producer_id(raw, producer_id=second.producer_id, epoch=-1)
    assert (half.error_code, half.producer_id) == (ErrorCode.INVALID_REQUEST, -1)


def test_transactional_init_producer_id_bumps_the_epoch(
    broker: BrokerThread, raw: RawClient
) -> None:
    first = init_producer_id(raw, transactional_id="tx-1")
    assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0)
    second = init_producer_id(raw, transactional_id="tx-1")
    assert (second.error_code, second.producer_id, second.producer_epoch) == (
        ErrorCode.NONE,
        first.producer_id,
        1,
    )
    assert init_producer_id(raw, transactional_id="").error_code == ErrorCode.INVALID_REQUEST


def test_retried_batch_gets_the_original_offset_and_is_stored_once(
    broker: BrokerThread, raw: RawClient
) -> None:
    internals(broker).create_topic("idem", 1)
    pid = init_producer_id(raw).producer_id
    first = v2_batch([b"a", b"b"], pid=pid, epoch=0, seq=0)
    second = v2_batch([b"c"], pid=pid, epoch=0, seq=2)
    assert produce(raw, "idem", first).base_offset == 0
    assert produce(raw, "idem", second).base_offset == 2
    for retry, offset in ((first, 0), (second, 2), (first, 0)):
        result = produce(raw, "idem", retry)
        assert (result.error_code, result.base_offset) == (ErrorCode.NONE, offset)
    assert stored_values(broker, "idem") == [(0, b"a"), (1, b"b"), (2, b"c")]


def test_sequence_gap_is_out_of_order(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("gap", 1)
    pid = init_producer_id(raw).producer_id
    assert produce(raw, "gap", v2_batch([b"a"], pid=pid, epoch=0, seq=0)).error_code == 0
    result = produce(raw, "gap", v2_batch([b"c"], pid=pid, epoch=0, seq=2))
    assert (result.error_code, result.base_offset) == (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
    assert result.error_message is not None and "sequence 2 after 0" in result.error_message
    assert produce(raw, "gap", v2_batch([b"b"], pid=pid, epoch=0, seq=1)).base_offset == 1
    assert stored_values(broker, "gap") == [(0, b"a"), (1, b"b")]


def test_fenced_epoch_is_invalid_producer_epoch(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("fenced", 1)
    pid = init_producer_id(raw).producer_id
    assert produce(raw, "fenced", v2_batch([b"a"], pid=pid, epoch=0, seq=0)).error_code == 0
    assert produce(raw, "fenced", v2_batch([b"b"], pid=pid, epoch=1, seq=0)).base_offset == 1
    zombie = produce(raw, "fenced", v2_batch([b"z"], pid=pid, epoch=0, seq=1))
    assert zombie.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    new_epoch_late_seq = produce(raw, "fenced", v2_batch([b"y"], pid=pid, epoch=2, seq=5))
    assert new_epoch_late_seq.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert stored_values(broker, "fenced") == [(0, b"a"), (1, b"b")]


def test_corrupt_duplicate_is_corrupt_message(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("corrupt-dup", 1)
    batch = v2_batch([b"a"], pid=42, epoch=0, seq=0)
    assert produce(raw, "corrupt-dup", batch).base_offset == 0
    damaged = bytearray(batch)
    damaged[-1] ^= 0xFF
    assert produce(raw, "corrupt-dup", bytes(damaged)).error_code == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("keep_snapshots", [True, False], ids=["snapshot", "log-replay"])
def test_duplicate_detected_after_restart(tmp_path: Path, keep_snapshots: bool) -> None:
    config = local_config(tmp_path / "data")
    batches = [v2_batch([b"v%d" % s], pid=0, epoch=0, seq=s) for s in range(7)]
    with running_broker(config) as broker, RawClient(broker.port) as client:
        internals(broker).create_topic("restart", 1)
        assert init_producer_id(client).producer_id == 0
        for offset, batch in enumerate(batches[:6]):
            assert produce(client, "restart", batch).base_offset == offset
    partition_dir = tmp_path / "data" / "restart-0"
    assert [offset for offset, _ in snapshot_files(partition_dir)] == [6]
    if not keep_snapshots:
        for _, path in snapshot_files(partition_dir):
            path.unlink()
    with running_broker(config) as broker, RawClient(broker.port) as client:
        assert init_producer_id(client).producer_id == 1000, "ids are not reused"
        for seq in (5, 1):
            result = produce(client, "restart", batches[seq])
            assert (result.error_code, result.base_offset) == (ErrorCode.NONE, seq)
        gap = produce(client, "restart", v2_batch([b"x"], pid=0, epoch=0, seq=8))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(client, "restart", batches[6]).base_offset == 6
        assert stored_values(broker, "restart") == [(s, b"v%d" % s) for s in range(7)]


# --- bad input ----------------------------------------------------------------------------------


def assert_still_serving(broker: BrokerThread, raw: RawClient, topic: str = "healthy") -> None:
    """The offending connection and a fresh one both still work."""
    if internals(broker).find_topic(topic) is None:
        internals(broker).create_topic(topic, 1)
    before = internals(broker).log(topic, 0).log_end_offset
    assert produce(raw, topic, v2_batch([b"ok"])).base_offset == before
    assert api_versions_roundtrip(broker.port).error_code == ErrorCode.NONE


def test_unknown_topic_is_not_auto_created(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data")
    config = config.with_settings(settings={"auto.create.topics.enable": False})
    with running_broker(config) as broker, RawClient(broker.port) as client:
        result = produce(client, "nope", v2_batch([b"x"]))
        assert (result.error_code, result.base_offset) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)
        assert internals(broker).find_topic("nope") is None
        assert_still_serving(broker, client)


def test_unknown_topic_with_auto_create_on_is_still_unknown(
    broker: BrokerThread, raw: RawClient
) -> None:
    """Kafka creates topics through Metadata, never through Produce."""
    assert produce(raw, "nope", v2_batch([b"x"])).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert internals(broker).find_topic("nope") is None


def test_unknown_partition(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("two", 2)
    result = produce(raw, "two", v2_batch([b"x"]), partition=2)
    assert result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert_still_serving(broker, raw)


def corrupt(batch: bytes) -> bytes:
    damaged = bytearray(batch)
    damaged[-2] ^= 0x55
    return bytes(damaged)


@pytest.mark.parametrize(
    ("description", "records", "version", "acks", "error"),
    [
        ("corrupt crc", corrupt(v2_batch([b"x" * 50])), 9, -1, ErrorCode.CORRUPT_MESSAGE),
        ("bad acks", v2_batch([b"x"]), 9, 2, ErrorCode.INVALID_REQUIRED_ACKS),
        ("legacy set on v3", legacy_set([b"x"], 1), 3, -1, ErrorCode.INVALID_RECORD),
        ("two batches on v3+", v2_batch([b"x"]) * 2, 9, -1, ErrorCode.INVALID_RECORD),
        ("null records", None, 9, -1, ErrorCode.INVALID_RECORD),
        (
            "zstd before v7",
            v2_batch([b"x" * 200], codec=4),
            6,
            -1,
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
        ),
        ("truncated batch", v2_batch([b"x" * 50])[:-10], 9, -1, ErrorCode.CORRUPT_MESSAGE),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_records_get_kafkas_error(
    broker: BrokerThread,
    raw: RawClient,
    description: str,
    records: bytes | None,
    version: int,
    acks: int,
    error: ErrorCode,
) -> None:
    internals(broker).create_topic("target", 1)
    result = produce(raw, "target", records, version=version, acks=acks)
    assert (result.error_code, result.base_offset) == (error, -1), description
    assert internals(broker).log("target", 0).log_end_offset == 0
    assert_still_serving(broker, raw)


def test_batch_over_max_message_bytes(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("small", 1, {"max.message.bytes": "1000"})
    assert produce(raw, "small", v2_batch([b"x" * 500])).error_code == ErrorCode.NONE
    result = produce(raw, "small", v2_batch([b"x" * 2000]))
    assert (result.error_code, result.base_offset) == (ErrorCode.MESSAGE_TOO_LARGE, -1)
    assert result.error_message is not None
    assert_still_serving(broker, raw)


def test_invalid_topic_name_is_an_unknown_topic(broker: BrokerThread, raw: RawClient) -> None:
    # Kafka checks produce targets against its metadata, where no invalid name can be.
    for name in ("bad name", "..", "a" * 250):
        result = produce(raw, name, v2_batch([b"x"]))
        assert result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name
    assert_still_serving(broker, raw)


def test_not_enough_replicas_for_acks_all(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("isr2", 1, {"min.insync.replicas": "2"})
    result = produce(raw, "isr2", v2_batch([b"x"]), acks=-1)
    assert (result.error_code, result.base_offset) == (ErrorCode.NOT_ENOUGH_REPLICAS, -1)
    assert produce(raw, "isr2", v2_batch([b"x"]), acks=1).base_offset == 0
    assert_still_serving(broker, raw)


def test_one_request_many_partitions_each_answered(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("multi", 2)
    request = ProduceRequest(
        None,
        -1,
        5000,
        [
            TopicProduceData(
                "multi",
                [
                    PartitionProduceData(0, v2_batch([b"p0"])),
                    PartitionProduceData(1, corrupt(v2_batch([b"p1" * 40]))),
                    PartitionProduceData(7, v2_batch([b"p7"])),
                ],
            ),
            TopicProduceData("ghost", [PartitionProduceData(0, v2_batch([b"g"]))]),
        ],
    )
    response = raw.call(0, 11, request)
    answers = [
        (t.name, p.index, p.error_code, p.base_offset)
        for t in response.responses
        for p in t.partition_responses
    ]
    assert answers == [
        ("multi", 0, ErrorCode.NONE, 0),
        ("multi", 1, ErrorCode.CORRUPT_MESSAGE, -1),
        ("multi", 7, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
        ("ghost", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
    ]


def test_legacy_compressed_set_on_v2_is_converted(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("legacy", 1)
    result = produce(raw, "legacy", legacy_set([b"a", b"b", b"c"], 1, codec=1), version=2)
    assert (result.error_code, result.base_offset) == (ErrorCode.NONE, 0)
    assert stored_values(broker, "legacy") == [(0, b"a"), (1, b"b"), (2, b"c")]
