"""Group and transaction coordinators in a cluster of three brokers on etcd: each group is
coordinated by the leader of its ``__consumer_offsets`` partition, other brokers answer
NOT_COORDINATOR; transactions span partitions led by every broker (markers go to each leader,
offsets committed in a transaction settle on the group's coordinator); producer ids are unique
across brokers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkacompat.coordinators.internal_records import partition_for
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
)
from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available
from tests.integration.raw import RawClient

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SETTINGS = {"broker.session.timeout.ms": 2000, "broker.heartbeat.interval.ms": 500}
API_METADATA, API_OFFSET_FETCH, API_FIND_COORDINATOR, API_INIT_PRODUCER_ID = 3, 9, 10, 22
TIMEOUT = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), 3, SETTINGS) as running:
        admin = AdminClient({"bootstrap.servers": running.bootstrap})
        for future in admin.create_topics([NewTopic("spread", 6, 1)]).values():
            future.result(TIMEOUT)
        yield running


def offsets_leader(cluster: LocalCluster, group: str) -> int:
    """The leader of the group's partition of ``__consumer_offsets``, by Metadata."""
    port = cluster.brokers[1].port
    with RawClient(port) as client:
        found = client.call(API_FIND_COORDINATOR, 3, FindCoordinatorRequest(group, 0))
        assert found.error_code == ErrorCode.NONE
        answer = client.call(
            API_METADATA, 9, MetadataRequest([MetadataRequestTopic(name="__consumer_offsets")])
        )
    [topic] = answer.topics
    assert topic.is_internal and len(topic.partitions) == 50
    leaders = {p.partition_index: p.leader_id for p in topic.partitions}
    assert found.node_id == leaders[partition_for(group, 50)]
    return found.node_id


def fetch_offsets(port: int, group: str) -> tuple[int, dict[tuple[str, int], int]]:
    with RawClient(port) as client:
        answer = client.call(
            API_OFFSET_FETCH,
            8,
            OffsetFetchRequest(groups=[OffsetFetchRequestGroup(group, topics=None)]),
        )
    [found] = answer.groups
    return found.error_code, {
        (t.name, p.partition_index): p.committed_offset for t in found.topics for p in t.partitions
    }


def test_a_group_spans_brokers_and_its_coordinator_leads_its_offsets_partition(
    cluster: LocalCluster,
) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(60):
        producer.produce("spread", value=b"g%d" % i, partition=i % 6)
    assert producer.flush(TIMEOUT) == 0
    coordinator = offsets_leader(cluster, "two-members")
    members = [
        Consumer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "group.id": "two-members",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        for _ in range(2)
    ]
    for member in members:
        member.subscribe(["spread"])
    deadline = time.monotonic() + 40
    # Until the second member joins, the first holds every partition: a record may be read
    # twice across that rebalance (nothing is committed yet), so records are kept by offset.
    received: dict[int, dict[int, bytes]] = {}

    def caught_up() -> bool:
        """Both hold three partitions and have read each to its end (offset 10)."""
        return all(
            len(m.assignment()) == 3 and all(tp.offset == 10 for tp in m.position(m.assignment()))
            for m in members
        )

    while time.monotonic() < deadline and not caught_up():
        for member in members:
            message = member.poll(0.2)
            if message is not None and message.error() is None:
                received.setdefault(message.partition(), {})[message.offset()] = message.value()
    assignments = [{tp.partition for tp in m.assignment()} for m in members]
    assert sorted(map(len, assignments)) == [3, 3] and assignments[0] | assignments[1] == set(
        range(6)
    )
    assert received == {p: {n: b"g%d" % (p + 6 * n) for n in range(10)} for p in range(6)}
    for member in members:
        member.commit(asynchronous=False)
    for member in members:
        member.close()
    error, committed = fetch_offsets(cluster.brokers[coordinator].port, "two-members")
    assert (error, committed) == (0, {("spread", p): 10 for p in range(6)})
    for node_id, broker in cluster.brokers.items():
        if node_id != coordinator:
            assert fetch_offsets(broker.port, "two-members") == (ErrorCode.NOT_COORDINATOR, {})


def transactional(cluster: LocalCluster, transactional_id: str) -> Producer:
    producer = Producer(
        {"bootstrap.servers": cluster.bootstrap, "transactional.id": transactional_id}
    )
    producer.init_transactions(TIMEOUT)
    return producer


def read_committed(cluster: LocalCluster, topic: str) -> dict[int, list[bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    got: dict[int, list[bytes]] = {}
    idle_until = time.monotonic() + 5
    while time.monotonic() < idle_until:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got.setdefault(message.partition(), []).append(message.value())
            idle_until = time.monotonic() + 2
    consumer.close()
    return got


def test_transactions_span_every_leader_and_commit_group_offsets(cluster: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.create_topics([NewTopic("txn-out", 6, 1)]).values():
        future.result(TIMEOUT)
    producer = transactional(cluster, "spanning-txn")
    producer.begin_transaction()
    for i in range(12):
        producer.produce("txn-out", value=b"c%d" % i, partition=i % 6)
    producer.commit_transaction(TIMEOUT)
    producer.begin_transaction()
    for i in range(6):
        producer.produce("txn-out", value=b"aborted", partition=i)
    producer.abort_transaction(TIMEOUT)
    # A committed transaction that also commits a group's offsets (consume-transform-produce):
    # the group's coordinator may be another broker than the transaction's.
    producer.begin_transaction()
    producer.produce("txn-out", value=b"last", partition=0)
    offsets = [TopicPartition("spread", p, 5) for p in range(6)]
    metadata = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "txn-group"})
    producer.send_offsets_to_transaction(offsets, metadata.consumer_group_metadata(), TIMEOUT)
    metadata.close()
    producer.commit_transaction(TIMEOUT)
    expected = {p: [b"c%d" % p, b"c%d" % (p + 6)] for p in range(6)}
    expected[0].append(b"last")
    assert read_committed(cluster, "txn-out") == expected
    coordinator = offsets_leader(cluster, "txn-group")
    assert fetch_offsets(cluster.brokers[coordinator].port, "txn-group") == (
        0,
        {("spread", p): 5 for p in range(6)},
    )


def test_producer_ids_are_unique_across_brokers(cluster: LocalCluster) -> None:
    granted = []
    for broker in cluster.brokers.values():
        with RawClient(broker.port) as client:
            for _ in range(3):
                answer = client.call(
                    API_INIT_PRODUCER_ID, 4, InitProducerIdRequest(None, 60000, -1, -1)
                )
                assert (answer.error_code, answer.producer_epoch) == (0, 0)
                granted.append(answer.producer_id)
    assert len(set(granted)) == 9
