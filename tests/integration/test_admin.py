"""Topic administration, configs, DeleteRecords, log dirs and cluster description, driven by
kafka-python, aiokafka, confluent-kafka and our own protocol client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.client import AdminClient
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_configs_request import (
    AlterableConfig,
    AlterConfigsRequest,
    AlterConfigsResource,
)
from kafkacompat.protocol.messages.create_partitions_request import (
    CreatePartitionsAssignment,
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkacompat.protocol.messages.create_topics_request import (
    CreatableReplicaAssignment,
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkacompat.protocol.messages.delete_records_request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kafkacompat.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkacompat.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkacompat.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkacompat.protocol.messages.describe_topic_partitions_request import (
    Cursor,
    DescribeTopicPartitionsRequest,
    TopicRequest,
)
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.internals import internals

pytestmark = pytest.mark.integration

TOPIC, BROKER = 2, 4


@pytest.fixture
def kadmin(broker: BrokerThread) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def ours(broker: BrokerThread) -> Iterator[AdminClient]:
    with AdminClient(broker.bootstrap, timeout=10) as client:
        yield client


def _exchange(client: AdminClient, api_key: int, version: int, request: Any) -> Any:
    return client._exchange(api_key, version, request)


def _create(client: AdminClient, version: int, *topics: CreatableTopic, validate: bool = False):
    request = CreateTopicsRequest(topics=list(topics), timeout_ms=5000, validate_only=validate)
    return _exchange(client, 19, version, request).topics


def _produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for i in range(count):
            producer.send(topic, f"value-{i}".encode(), partition=partition).get(timeout=10)
    finally:
        producer.close()


# -- CreateTopics -------------------------------------------------------------------------------


def test_kafka_python_creates_topic_with_configs(broker: BrokerThread, kadmin: Any) -> None:
    from kafka.admin import NewTopic

    result = kadmin.create_topics(
        [
            NewTopic(
                "events", 3, 1, topic_configs={"retention.ms": "5000", "cleanup.policy": "compact"}
            )
        ]
    )
    (created,) = result["topics"]
    assert (created["name"], created["error_code"], created["num_partitions"]) == ("events", 0, 3)
    assert created["replication_factor"] == 1
    replicas = internals(broker)
    assert created["topic_id"] == str(replicas.find_topic("events").topic_id)
    assert created["configs"]["retention.ms"]["value"] == "5000"
    assert created["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert created["configs"]["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"
    assert replicas.find_topic("events").partitions == 3
    assert replicas.log("events", 2).config.retention_ms == 5000
    assert replicas.log("events", 0).config.cleanup_policy == "compact"
    assert sorted(kadmin.list_topics()) == ["events"]


def test_create_topics_defaults_and_validate_only(broker: BrokerThread, ours: AdminClient) -> None:
    (result,) = _create(ours, 7, CreatableTopic("dry", -1, -1), validate=True)
    assert (result.error_code, result.num_partitions, result.replication_factor) == (0, 1, 1)
    assert result.topic_id == uuid.UUID(int=0)
    assert {c.name for c in result.configs} >= {"retention.ms", "cleanup.policy"}
    assert internals(broker).find_topic("dry") is None
    (result,) = _create(ours, 7, CreatableTopic("real", -1, -1))
    assert (result.error_code, result.num_partitions) == (0, 1)
    assert result.topic_id == internals(broker).find_topic("real").topic_id
    assignment = [CreatableReplicaAssignment(0, [1]), CreatableReplicaAssignment(1, [1])]
    (result,) = _create(ours, 4, CreatableTopic("assigned", -1, -1, assignment))
    assert result.error_code == 0
    assert internals(broker).find_topic("assigned").partitions == 2


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        (CreatableTopic("bad/name", 1, 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (CreatableTopic("", 1, 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (CreatableTopic("x" * 250, 1, 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (CreatableTopic("rf", 1, 3), ErrorCode.INVALID_REPLICATION_FACTOR),
        (CreatableTopic("rf0", 1, 0), ErrorCode.INVALID_REPLICATION_FACTOR),
        (CreatableTopic("p0", 0, 1), ErrorCode.INVALID_PARTITIONS),
        (CreatableTopic("p-2", -2, 1), ErrorCode.INVALID_PARTITIONS),
        (
            CreatableTopic("cfg", 1, 1, configs=[CreatableTopicConfig("retention.ms", "soon")]),
            ErrorCode.INVALID_CONFIG,
        ),
        (
            CreatableTopic("cfg2", 1, 1, configs=[CreatableTopicConfig("no.such.config", "1")]),
            ErrorCode.INVALID_CONFIG,
        ),
        (
            CreatableTopic("asg", -1, -1, [CreatableReplicaAssignment(0, [2])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            CreatableTopic("asg2", -1, -1, [CreatableReplicaAssignment(1, [1])]),
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            CreatableTopic("asg3", 1, -1, [CreatableReplicaAssignment(0, [1])]),
            ErrorCode.INVALID_REQUEST,
        ),
    ],
)
def test_create_topic_errors(
    broker: BrokerThread, ours: AdminClient, topic: CreatableTopic, code: ErrorCode
) -> None:
    for version in (0, 1, 5, 7):
        (result,) = _create(ours, version, topic)
        assert result.error_code == code
        if version >= 1:
            assert result.error_message
    assert internals(broker).list_topics() == []


def test_create_topics_duplicates_and_existing(broker: BrokerThread, ours: AdminClient) -> None:
    results = _create(
        ours,
        7,
        CreatableTopic("dup", 1, 1),
        CreatableTopic("ok", 1, 1),
        CreatableTopic("dup", 2, 1),
    )
    assert [(r.name, r.error_code) for r in results] == [
        ("dup", ErrorCode.INVALID_REQUEST),
        ("ok", ErrorCode.NONE),
    ]
    (again,) = _create(ours, 7, CreatableTopic("ok", 1, 1))
    assert again.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    assert again.error_message == "Topic 'ok' already exists."
    (collides,) = _create(ours, 7, CreatableTopic("a.b", 1, 1))
    assert collides.error_code == 0
    (collides,) = _create(ours, 7, CreatableTopic("a_b", 1, 1))
    assert collides.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert [t.name for t in internals(broker).list_topics()] == ["a.b", "ok"]


def test_aiokafka_and_confluent_create_and_delete(broker: BrokerThread) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin import NewTopic as AioNewTopic
    from confluent_kafka.admin import AdminClient as ConfluentAdmin
    from confluent_kafka.admin import NewTopic

    async def aio() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [AioNewTopic("aio", 2, 1, topic_configs={"retention.ms": "1"})]
            )
            assert "aio" in await admin.list_topics()
            await admin.delete_topics(["aio"])
        finally:
            await admin.close()

    asyncio.run(aio())
    replicas = internals(broker)
    assert replicas.find_topic("aio") is None
    admin = ConfluentAdmin({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic("conf", num_partitions=4, replication_factor=1, config={"retention.ms": "7"})],
        request_timeout=10,
    )
    futures["conf"].result(timeout=10)
    assert replicas.find_topic("conf").partitions == 4
    assert replicas.log("conf", 3).config.retention_ms == 7
    bad = admin.create_topics([NewTopic("conf2", num_partitions=1, replication_factor=2)])
    with pytest.raises(Exception, match="REPLICATION_FACTOR"):
        bad["conf2"].result(timeout=10)
    admin.delete_topics(["conf"], request_timeout=10)["conf"].result(timeout=10)
    assert replicas.list_topics() == []


# -- DeleteTopics and CreatePartitions ----------------------------------------------------------


def test_delete_topics_by_name_and_id(broker: BrokerThread, kadmin: Any, ours: AdminClient) -> None:
    replicas = internals(broker)
    data_dir = replicas.data_dir
    replicas.create_topic("gone", 2)
    replicas.create_topic("by-id", 1)
    _produce(broker.bootstrap, "gone", 3)
    assert (data_dir / "gone-1").is_dir()
    result = kadmin.delete_topics(["gone"])
    assert [(t["name"], t["error_code"]) for t in result["topics"]] == [("gone", 0)]
    assert "gone" not in kadmin.list_topics()
    assert not (data_dir / "gone-0").exists() and not (data_dir / "gone-1").exists()
    topic_id = replicas.find_topic("by-id").topic_id
    request = DeleteTopicsRequest(
        topics=[
            DeleteTopicState(None, topic_id),
            DeleteTopicState(None, uuid.uuid4()),
            DeleteTopicState("missing"),
        ],
        timeout_ms=5000,
    )
    responses = _exchange(ours, 20, 6, request).responses
    assert [(r.name, r.error_code) for r in responses] == [
        ("by-id", 0),
        (None, ErrorCode.UNKNOWN_TOPIC_ID),
        ("missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    assert responses[0].topic_id == topic_id
    assert replicas.list_topics() == []
    assert not (data_dir / "by-id-0").exists()
    old = _exchange(ours, 20, 0, DeleteTopicsRequest(topic_names=["missing"], timeout_ms=5000))
    assert [r.error_code for r in old.responses] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]


def test_delete_topic_disabled(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data", settings={"delete.topic.enable": False})
    with running_broker(config) as broker, AdminClient(broker.bootstrap) as client:
        internals(broker).create_topic("kept", 1)
        request = DeleteTopicsRequest(
            topics=[DeleteTopicState("kept")], topic_names=["kept"], timeout_ms=5000
        )
        for version, code in (
            (6, ErrorCode.TOPIC_DELETION_DISABLED),
            (2, ErrorCode.INVALID_REQUEST),
        ):
            (response,) = _exchange(client, 20, version, request).responses
            assert response.error_code == code
        assert internals(broker).find_topic("kept") is not None


def test_create_partitions(broker: BrokerThread, kadmin: Any, ours: AdminClient) -> None:
    from kafka.admin import NewPartitions

    replicas = internals(broker)
    replicas.create_topic("grow", 2)
    result = kadmin.create_partitions({"grow": NewPartitions(4)})
    assert [(r.name, r.error_code) for r in result.results] == [("grow", 0)]
    assert replicas.find_topic("grow").partitions == 4
    assert (replicas.data_dir / "grow-3").is_dir()

    def create(topic: CreatePartitionsTopic, validate: bool = False) -> tuple[int, str | None]:
        request = CreatePartitionsRequest([topic], 5000, validate)
        (r,) = _exchange(ours, 37, 3, request).results
        return r.error_code, r.error_message

    assert create(CreatePartitionsTopic("grow", 6, None), validate=True) == (0, None)
    assert replicas.find_topic("grow").partitions == 4
    assert create(CreatePartitionsTopic("grow", 4, None))[0] == ErrorCode.INVALID_PARTITIONS
    assert create(CreatePartitionsTopic("grow", 3, None))[0] == ErrorCode.INVALID_PARTITIONS
    assert create(CreatePartitionsTopic("nope", 3, None))[0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    bad = [CreatePartitionsAssignment([2])]
    assert create(CreatePartitionsTopic("grow", 5, bad))[0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    short = [CreatePartitionsAssignment([1])]
    assert (
        create(CreatePartitionsTopic("grow", 6, short))[0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    )
    assert create(CreatePartitionsTopic("grow", 5, short)) == (0, None)
    assert replicas.find_topic("grow").partitions == 5


# -- configs ------------------------------------------------------------------------------------


def test_describe_topic_configs_exact(broker: BrokerThread, kadmin: Any) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    internals(broker).create_topic("cfg", 1, {"retention.ms": "1234"})
    described = kadmin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "cfg")],
        include_synonyms=True,
        config_filter="all",
    )["topic"]["cfg"]
    assert described["retention.ms"]["value"] == "1234"
    assert described["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert [
        (s["name"], s["value"], s["source"]) for s in described["retention.ms"]["synonyms"]
    ] == [
        ("retention.ms", "1234", "DYNAMIC_TOPIC_CONFIG"),
        ("log.retention.ms", "604800000", "DEFAULT_CONFIG"),
    ]
    expected_defaults = {
        "cleanup.policy": "delete",
        "compression.type": "producer",
        "max.message.bytes": "1048588",
        "segment.bytes": "1073741824",
        "min.insync.replicas": "1",
        "retention.bytes": "-1",
        "min.cleanable.dirty.ratio": "0.5",
        "unclean.leader.election.enable": "false",
    }
    for name, value in expected_defaults.items():
        assert described[name]["value"] == value
        assert described[name]["config_source"] == "DEFAULT_CONFIG"
        assert described[name]["is_sensitive"] is False
        assert described[name]["read_only"] is False
    assert described["cleanup.policy"]["config_type"] == "LIST"
    assert described["segment.bytes"]["config_type"] == "INT"
    assert described["max.message.bytes"]["synonyms"] == [
        {"name": "message.max.bytes", "value": "1048588", "source": "DEFAULT_CONFIG"}
    ]


def test_describe_configs_sources_filters_and_errors(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data", settings={"log.segment.bytes": 1048576})
    with running_broker(config) as broker, AdminClient(broker.bootstrap) as client:
        internals(broker).create_topic("t", 1)
        request = DescribeConfigsRequest(
            resources=[
                DescribeConfigsResource(TOPIC, "t", ["segment.bytes", "retention.ms", "nope"]),
                DescribeConfigsResource(TOPIC, "missing", None),
                DescribeConfigsResource(BROKER, "1", ["num.partitions", "log.segment.bytes"]),
                DescribeConfigsResource(BROKER, "7", None),
                DescribeConfigsResource(BROKER, "", None),
            ],
            include_synonyms=True,
            include_documentation=True,
        )
        topic, missing, node, wrong, default = _exchange(client, 32, 4, request).results
        assert topic.error_code == 0
        by_name = {c.name: c for c in topic.configs}
        assert sorted(by_name) == ["retention.ms", "segment.bytes"]
        segment = by_name["segment.bytes"]
        assert (segment.value, segment.config_source, segment.config_type) == ("1048576", 4, 3)
        assert [(s.name, s.value, s.source) for s in segment.synonyms] == [
            ("log.segment.bytes", "1048576", 4),
            ("log.segment.bytes", "1073741824", 5),
        ]
        assert segment.documentation
        assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert node.error_code == 0
        assert {c.name: (c.value, c.config_source, c.read_only) for c in node.configs} == {
            "num.partitions": ("1", 5, True),
            "log.segment.bytes": ("1048576", 4, False),
        }
        assert wrong.error_code == ErrorCode.INVALID_REQUEST
        assert (default.error_code, default.configs) == (0, [])
        # Version 0 has is_default instead of a source; documentation is absent before v3.
        v0 = DescribeConfigsRequest(resources=[DescribeConfigsResource(TOPIC, "t", None)])
        (result,) = _exchange(client, 32, 0, v0).results
        flags = {c.name: c.is_default for c in result.configs}
        assert flags["retention.ms"] is True and flags["segment.bytes"] is False
        (result,) = _exchange(client, 32, 2, v0).results
        assert all(c.synonyms == [] for c in result.configs)


def test_alter_configs_live_and_after_restart(tmp_path: Path) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    config = local_config(tmp_path / "data")
    with running_broker(config) as broker:
        replicas = internals(broker)
        replicas.create_topic("t", 2, {"retention.ms": "1000", "segment.bytes": "2000000"})
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            # kafka-python's AlterConfigs sends the other overrides too (it replaces them all).
            resource = ConfigResource(
                ConfigResourceType.TOPIC,
                "t",
                {"retention.ms": "60000", "max.message.bytes": "2048"},
            )
            result = admin.alter_configs([resource], incremental=False)
            assert result == {"topic": {"t": "OK"}}
            log = replicas.log("t", 1)
            assert (log.config.retention_ms, log.config.max_message_bytes) == (60000, 2048)
            # IncrementalAlterConfigs: SET, DELETE, APPEND on a list config.
            incremental = ConfigResource(
                ConfigResourceType.TOPIC,
                "t",
                {
                    "segment.bytes": ("SET", "3000000"),
                    "max.message.bytes": ("DELETE", None),
                    "cleanup.policy": ("APPEND", "compact"),
                },
            )
            admin.alter_configs([incremental], incremental=True)
            assert (log.config.segment_bytes, log.config.max_message_bytes) == (3000000, 1048588)
            assert log.config.cleanup_policy == "delete,compact"
            validate = ConfigResource(ConfigResourceType.TOPIC, "t", {"retention.ms": ("SET", "5")})
            admin.alter_configs([validate], validate_only=True, incremental=True)
            assert log.config.retention_ms == 60000
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "t")])
            assert {k: v["value"] for k, v in described["topic"]["t"].items()} == {
                "retention.ms": "60000",
                "segment.bytes": "3000000",
                "cleanup.policy": "delete,compact",
            }
        finally:
            admin.close()
    with running_broker(config) as broker:
        log = internals(broker).log("t", 0)
        assert (log.config.retention_ms, log.config.segment_bytes) == (60000, 3000000)
        assert log.config.cleanup_policy == "delete,compact"
        with AdminClient(broker.bootstrap) as client:
            configs = client.topic_configs("t")
        assert configs["retention.ms"] == ("60000", "DYNAMIC_TOPIC_CONFIG")
        assert configs["max.message.bytes"] == ("1048588", "DEFAULT_CONFIG")


def test_alter_configs_errors(broker: BrokerThread, ours: AdminClient) -> None:
    from kafkacompat.protocol.messages.incremental_alter_configs_request import (
        AlterableConfig as Op,
    )
    from kafkacompat.protocol.messages.incremental_alter_configs_request import (
        AlterConfigsResource as IncResource,
    )
    from kafkacompat.protocol.messages.incremental_alter_configs_request import (
        IncrementalAlterConfigsRequest,
    )

    replicas = internals(broker)
    replicas.create_topic("t", 1, {"retention.ms": "1000"})

    def legacy(*resources: AlterConfigsResource) -> list[int]:
        response = _exchange(ours, 33, 2, AlterConfigsRequest(list(resources)))
        return [r.error_code for r in response.responses]

    def incremental(*resources: IncResource) -> list[int]:
        response = _exchange(ours, 44, 1, IncrementalAlterConfigsRequest(list(resources)))
        return [r.error_code for r in response.responses]

    assert legacy(
        AlterConfigsResource(TOPIC, "t", [AlterableConfig("retention.ms", "x")]),
        AlterConfigsResource(TOPIC, "nope", [AlterableConfig("retention.ms", "1")]),
        AlterConfigsResource(BROKER, "1", [AlterableConfig("num.partitions", "3")]),
        AlterConfigsResource(BROKER, "9", []),
    ) == [
        ErrorCode.INVALID_CONFIG,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.INVALID_REQUEST,
    ]
    # AlterConfigs replaces every override; validate_only changes nothing.
    replace = AlterConfigsResource(TOPIC, "t", [AlterableConfig("segment.bytes", "4000000")])
    response = _exchange(ours, 33, 0, AlterConfigsRequest([replace], validate_only=True))
    assert [r.error_code for r in response.responses] == [0]
    assert dict(replicas.find_topic("t").configs) == {"retention.ms": "1000"}
    assert legacy(replace) == [0]
    assert dict(replicas.find_topic("t").configs) == {"segment.bytes": "4000000"}
    log = replicas.log("t", 0)
    assert (log.config.retention_ms, log.config.segment_bytes) == (604800000, 4000000)
    assert legacy(AlterConfigsResource(TOPIC, "t", [AlterableConfig("retention.ms", "1000")])) == [
        0
    ]
    assert incremental(
        IncResource(TOPIC, "t", [Op("retention.ms", 2, "5")]),
        IncResource(TOPIC, "t", [Op("cleanup.policy", 9, "x")]),
    ) == [ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST]
    assert incremental(IncResource(TOPIC, "t", [Op("retention.ms", 2, "5")])) == [
        ErrorCode.INVALID_CONFIG
    ]
    assert incremental(IncResource(TOPIC, "t", [Op("cleanup.policy", 3, "delete")])) == [
        ErrorCode.INVALID_CONFIG
    ]
    assert incremental(
        IncResource(TOPIC, "t", [Op("retention.ms", 0, "1"), Op("retention.ms", 1, None)])
    ) == [ErrorCode.INVALID_REQUEST]
    assert replicas.log("t", 0).config.retention_ms == 1000


def test_aiokafka_and_confluent_configs(broker: BrokerThread) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource as AioResource
    from aiokafka.admin.config_resource import ConfigResourceType as AioType
    from confluent_kafka.admin import (
        AdminClient as ConfluentAdmin,
    )
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ConfigSource,
        ResourceType,
    )

    replicas = internals(broker)
    replicas.create_topic("t", 1, {"retention.ms": "1000"})

    async def aio() -> Any:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.alter_configs([AioResource(AioType.TOPIC, "t", {"retention.ms": "2000"})])
            return await admin.describe_configs([AioResource(AioType.TOPIC, "t")])
        finally:
            await admin.close()

    (response,) = asyncio.run(aio())
    (resource,) = response.resources
    entries = {entry[0]: entry[1] for entry in resource[4]}
    assert entries["retention.ms"] == "2000"
    assert entries["segment.ms"] == "604800000"
    assert replicas.log("t", 0).config.retention_ms == 2000

    admin = ConfluentAdmin({"bootstrap.servers": broker.bootstrap})
    change = ConfigResource(
        ResourceType.TOPIC,
        "t",
        incremental_configs=[
            ConfigEntry(
                "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
            ),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    for future in admin.incremental_alter_configs([change]).values():
        future.result(timeout=10)
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "t")]).values()
    configs = future.result(timeout=10)
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert replicas.log("t", 0).config.retention_ms == 604800000
    (future,) = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")]).values()
    broker_configs = future.result(timeout=10)
    assert broker_configs["num.partitions"].value == "1"
    assert broker_configs["num.partitions"].is_read_only


# -- DeleteRecords, DescribeLogDirs ---------------------------------------------------------------


def test_delete_records(broker: BrokerThread, kadmin: Any, ours: AdminClient) -> None:
    from kafka import TopicPartition

    replicas = internals(broker)
    replicas.create_topic("recs", 2)
    _produce(broker.bootstrap, "recs", 10)
    log = replicas.log("recs", 0)
    assert (log.log_start_offset, log.high_watermark) == (0, 10)
    result = kadmin.delete_records({TopicPartition("recs", 0): 4})
    assert result[TopicPartition("recs", 0)]["low_watermark"] == 4
    assert log.log_start_offset == 4

    def delete(partition: int, offset: int, version: int = 2) -> tuple[int, int]:
        request = DeleteRecordsRequest(
            [DeleteRecordsTopic("recs", [DeleteRecordsPartition(partition, offset)])], 5000
        )
        ((r,),) = [t.partitions for t in _exchange(ours, 21, version, request).topics]
        return r.error_code, r.low_watermark

    assert delete(0, 2) == (0, 4)
    assert delete(0, 11) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert delete(0, -1, version=0) == (0, 10)
    assert log.log_start_offset == 10
    assert delete(5, 0) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)
    assert delete(1, 0) == (0, 0)


def test_aiokafka_delete_records(broker: BrokerThread) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.structs import TopicPartition

    internals(broker).create_topic("recs", 1)
    _produce(broker.bootstrap, "recs", 5)

    async def aio() -> dict[Any, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.delete_records({TopicPartition("recs", 0): RecordsToDelete(3)})
        finally:
            await admin.close()

    assert asyncio.run(aio()) == {TopicPartition("recs", 0): 3}
    assert internals(broker).log("recs", 0).log_start_offset == 3


def test_describe_log_dirs(broker: BrokerThread, kadmin: Any, ours: AdminClient) -> None:
    from kafkacompat.protocol.messages.describe_log_dirs_request import (
        DescribableLogDirTopic,
        DescribeLogDirsRequest,
    )

    replicas = internals(broker)
    replicas.create_topic("a", 2)
    replicas.create_topic("b", 1)
    _produce(broker.bootstrap, "a", 3, partition=1)
    (entry,) = kadmin.describe_log_dirs()
    (log_dir,) = entry["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == str(replicas.data_dir.resolve())
    sizes = {
        (t["name"], p["partition_index"]): (p["partition_size"], p["offset_lag"])
        for t in log_dir["topics"]
        for p in t["partitions"]
    }
    size = replicas.log("a", 1).size_in_bytes
    assert size > 0
    assert sizes == {("a", 0): (0, 0), ("a", 1): (size, 0), ("b", 0): (0, 0)}
    request = DescribeLogDirsRequest(
        [DescribableLogDirTopic("a", [1, 7]), DescribableLogDirTopic("x", [0])]
    )
    for version in (0, 1, 2, 3, 4):
        response = _exchange(ours, 35, version, request)
        (result,) = response.results
        assert [(t.name, [p.partition_index for p in t.partitions]) for t in result.topics] == [
            ("a", [1])
        ]
        if version >= 4:
            assert result.total_bytes > 0 and result.usable_bytes >= 0


# -- DescribeCluster, DescribeTopicPartitions ---------------------------------------------------


def test_describe_cluster(broker: BrokerThread, ours: AdminClient) -> None:
    from confluent_kafka.admin import AdminClient as ConfluentAdmin

    cluster_id = broker.running.broker.cluster_id
    for version in (0, 1):
        response = _exchange(ours, 60, version, DescribeClusterRequest(True))
        assert (response.error_code, response.cluster_id, response.controller_id) == (
            0,
            cluster_id,
            1,
        )
        assert [(b.broker_id, b.host, b.port) for b in response.brokers] == [
            (1, "127.0.0.1", broker.port)
        ]
        assert response.cluster_authorized_operations > 0
    response = _exchange(ours, 60, 1, DescribeClusterRequest(False, 2))
    assert response.error_code == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
    omitted = _exchange(ours, 60, 0, DescribeClusterRequest(False))
    assert omitted.cluster_authorized_operations == -2147483648

    admin = ConfluentAdmin({"bootstrap.servers": broker.bootstrap})
    result = admin.describe_cluster(request_timeout=10).result(timeout=10)
    assert result.cluster_id == cluster_id
    assert result.controller.id == 1
    assert [(n.id, n.host, n.port) for n in result.nodes] == [(1, "127.0.0.1", broker.port)]


def test_describe_topic_partitions_pages(broker: BrokerThread, ours: AdminClient) -> None:
    replicas = internals(broker)
    replicas.create_topic("a", 3)
    replicas.create_topic("b", 2)
    replicas.create_topic("c", 1)

    def page(limit: int, cursor: Cursor | None, names: list[str] | None = None) -> Any:
        topics = [TopicRequest(n) for n in names or []]
        return _exchange(ours, 75, 0, DescribeTopicPartitionsRequest(topics, limit, cursor))

    seen: list[tuple[str, int]] = []
    cursor: Cursor | None = None
    pages = 0
    while True:
        response = page(2, cursor)
        pages += 1
        seen += [(t.name, p.partition_index) for t in response.topics for p in t.partitions]
        cursor = response.next_cursor
        if cursor is None:
            break
        cursor = Cursor(cursor.topic_name, cursor.partition_index)
    assert pages == 3
    assert seen == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0)]
    response = page(10, None, ["c", "zz", "a"])
    assert [(t.name, t.error_code, len(t.partitions)) for t in response.topics] == [
        ("a", 0, 3),
        ("c", 0, 1),
        ("zz", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 0),
    ]
    assert response.topics[0].topic_id == replicas.find_topic("a").topic_id
    first = page(3, None)
    assert [(t.name, len(t.partitions)) for t in first.topics] == [("a", 3)]
    assert (first.next_cursor.topic_name, first.next_cursor.partition_index) == ("b", 0)
    bad = page(10, Cursor("a", 0), ["b"])
    assert [(t.name, t.error_code) for t in bad.topics] == [("b", ErrorCode.INVALID_REQUEST)]
