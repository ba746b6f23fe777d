"""DescribeQuorum as Kafka's KRaft tools send it: the controller as the quorum leader, every
registered broker a voter, on one broker and on a three-broker cluster (where killing the
controller names the next one, in a later epoch); Kafka's errors for the wrong partition and
without DESCRIBE on the cluster."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.describe_quorum_request import (
    API_KEY,
    DescribeQuorumRequest,
    PartitionData,
    TopicData,
)
from kafkacompat.protocol.messages.describe_quorum_response import (
    DescribeQuorumResponse,
    Listener,
    Node,
    ReplicaState,
)
from kafkacompat.testing import KafkaBroker
from kafkacompat.testing_cluster import LocalCluster
from tests.integration.raw import RawClient

METADATA_TOPIC = "__cluster_metadata"
ZERO_UUID = uuid.UUID(int=0)


def ask(port: int, version: int, topics: list[TopicData] | None = None) -> DescribeQuorumResponse:
    if topics is None:
        topics = [TopicData(METADATA_TOPIC, [PartitionData(0)])]
    with RawClient(port) as client:
        answer = client.call(API_KEY, version, DescribeQuorumRequest(topics))
    assert isinstance(answer, DescribeQuorumResponse)
    return answer


def only_partition(answer: DescribeQuorumResponse) -> Any:
    assert answer.error_code == ErrorCode.NONE
    [topic] = answer.topics
    assert topic.topic_name == METADATA_TOPIC
    [partition] = topic.partitions
    assert (partition.partition_index, partition.error_code) == (0, ErrorCode.NONE)
    return partition


def test_api_versions_advertises_versions_0_to_2(kafka_broker: KafkaBroker) -> None:
    with RawClient(kafka_broker.port) as client:
        response = client.call(18, 3, ApiVersionsRequest("quorum-test", "1.0"))
    served = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert served[API_KEY] == (0, 2)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_a_single_broker_is_the_quorum(kafka_broker: KafkaBroker, version: int) -> None:
    node_id = kafka_broker.thread.running.broker.node_id
    before = int(time.time() * 1000)
    answer = ask(kafka_broker.port, version)
    after = int(time.time() * 1000)
    partition = only_partition(answer)
    assert (partition.leader_id, partition.leader_epoch, partition.high_watermark) == (
        node_id,
        1,
        0,
    )
    assert partition.observers == []
    [voter] = partition.current_voters
    assert (voter.replica_id, voter.replica_directory_id, voter.log_end_offset) == (
        node_id,
        ZERO_UUID,
        0,
    )
    if version == 0:  # no timestamps on the wire: the defaults
        assert (voter.last_fetch_timestamp, voter.last_caught_up_timestamp) == (-1, -1)
    else:  # the leader reports now, as Kafka's does
        assert before <= voter.last_fetch_timestamp == voter.last_caught_up_timestamp <= after
    if version < 2:
        assert answer.nodes == []
    else:
        assert answer.error_message is None
        assert partition.error_message is None
        [listener] = kafka_broker.thread.running.addresses
        assert answer.nodes == [
            Node(node_id, [Listener(listener, kafka_broker.host, kafka_broker.port)])
        ]


@pytest.mark.parametrize(
    "topics",
    [
        [TopicData(METADATA_TOPIC, [PartitionData(1)])],
        [TopicData("other", [PartitionData(0)])],
        [TopicData(METADATA_TOPIC, [PartitionData(0), PartitionData(1)])],
        [TopicData(METADATA_TOPIC, [PartitionData(0)]), TopicData("t", [PartitionData(2)])],
    ],
    ids=["partition-1", "other-topic", "two-partitions", "two-topics"],
)
def test_anything_but_the_metadata_partition_alone_is_unknown(
    kafka_broker: KafkaBroker, topics: list[TopicData]
) -> None:
    for version in (0, 2):
        answer = ask(kafka_broker.port, version, topics)
        assert answer.error_code == ErrorCode.NONE
        assert answer.nodes == []
        asked = [(t.topic_name, [p.partition_index for p in t.partitions]) for t in topics]
        assert [
            (t.topic_name, [p.partition_index for p in t.partitions]) for t in answer.topics
        ] == (asked)
        for topic in answer.topics:
            for partition in topic.partitions:
                assert partition.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                assert (partition.current_voters, partition.observers) == ([], [])
                if version == 2:
                    assert partition.error_message


@pytest.mark.kafka_broker(
    settings={
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": True,
    }
)
def test_describe_on_the_cluster_is_required(kafka_broker: KafkaBroker) -> None:
    assert only_partition(ask(kafka_broker.port, 2)).leader_id >= 0
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, request_timeout_ms=10_000)
    try:
        deny = ACL(
            "User:ANONYMOUS",
            "*",
            ACLOperation.DESCRIBE,
            ACLPermissionType.DENY,
            ResourcePattern(ResourceType.CLUSTER, "kafka-cluster"),
        )
        assert not admin.create_acls([deny])["failed"]
    finally:
        admin.close()
    for version in (0, 2):
        answer = ask(kafka_broker.port, version)
        assert (answer.error_code, answer.topics, answer.nodes) == (
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            [],
            [],
        )


def quorum_as_seen(cluster: LocalCluster, node_id: int) -> tuple[int, int, list[int]]:
    """(leader, epoch, voters) as broker ``node_id`` answers DescribeQuorum v2; (-1, -1, [])
    while it knows no controller."""
    broker = cluster.brokers[node_id]
    answer = ask(broker.port, 2)
    [topic] = answer.topics
    if topic.partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        return -1, -1, []
    partition = only_partition(answer)
    voters = [v.replica_id for v in partition.current_voters]
    assert [n.node_id for n in answer.nodes] == voters
    for node in answer.nodes:
        [listener] = node.listeners
        assert (listener.host, listener.port) == ("127.0.0.1", cluster.brokers[node.node_id].port)
    leader = [v for v in partition.current_voters if v.replica_id == partition.leader_id]
    assert leader == [
        ReplicaState(
            partition.leader_id,
            ZERO_UUID,
            partition.high_watermark,
            leader[0].last_fetch_timestamp,
            leader[0].last_caught_up_timestamp,
        )
    ]
    assert partition.high_watermark > 0  # an etcd revision
    for voter in partition.current_voters:
        if voter.replica_id != partition.leader_id:
            assert (voter.log_end_offset, voter.last_fetch_timestamp) == (-1, -1)
    return partition.leader_id, partition.leader_epoch, voters


def test_every_broker_names_the_controller_and_the_next_one(kafka_cluster: LocalCluster) -> None:
    controller = kafka_cluster.controller()
    views = {n: quorum_as_seen(kafka_cluster, n) for n in kafka_cluster.brokers}
    epochs = {epoch for _, epoch, _ in views.values()}
    assert {(leader, tuple(voters)) for leader, _, voters in views.values()} == {
        (controller, (1, 2, 3))
    }
    [epoch] = epochs
    assert epoch >= 1
    kafka_cluster.kill(controller)
    survivors = [n for n in kafka_cluster.brokers if n != controller]
    deadline = time.monotonic() + 15
    while True:
        leader, new_epoch, voters = quorum_as_seen(kafka_cluster, survivors[0])
        if leader not in (-1, controller) and controller not in voters:
            break
        assert time.monotonic() < deadline, "no new controller named"
        time.sleep(0.1)
    assert leader in survivors
    assert new_epoch > epoch
    assert voters == survivors
    deadline = time.monotonic() + 10
    while quorum_as_seen(kafka_cluster, survivors[1])[:2] != (leader, new_epoch):
        assert time.monotonic() < deadline, "the other survivor does not agree"
        time.sleep(0.1)
