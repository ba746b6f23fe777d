"""What the transaction and admin APIs check, as Kafka does, and the ACL requests themselves:
CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST and the requests Kafka cannot parse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ErrorCode, ProtocolError
from kafkacompat.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkacompat.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkacompat.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkacompat.protocol.messages.create_partitions_request import (
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkacompat.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkacompat.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkacompat.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkacompat.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkacompat.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkacompat.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkacompat.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkacompat.protocol.messages.describe_producers_request import (
    DescribeProducersRequest,
    TopicRequest,
)
from kafkacompat.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkacompat.protocol.messages.end_txn_request import EndTxnRequest
from kafkacompat.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkacompat.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kafkacompat.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)
from kafkacompat.security.acls import AclOperation as Op
from kafkacompat.security.acls import PatternType as P
from kafkacompat.security.acls import PermissionType as Perm
from kafkacompat.security.acls import ResourceType as R

from .acl_helpers import ADMIN, ALICE, OMITTED, authorizer, bits, call, grant, secured_broker

E = ErrorCode
TOPIC_CONFIG, BROKER_CONFIG = 2, 4


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    broker = secured_broker(tmp_path / "data")
    for name in ("orders", "hidden"):
        await broker.controller.create_topic(name, 1)
    yield broker
    broker.close()


def add_partitions(txn_id: str, *topics: str) -> AddPartitionsToTxnRequest:
    return AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn_id,
        v3_and_below_producer_id=1,
        v3_and_below_producer_epoch=0,
        v3_and_below_topics=[AddPartitionsToTxnTopic(t, [0]) for t in topics],
    )


def partition_errors(response: Any) -> list[tuple[str, int]]:
    return [
        (t.name, p.partition_error_code)
        for t in response.results_by_topic_v3_and_below
        for p in t.results_by_partition
    ]


async def test_transaction_apis_need_write_on_the_transactional_id(broker: Broker) -> None:
    answer = await call(broker, ALICE, 24, 3, add_partitions("tx", "orders"))
    assert partition_errors(answer) == [("orders", E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)]
    offsets = AddOffsetsToTxnRequest(
        transactional_id="tx", producer_id=1, producer_epoch=0, group_id="g"
    )
    answer = await call(broker, ALICE, 25, 3, offsets)
    assert answer.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    end = EndTxnRequest(transactional_id="tx", producer_id=1, producer_epoch=0, committed=True)
    answer = await call(broker, ALICE, 26, 3, end)
    assert answer.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    grant(broker, R.TRANSACTIONAL_ID, "tx", Op.WRITE)
    grant(broker, R.TOPIC, "orders", Op.WRITE)
    answer = await call(broker, ALICE, 24, 3, add_partitions("tx", "orders", "hidden"))
    # One refused partition fails the request; the others were not attempted.
    assert partition_errors(answer) == [
        ("orders", E.OPERATION_NOT_ATTEMPTED),
        ("hidden", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    answer = await call(broker, ALICE, 25, 3, offsets)
    assert answer.error_code == E.GROUP_AUTHORIZATION_FAILED
    commit = TxnOffsetCommitRequest(
        transactional_id="tx",
        group_id="g",
        producer_id=1,
        producer_epoch=0,
        topics=[
            TxnOffsetCommitRequestTopic(t, [TxnOffsetCommitRequestPartition(0, 3)])
            for t in ("orders", "hidden")
        ],
    )
    answer = await call(broker, ALICE, 28, 3, commit)
    assert [(t.name, t.partitions[0].error_code) for t in answer.topics] == [
        ("orders", E.GROUP_AUTHORIZATION_FAILED),
        ("hidden", E.GROUP_AUTHORIZATION_FAILED),
    ]
    grant(broker, R.GROUP, "g", Op.READ)
    grant(broker, R.TOPIC, "orders", Op.READ)
    answer = await call(broker, ALICE, 28, 3, commit)
    assert answer.topics[1].partitions[0].error_code == E.TOPIC_AUTHORIZATION_FAILED


async def test_broker_to_broker_apis_need_cluster_action(broker: Broker) -> None:
    verify = AddPartitionsToTxnRequest(
        transactions=[
            AddPartitionsToTxnTransaction(
                "tx", 1, 0, True, [AddPartitionsToTxnTopic("orders", [0])]
            )
        ]
    )
    answer = await call(broker, ALICE, 24, 4, verify)
    assert (answer.error_code, answer.results_by_transaction) == (
        E.CLUSTER_AUTHORIZATION_FAILED,
        [],
    )
    markers = WriteTxnMarkersRequest(
        markers=[WritableTxnMarker(1, 0, True, [WritableTxnMarkerTopic("orders", [0])], 0)]
    )
    answer = await call(broker, ALICE, 27, 1, markers)
    assert answer.markers[0].topics[0].partitions[0].error_code == E.CLUSTER_AUTHORIZATION_FAILED
    answer = await call(broker, ALICE, 35, 4, DescribeLogDirsRequest(topics=None))
    assert (answer.error_code, answer.results) == (E.CLUSTER_AUTHORIZATION_FAILED, [])


async def test_describing_transactions_and_producers(broker: Broker) -> None:
    answer = await call(broker, ALICE, 65, 0, DescribeTransactionsRequest(["tx"]))
    assert answer.transaction_states[0].error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    request = DescribeProducersRequest([TopicRequest(t, [0]) for t in ("orders", "hidden")])
    grant(broker, R.TOPIC, "orders", Op.READ)
    answer = await call(broker, ALICE, 61, 0, request)
    assert [(t.name, t.partitions[0].error_code) for t in answer.topics] == [
        ("orders", E.NONE),
        ("hidden", E.TOPIC_AUTHORIZATION_FAILED),
    ]


async def test_topic_administration(broker: Broker) -> None:
    create = CreateTopicsRequest(
        topics=[CreatableTopic(n, 1, 1) for n in ("mine-1", "other")], timeout_ms=5_000
    )
    grant(broker, R.TOPIC, "mine-", Op.CREATE, pattern=P.PREFIXED)
    answer = await call(broker, ALICE, 19, 7, create)
    assert [(t.name, t.error_code, t.topic_config_error_code) for t in answer.topics] == [
        # Created, but its configs are not shown to a principal without DESCRIBE_CONFIGS.
        ("mine-1", E.NONE, E.TOPIC_AUTHORIZATION_FAILED),
        ("other", E.TOPIC_AUTHORIZATION_FAILED, E.NONE),
    ]
    assert answer.topics[0].configs == []
    grant(broker, R.TOPIC, "orders", Op.DESCRIBE)
    delete = DeleteTopicsRequest(topic_names=["orders", "hidden", "gone"], timeout_ms=5_000)
    answer = await call(broker, ALICE, 20, 5, delete)
    assert [(t.name, t.error_code) for t in answer.responses] == [
        ("orders", E.TOPIC_AUTHORIZATION_FAILED),
        ("hidden", E.TOPIC_AUTHORIZATION_FAILED),
        ("gone", E.TOPIC_AUTHORIZATION_FAILED),
    ]
    grant(broker, R.TOPIC, "gone", Op.DESCRIBE)
    by_id = broker.controller.image.topic("hidden")
    assert by_id is not None
    delete = DeleteTopicsRequest(
        topics=[DeleteTopicState(name="gone"), DeleteTopicState(topic_id=by_id.topic_id)],
        timeout_ms=5_000,
    )
    answer = await call(broker, ALICE, 20, 6, delete)
    assert [(t.name, t.error_code) for t in answer.responses] == [
        ("gone", E.UNKNOWN_TOPIC_OR_PARTITION),  # describable, so its absence is told
        (None, E.TOPIC_AUTHORIZATION_FAILED),  # not describable: the name stays untold
    ]
    grant(broker, R.CLUSTER, "kafka-cluster", Op.DELETE)
    answer = await call(broker, ALICE, 20, 6, delete)
    assert [(t.name, t.error_code) for t in answer.responses] == [
        ("gone", E.UNKNOWN_TOPIC_OR_PARTITION),
        ("hidden", E.NONE),
    ]
    partitions = CreatePartitionsRequest(
        topics=[CreatePartitionsTopic("orders", 2, None)], timeout_ms=5_000
    )
    answer = await call(broker, ALICE, 37, 3, partitions)
    assert answer.results[0].error_code == E.TOPIC_AUTHORIZATION_FAILED


async def test_configs_need_describe_configs_and_alter_configs(broker: Broker) -> None:
    grant(broker, R.TOPIC, "orders", Op.ALTER_CONFIGS)
    describe = DescribeConfigsRequest(
        resources=[
            DescribeConfigsResource(TOPIC_CONFIG, "orders", None),
            DescribeConfigsResource(TOPIC_CONFIG, "hidden", None),
            DescribeConfigsResource(BROKER_CONFIG, "", None),
        ]
    )
    answer = await call(broker, ALICE, 32, 4, describe)
    assert [r.error_code for r in answer.results] == [
        E.NONE,  # ALTER_CONFIGS implies DESCRIBE_CONFIGS
        E.TOPIC_AUTHORIZATION_FAILED,
        E.CLUSTER_AUTHORIZATION_FAILED,
    ]
    alter = IncrementalAlterConfigsRequest(
        resources=[
            AlterConfigsResource(TOPIC_CONFIG, n, [AlterableConfig("retention.ms", 0, "1000")])
            for n in ("orders", "hidden")
        ]
    )
    answer = await call(broker, ALICE, 44, 1, alter)
    assert [r.error_code for r in answer.responses] == [E.NONE, E.TOPIC_AUTHORIZATION_FAILED]


async def test_describe_cluster_reports_operations_only_with_describe(broker: Broker) -> None:
    asked = DescribeClusterRequest(include_cluster_authorized_operations=True)
    answer = await call(broker, ALICE, 60, 1, asked)
    assert (answer.error_code, answer.cluster_authorized_operations) == (E.NONE, 0)
    grant(broker, R.CLUSTER, "kafka-cluster", Op.DESCRIBE_CONFIGS, Op.DESCRIBE)
    answer = await call(broker, ALICE, 60, 1, asked)
    assert answer.cluster_authorized_operations == bits(Op.DESCRIBE_CONFIGS, Op.DESCRIBE)
    answer = await call(broker, ALICE, 60, 1, DescribeClusterRequest())
    assert answer.cluster_authorized_operations == OMITTED


def creation(**changes: Any) -> AclCreation:
    fields: dict[str, Any] = {
        "resource_type": R.TOPIC,
        "resource_name": "orders",
        "resource_pattern_type": P.LITERAL,
        "principal": ALICE,
        "host": "*",
        "operation": Op.READ,
        "permission_type": Perm.ALLOW,
    }
    return AclCreation(**{**fields, **changes})


def acl_filter(kind: type[Any], **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "resource_type_filter": R.ANY,
        "resource_name_filter": None,
        "pattern_type_filter": P.ANY,
        "principal_filter": None,
        "host_filter": None,
        "operation": Op.ANY,
        "permission_type": Perm.ANY,
    }
    return kind(**{**fields, **changes})


async def test_acl_requests_need_the_cluster(broker: Broker) -> None:
    answer = await call(broker, ALICE, 30, 3, CreateAclsRequest([creation()]))
    assert [r.error_code for r in answer.results] == [E.CLUSTER_AUTHORIZATION_FAILED]
    answer = await call(broker, ALICE, 29, 3, acl_filter(DescribeAclsRequest))
    assert answer.error_code == E.CLUSTER_AUTHORIZATION_FAILED
    answer = await call(broker, ALICE, 31, 3, DeleteAclsRequest([acl_filter(DeleteAclsFilter)]))
    assert [r.error_code for r in answer.filter_results] == [E.CLUSTER_AUTHORIZATION_FAILED]
    # DESCRIBE on the cluster describes; ALTER creates and deletes.
    grant(broker, R.CLUSTER, "kafka-cluster", Op.DESCRIBE)
    answer = await call(broker, ALICE, 29, 3, acl_filter(DescribeAclsRequest))
    assert answer.error_code == E.NONE
    assert [(r.resource_type, r.resource_name, len(r.acls)) for r in answer.resources] == [
        (R.CLUSTER, "kafka-cluster", 1)
    ]
    grant(broker, R.CLUSTER, "kafka-cluster", Op.ALTER)
    answer = await call(broker, ALICE, 30, 3, CreateAclsRequest([creation()]))
    assert [r.error_code for r in answer.results] == [E.NONE]


async def test_acl_creation_and_filters_are_validated(broker: Broker) -> None:
    creations = [
        creation(resource_pattern_type=P.MATCH),
        creation(resource_pattern_type=P.ANY),
        creation(resource_type=R.ANY),
        creation(operation=Op.ANY),
        creation(permission_type=Perm.ANY),
        creation(resource_name=""),
        creation(resource_type=R.CLUSTER, resource_name="other"),
        creation(resource_pattern_type=P.PREFIXED, resource_name="ord"),
    ]
    answer = await call(broker, ADMIN, 30, 2, CreateAclsRequest(creations))
    assert [(r.error_code, r.error_message) for r in answer.results] == [
        (E.INVALID_REQUEST, "Invalid patternType MATCH"),
        (E.INVALID_REQUEST, "Invalid patternType ANY"),
        (E.INVALID_REQUEST, "Invalid resourceType ANY"),
        (E.INVALID_REQUEST, "Invalid operation ANY"),
        (E.INVALID_REQUEST, "Invalid permissionType ANY"),
        (E.INVALID_REQUEST, "Invalid empty resource name"),
        (E.INVALID_REQUEST, "The only valid name for the CLUSTER resource is kafka-cluster"),
        (E.NONE, None),
    ]
    match = acl_filter(
        DescribeAclsRequest, resource_name_filter="orders-1", pattern_type_filter=P.MATCH
    )
    answer = await call(broker, ADMIN, 29, 1, match)
    assert [(r.resource_name, r.pattern_type) for r in answer.resources] == [("ord", P.PREFIXED)]
    # v0 has no pattern type: only LITERAL bindings are described.
    answer = await call(broker, ADMIN, 29, 0, acl_filter(DescribeAclsRequest))
    assert answer.resources == []


@pytest.mark.parametrize(
    ("api_key", "version", "request_"),
    [
        (30, 1, CreateAclsRequest([creation(resource_type=R.UNKNOWN)])),
        (30, 1, CreateAclsRequest([creation(operation=99)])),
        (29, 1, acl_filter(DescribeAclsRequest, permission_type=Perm.UNKNOWN)),
        (31, 1, DeleteAclsRequest([acl_filter(DeleteAclsFilter, pattern_type_filter=P.UNKNOWN)])),
    ],
)
async def test_requests_kafka_cannot_parse_close_the_connection(
    broker: Broker, api_key: int, version: int, request_: Any
) -> None:
    with pytest.raises(ProtocolError):
        await call(broker, ADMIN, api_key, version, request_)
    assert len(authorizer(broker).index) == 0


async def test_delete_acls_reports_what_each_filter_removed(broker: Broker) -> None:
    grant(broker, R.TOPIC, "orders", Op.READ, Op.WRITE)
    grant(broker, R.TOPIC, "orders", Op.READ, principal="User:bob")
    filters = [
        acl_filter(DeleteAclsFilter, principal_filter="User:bob"),
        acl_filter(DeleteAclsFilter, resource_name_filter="orders", operation=Op.READ),
        acl_filter(DeleteAclsFilter, resource_type_filter=R.GROUP),
    ]
    answer = await call(broker, ADMIN, 31, 3, DeleteAclsRequest(filters))
    assert [
        sorted((m.principal, m.operation) for m in r.matching_acls) for r in answer.filter_results
    ] == [
        [("User:bob", Op.READ)],
        [(ALICE, Op.READ), ("User:bob", Op.READ)],
        [],
    ]
    assert [(b.principal, b.operation) for b in authorizer(broker).index] == [(ALICE, Op.WRITE)]
