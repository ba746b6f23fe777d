"""Online migration of a consumer group with members between the classic and the consumer
protocols, with real clients: two kafka-python (classic) members reading; one is replaced by a
confluent-kafka member with group.protocol=consumer (the group is upgraded, the remaining
kafka-python member stays in it as a classic member); then the consumer-protocol member leaves
(the group is downgraded) and the kafka-python member gets every partition. Each member commits
a message before counting it: nothing is lost or read twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.internals import internals

pytestmark = pytest.mark.integration

TOPIC = "events"
PARTITIONS = 4
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
    "group.consumer.heartbeat.interval.ms": 300,
    "group.consumer.min.heartbeat.interval.ms": 300,
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 6000,
}
GROUP = "migrating"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    config = local_config(tmp_path / "data").with_settings(settings=SETTINGS)
    with running_broker(config) as running:
        internals(running).create_topic(TOPIC, PARTITIONS)
        yield running


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def produce(bootstrap: str, count: int, start: int = 0) -> set[bytes]:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    values = set()
    for i in range(start, start + count):
        value = f"m{i:05d}".encode()
        producer.produce(TOPIC, value, partition=i % PARTITIONS)
        values.add(value)
    assert producer.flush(10) == 0
    return values


class Member(threading.Thread):
    """A member on its own thread: counts a message only once its offset is committed (a commit
    refused during a rebalance leaves it to be read again from the last commit)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.values: list[bytes] = []
        self.assignment: set[tuple[str, int]] = set()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.start()

    def run(self) -> None:
        try:
            self.consume()
        except BaseException as exc:
            self.error = exc

    def consume(self) -> None:
        raise NotImplementedError

    def counted(self, value: bytes) -> None:
        with self.lock:
            self.values.append(value)

    def read(self) -> list[bytes]:
        with self.lock:
            return list(self.values)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(20)
        assert not self.is_alive(), "member did not stop"
        assert self.error is None, self.error


class Classic(Member):
    """kafka-python: the classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup)."""

    def consume(self) -> None:
        from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError

        consumer = KafkaConsumer(
            TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=3000,
            heartbeat_interval_ms=200,
            metadata_max_age_ms=1000,
        )
        try:
            while not self.stop_event.is_set():
                batches = consumer.poll(timeout_ms=200)
                self.assignment = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                for tp, messages in batches.items():
                    for message in messages:
                        offset = OffsetAndMetadata(message.offset + 1, "", -1)
                        try:
                            consumer.commit({TopicPartition(tp.topic, tp.partition): offset})
                        except KafkaError:
                            break  # the rest of the batch is read again after the rebalance
                        self.counted(message.value)
        finally:
            consumer.close()


class Modern(Member):
    """confluent-kafka with group.protocol=consumer (ConsumerGroupHeartbeat)."""

    def consume(self) -> None:
        from confluent_kafka import Consumer, KafkaException

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP,
                "group.protocol": "consumer",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        consumer.subscribe([TOPIC])
        try:
            while not self.stop_event.is_set():
                message = consumer.poll(0.05)
                self.assignment = {(p.topic, p.partition) for p in consumer.assignment()}
                if message is None or message.error():
                    continue
                try:
                    consumer.commit(message=message, asynchronous=False)
                except KafkaException:
                    continue
                value = message.value()
                assert value is not None
                self.counted(value)
        finally:
            consumer.close()


def split(members: list[Member]) -> bool:
    """Whether the members' assignments are disjoint and cover every partition."""
    sets = [m.assignment for m in members]
    return sum(len(s) for s in sets) == PARTITIONS and set().union(*sets) == ALL


def group_type(broker: BrokerThread) -> str | None:
    """The group's type as ListGroups reports it ("classic" or "consumer")."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups().result(10).valid
    return next((str(g.type.name).lower() for g in listed if g.group_id == GROUP), None)


def test_upgrade_then_downgrade_with_real_clients(broker: BrokerThread) -> None:
    expected = produce(broker.bootstrap, 40)
    a, b = Classic(broker.bootstrap), Classic(broker.bootstrap)
    members: list[Member] = [a, b]
    try:
        wait_until(
            lambda: split([a, b]) and bool(a.assignment) and bool(b.assignment),
            what="a and b split",
        )
        wait_until(lambda: len(a.read()) + len(b.read()) >= 40, what="the first batch")
        assert group_type(broker) == "classic"
        # A consumer-protocol member joins: the classic group becomes a consumer group.
        c = Modern(broker.bootstrap)
        members.append(c)
        wait_until(lambda: group_type(broker) == "consumer", what="the upgrade")
        wait_until(lambda: split([a, b, c]) and bool(c.assignment), what="a, b and c split")
        a.stop()  # a classic member leaves the consumer group
        wait_until(
            lambda: split([b, c]) and bool(b.assignment) and bool(c.assignment),
            what="b and c split",
        )
        expected |= produce(broker.bootstrap, 40, start=40)
        wait_until(lambda: len(b.read()) + len(c.read()) + len(a.read()) >= 80, what="batch 2")
        assert group_type(broker) == "consumer"
        # The last consumer-protocol member leaves: the group is classic again.
        c.stop()
        wait_until(lambda: group_type(broker) == "classic", what="the downgrade")
        wait_until(lambda: b.assignment == ALL, what="b taking every partition")
        expected |= produce(broker.bootstrap, 40, start=80)
        wait_until(lambda: sum(len(m.read()) for m in members) >= 120, what="batch 3")
        time.sleep(0.5)
    finally:
        for m in members:
            if m.is_alive():
                m.stop()
    got = [v for m in members for v in m.read()]
    assert len(got) == len(set(got)), "a message was read twice"
    assert set(got) == expected
