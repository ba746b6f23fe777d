"""Three brokers on a real etcd keep exactly the replicas the controller assigned them: each
data directory holds the partition directories of its replicas and no others, also after the
topic grows, and none once it is deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SETTINGS = {"broker.session.timeout.ms": 2000, "broker.heartbeat.interval.ms": 500}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("hosting"), 3, SETTINGS) as running:
        yield running


def partition_dirs(cluster: LocalCluster, node_id: int, topic: str) -> set[int]:
    """The partition indexes of ``topic`` with a directory in the broker's data directory."""
    found = set()
    for path in cluster.brokers[node_id].data_dir.iterdir():
        name, _, index = path.name.rpartition("-")
        if path.is_dir() and name == topic and index.isdigit():
            found.add(int(index))
    return found


def assigned(admin: AdminClient, topic: str) -> dict[int, set[int]]:
    """Node id -> the partitions of ``topic`` it holds a replica of, by Metadata."""
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    by_node: dict[int, set[int]] = {1: set(), 2: set(), 3: set()}
    for index, partition in meta.partitions.items():
        for node in partition.replicas:
            by_node[node].add(index)
    return by_node


def wait_for_dirs(cluster: LocalCluster, topic: str, wanted: dict[int, set[int]]) -> None:
    deadline = time.monotonic() + 15
    while True:
        found = {n: partition_dirs(cluster, n, topic) for n in wanted}
        if found == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found == wanted


@pytest.mark.parametrize("replication_factor", [1, 2])
def test_each_broker_keeps_exactly_its_replicas(
    cluster: LocalCluster, replication_factor: int
) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = f"hosting-rf{replication_factor}"
    admin.create_topics([NewTopic(topic, 6, replication_factor)])[topic].result(timeout=15)
    by_node = assigned(admin, topic)
    assert sum(len(p) for p in by_node.values()) == 6 * replication_factor
    assert all(len(p) == 2 * replication_factor for p in by_node.values())
    wait_for_dirs(cluster, topic, by_node)

    admin.create_partitions([NewPartitions(topic, 9)])[topic].result(timeout=15)
    deadline = time.monotonic() + 10
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) < 9:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    grown = assigned(admin, topic)
    assert sum(len(p) for p in grown.values()) == 9 * replication_factor
    assert all(by_node[n] <= grown[n] for n in by_node)
    wait_for_dirs(cluster, topic, grown)

    admin.delete_topics([topic])[topic].result(timeout=15)
    wait_for_dirs(cluster, topic, {1: set(), 2: set(), 3: set()})


def test_a_restarted_broker_keeps_exactly_its_replicas(cluster: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = "hosting-restart"
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(timeout=15)
    by_node = assigned(admin, topic)
    wait_for_dirs(cluster, topic, by_node)
    cluster.restart(2)
    wait_for_dirs(cluster, topic, by_node)
