"""What the group APIs check (FindCoordinator, JoinGroup, Heartbeat, OffsetCommit, OffsetFetch,
DescribeGroups, ListGroups, DeleteGroups, OffsetDelete), as Kafka's KafkaApis does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkacompat.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.heartbeat_request import HeartbeatRequest
from kafkacompat.protocol.messages.join_group_request import (
    JoinGroupRequest,
    JoinGroupRequestProtocol,
)
from kafkacompat.protocol.messages.list_groups_request import ListGroupsRequest
from kafkacompat.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkacompat.protocol.messages.offset_delete_request import (
    OffsetDeleteRequest,
    OffsetDeleteRequestPartition,
    OffsetDeleteRequestTopic,
)
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopic,
    OffsetFetchRequestTopics,
)
from kafkacompat.security.acls import AclOperation as Op
from kafkacompat.security.acls import ResourceType as R

from .acl_helpers import ADMIN, ALICE, OMITTED, bits, call, grant, secured_broker

E = ErrorCode


def commit(group: str, *topics: str) -> OffsetCommitRequest:
    return OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            OffsetCommitRequestTopic(t, [OffsetCommitRequestPartition(0, 5, -1, -1, "m")])
            for t in topics
        ],
    )


def commit_errors(response: Any) -> list[tuple[str, int]]:
    return [(t.name, p.error_code) for t in response.topics for p in t.partitions]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    broker = secured_broker(tmp_path / "data")
    for name in ("orders", "hidden"):
        await broker.controller.create_topic(name, 1)
    for group in ("g1", "g2"):
        answer = await call(broker, ADMIN, 8, 8, commit(group, "orders", "hidden"))
        assert commit_errors(answer) == [("orders", E.NONE), ("hidden", E.NONE)]
    yield broker
    broker.close()


async def test_find_coordinator_needs_describe_on_the_key(broker: Broker) -> None:
    grant(broker, R.GROUP, "g1", Op.READ)
    grant(broker, R.TRANSACTIONAL_ID, "tx", Op.WRITE)
    batched = await call(
        broker, ALICE, 10, 4, FindCoordinatorRequest(key_type=0, coordinator_keys=["g1", "g2"])
    )
    assert [(c.key, c.error_code) for c in batched.coordinators] == [
        ("g1", E.NONE),
        ("g2", E.GROUP_AUTHORIZATION_FAILED),
    ]
    assert batched.coordinators[1].node_id == -1
    single = await call(broker, ALICE, 10, 3, FindCoordinatorRequest(key="t2", key_type=1))
    assert single.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    single = await call(broker, ALICE, 10, 3, FindCoordinatorRequest(key="tx", key_type=1))
    assert single.error_code == E.NONE


async def test_membership_needs_read_on_the_group(broker: Broker) -> None:
    join = JoinGroupRequest(
        group_id="g2",
        session_timeout_ms=10_000,
        rebalance_timeout_ms=10_000,
        member_id="",
        protocol_type="consumer",
        protocols=[JoinGroupRequestProtocol("range", b"")],
    )
    answer = await call(broker, ALICE, 11, 7, join)
    assert (answer.error_code, answer.member_id, answer.generation_id) == (
        E.GROUP_AUTHORIZATION_FAILED,
        "",
        -1,
    )
    heartbeat = HeartbeatRequest(group_id="g2", generation_id=1, member_id="m")
    assert (await call(broker, ALICE, 12, 4, heartbeat)).error_code == E.GROUP_AUTHORIZATION_FAILED


async def test_offset_commit_needs_read_on_group_and_topics(broker: Broker) -> None:
    answer = await call(broker, ALICE, 8, 8, commit("g1", "orders"))
    assert commit_errors(answer) == [("orders", E.GROUP_AUTHORIZATION_FAILED)]
    grant(broker, R.GROUP, "g1", Op.READ)
    grant(broker, R.TOPIC, "orders", Op.READ)
    answer = await call(broker, ALICE, 8, 8, commit("g1", "orders", "hidden"))
    assert commit_errors(answer) == [("orders", E.NONE), ("hidden", E.TOPIC_AUTHORIZATION_FAILED)]


async def test_offset_fetch_needs_describe_on_group_and_topics(broker: Broker) -> None:
    topics = [OffsetFetchRequestTopic(t, [0]) for t in ("orders", "hidden")]
    refused = await call(broker, ALICE, 9, 7, OffsetFetchRequest(group_id="g1", topics=topics))
    assert (refused.error_code, refused.topics) == (E.GROUP_AUTHORIZATION_FAILED, [])
    v1 = await call(broker, ALICE, 9, 1, OffsetFetchRequest(group_id="g1", topics=topics))
    assert [p.error_code for t in v1.topics for p in t.partitions] == [
        E.GROUP_AUTHORIZATION_FAILED
    ] * 2
    grant(broker, R.GROUP, "g1", Op.DESCRIBE)
    grant(broker, R.TOPIC, "orders", Op.DESCRIBE)
    named = await call(broker, ALICE, 9, 7, OffsetFetchRequest(group_id="g1", topics=topics))
    assert named.error_code == E.NONE
    assert sorted(
        (t.name, p.committed_offset, p.error_code) for t in named.topics for p in t.partitions
    ) == [("hidden", -1, E.TOPIC_AUTHORIZATION_FAILED), ("orders", 5, E.NONE)]
    every = await call(broker, ALICE, 9, 7, OffsetFetchRequest(group_id="g1", topics=None))
    assert [t.name for t in every.topics] == ["orders"]
    groups = [
        OffsetFetchRequestGroup(group_id=g, topics=[OffsetFetchRequestTopics("orders", [0])])
        for g in ("g1", "g2")
    ]
    batched = await call(broker, ALICE, 9, 8, OffsetFetchRequest(groups=groups))
    assert [(g.group_id, g.error_code) for g in batched.groups] == [
        ("g1", E.NONE),
        ("g2", E.GROUP_AUTHORIZATION_FAILED),
    ]


async def test_describe_and_list_groups_need_describe(broker: Broker) -> None:
    grant(broker, R.GROUP, "g1", Op.READ)
    request = DescribeGroupsRequest(groups=["g1", "g2"], include_authorized_operations=True)
    answer = await call(broker, ALICE, 15, 5, request)
    assert [(g.group_id, g.error_code, g.authorized_operations) for g in answer.groups] == [
        ("g1", E.NONE, bits(Op.READ, Op.DESCRIBE)),
        ("g2", E.GROUP_AUTHORIZATION_FAILED, OMITTED),
    ]
    listed = await call(broker, ALICE, 16, 4, ListGroupsRequest())
    assert [g.group_id for g in listed.groups] == ["g1"]
    # DESCRIBE on the cluster lists every group.
    grant(broker, R.CLUSTER, "kafka-cluster", Op.DESCRIBE)
    listed = await call(broker, ALICE, 16, 4, ListGroupsRequest())
    assert [g.group_id for g in listed.groups] == ["g1", "g2"]


async def test_deleting_groups_and_offsets_needs_delete(broker: Broker) -> None:
    grant(broker, R.GROUP, "g1", Op.DELETE)
    offsets = OffsetDeleteRequest(
        group_id="g2",
        topics=[
            OffsetDeleteRequestTopic(t, [OffsetDeleteRequestPartition(0)]) for t in ("orders",)
        ],
    )
    assert (await call(broker, ALICE, 47, 0, offsets)).error_code == E.GROUP_AUTHORIZATION_FAILED
    offsets.group_id = "g1"
    offsets.topics.append(OffsetDeleteRequestTopic("hidden", [OffsetDeleteRequestPartition(0)]))
    grant(broker, R.TOPIC, "orders", Op.READ)
    answer = await call(broker, ALICE, 47, 0, offsets)
    assert answer.error_code == E.NONE
    assert commit_errors(answer) == [("orders", E.NONE), ("hidden", E.TOPIC_AUTHORIZATION_FAILED)]
    answer = await call(broker, ALICE, 42, 2, DeleteGroupsRequest(groups_names=["g1", "g2"]))
    assert [(r.group_id, r.error_code) for r in answer.results] == [
        ("g1", E.NONE),
        ("g2", E.GROUP_AUTHORIZATION_FAILED),
    ]
