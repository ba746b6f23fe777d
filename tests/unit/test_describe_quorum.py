"""DescribeQuorum's answer read off a metadata image, and the controller epoch and revision
the cluster's images carry."""

from __future__ import annotations

import json
import uuid

from kafkacompat.broker.describe_quorum import METADATA_TOPIC, describe_quorum
from kafkacompat.cluster.controller_election import CONTROLLER, CONTROLLER_EPOCH
from kafkacompat.cluster.etcd_store import Change, Entry
from kafkacompat.cluster.metadata_follower import MetadataKeys
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo, MetadataImage
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import describe_quorum_response
from kafkacompat.protocol.messages.describe_quorum_request import (
    DescribeQuorumRequest,
    PartitionData,
    TopicData,
)
from kafkacompat.protocol.messages.describe_quorum_response import Listener, Node, ReplicaState

NOW = 1_700_000_000_000
ZERO = uuid.UUID(int=0)


def broker(node_id: int, *listeners: str) -> BrokerInfo:
    endpoints = tuple(
        BrokerEndpoint(name, f"b{node_id}", 9000 + 10 * node_id + i)
        for i, name in enumerate(listeners)
    )
    return BrokerInfo(node_id, f"b{node_id}", 9000 + 10 * node_id, endpoints=endpoints)


def image(controller: int = 2, brokers: tuple[BrokerInfo, ...] | None = None) -> MetadataImage:
    if brokers is None:
        brokers = (broker(3, "INTERNAL", "EXTERNAL"), broker(1, "INTERNAL"), broker(2, "EXTERNAL"))
    return MetadataImage.build(
        "cluster", controller, brokers, [], controller_epoch=5, metadata_revision=42
    )


def request(*topics: TopicData) -> DescribeQuorumRequest:
    return DescribeQuorumRequest(list(topics) or [TopicData(METADATA_TOPIC, [PartitionData(0)])])


def test_the_controller_leads_and_every_broker_votes() -> None:
    answer = describe_quorum(image(), request(), "EXTERNAL", NOW)
    assert (answer.error_code, answer.error_message) == (ErrorCode.NONE, None)
    [topic] = answer.topics
    [partition] = topic.partitions
    assert (topic.topic_name, partition.partition_index, partition.error_code) == (
        METADATA_TOPIC,
        0,
        ErrorCode.NONE,
    )
    assert (partition.leader_id, partition.leader_epoch, partition.high_watermark) == (2, 5, 42)
    assert partition.current_voters == [
        ReplicaState(1, ZERO, -1, -1, -1),
        ReplicaState(2, ZERO, 42, NOW, NOW),
        ReplicaState(3, ZERO, -1, -1, -1),
    ]
    assert partition.observers == []
    # Endpoints on the request's listener; a voter without it is named with none.
    assert answer.nodes == [
        Node(1, []),
        Node(2, [Listener("EXTERNAL", "b2", 9020)]),
        Node(3, [Listener("EXTERNAL", "b3", 9031)]),
    ]


def test_an_unregistered_controller_still_votes() -> None:
    answer = describe_quorum(image(7), request(), "INTERNAL", NOW)
    [partition] = answer.topics[0].partitions
    assert [v.replica_id for v in partition.current_voters] == [1, 2, 3, 7]
    assert answer.nodes[-1] == Node(7, [])


def test_without_a_controller_the_partition_is_not_led() -> None:
    answer = describe_quorum(image(-1), request(), "INTERNAL", NOW)
    assert answer.error_code == ErrorCode.NONE
    [partition] = answer.topics[0].partitions
    assert (partition.error_code, partition.leader_id) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, -1)
    assert (partition.current_voters, answer.nodes) == ([], [])


def test_only_the_metadata_partition_alone_has_a_quorum() -> None:
    asked = request(
        TopicData(METADATA_TOPIC, [PartitionData(0)]), TopicData("other", [PartitionData(3)])
    )
    answer = describe_quorum(image(), asked, "INTERNAL", NOW)
    assert answer.error_code == ErrorCode.NONE
    assert [
        (t.topic_name, [(p.partition_index, p.error_code) for p in t.partitions])
        for t in answer.topics
    ] == [
        (METADATA_TOPIC, [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]),
        ("other", [(3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]),
    ]
    assert answer.nodes == []


def test_every_version_encodes_the_answer() -> None:
    answer = describe_quorum(image(), request(), "EXTERNAL", NOW)
    for version in (0, 1, 2):
        encoded = describe_quorum_response.encode(answer, version)
        decoded = describe_quorum_response.decode(memoryview(encoded), version)
        [partition] = decoded.topics[0].partitions
        assert partition.current_voters[1].log_end_offset == 42
        assert len(decoded.nodes) == (3 if version == 2 else 0)


def test_cluster_images_carry_the_controller_epoch_and_the_revision() -> None:
    keys = MetadataKeys("cluster")
    keys.load(
        17,
        [
            Entry(CONTROLLER, json.dumps({"node_id": 2, "epoch": 3}).encode(), 10, 10),
            Entry(CONTROLLER_EPOCH, b"3", 10, 10),
        ],
    )
    loaded = keys.image()
    assert (loaded.controller_id, loaded.controller_epoch, loaded.metadata_revision) == (2, 3, 17)
    keys.apply(Change(CONTROLLER, None, 20))
    # The controller is gone, its epoch stays the last one there was.
    gone = keys.image()
    assert (gone.controller_id, gone.controller_epoch, gone.metadata_revision) == (-1, 3, 20)
    assert MetadataKeys("cluster").image().controller_epoch == 0
