"""What the data-path APIs check (Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
InitProducerId), as Kafka's KafkaApis does, for a principal other than the super user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkacompat.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.security.acls import SUPPORTED_OPERATIONS, PatternType, PermissionType
from kafkacompat.security.acls import AclOperation as Op
from kafkacompat.security.acls import ResourceType as R
from kafkacompat.testing import local_config

from .acl_helpers import ADMIN, ALICE, OMITTED, bits, call, grant, secured_broker

E = ErrorCode


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    broker = secured_broker(tmp_path / "data")
    for name in ("visible", "hidden", "orders"):
        await broker.controller.create_topic(name, 2)
    yield broker
    broker.close()


def named(*names: str) -> list[MetadataRequestTopic]:
    return [MetadataRequestTopic(name=n) for n in names]


async def test_metadata_hides_topics_and_refuses_named_ones(broker: Broker) -> None:
    grant(broker, R.TOPIC, "visible", Op.READ)
    everything = await call(broker, ALICE, 3, 12, MetadataRequest(topics=None))
    assert [t.name for t in everything.topics] == ["visible"]
    v0 = await call(broker, ALICE, 3, 0, MetadataRequest(topics=[]))
    assert [t.name for t in v0.topics] == ["visible"]
    asked = await call(
        broker, ALICE, 3, 12, MetadataRequest(topics=named("visible", "hidden", "x"))
    )
    # Unknown or not, a topic alice may not describe answers the same.
    assert [(t.name, t.error_code) for t in asked.topics] == [
        ("visible", E.NONE),
        ("hidden", E.TOPIC_AUTHORIZATION_FAILED),
        ("x", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    assert asked.topics[1].partitions == []
    admin = await call(broker, ADMIN, 3, 12, MetadataRequest(topics=None))
    assert sorted(t.name for t in admin.topics) == ["hidden", "orders", "visible"]


async def test_metadata_auto_creation_needs_create(broker: Broker) -> None:
    grant(broker, R.TOPIC, "new-", Op.DESCRIBE, pattern=PatternType.PREFIXED)
    request = MetadataRequest(topics=named("new-a"), allow_auto_topic_creation=True)
    refused = await call(broker, ALICE, 3, 9, request)
    assert [t.error_code for t in refused.topics] == [E.TOPIC_AUTHORIZATION_FAILED]
    assert broker.controller.image.topic("new-a") is None
    grant(broker, R.TOPIC, "new-a", Op.CREATE)
    created = await call(broker, ALICE, 3, 9, request)
    assert [t.error_code for t in created.topics] == [E.NONE]
    grant(broker, R.CLUSTER, "kafka-cluster", Op.CREATE)
    request = MetadataRequest(topics=named("new-b"), allow_auto_topic_creation=True)
    assert [t.error_code for t in (await call(broker, ALICE, 3, 9, request)).topics] == [E.NONE]


async def test_authorized_operations_are_computed_per_principal(broker: Broker) -> None:
    grant(broker, R.TOPIC, "visible", Op.READ, Op.ALTER_CONFIGS)
    request = MetadataRequest(
        topics=named("visible", "hidden"),
        include_cluster_authorized_operations=True,
        include_topic_authorized_operations=True,
    )
    answer = await call(broker, ALICE, 3, 10, request)
    described = bits(Op.READ, Op.DESCRIBE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS)
    assert [t.topic_authorized_operations for t in answer.topics] == [described, OMITTED]
    # Without DESCRIBE on the cluster, no cluster operation is reported.
    assert answer.cluster_authorized_operations == 0
    grant(broker, R.CLUSTER, "kafka-cluster", Op.ALTER)
    answer = await call(broker, ALICE, 3, 10, request)
    assert answer.cluster_authorized_operations == bits(Op.ALTER, Op.DESCRIBE)
    admin = await call(broker, ADMIN, 3, 10, request)
    assert admin.cluster_authorized_operations == bits(*SUPPORTED_OPERATIONS[R.CLUSTER])
    assert admin.topics[1].topic_authorized_operations == bits(*SUPPORTED_OPERATIONS[R.TOPIC])
    plain = await call(broker, ALICE, 3, 10, MetadataRequest(topics=named("visible")))
    assert plain.cluster_authorized_operations == OMITTED
    assert plain.topics[0].topic_authorized_operations == OMITTED


def produce(topic: str, transactional_id: str | None = None) -> ProduceRequest:
    batch = encode_batch(
        [Record(0, 1_000, None, b"v")],
        producer_id=7 if transactional_id else -1,
        producer_epoch=0 if transactional_id else -1,
        base_sequence=0 if transactional_id else -1,
        transactional=transactional_id is not None,
    )
    return ProduceRequest(
        transactional_id=transactional_id,
        acks=-1,
        timeout_ms=5_000,
        topic_data=[TopicProduceData(topic, [PartitionProduceData(0, batch)])],
    )


def produce_errors(response: object) -> list[tuple[str, int]]:
    return [
        (t.name, p.error_code)
        for t in response.responses  # type: ignore[attr-defined]
        for p in t.partition_responses
    ]


async def test_produce_needs_write_on_the_topic(broker: Broker) -> None:
    request = produce("orders")
    request.topic_data.append(produce("visible").topic_data[0])
    grant(broker, R.TOPIC, "orders", Op.WRITE)
    answer = await call(broker, ALICE, 0, 9, request)
    assert produce_errors(answer) == [
        ("orders", E.NONE),
        ("visible", E.TOPIC_AUTHORIZATION_FAILED),
    ]


async def test_transactional_records_need_write_on_the_transactional_id(broker: Broker) -> None:
    grant(broker, R.TOPIC, "orders", Op.WRITE)
    answer = await call(broker, ALICE, 0, 9, produce("orders", "tx"))
    assert produce_errors(answer) == [("orders", E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)]


def fetch(*topics: str, replica_id: int = -1) -> FetchRequest:
    return FetchRequest(
        replica_id=replica_id,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=1 << 20,
        topics=[
            FetchTopic(
                topic=t,
                partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1024)],
            )
            for t in topics
        ],
    )


def fetch_errors(response: object) -> list[tuple[str, int]]:
    return [
        (t.topic, p.error_code)
        for t in response.responses  # type: ignore[attr-defined]
        for p in t.partitions
    ]


async def test_fetch_needs_read_and_a_follower_cluster_action(broker: Broker) -> None:
    grant(broker, R.TOPIC, "orders", Op.READ)
    answer = await call(broker, ALICE, 1, 11, fetch("orders", "visible"))
    assert answer.error_code == E.NONE
    assert fetch_errors(answer) == [
        ("orders", E.NONE),
        ("visible", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    follower = await call(broker, ALICE, 1, 11, fetch("orders", replica_id=2))
    assert fetch_errors(follower) == [("orders", E.TOPIC_AUTHORIZATION_FAILED)]


async def test_list_offsets_and_epochs_need_describe(broker: Broker) -> None:
    grant(broker, R.TOPIC, "orders", Op.READ)  # READ implies DESCRIBE
    request = ListOffsetsRequest(
        replica_id=-1,
        topics=[
            ListOffsetsTopic(t, [ListOffsetsPartition(partition_index=0, timestamp=-1)])
            for t in ("orders", "visible")
        ],
    )
    answer = await call(broker, ALICE, 2, 7, request)
    assert [(t.name, t.partitions[0].error_code) for t in answer.topics] == [
        ("orders", E.NONE),
        ("visible", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    epochs = OffsetForLeaderEpochRequest(
        topics=[
            OffsetForLeaderTopic(t, [OffsetForLeaderPartition(partition=0, leader_epoch=0)])
            for t in ("orders", "visible")
        ]
    )
    answer = await call(broker, ALICE, 23, 4, epochs)
    assert [(t.topic, t.partitions[0].error_code) for t in answer.topics] == [
        ("orders", E.NONE),
        ("visible", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    grant(broker, R.CLUSTER, "kafka-cluster", Op.CLUSTER_ACTION)
    answer = await call(broker, ALICE, 23, 4, epochs)
    assert [t.partitions[0].error_code for t in answer.topics] == [E.NONE, E.NONE]


async def test_idempotent_producer_needs_idempotent_write_or_write_on_a_topic(
    broker: Broker,
) -> None:
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
    answer = await call(broker, ALICE, 22, 4, request)
    assert answer.error_code == E.CLUSTER_AUTHORIZATION_FAILED
    grant(broker, R.TOPIC, "o", Op.WRITE, pattern=PatternType.PREFIXED)
    assert (await call(broker, ALICE, 22, 4, request)).error_code == E.NONE
    # A DENY of a longer prefix leaves other topics of the ALLOW writable ...
    deny = PermissionType.DENY
    grant(broker, R.TOPIC, "or", Op.WRITE, permission=deny, pattern=PatternType.PREFIXED)
    assert (await call(broker, ALICE, 22, 4, request)).error_code == E.NONE
    # ... one covering every topic the ALLOW covers takes it back.
    grant(broker, R.TOPIC, "o", Op.WRITE, permission=deny, pattern=PatternType.PREFIXED)
    answer = await call(broker, ALICE, 22, 4, request)
    assert answer.error_code == E.CLUSTER_AUTHORIZATION_FAILED
    grant(broker, R.CLUSTER, "kafka-cluster", Op.IDEMPOTENT_WRITE)
    assert (await call(broker, ALICE, 22, 4, request)).error_code == E.NONE
    transactional = InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60_000)
    answer = await call(broker, ALICE, 22, 4, transactional)
    assert answer.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    grant(broker, R.TRANSACTIONAL_ID, "tx", Op.WRITE)
    assert (await call(broker, ALICE, 22, 4, transactional)).error_code == E.NONE


async def test_without_an_authorizer_everything_is_allowed(tmp_path: Path) -> None:
    broker = Broker(local_config(tmp_path / "open"))
    try:
        await broker.controller.create_topic("orders", 1)
        answer = await call(broker, ALICE, 0, 9, produce("orders"))
        assert produce_errors(answer) == [("orders", E.NONE)]
        request = MetadataRequest(topics=named("orders"), include_topic_authorized_operations=True)
        answer = await call(broker, ALICE, 3, 10, request)
        assert answer.topics[0].topic_authorized_operations == bits(*SUPPORTED_OPERATIONS[R.TOPIC])
    finally:
        broker.close()
