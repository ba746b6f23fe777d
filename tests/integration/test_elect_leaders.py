"""Leader elections: ElectLeaders (PREFERRED, UNCLEAN) on a single broker and on three brokers
with a real etcd, the controller's automatic move back to preferred leaders, and unclean
leader election by topic config; confluent-kafka's AdminClient.elect_leaders and raw frames."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ElectionType, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

from kafkacompat.client import AdminClient as KcAdmin
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.elect_leaders_request import (
    ElectLeadersRequest,
)
from kafkacompat.protocol.messages.elect_leaders_request import (
    TopicPartitions as ElectPartitions,
)
from kafkacompat.testing import BrokerThread, dev_config, running_broker
from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available
from tests.integration.raw import RawClient

TIMEOUT = 20.0
NEEDS_ETCD = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

CLUSTER_SETTINGS: dict[str, int | bool | str] = {
    "broker.session.timeout.ms": 2000,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 2000,
    "replica.fetch.wait.max.ms": 200,
    "replica.fetch.backoff.ms": 200,
}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def elect_raw(
    bootstrap: str,
    election_type: int,
    partitions: dict[str, list[int]] | None,
    *,
    timeout_ms: int = 15_000,
) -> tuple[int, dict[tuple[str, int], int]]:
    """ElectLeaders at the highest version both speak: the top-level error and each
    partition's error."""
    topics = (
        None
        if partitions is None
        else [ElectPartitions(topic, indexes) for topic, indexes in partitions.items()]
    )
    with KcAdmin(bootstrap, timeout=TIMEOUT) as admin:
        _version, response = admin.send(43, ElectLeadersRequest(election_type, topics, timeout_ms))
    errors = {
        (result.topic, p.partition_id): p.error_code
        for result in response.replica_election_results
        for p in result.partition_result
    }
    return response.error_code, errors


def elect(
    bootstrap: str, kind: ElectionType, partitions: list[tuple[str, int]] | None
) -> dict[tuple[str, int], int]:
    """confluent-kafka's elect_leaders: each partition's error code (0: elected)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    asked = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
    answer = admin.elect_leaders(kind, asked).result(timeout=TIMEOUT)
    return {
        (tp.topic, tp.partition): 0 if error is None else error.code()
        for tp, error in answer.items()
    }


# -- a single broker ----------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(dev_config(tmp_path)) as running:
        yield running


def test_a_single_broker_never_needs_an_election(broker: BrokerThread) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("one", 2, 1)])["one"].result(timeout=TIMEOUT)
    not_needed = ErrorCode.ELECTION_NOT_NEEDED
    unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    asked = [("one", 0), ("one", 1), ("one", 7), ("nope", 0)]
    for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        assert elect(broker.bootstrap, kind, asked) == {
            ("one", 0): not_needed,
            ("one", 1): not_needed,
            ("one", 7): unknown,
            ("nope", 0): unknown,
        }
        # Every partition: those that need no election are left out.
        assert elect(broker.bootstrap, kind, None) == {}
    # Every version, raw: v0 has no election type (PREFERRED) and no top-level error.
    for version in (0, 1, 2):
        request = ElectLeadersRequest(
            1, [ElectPartitions("one", [0, 1]), ElectPartitions("x", [3])]
        )
        with RawClient(broker.port) as client:
            response = client.call(43, version, request)
        assert response.error_code == 0
        assert [
            (r.topic, p.partition_id, p.error_code, p.error_message)
            for r in response.replica_election_results
            for p in r.partition_result
        ] == [
            (
                "one",
                0,
                ErrorCode.ELECTION_NOT_NEEDED,
                "Leader election not needed for topic partition.",
            ),
            (
                "one",
                1,
                ErrorCode.ELECTION_NOT_NEEDED,
                "Leader election not needed for topic partition.",
            ),
            ("x", 3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."),
        ]
    with RawClient(broker.port) as client:
        versions = client.call(18, 0, ApiVersionsRequest())
    assert [(k.min_version, k.max_version) for k in versions.api_keys if k.api_key == 43] == [
        (0, 2)
    ]


def test_elect_leaders_needs_alter_on_the_cluster(tmp_path: Path) -> None:
    settings: dict[str, int | bool | str] = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": True,
    }
    with running_broker(dev_config(tmp_path, **settings)) as running:
        admin = KafkaAdminClient(bootstrap_servers=running.bootstrap, request_timeout_ms=10_000)
        try:
            deny = ACL(
                "User:ANONYMOUS",
                "*",
                ACLOperation.ALTER,
                ACLPermissionType.DENY,
                ResourcePattern(ResourceType.CLUSTER, "kafka-cluster"),
            )
            assert not admin.create_acls([deny])["failed"]
        finally:
            admin.close()
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        assert elect_raw(running.bootstrap, 0, {"t": [0, 1]}) == (
            denied,
            {("t", 0): denied, ("t", 1): denied},
        )
        assert elect_raw(running.bootstrap, 1, None) == (denied, {})
        with pytest.raises(KafkaException) as raised:
            elect(running.bootstrap, ElectionType.PREFERRED, None)
        assert raised.value.args[0].code() == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


# -- three brokers ------------------------------------------------------------------------------


def create(cluster: LocalCluster, topic: str, configs: dict[str, str] | None = None) -> int:
    """An RF=3 single-partition topic, every replica in sync; its preferred (first) leader."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 3, config=configs or {})])[topic].result(
        timeout=TIMEOUT
    )
    wait_until(lambda: cluster.isr(topic, 0) == [1, 2, 3], 15, f"{topic}'s ISR")
    return cluster.leader(topic, 0)


def partition_info(cluster: LocalCluster, topic: str) -> Any:
    [found] = cluster._metadata([topic]).topics
    [partition] = found.partitions
    return partition


def test_preferred_election_moves_leadership_back(tmp_path: Path) -> None:
    settings = {**CLUSTER_SETTINGS, "auto.leader.rebalance.enable": False}
    with LocalCluster(tmp_path, 3, settings) as cluster:
        preferred = create(cluster, "pref")
        assert partition_info(cluster, "pref").replica_nodes[0] == preferred
        cluster.kill(preferred)
        wait_until(lambda: cluster.leader("pref", 0) not in (-1, preferred), 15, "a new leader")
        # The preferred replica is dead: it cannot be elected.
        not_available = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        assert elect(cluster.bootstrap, ElectionType.PREFERRED, [("pref", 0)]) == {
            ("pref", 0): not_available
        }
        cluster.restart(preferred)
        wait_until(lambda: cluster.isr("pref", 0) == [1, 2, 3], 20, "the ISR to grow back")
        before = partition_info(cluster, "pref")
        assert before.leader_id != preferred  # no automatic rebalance
        assert elect(cluster.bootstrap, ElectionType.PREFERRED, [("pref", 0), ("pref", 1)]) == {
            ("pref", 0): 0,
            ("pref", 1): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }
        after = partition_info(cluster, "pref")
        assert after.leader_id == preferred
        assert after.leader_epoch == before.leader_epoch + 1
        assert sorted(after.isr_nodes) == [1, 2, 3]
        assert elect(cluster.bootstrap, ElectionType.PREFERRED, [("pref", 0)]) == {
            ("pref", 0): ErrorCode.ELECTION_NOT_NEEDED
        }
        assert elect_raw(cluster.bootstrap, 0, None) == (0, {})
        assert partition_info(cluster, "pref").leader_epoch == after.leader_epoch


def test_the_controller_moves_leadership_back_by_itself(tmp_path: Path) -> None:
    settings = {**CLUSTER_SETTINGS, "leader.imbalance.check.interval.seconds": 1}
    with LocalCluster(tmp_path, 3, settings) as cluster:
        preferred = create(cluster, "auto")
        cluster.kill(preferred)
        wait_until(lambda: cluster.leader("auto", 0) not in (-1, preferred), 15, "a new leader")
        epoch = partition_info(cluster, "auto").leader_epoch
        cluster.restart(preferred)
        wait_until(lambda: cluster.leader("auto", 0) == preferred, 30, "the preferred leader")
        back = partition_info(cluster, "auto")
        assert sorted(back.isr_nodes) == [1, 2, 3]
        assert back.leader_epoch > epoch


def test_unclean_leader_election(tmp_path: Path) -> None:
    settings = {**CLUSTER_SETTINGS, "auto.leader.rebalance.enable": False}
    with LocalCluster(tmp_path, 3, settings) as cluster:
        create(cluster, "strict")
        create(cluster, "loose", {"unclean.leader.election.enable": "true"})
        topics = ("strict", "loose")
        # Broker 3 falls out of the ISRs; then 1 and 2, the last in sync, die too.
        cluster.kill(3)
        wait_until(lambda: all(cluster.isr(t, 0) == [1, 2] for t in topics), 15, "ISR [1, 2]")
        cluster.kill(1)
        wait_until(lambda: all(cluster.isr(t, 0) == [2] for t in topics), 15, "ISR [2]")
        cluster.kill(2)
        cluster.restart(3)
        # Allowed by the topic: broker 3, alive and out of sync, leads alone.
        wait_until(lambda: cluster.leader("loose", 0) == 3, 20, "an unclean leader")
        assert cluster.isr("loose", 0) == [3]
        # Not allowed: offline, the last in-sync replica kept in the ISR.
        assert cluster.leader("strict", 0) == -1
        assert cluster.isr("strict", 0) == [2]
        assert elect(cluster.bootstrap, ElectionType.PREFERRED, [("strict", 0)]) == {
            ("strict", 0): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        }
        # An administrator may ask for it all the same (Kafka allows it).
        assert elect(cluster.bootstrap, ElectionType.UNCLEAN, [("strict", 0), ("loose", 0)]) == {
            ("strict", 0): 0,
            ("loose", 0): ErrorCode.ELECTION_NOT_NEEDED,
        }
        assert cluster.leader("strict", 0) == 3
        assert cluster.isr("strict", 0) == [3]
