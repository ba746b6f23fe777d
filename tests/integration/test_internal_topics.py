"""Group offsets and group metadata live in ``__consumer_offsets``, transaction state in
``__transaction_state``, in Kafka's own record formats: a lag monitor that reads the topic
finds what the group committed; the names are reserved (internal, compacted, not writable by
clients); a data directory from before the internal topics is moved into them on first start."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPartition

from kafkacompat.coordinators.group_offsets import (
    NAMESPACE,
    GroupOffsetStore,
    OffsetAndMetadata,
)
from kafkacompat.coordinators.internal_records import partition_for
from kafkacompat.coordinators.transaction_state import TransactionStateStore, TxnMetadata
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
)
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.storage.log_manager import STATE_DIR
from kafkacompat.storage.state_store import StateStore
from kafkacompat.testing import KafkaBroker
from tests.integration.raw import RawClient
from tests.integration.test_fetch import build_batch

pytestmark = pytest.mark.integration

API_PRODUCE, API_METADATA, API_OFFSET_FETCH, API_FIND_COORDINATOR = 0, 3, 9, 10
API_DESCRIBE_TRANSACTIONS = 65
TIMEOUT = 15


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT)


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    return data[pos + 2 : pos + 2 + n].decode(), pos + 2 + n


def read_committed_offsets(bootstrap: str) -> dict[tuple[str, str, int], int]:
    """What a lag monitor reading ``__consumer_offsets`` finds (Burrow's decoding: key versions
    0/1 are offset commits, value versions 1 and 3; the latest record of a key wins)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000
    )
    partitions = [KafkaPartition("__consumer_offsets", p) for p in range(50)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    found: dict[tuple[str, str, int], int] = {}
    for message in consumer:
        (version,) = struct.unpack_from(">h", message.key, 0)
        if version not in (0, 1):
            continue
        group, pos = _string(message.key, 2)
        topic, pos = _string(message.key, pos)
        (partition,) = struct.unpack_from(">i", message.key, pos)
        if message.value is None:
            found.pop((group, topic, partition), None)
            continue
        (value_version, offset) = struct.unpack_from(">hq", message.value, 0)
        assert value_version in (1, 3)
        found[(group, topic, partition)] = offset
    consumer.close()
    return found


def consume_with_group(bootstrap: str, topic: str, group: str, count: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    while seen < count:
        message = consumer.poll(TIMEOUT)
        assert message is not None and message.error() is None
        seen += 1
    consumer.commit(asynchronous=False)
    consumer.close()


def test_a_lag_monitor_reads_the_groups_offsets_from_consumer_offsets(
    kafka_broker: KafkaBroker,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    create_topic(kafka_broker.bootstrap, "orders", 3)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for i in range(30):
        producer.produce("orders", b"v%d" % i, partition=i % 3)
    producer.flush(TIMEOUT)
    consume_with_group(kafka_broker.bootstrap, "orders", "lag-group", 30)
    assert read_committed_offsets(kafka_broker.bootstrap) == {
        ("lag-group", "orders", 0): 10,
        ("lag-group", "orders", 1): 10,
        ("lag-group", "orders", 2): 10,
    }
    # The topic is Kafka's: internal, 50 partitions, compacted, and listed as such.
    metadata = admin.list_topics(timeout=TIMEOUT)
    assert len(metadata.topics["__consumer_offsets"].partitions) == 50
    with RawClient(kafka_broker.port) as client:
        answer = client.call(
            API_METADATA, 9, MetadataRequest([MetadataRequestTopic(name="__consumer_offsets")])
        )
    [topic] = answer.topics
    assert (topic.error_code, topic.is_internal) == (ErrorCode.NONE, True)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT)
    assert configs["cleanup.policy"].value == "compact"


def test_the_group_record_is_kafkas_group_metadata(kafka_broker: KafkaBroker) -> None:
    create_topic(kafka_broker.bootstrap, "events", 1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce("events", b"x", partition=0)
    producer.flush(TIMEOUT)
    consume_with_group(kafka_broker.bootstrap, "events", "meta-group", 1)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    partition = partition_for("meta-group", 50)
    consumer.assign([KafkaPartition("__consumer_offsets", partition)])
    consumer.seek_to_beginning()
    generations = []
    for message in consumer:
        if struct.unpack_from(">h", message.key, 0)[0] != 2:
            continue
        group, _ = _string(message.key, 2)
        assert group == "meta-group"
        if message.value is None:
            continue
        (version,) = struct.unpack_from(">h", message.value, 0)
        protocol_type, pos = _string(message.value, 2)
        (generation,) = struct.unpack_from(">i", message.value, pos)
        assert (version, protocol_type) == (3, "consumer")
        generations.append(generation)
    consumer.close()
    # The group's generation 1 was written when it formed (its members then left).
    assert generations and generations[0] == 1 and generations == sorted(generations)


def test_internal_topic_names_are_reserved(kafka_broker: KafkaBroker) -> None:
    with RawClient(kafka_broker.port) as client:
        # A Metadata request that may auto-create the name gets the internal topic itself.
        answer = client.call(
            API_METADATA,
            9,
            MetadataRequest(
                [MetadataRequestTopic(name="__transaction_state")], allow_auto_topic_creation=True
            ),
        )
        [topic] = answer.topics
        assert (topic.error_code, topic.is_internal, len(topic.partitions)) == (0, True, 50)
        batch = build_batch([(None, b"forged", [])], 1_700_000_000_000)
        produced = client.call(
            API_PRODUCE,
            9,
            ProduceRequest(
                None,
                1,
                5000,
                [TopicProduceData("__transaction_state", [PartitionProduceData(0, batch)])],
            ),
        )
    [result] = produced.responses[0].partition_responses
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_find_coordinator_creates_the_topic_and_names_this_broker(
    kafka_broker: KafkaBroker,
) -> None:
    with RawClient(kafka_broker.port) as client:
        before = client.call(API_METADATA, 9, MetadataRequest(topics=None))
        assert "__consumer_offsets" not in {t.name for t in before.topics}
        found = client.call(API_FIND_COORDINATOR, 3, FindCoordinatorRequest("g", 0))
        after = client.call(API_METADATA, 9, MetadataRequest(topics=None))
    assert (found.error_code, found.node_id, found.port) == (0, 1, kafka_broker.port)
    assert {t.name: t.is_internal for t in after.topics} == {"__consumer_offsets": True}


def _legacy_data_dir(data_dir: Path) -> None:
    """A data directory as brokers before the internal topics wrote it: the state store's
    group and transaction namespaces."""
    state = StateStore(data_dir / STATE_DIR)
    store = GroupOffsetStore(state.namespace(NAMESPACE))
    store.write(
        "old-group", {("legacy", 0): OffsetAndMetadata(7, -1, "m", int(time.time() * 1000))}
    )
    txns = TransactionStateStore(state.namespace("__transaction_state"))
    txns.write(TxnMetadata("old-txn", 4000, 2, 60000, last_update_ms=5))
    state.close()


def test_a_data_directory_from_before_is_moved_into_the_internal_topics(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _legacy_data_dir(data_dir)
    broker = KafkaBroker(data_dir).start()
    try:
        _check_moved(broker, data_dir)
    finally:
        broker.stop()


def _check_moved(broker: KafkaBroker, data_dir: Path) -> None:
    create_topic(broker.bootstrap, "legacy", 1)
    with RawClient(broker.port) as client:
        fetched = client.call(
            API_OFFSET_FETCH,
            8,
            OffsetFetchRequest(groups=[OffsetFetchRequestGroup("old-group", topics=None)]),
        )
    [group] = fetched.groups
    assert [
        (t.name, p.partition_index, p.committed_offset, p.metadata, p.error_code)
        for t in group.topics
        for p in t.partitions
    ] == [("legacy", 0, 7, "m", 0)]
    assert read_committed_offsets(broker.bootstrap) == {("old-group", "legacy", 0): 7}
    with RawClient(broker.port) as client:
        described = client.call(
            API_DESCRIBE_TRANSACTIONS, 0, DescribeTransactionsRequest(["old-txn"])
        )
    [state] = described.transaction_states
    assert (state.error_code, state.producer_id, state.transaction_state) == (0, 4000, "Empty")
    assert not (data_dir / STATE_DIR / "__consumer_offsets.log").exists()
    assert not (data_dir / STATE_DIR / "__transaction_state.log").exists()
    broker.restart()
    assert read_committed_offsets(broker.bootstrap) == {("old-group", "legacy", 0): 7}
