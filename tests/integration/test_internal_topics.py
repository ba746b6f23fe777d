"""Group offsets and group metadata live in ``__consumer_offsets``, transaction state in
``__transaction_state``, in Kafka's own record formats: a lag monitor that reads the topic
finds what the group committed; a KIP-848 group is Kafka's records 3 to 8; the names are
reserved (internal, compacted, not writable by clients); a data directory from before the
internal topics is moved into them on first start."""

from __future__ import annotations

import json
import struct
import time
import uuid
from pathlib import Path
from typing import Any

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
from kafkacompat.coordinators.internal_records import CONSUMER_GROUP_KEY_VERSION, partition_for
from kafkacompat.coordinators.transaction_state import TransactionStateStore, TxnMetadata
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.consumer_group_describe_request import (
    ConsumerGroupDescribeRequest,
)
from kafkacompat.protocol.messages.consumer_group_heartbeat_request import (
    ConsumerGroupHeartbeatRequest,
)
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
from tests.integration.test_consumer_group_protocol import SETTINGS, Member, wait_until
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


class _Reader:
    """Kafka's flexible value encoding, read by hand: compact strings and arrays (length + 1,
    unsigned varints), 16-byte uuids, tagged fields."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def fixed(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def string(self) -> str | None:
        n = self.uvarint() - 1
        if n < 0:
            return None
        self.pos += n
        return self.data[self.pos - n : self.pos].decode()

    def array(self, item: Any) -> list[Any]:
        return [item() for _ in range(self.uvarint() - 1)]

    def uuid(self) -> uuid.UUID:
        self.pos += 16
        return uuid.UUID(bytes=self.data[self.pos - 16 : self.pos])

    def tags(self) -> dict[int, bytes]:
        found = {}
        for _ in range(self.uvarint()):
            tag, size = self.uvarint(), self.uvarint()
            found[tag] = self.data[self.pos : self.pos + size]
            self.pos += size
        return found

    def partitions(self) -> dict[uuid.UUID, list[int]]:
        def topic() -> tuple[uuid.UUID, list[int]]:
            entry = (self.uuid(), self.array(lambda: self.fixed(">i")))
            self.tags()
            return entry

        return dict(self.array(topic))


def _kafka_value(version: int, data: bytes) -> Any:
    """A consumer group record's value (value version 0) as Kafka's schemas read it."""
    r = _Reader(data)
    assert r.fixed(">h") == 0
    if version in (3, 6):  # ConsumerGroupMetadataValue, ...TargetAssignmentMetadataValue
        value: Any = r.fixed(">i")
    elif version == 4:  # ConsumerGroupPartitionMetadataValue

        def topic() -> tuple[str | None, tuple[uuid.UUID, int]]:
            topic_id, name, count = r.uuid(), r.string(), r.fixed(">i")
            r.array(lambda: (r.fixed(">i"), r.array(r.string), r.tags()))
            r.tags()
            return name, (topic_id, count)

        value = dict(r.array(topic))
    elif version == 5:  # ConsumerGroupMemberMetadataValue
        value = {
            "instance_id": r.string(),
            "rack_id": r.string(),
            "client_id": r.string(),
            "client_host": r.string(),
            "topics": r.array(r.string),
            "regex": r.string(),
            "rebalance_timeout_ms": r.fixed(">i"),
            "server_assignor": r.string(),
        }
    elif version == 7:  # ConsumerGroupTargetAssignmentMemberValue
        value = r.partitions()
    else:  # 8: ConsumerGroupCurrentMemberAssignmentValue
        epochs = (r.fixed(">i"), r.fixed(">i"), r.fixed(">b"))
        value = (*epochs, r.partitions(), r.partitions())
    r.tags()
    assert r.pos == len(data), f"bytes left in a key {version} value"
    return value


Key = tuple[int, str | None]  # key version, member id (None for the group's records)


def read_consumer_group_records(bootstrap: str, group: str) -> list[tuple[Key, Any]]:
    """The group's records in ``__consumer_offsets``, in order, decoded by Kafka's schemas
    (key versions 3 to 8; the JSON record of before as is); a tombstone's value is None."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000
    )
    consumer.assign([KafkaPartition("__consumer_offsets", partition_for(group, 50))])
    consumer.seek_to_beginning()
    found: list[tuple[Key, Any]] = []
    for message in consumer:
        (version,) = struct.unpack_from(">h", message.key, 0)
        if version == CONSUMER_GROUP_KEY_VERSION:  # a group's JSON of before, or its tombstone
            found.append(((version, _string(message.key, 2)[0]), message.value))
            continue
        assert version in range(9), f"a record Kafka does not know: key version {version}"
        if version < 3:
            continue
        group_id, pos = _string(message.key, 2)
        member_id = None
        if version in (5, 7, 8):
            member_id, pos = _string(message.key, pos)
        assert (group_id, pos) == (group, len(message.key))
        value = None if message.value is None else _kafka_value(version, message.value)
        found.append(((version, member_id), value))
    consumer.close()
    return found


def _describe(port: int, group: str) -> Any:
    with RawClient(port) as raw:
        [described] = raw.call(69, 0, ConsumerGroupDescribeRequest(group_ids=[group])).groups
    return described


@pytest.mark.kafka_broker(settings=SETTINGS)
def test_a_consumer_group_is_kafkas_records_3_to_8(kafka_broker: KafkaBroker) -> None:
    """A KIP-848 group (group.protocol=consumer) in ``__consumer_offsets`` as Kafka writes it:
    the group epoch (3), subscribed topics (4), each member's metadata (5), the target epoch (6),
    each member's target (7) and current assignment (8); a member that left and then the group
    deleted are tombstones."""
    bootstrap, group = kafka_broker.bootstrap, "kip848-records"
    create_topic(bootstrap, "kip848", 4)
    everything = {("kip848", p) for p in range(4)}
    a = Member(bootstrap, group, ["kip848"], **{"client.id": "member-a"})
    b = Member(bootstrap, group, ["kip848"])
    wait_until(
        lambda: bool(a.assignment and b.assignment) and a.assignment | b.assignment == everything,
        what="two members splitting the topic",
    )
    b.stop()
    wait_until(lambda: a.assignment == everything, what="a taking everything")
    wait_until(lambda: _describe(kafka_broker.port, group).group_state == "Stable")
    described = _describe(kafka_broker.port, group)
    [member] = described.members
    [assigned] = member.assignment.topic_partitions
    topic_id = assigned.topic_id

    records = read_consumer_group_records(bootstrap, group)
    latest = dict(records)
    assert latest[(3, None)] == described.group_epoch
    assert latest[(6, None)] == described.assignment_epoch
    assert latest[(4, None)] == {"kip848": (topic_id, 4)}
    a_id = member.member_id
    assert latest[(5, a_id)]["client_id"] == "member-a"
    assert latest[(5, a_id)]["topics"] == ["kip848"]
    assert latest[(7, a_id)] == {topic_id: [0, 1, 2, 3]}
    # Member epoch, previous epoch, state (0: stable), assigned, pending revocation.
    epoch, _previous, state, owned, pending = latest[(8, a_id)]
    assert (epoch, state, owned, pending) == (member.member_epoch, 0, {topic_id: [0, 1, 2, 3]}, {})
    members = {m for (version, m) in latest if version == 5}
    [b_id] = members - {a_id}
    for version in (5, 7, 8):  # b was written, then tombstoned when it left
        assert any(k == (version, b_id) and v is not None for k, v in records)
        assert latest[(version, b_id)] is None
    # An epoch record was written for each epoch the group went through.
    epochs = [v for k, v in records if k == (3, None) and v is not None]
    assert epochs == sorted(epochs) and epochs[-1] == described.group_epoch >= 3

    a.stop()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_consumer_groups([group])[group].result(TIMEOUT)
    latest = dict(read_consumer_group_records(bootstrap, group))
    assert all(value is None for value in latest.values())


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


#: A consumer group as brokers before wrote it: one JSON value (under ``3 | group`` in the
#: state store, moved into ``__consumer_offsets`` as a record of key version 0x7F03).
_GROUP_OF_BEFORE = {
    "group_epoch": 4,
    "assignment_epoch": 4,
    "assignor": "range",
    "state_timestamp": 1_700_000_000_000,
    "topics": {},
    "target": {"old-member": {}},
    "members": [
        {
            "member_id": "old-member",
            "instance_id": None,
            "rack_id": None,
            "client_id": "old-client",
            "client_host": "/127.0.0.1",
            "rebalance_timeout_ms": 30000,
            "topic_names": ["before"],
            "topic_regex": None,
            "server_assignor": None,
            "epoch": 4,
            "previous_epoch": 3,
            "state": "stable",
            "assigned": {},
            "pending_revocation": {},
            "classic": None,
        }
    ],
}


def test_a_consumer_group_of_before_is_kept_and_rewritten_as_kafkas_records(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    state = StateStore(data_dir / STATE_DIR)
    key = b"\x03" + struct.pack(">h", len("cg-before")) + b"cg-before"
    state.namespace(NAMESPACE).put(key, json.dumps(_GROUP_OF_BEFORE).encode())
    state.close()
    broker = KafkaBroker(data_dir).start()
    try:
        for _ in range(2):  # moved from the state store; then read from its record
            described = _describe(broker.port, "cg-before")
            assert (described.error_code, described.group_epoch, described.assignor_name) == (
                0,
                4,
                "range",
            )
            assert [m.member_id for m in described.members] == ["old-member"]
            [((version, group), value)] = read_consumer_group_records(broker.bootstrap, "cg-before")
            assert (version, group, value[:3]) == (
                CONSUMER_GROUP_KEY_VERSION,
                "cg-before",
                b"\0\0{",
            )
            broker.restart()
        create_topic(broker.bootstrap, "before", 2)
        with RawClient(broker.port) as raw:
            joined = raw.call(
                68,
                0,
                ConsumerGroupHeartbeatRequest(
                    group_id="cg-before",
                    member_epoch=0,
                    rebalance_timeout_ms=5000,
                    subscribed_topic_names=["before"],
                    topic_partitions=[],
                ),
            )
        assert joined.error_code == 0
        records = read_consumer_group_records(broker.bootstrap, "cg-before")
        latest = dict(records)
        assert latest[(CONSUMER_GROUP_KEY_VERSION, "cg-before")] is None  # tombstoned
        assert latest[(5, "old-member")]["client_id"] == "old-client"
        assert latest[(3, None)] == joined.member_epoch > 4
        broker.restart()
        described = _describe(broker.port, "cg-before")
        assert described.group_epoch == joined.member_epoch
        assert {m.member_id for m in described.members} == {"old-member", joined.member_id}
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
