"""Partition reassignments (KIP-455) with kafka-python's KafkaAdminClient: on a single broker
(only its own id is a valid target) and on three brokers with a real etcd, where a partition
moves to other brokers with all its records, waits for a replica that is down, and can be
cancelled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError

from kafkacompat.client import AdminClient as KcAdmin
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_partition_reassignments_request import (
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kafkacompat.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
)
from kafkacompat.testing import BrokerThread, dev_config, running_broker
from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available
from tests.integration.raw import RawClient
from tests.integration.test_replication import consume, produce

TIMEOUT = 20.0
NEEDS_ETCD = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SETTINGS: dict[str, int | bool | str] = {
    "broker.session.timeout.ms": 2000,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 2000,
    "replica.fetch.wait.max.ms": 200,
    "replica.fetch.backoff.ms": 200,
    "auto.leader.rebalance.enable": False,
}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def admin_for(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT * 1000))


# -- a single broker ----------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(dev_config(tmp_path)) as running:
        yield running


def test_a_single_broker_accepts_only_itself(broker: BrokerThread) -> None:
    creator = AdminClient({"bootstrap.servers": broker.bootstrap})
    creator.create_topics([NewTopic("one", 1, 1)])["one"].result(timeout=TIMEOUT)
    tp = TopicPartition("one", 0)
    admin = admin_for(broker.bootstrap)
    try:
        assert admin.alter_partition_reassignments({tp: [1]}) == {tp: None}
        assert admin.alter_partition_reassignments({tp: [2]}) == {
            tp: InvalidReplicationAssignmentError
        }
        assert admin.list_partition_reassignments() == {}
        assert admin.list_partition_reassignments([tp]) == {}
        assert admin.alter_partition_reassignments({tp: None}) == {
            tp: NoReassignmentInProgressError
        }
    finally:
        admin.close()
    # An empty list (kafka-python refuses to send one), duplicates and unknown partitions, raw.
    request = AlterPartitionReassignmentsRequest(
        5000,
        [
            ReassignableTopic(
                "one", [ReassignablePartition(0, []), ReassignablePartition(0, [1, 1])]
            ),
            ReassignableTopic("nope", [ReassignablePartition(0, [1])]),
        ],
    )
    with RawClient(broker.port) as client:
        response = client.call(45, 0, request)
    assert (response.error_code, response.error_message) == (0, None)
    assert [
        (t.name, p.partition_index, p.error_code) for t in response.responses for p in t.partitions
    ] == [
        ("one", 0, ErrorCode.INVALID_REPLICA_ASSIGNMENT),
        ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]


# -- three brokers ------------------------------------------------------------------------------


def partition_info(cluster: LocalCluster, topic: str) -> Any:
    [found] = cluster._metadata([topic]).topics
    [partition] = found.partitions
    return partition


def create_on_one(cluster: LocalCluster, topic: str) -> tuple[int, int, int]:
    """An RF=1 single-partition topic: its broker X and the two others Y, Z."""
    creator = AdminClient({"bootstrap.servers": cluster.bootstrap})
    creator.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT)
    wait_until(lambda: cluster.leader(topic, 0) >= 0, 15, "a leader")
    [x] = partition_info(cluster, topic).replica_nodes
    y, z = (n for n in (1, 2, 3) if n != x)
    return x, y, z


def listed(cluster: LocalCluster) -> dict[TopicPartition, dict[str, list[int]]]:
    admin = admin_for(cluster.bootstrap)
    try:
        return admin.list_partition_reassignments()  # type: ignore[no-any-return]
    finally:
        admin.close()


def reassign(cluster: LocalCluster, tp: TopicPartition, target: list[int] | None) -> Any:
    admin = admin_for(cluster.bootstrap)
    try:
        return admin.alter_partition_reassignments({tp: target})[tp]
    finally:
        admin.close()


@NEEDS_ETCD
def test_a_partition_moves_to_other_brokers_with_its_records(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, 3, SETTINGS) as cluster:
        x, y, z = create_on_one(cluster, "moved")
        values = [f"v-{i}".encode() for i in range(200)]
        assert produce(cluster.bootstrap, "moved", values) == list(range(200))
        tp = TopicPartition("moved", 0)
        assert reassign(cluster, tp, [y, z]) is None
        wait_until(
            lambda: (
                list(partition_info(cluster, "moved").replica_nodes) == [y, z]
                and listed(cluster) == {}
            ),
            30,
            "the reassignment to complete",
        )
        moved = partition_info(cluster, "moved")
        assert moved.leader_id == y
        assert sorted(moved.isr_nodes) == sorted([y, z])
        wait_until(
            lambda: not (cluster.brokers[x].data_dir / "moved-0").exists(),
            15,
            "the old replica to be deleted",
        )
        assert consume(cluster.bootstrap, "moved", 0, 200) == values
        assert produce(cluster.bootstrap, "moved", [b"after"]) == [200]
        # Reassigning to the current replicas is a no-op.
        assert reassign(cluster, tp, [y, z]) is None
        assert listed(cluster) == {}
        assert reassign(cluster, tp, None) is NoReassignmentInProgressError


def reassign_via(bootstrap: str, topic: str, target: list[int] | None) -> int:
    """AlterPartitionReassignments of ``topic``-0 sent to one broker: the partition's error."""
    request = AlterPartitionReassignmentsRequest(
        15_000, [ReassignableTopic(topic, [ReassignablePartition(0, target)])]
    )
    with KcAdmin(bootstrap, timeout=TIMEOUT) as admin:
        _version, response = admin.send(45, request)
    [[answer]] = [t.partitions for t in response.responses]
    return int(answer.error_code)


def listed_via(bootstrap: str) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """ListPartitionReassignments of every partition sent to one broker, by topic (partition 0)."""
    with KcAdmin(bootstrap, timeout=TIMEOUT) as admin:
        _version, response = admin.send(46, ListPartitionReassignmentsRequest(15_000, None))
    return {
        t.name: (p.replicas, p.adding_replicas, p.removing_replicas)
        for t in response.topics
        for p in t.partitions
    }


@NEEDS_ETCD
def test_a_reassignment_waits_for_a_replica_that_is_down_and_can_be_cancelled(
    tmp_path: Path,
) -> None:
    settings = {**SETTINGS, "broker.session.timeout.ms": 4000}
    with LocalCluster(tmp_path, 3, settings) as cluster:
        x, _, _ = create_on_one(cluster, "waiting")
        c, _, _ = create_on_one(cluster, "cancelled")
        # z hosts neither topic; y is the third broker.
        z = max(n for n in (1, 2, 3) if n not in (x, c))
        y = next(n for n in (1, 2, 3) if n not in (x, z))
        assert produce(cluster.bootstrap, "waiting", [b"a", b"b"]) == [0, 1]
        # z is silent (its registration still stands) when the reassignments start, then dies.
        cluster.brokers[z].pause()
        try:
            # Sent to y: the paused broker may be the controller kafka-python would pick.
            assert reassign_via(cluster.brokers[y].bootstrap, "waiting", [y, z]) == 0
            assert reassign_via(cluster.brokers[y].bootstrap, "cancelled", [z]) == 0
        finally:
            cluster.kill(z)
        at_y = cluster.brokers[y].bootstrap
        ongoing = ([y, z, x], [y, z], [x])
        going = ([z, c], [z], [c])
        assert listed_via(at_y) == {"waiting": ongoing, "cancelled": going}
        wait_until(lambda: cluster.isr("waiting", 0) == sorted([x, y]), 15, "y to join the ISR")
        time.sleep(2)
        assert listed_via(at_y) == {"waiting": ongoing, "cancelled": going}
        assert list(partition_info(cluster, "waiting").replica_nodes) == [y, z, x]

        # A cancel goes back to the original replica.
        assert reassign_via(at_y, "cancelled", None) == 0
        assert list(partition_info(cluster, "cancelled").replica_nodes) == [c]
        assert cluster.leader("cancelled", 0) == c
        assert listed_via(at_y) == {"waiting": ongoing}

        wait_until(lambda: z not in live_brokers(cluster), 15, "the dead broker to leave")
        cluster.restart(z)
        wait_until(lambda: listed_via(at_y) == {}, 30, "the reassignment to complete")
        done = partition_info(cluster, "waiting")
        assert (list(done.replica_nodes), done.leader_id) == ([y, z], y)
        assert consume(cluster.bootstrap, "waiting", 0, 2) == [b"a", b"b"]
        assert list(partition_info(cluster, "cancelled").replica_nodes) == [c]


def live_brokers(cluster: LocalCluster) -> list[int]:
    return sorted(b.node_id for b in cluster._metadata([]).brokers)
