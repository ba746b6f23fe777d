"""Consumer groups with stock clients: splitting partitions, handing them over, resuming at the
committed offset, surviving a broker restart, static and cooperative members, group admin."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.internals import internals

pytestmark = pytest.mark.integration

TOPIC = "events"
PARTITIONS = 4
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
SETTINGS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 500}
SESSION_MS = 1500
HEARTBEAT_MS = 200

Record = tuple[int, int, bytes]  # partition, offset, value


def broker_config(data_dir: Path) -> Any:
    return local_config(data_dir).with_settings(settings=SETTINGS)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(broker_config(tmp_path / "data")) as running:
        internals(running).create_topic(TOPIC, PARTITIONS)
        yield running


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def produce(bootstrap: str, count: int, start: int = 0) -> set[bytes]:
    """``count`` messages spread round-robin over the partitions; their values."""
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
    """One group member on its own thread: polls, records what it reads, commits each message."""

    def __init__(self, client: str, bootstrap: str, group: str, **options: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.bootstrap, self.group, self.options = client, bootstrap, group, options
        self.records: list[Record] = []
        self.assignment: set[tuple[str, int]] = set()
        self.revoked: list[set[tuple[str, int]]] = []
        self.assigned: list[set[tuple[str, int]]] = []
        self.stop_event = threading.Event()
        self.leave = True
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            getattr(self, f"_run_{self.client}")()
        except BaseException as exc:
            self.error = exc

    def stop(self, leave: bool = True) -> None:
        self.leave = leave
        self.stop_event.set()
        self.join(15)
        assert not self.is_alive(), f"{self.client} member did not stop"
        assert self.error is None, self.error

    def _record(self, partition: int, offset: int, value: bytes) -> None:
        with self.lock:
            self.records.append((partition, offset, value))

    def _run_confluent(self) -> None:
        from confluent_kafka import Consumer

        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "topic.metadata.refresh.interval.ms": 1000,
            **self.options,
        }
        consumer = Consumer(config)

        def on_assign(c: Any, partitions: list[Any]) -> None:
            self.assigned.append({(p.topic, p.partition) for p in partitions})

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            self.revoked.append({(p.topic, p.partition) for p in partitions})

        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not self.stop_event.is_set():
                message = consumer.poll(0.05)
                self.assignment = {(p.topic, p.partition) for p in consumer.assignment()}
                if message is None or message.error():
                    continue
                consumer.commit(message=message, asynchronous=False)
                self._record(message.partition(), message.offset(), message.value())
        finally:
            if self.leave:
                consumer.close()

    def _run_kafka_python(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000,
            **self.options,
        )
        try:
            while not self.stop_event.is_set():
                batches = consumer.poll(timeout_ms=1000)
                self.assignment = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                for messages in batches.values():
                    for message in messages:
                        consumer.commit({_kp_tp(message): _kp_offset(message.offset + 1)})
                        self._record(message.partition, message.offset, message.value)
        finally:
            consumer.close()

    def _run_aiokafka(self) -> None:
        asyncio.run(self._aiokafka_main())

    async def _aiokafka_main(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000,
            **self.options,
        )
        await consumer.start()
        try:
            while not self.stop_event.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                self.assignment = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                for tp, messages in batches.items():
                    for message in messages:
                        await consumer.commit({tp: message.offset + 1})
                        self._record(message.partition, message.offset, message.value)
        finally:
            await consumer.stop()

    def values(self) -> list[bytes]:
        with self.lock:
            return [value for _, _, value in self.records]


def _kp_tp(message: Any) -> Any:
    from kafka import TopicPartition

    return TopicPartition(message.topic, message.partition)


def _kp_offset(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


def split_evenly(members: list[Member]) -> bool:
    sets = [m.assignment for m in members]
    return (
        all(sets)
        and set().union(*sets) == ALL
        and sum(len(s) for s in sets) == PARTITIONS
        and max(len(s) for s in sets) - min(len(s) for s in sets) <= 1
    )


def start_members(client: str, bootstrap: str, count: int, group: str = "g") -> list[Member]:
    members = [Member(client, bootstrap, group) for _ in range(count)]
    for member in members:
        member.start()
    return members


CLIENTS = ["confluent", "kafka_python", "aiokafka"]


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("client", CLIENTS)
def test_members_split_the_partitions(broker: BrokerThread, client: str, count: int) -> None:
    members = start_members(client, broker.bootstrap, count)
    try:
        wait_until(lambda: split_evenly(members), what="an even split")
        expected = produce(broker.bootstrap, 40)
        wait_until(lambda: sum(len(m.values()) for m in members) >= 40, what="all messages")
        time.sleep(0.3)
        read = [v for m in members for v in m.values()]
        assert sorted(read) == sorted(expected)  # each message exactly once
        for member in members:  # each read only from its own partitions
            assert {(TOPIC, p) for p, _, _ in member.records} <= member.assignment
    finally:
        for member in members:
            member.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_leaving_member_hands_over_with_nothing_lost_or_repeated(
    broker: BrokerThread, client: str
) -> None:
    first = produce(broker.bootstrap, 40)
    a, b = start_members(client, broker.bootstrap, 2)
    try:
        wait_until(lambda: split_evenly([a, b]), what="an even split")
        wait_until(lambda: len(a.values()) + len(b.values()) >= 40, what="phase one")
        a.stop()
        wait_until(lambda: b.assignment == ALL, what="b taking over")
        second = produce(broker.bootstrap, 40, start=40)
        wait_until(lambda: len(a.values()) + len(b.values()) >= 80, what="phase two")
        time.sleep(0.3)
        assert sorted(a.values() + b.values()) == sorted(first | second)
        assert second <= set(b.values())
    finally:
        b.stop()


CHILD = (
    """
import sys
import time
from confluent_kafka import Consumer
bootstrap, group, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
    "auto.offset.reset": "earliest", "enable.auto.commit": False,
    "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS})
consumer.subscribe(["TOPIC"])
done = 0
while done < count:
    message = consumer.poll(0.1)
    if message is None or message.error():
        continue
    consumer.commit(message=message, asynchronous=False)
    print(message.partition(), message.offset(), message.value().decode(), flush=True)
    done += 1
print("committed", flush=True)
while True:  # hold the partitions, heartbeating from librdkafka's thread, until killed
    time.sleep(1)
""".replace("SESSION_MS", str(SESSION_MS))
    .replace("HEARTBEAT_MS", str(HEARTBEAT_MS))
    .replace("TOPIC", TOPIC)
)


def test_killed_member_hands_over_at_its_last_commit(broker: BrokerThread) -> None:
    expected = produce(broker.bootstrap, 40)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, broker.bootstrap, "g", "13"],
        stdout=subprocess.PIPE,
        text=True,
    )
    read_by_child: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "committed":
                break
            read_by_child.append(line.split()[2])
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert len(read_by_child) == 13
    survivor = Member("confluent", broker.bootstrap, "g")
    survivor.start()
    try:
        wait_until(lambda: len(survivor.values()) >= 27, what="the rest of the messages")
        time.sleep(0.3)
        assert sorted(read_by_child + [v.decode() for v in survivor.values()]) == sorted(
            v.decode() for v in expected
        )
        assert survivor.assignment == ALL
    finally:
        survivor.stop()


@pytest.mark.parametrize("client", CLIENTS)
def test_reopened_consumer_resumes_at_the_committed_offset(
    broker: BrokerThread, client: str
) -> None:
    first = produce(broker.bootstrap, 20)
    member = Member(client, broker.bootstrap, "g")
    member.start()
    wait_until(lambda: len(member.values()) >= 20, what="phase one")
    member.stop()
    assert sorted(member.values()) == sorted(first)
    second = produce(broker.bootstrap, 20, start=20)
    again = Member(client, broker.bootstrap, "g")
    again.start()
    try:
        wait_until(lambda: len(again.values()) >= 20, what="phase two")
        time.sleep(0.3)
        assert sorted(again.values()) == sorted(second)
        offsets = {p: o for p, o, _ in again.records}
        firsts = {p: min(o for q, o, _ in again.records if q == p) for p in offsets}
        assert firsts == dict.fromkeys(range(PARTITIONS), 5)
    finally:
        again.stop()


def test_committed_offsets_survive_a_broker_restart(tmp_path: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    config = broker_config(tmp_path / "data")
    with running_broker(config) as broker:
        internals(broker).create_topic(TOPIC, PARTITIONS)
        produce(broker.bootstrap, 40)
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="g")
        consumer.commit(
            {TopicPartition(TOPIC, p): OffsetAndMetadata(p + 3, f"meta{p}", -1) for p in range(4)}
        )
        consumer.close()
    with running_broker(config) as broker:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="g")
        try:
            for p in range(PARTITIONS):
                assert consumer.committed(TopicPartition(TOPIC, p)) == p + 3
        finally:
            consumer.close()
        member = Member("kafka_python", broker.bootstrap, "g")
        member.start()
        try:
            wait_until(lambda: len(member.values()) >= 22, what="the rest")
            time.sleep(0.3)
            firsts = {p: min(o for q, o, _ in member.records if q == p) for p in range(4)}
            assert firsts == {p: p + 3 for p in range(PARTITIONS)}
            assert len(member.values()) == 22
        finally:
            member.stop()


def test_static_member_rejoins_without_a_rebalance(broker: BrokerThread) -> None:
    def static(instance: str) -> Member:
        return Member("confluent", broker.bootstrap, "g", **{"group.instance.id": instance})

    a, b = static("a"), static("b")
    a.start()
    b.start()
    try:
        wait_until(lambda: split_evenly([a, b]), what="an even split")
        before = set(b.assignment)
        assigned_a, revoked_a = len(a.assigned), len(a.revoked)
        groups = broker.running.broker.groups.coordinator.groups
        generation = groups["g"].generation_id
        b.stop(leave=False)  # a static member leaves no LeaveGroup behind
        restarted = static("b")
        restarted.start()
        try:
            wait_until(lambda: restarted.assignment == before, what="the same partitions back")
            time.sleep(1.0)
            # a saw no rebalance: nothing revoked from it, nothing newly assigned.
            assert (len(a.revoked), len(a.assigned)) == (revoked_a, assigned_a)
            assert groups["g"].generation_id == generation
        finally:
            restarted.stop()
    finally:
        a.stop()


def test_cooperative_sticky_keeps_unmoved_partitions(broker: BrokerThread) -> None:
    cooperative = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member("confluent", broker.bootstrap, "g", **cooperative)
    a.start()
    try:
        wait_until(lambda: a.assignment == ALL, what="a owning everything")
        b = Member("confluent", broker.bootstrap, "g", **cooperative)
        b.start()
        try:
            wait_until(lambda: split_evenly([a, b]), what="an even split")
            kept = a.assignment
            # a gave up only what b now owns, incrementally; it never revoked what it kept.
            assert set().union(*a.revoked) == ALL - kept == b.assignment
            assert a.assigned[0] == ALL
        finally:
            b.stop()
    finally:
        a.stop()


def test_group_admin_shows_the_real_state(broker: BrokerThread) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    a, b = start_members("confluent", broker.bootstrap, 2)
    try:
        wait_until(lambda: split_evenly([a, b]), what="an even split")
        produce(broker.bootstrap, 20)
        wait_until(lambda: len(a.values()) + len(b.values()) >= 20, what="all messages")
        group = admin.describe_groups(["g"])["g"]
        assert (group["group_state"], group["protocol_type"], group["protocol_data"]) == (
            "Stable",
            "consumer",
            "range",
        )
        owned = {
            m["member_id"]: {
                (TOPIC, p)
                for tp in m["member_assignment"]["assigned_partitions"]
                for p in tp["partitions"]
            }
            for m in group["members"]
        }
        assert sorted(owned.values(), key=sorted) == sorted(
            [a.assignment, b.assignment], key=sorted
        )
        assert all(m["member_metadata"]["topics"] == [TOPIC] for m in group["members"])
        assert admin.list_groups() == [
            {
                "group_id": "g",
                "protocol_type": "consumer",
                "group_state": "Stable",
                "group_type": "classic",
            }
        ]
        offsets = admin.list_group_offsets("g")["g"]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == {
            (TOPIC, p): 5 for p in range(PARTITIONS)
        }
        assert admin.delete_groups(["g"]) == {"g": "NonEmptyGroupError"}
    finally:
        a.stop()
        b.stop()
    assert admin.describe_groups(["g"])["g"]["group_state"] == "Empty"
    assert admin.delete_groups(["g", "nope"]) == {"g": "OK", "nope": "GroupIdNotFoundError"}
    assert admin.list_groups() == []
    assert admin.list_group_offsets("g")["g"] == {}
    admin.close()
