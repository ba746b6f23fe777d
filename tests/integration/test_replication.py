"""Replication on three brokers and a real etcd, driven by confluent-kafka: followers copy the
leader's batches byte for byte, acks=all waits for the in-sync replicas and honours
min.insync.replicas, the ISR shrinks when followers die and grows when they return, and a killed
leader loses no acknowledged record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasError

from kafkacompat.coordinators.internal_records import partition_for
from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SETTINGS = {
    "broker.session.timeout.ms": 2000,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 2000,
    "replica.fetch.wait.max.ms": 200,
    "replica.fetch.backoff.ms": 200,
}


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, 3, SETTINGS) as running:
        yield running


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def create(cluster: LocalCluster, topic: str, partitions: int, min_isr: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    new = NewTopic(topic, partitions, 3, config={"min.insync.replicas": str(min_isr)})
    admin.create_topics([new])[topic].result(timeout=15)
    wait_until(
        lambda: all(cluster.isr(topic, p) == [1, 2, 3] for p in range(partitions)), 10, "ISR"
    )


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> list[int]:
    """Offsets of the acknowledged values (acks=all, idempotent); raises on any failure."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2}
    )
    offsets: dict[bytes, int] = {}
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            offsets[msg.value()] = msg.offset()  # type: ignore[attr-defined]

    for value in values:
        producer.produce(topic, value, partition=partition, on_delivery=delivered)
    assert producer.flush(30) == 0
    if errors:
        raise KafkaException(errors[0])
    return [offsets[value] for value in values]


def consume(bootstrap: str, topic: str, partition: int, count: int) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    return values


def segment_bytes(cluster: LocalCluster, node: int, topic: str, partition: int) -> bytes:
    directory = cluster.brokers[node].data_dir / f"{topic}-{partition}"
    return b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))


def test_followers_hold_the_leaders_batches_byte_for_byte(cluster: LocalCluster) -> None:
    create(cluster, "copied", 2)
    for partition in (0, 1):
        values = [f"p{partition}-{i}".encode() for i in range(200)]
        assert produce(cluster.bootstrap, "copied", values, partition) == list(range(200))
    for partition in (0, 1):
        logs = {n: segment_bytes(cluster, n, "copied", partition) for n in (1, 2, 3)}
        assert len(logs[1]) > 200 * 10
        assert logs[1] == logs[2] == logs[3]
        checkpoint = {
            n: (cluster.brokers[n].data_dir / f"copied-{partition}" / "leader-epoch-checkpoint")
            .read_text()
            .split("\n")[2:]
            for n in (1, 2, 3)
        }
        assert checkpoint[1] == checkpoint[2] == checkpoint[3]


def test_the_isr_shrinks_and_grows_and_min_insync_replicas_holds(cluster: LocalCluster) -> None:
    create(cluster, "guarded", 1)
    first = cluster.leader("guarded", 0)
    followers = [n for n in (1, 2, 3) if n != first]
    assert produce(cluster.bootstrap, "guarded", [b"v-0"]) == [0]

    cluster.kill(followers[0])
    wait_until(lambda: cluster.isr("guarded", 0) == sorted([first, followers[1]]), 15, "shrink")
    assert produce(cluster.bootstrap, "guarded", [b"v-1"]) == [1]

    cluster.kill(followers[1])
    wait_until(lambda: cluster.isr("guarded", 0) == [first], 15, "shrink to the leader")
    # Retriable for clients (librdkafka retries until its message timeout): asked without retries.
    refusing = KafkaProducer(
        bootstrap_servers=cluster.brokers[first].bootstrap, acks="all", retries=0
    )
    with pytest.raises(NotEnoughReplicasError):
        refusing.send("guarded", b"v-2", partition=0).get(timeout=10)
    refusing.close()

    cluster.restart(followers[0])
    cluster.restart(followers[1])
    wait_until(lambda: cluster.isr("guarded", 0) == [1, 2, 3], 20, "the ISR to grow back")
    assert produce(cluster.bootstrap, "guarded", [b"v-3"]) == [2]
    assert consume(cluster.bootstrap, "guarded", 0, 3) == [b"v-0", b"v-1", b"v-3"]
    logs = {n: segment_bytes(cluster, n, "guarded", 0) for n in (1, 2, 3)}
    wait_until(
        lambda: len({segment_bytes(cluster, n, "guarded", 0) for n in (1, 2, 3)}) == 1,
        10,
        "replica logs to converge",
    )
    assert logs[first] == segment_bytes(cluster, followers[0], "guarded", 0)


def test_a_killed_leader_loses_no_acknowledged_record(cluster: LocalCluster) -> None:
    create(cluster, "durable", 1)
    first = cluster.leader("durable", 0)
    before = [f"v-{i}".encode() for i in range(300)]
    assert produce(cluster.bootstrap, "durable", before) == list(range(300))
    cluster.kill(first)
    wait_until(lambda: cluster.leader("durable", 0) not in (-1, first), 15, "a new leader")
    after = [f"v-{i}".encode() for i in range(300, 400)]
    assert produce(cluster.bootstrap, "durable", after) == list(range(300, 400))
    assert consume(cluster.bootstrap, "durable", 0, 400) == before + after
    cluster.restart(first)
    wait_until(lambda: cluster.isr("durable", 0) == [1, 2, 3], 20, "the old leader to rejoin")
    wait_until(
        lambda: len({segment_bytes(cluster, n, "durable", 0) for n in (1, 2, 3)}) == 1,
        10,
        "replica logs to converge",
    )


class AckedLog:
    """A producer (confluent-kafka, acks=all, idempotent) writing numbered values round-robin
    over partitions on a thread, recording each acknowledged (partition, offset, value)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                # A paused leader holds in-flight requests: librdkafka gives up on them after
                # socket.timeout.ms (60 s by default); 5 s keeps the tests short.
                "socket.timeout.ms": 5000,
                "request.timeout.ms": 5000,
            }
        )
        self.topic, self.partitions = topic, partitions
        self.acked: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        self.failed: list[KafkaError] = []
        self.stopping = threading.Event()
        #: Messages still unacknowledged when the producer stopped (-1: not stopped yet).
        self.unflushed = -1
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed.append(err)
        else:
            self.acked[msg.partition()].append((msg.offset(), msg.value()))

    def _run(self) -> None:
        sent = 0
        while not self.stopping.is_set():
            for _ in range(20):
                value = f"value-{sent}".encode()
                self.producer.produce(
                    self.topic, value, partition=sent % self.partitions, on_delivery=self._delivered
                )
                sent += 1
            self.producer.poll(0.01)
        self.unflushed = self.producer.flush(30)

    def __enter__(self) -> AckedLog:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop producing and wait for the last acknowledgements (bounded well inside the
        test timeout, so a failed test reports its own assertion)."""
        self.stopping.set()
        self.thread.join(40)

    def acked_count(self) -> int:
        return sum(len(a) for a in self.acked.values())


def read_all(
    bootstrap: str, topic: str, partition: int, *, read_committed: bool = False
) -> list[tuple[int, bytes]]:
    """Every record of the partition up to its end, as (offset, value)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "verify",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    consumer.assign([TopicPartition(topic, partition, 0)])
    records: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    while (not records or records[-1][0] < high - 1) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            records.append((message.offset(), message.value()))
        elif message is None:
            # Read past the end: the last offsets may be markers or aborted records, which a
            # read_committed consumer skips without delivering.
            (position,) = consumer.position([TopicPartition(topic, partition)])
            if position.offset >= high:
                break
    consumer.close()
    return records


def test_five_leader_kills_under_load_lose_and_duplicate_nothing(cluster: LocalCluster) -> None:
    create(cluster, "load", 3)
    with AckedLog(cluster.bootstrap, "load", 3) as log:
        wait_until(lambda: log.acked_count() > 500, 20, "records acknowledged")
        for _ in range(5):
            victim = cluster.leader("load", 0)
            cluster.kill(victim)
            wait_until(
                lambda v=victim: cluster.leader("load", 0) not in (-1, v),  # type: ignore[misc]
                15,
                "a new leader",
            )
            before = log.acked_count()
            wait_until(
                lambda b=before: log.acked_count() > b + 300,  # type: ignore[misc]
                30,
                "acks from the new leader",
            )
            cluster.restart(victim)
            wait_until(lambda: cluster.isr("load", 0) == [1, 2, 3], 30, "the ISR to be whole")
    assert log.failed == [] and log.unflushed == 0, (log.failed[:3], log.unflushed)
    for partition in range(3):
        acked = log.acked[partition]
        stored = read_all(cluster.bootstrap, "load", partition)
        values = [value for _, value in stored]
        assert len(values) == len(set(values)), f"duplicates in partition {partition}"
        assert set(acked) <= set(stored), f"acknowledged records lost in partition {partition}"
        # Per partition, the acknowledged order is the stored order.
        positions = [stored.index(record) for record in sorted(acked)]
        assert positions == sorted(positions)


def check_acked(log: AckedLog, cluster: LocalCluster, topic: str, partitions: int) -> None:
    """Every acknowledged record stored once, at its acknowledged offset; no duplicates."""
    assert log.failed == [] and log.unflushed == 0, (log.failed[:3], log.unflushed)
    for partition in range(partitions):
        stored = read_all(cluster.bootstrap, topic, partition)
        values = [value for _, value in stored]
        assert len(values) == len(set(values)), f"duplicates in partition {partition}"
        missing = set(log.acked[partition]) - set(stored)
        assert not missing, f"{len(missing)} acknowledged records lost in {partition}"


def converged(cluster: LocalCluster, topic: str, partition: int) -> bool:
    return len({segment_bytes(cluster, n, topic, partition) for n in (1, 2, 3)}) == 1


def test_a_paused_leader_is_fenced_and_loses_nothing(cluster: LocalCluster) -> None:
    create(cluster, "paused", 1)
    with AckedLog(cluster.bootstrap, "paused", 1) as log:
        wait_until(lambda: log.acked_count() > 300, 20, "records acknowledged")
        old = cluster.leader("paused", 0)
        cluster.brokers[old].pause()
        wait_until(lambda: cluster.leader("paused", 0) not in (-1, old), 15, "a new leader")
        before = log.acked_count()
        wait_until(lambda: log.acked_count() > before + 300, 30, "acks from the new leader")
        cluster.brokers[old].resume()
        wait_until(lambda: cluster.isr("paused", 0) == [1, 2, 3], 30, "the old leader back")
    check_acked(log, cluster, "paused", 1)
    wait_until(lambda: converged(cluster, "paused", 0), 10, "replica logs to converge")


def test_two_quick_failovers_converge_byte_for_byte(cluster: LocalCluster) -> None:
    create(cluster, "twice", 1)
    with AckedLog(cluster.bootstrap, "twice", 1) as log:
        wait_until(lambda: log.acked_count() > 300, 20, "records acknowledged")
        first = cluster.leader("twice", 0)
        cluster.kill(first)
        wait_until(lambda: cluster.leader("twice", 0) not in (-1, first), 15, "a second leader")
        second = cluster.leader("twice", 0)
        cluster.restart(first)  # comes back behind, with a tail the others may not have
        cluster.kill(second)
        wait_until(lambda: cluster.leader("twice", 0) not in (-1, second), 15, "a third leader")
        cluster.restart(second)
        before = log.acked_count()
        wait_until(lambda: log.acked_count() > before + 300, 30, "acks after both failovers")
        wait_until(lambda: cluster.isr("twice", 0) == [1, 2, 3], 30, "the ISR to be whole")
    check_acked(log, cluster, "twice", 1)
    wait_until(lambda: converged(cluster, "twice", 0), 10, "replica logs to converge")


def test_a_partition_without_a_live_in_sync_replica_stays_offline(cluster: LocalCluster) -> None:
    create(cluster, "offline", 1, min_isr=1)
    last = cluster.leader("offline", 0)
    followers = [n for n in (1, 2, 3) if n != last]
    assert produce(cluster.bootstrap, "offline", [b"v-0", b"v-1"]) == [0, 1]
    for follower in followers:
        cluster.kill(follower)
    wait_until(lambda: cluster.isr("offline", 0) == [last], 15, "the ISR to be the leader alone")
    assert produce(cluster.brokers[last].bootstrap, "offline", [b"v-2"]) == [2]
    cluster.kill(last)
    time.sleep(2.5)  # the session timeout: the last in-sync replica is gone
    cluster.restart(followers[0])  # out of sync: never leads (no unclean election)
    wait_until(lambda: cluster.leader("offline", 0) == -1, 15, "the partition to go offline")
    time.sleep(3)
    assert cluster.leader("offline", 0) == -1
    assert cluster.isr("offline", 0) == [last]
    cluster.restart(last)
    wait_until(lambda: cluster.leader("offline", 0) == last, 15, "the last in-sync replica")
    assert consume(cluster.bootstrap, "offline", 0, 3) == [b"v-0", b"v-1", b"v-2"]


def test_sigterm_of_a_leader_moves_leadership_without_client_errors(
    cluster: LocalCluster,
) -> None:
    create(cluster, "moved", 3)
    with AckedLog(cluster.bootstrap, "moved", 3) as log:
        wait_until(lambda: log.acked_count() > 300, 20, "records acknowledged")
        stopping = cluster.leader("moved", 0)
        led = [p for p in range(3) if cluster.leader("moved", p) == stopping]
        started = time.monotonic()
        assert cluster.brokers[stopping].stop() == 0
        assert time.monotonic() - started < 15
        # Leadership moved before it stopped: no partition waited for a session timeout.
        assert all(cluster.leader("moved", p) not in (-1, stopping) for p in led)
        before = log.acked_count()
        wait_until(lambda: log.acked_count() > before + 300, 30, "acks while it is down")
        cluster.restart(stopping)
        wait_until(lambda: all(cluster.isr("moved", p) == [1, 2, 3] for p in range(3)), 30, "ISR")
    check_acked(log, cluster, "moved", 3)


def test_groups_and_transactions_survive_the_failover_of_their_coordinator(
    cluster: LocalCluster,
) -> None:
    create(cluster, "work", 3)
    for partition in range(3):
        values = [f"w{partition}-{i}".encode() for i in range(40)]
        assert produce(cluster.bootstrap, "work", values, partition) == list(range(40))
    group_partition = partition_for("workers", 50)
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "workers",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["work"])
    first: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(first) < 50 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            first.append(message.value())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert len(first) >= 50

    coordinator = cluster.leader("__consumer_offsets", group_partition)
    cluster.kill(coordinator)
    wait_until(
        lambda: cluster.leader("__consumer_offsets", group_partition) not in (-1, coordinator),
        15,
        "a new group coordinator",
    )
    rest = consume_group(cluster.bootstrap, "work", "workers", 120 - len(first))
    assert sorted(first + rest) == sorted(f"w{p}-{i}".encode() for p in range(3) for i in range(40))
    cluster.restart(coordinator)

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": "mover"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce("work", f"txn-a-{i}".encode(), partition=0)
    producer.commit_transaction(30)
    txn_partition = partition_for("mover", 50)
    txn_coordinator = cluster.leader("__transaction_state", txn_partition)
    cluster.kill(txn_coordinator)
    wait_until(
        lambda: cluster.leader("__transaction_state", txn_partition) not in (-1, txn_coordinator),
        15,
        "a new transaction coordinator",
    )
    producer.begin_transaction()
    for i in range(5):
        producer.produce("work", f"txn-b-{i}".encode(), partition=0)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce("work", b"txn-aborted", partition=0)
    producer.abort_transaction(30)
    committed = [v for _, v in read_all(cluster.bootstrap, "work", 0, read_committed=True)]
    assert [v for v in committed if v.startswith(b"txn")] == [
        *(f"txn-a-{i}".encode() for i in range(5)),
        *(f"txn-b-{i}".encode() for i in range(5)),
    ]


def consume_group(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """``count`` values read by a new member of ``group``, from its committed offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 45
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
    extra = consumer.poll(1.0)
    assert extra is None or extra.error() is not None, "more than the uncommitted records"
    consumer.close()
    return values
