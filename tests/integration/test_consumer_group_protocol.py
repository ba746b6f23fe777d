"""KIP-848 consumer groups (group.protocol=consumer) with confluent-kafka, and the wire APIs raw:
members splitting partitions, handing them over, static members, regex subscriptions, a classic
and a consumer group side by side, group admin, offsets across a restart."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.config import Config
from kafkacompat.protocol.messages.consumer_group_describe_request import (
    ConsumerGroupDescribeRequest,
)
from kafkacompat.protocol.messages.consumer_group_heartbeat_request import (
    ConsumerGroupHeartbeatRequest,
)
from kafkacompat.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

TOPIC = "events"
PARTITIONS = 6
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
#: Heartbeats every 300 ms (Kafka's default is 5 s) so hand-overs take well under a second.
SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.consumer.heartbeat.interval.ms": 300,
    "group.consumer.min.heartbeat.interval.ms": 300,
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 6000,
}

Record = tuple[str, int, int, bytes]  # topic, partition, offset, value


def broker_config(data_dir: Path) -> Config:
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


def produce(
    bootstrap: str, count: int, start: int = 0, topic: str = TOPIC, partitions: int = PARTITIONS
) -> set[bytes]:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    values = set()
    for i in range(start, start + count):
        value = f"{topic}-{i:05d}".encode()
        producer.produce(topic, value, partition=i % partitions)
        values.add(value)
    assert producer.flush(10) == 0
    return values


class Member(threading.Thread):
    """A group.protocol=consumer member on its own thread: reads, commits each message before
    recording it, and records what it is assigned and what it revokes."""

    def __init__(
        self, bootstrap: str, group: str, topics: list[str] | None = None, **options: Any
    ) -> None:
        super().__init__(daemon=True)
        self.config = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
            **options,
        }
        self.topics = topics or [TOPIC]
        self.records: list[Record] = []
        self.assignment: set[tuple[str, int]] = set()
        self.revoked: list[set[tuple[str, int]]] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.first_message_at: float | None = None
        #: Commits the broker refused (the message was read again, not counted).
        self.commit_errors: list[str] = []
        self.start()

    def run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        try:
            consumer = Consumer(self.config)

            def on_revoke(c: Any, partitions: list[Any]) -> None:
                self.revoked.append({(p.topic, p.partition) for p in partitions})

            consumer.subscribe(self.topics, on_revoke=on_revoke)
            try:
                while not self.stop_event.is_set():
                    message = consumer.poll(0.05)
                    self.assignment = {(p.topic, p.partition) for p in consumer.assignment()}
                    if message is None or message.error():
                        continue
                    try:
                        consumer.commit(message=message, asynchronous=False)
                    except KafkaException as exc:
                        # A commit racing a reconciliation (STALE_MEMBER_EPOCH, as Kafka answers
                        # it too): not counted; read the message again, or leave it to the new
                        # owner if the partition went meanwhile.
                        self.commit_errors.append(exc.args[0].name())
                        with contextlib.suppress(KafkaException):
                            consumer.seek(
                                TopicPartition(
                                    message.topic(), message.partition(), message.offset()
                                )
                            )
                        continue
                    with self.lock:
                        if self.first_message_at is None:
                            self.first_message_at = time.monotonic()
                        self.records.append(
                            (
                                message.topic(),
                                message.partition(),
                                message.offset(),
                                message.value(),
                            )
                        )
            finally:
                consumer.close()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)
        assert not self.is_alive(), "member did not stop"
        assert self.error is None, self.error

    def values(self) -> list[bytes]:
        with self.lock:
            return [value for *_, value in self.records]


def read(members: list[Member]) -> list[bytes]:
    return [v for m in members for v in m.values()]


def split_evenly(members: list[Member], expected: set[tuple[str, int]] = ALL) -> bool:
    """Whether the members' assignments are disjoint, complete and balanced."""
    sets = [m.assignment for m in members]
    union = set().union(*sets)
    sizes = [len(s) for s in sets]
    return sum(sizes) == len(union) and union == expected and max(sizes) - min(sizes) <= 1


def test_two_then_three_members_split_partitions(broker: BrokerThread) -> None:
    values = produce(broker.bootstrap, 60)
    members = [Member(broker.bootstrap, "split")]
    wait_until(lambda: members[0].assignment == ALL, what="one member with everything")
    for count in (2, 3):
        members.append(Member(broker.bootstrap, "split"))
        wait_until(lambda: split_evenly(members), what=f"{count} members splitting")
    wait_until(lambda: len(read(members)) >= 60, what="every message")
    for m in members:
        m.stop()
    assert sorted(read(members)) == sorted(values)  # nothing read twice, nothing lost


class Producing(threading.Thread):
    """Writes one message every few ms, round-robin over the partitions, until stopped."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.values: set[bytes] = set()
        self.stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        i = 0
        while not self.stop_event.is_set():
            value = f"live-{i:06d}".encode()
            producer.produce(TOPIC, value, partition=i % PARTITIONS)
            self.values.add(value)
            producer.poll(0)
            i += 1
            time.sleep(0.005)
        assert producer.flush(10) == 0

    def stop(self) -> set[bytes]:
        self.stop_event.set()
        self.join(15)
        return self.values


def test_members_join_and_leave_while_messages_flow(broker: BrokerThread) -> None:
    """Partitions move (to a newcomer, then back from a leaver) under a steady stream; each
    message is committed before it is counted: none is lost or read twice."""
    producing = Producing(broker.bootstrap)
    a = Member(broker.bootstrap, "handover")
    wait_until(lambda: a.assignment == ALL and len(a.values()) > 20, what="a reading")
    b = Member(broker.bootstrap, "handover")
    wait_until(lambda: split_evenly([a, b]), what="two members splitting")
    wait_until(lambda: len(b.values()) > 20, what="b reading")
    a.stop()
    wait_until(lambda: b.assignment == ALL, what="b taking everything over")
    count = len(b.values())
    wait_until(lambda: len(b.values()) > count + 20, what="b reading a's partitions too")
    values = producing.stop()
    wait_until(lambda: len(read([a, b])) >= len(values), what="every message")
    time.sleep(0.3)
    b.stop()
    got = read([a, b])
    assert len(got) == len(set(got)) and set(got) == values
    # The only refusal a commit may meet is the one Kafka gives a commit racing a new epoch.
    assert set(a.commit_errors + b.commit_errors) <= {"STALE_MEMBER_EPOCH"}


def test_static_member_rejoins_without_reassignment(broker: BrokerThread) -> None:
    s1 = Member(broker.bootstrap, "static", **{"group.instance.id": "s1"})
    s2 = Member(broker.bootstrap, "static", **{"group.instance.id": "s2"})
    wait_until(lambda: split_evenly([s1, s2]), what="two static members splitting")
    before1, before2 = set(s1.assignment), set(s2.assignment)
    revoked_before = len(s2.revoked)
    s1.stop()  # a static member leaves with epoch -2: its partitions wait for it
    time.sleep(1.0)
    assert s2.assignment == before2
    again = Member(broker.bootstrap, "static", **{"group.instance.id": "s1"})
    wait_until(lambda: again.assignment == before1, what="s1 back with its partitions")
    time.sleep(1.0)
    assert s2.assignment == before2 and len(s2.revoked) == revoked_before
    again.stop()
    s2.stop()


def test_regex_subscription_picks_up_a_topic_created_later(broker: BrokerThread) -> None:
    internals(broker).create_topic("re-one", 1)
    produce(broker.bootstrap, 3, topic="re-one", partitions=1)
    m = Member(broker.bootstrap, "regex", topics=["^re-.*"])
    wait_until(lambda: len(m.values()) == 3, what="re-one's messages")
    internals(broker).create_topic("re-two", 2)
    later = produce(broker.bootstrap, 4, topic="re-two", partitions=2)
    wait_until(lambda: ("re-two", 1) in m.assignment, what="re-two assigned")
    wait_until(lambda: later <= set(m.values()), what="re-two's messages")
    with RawClient(broker.port) as raw:
        (group,) = raw.call(69, 0, ConsumerGroupDescribeRequest(group_ids=["regex"])).groups
    (member,) = group.members
    # librdkafka sends the regex (in parentheses); the broker resolves it (KIP-848).
    assert member.subscribed_topic_regex == "(^re-.*)"
    assert member.subscribed_topic_names == ["re-one", "re-two"]
    m.stop()


def test_classic_and_consumer_groups_side_by_side(broker: BrokerThread) -> None:
    from confluent_kafka import ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    values = produce(broker.bootstrap, 30)
    modern = Member(broker.bootstrap, "modern")
    classic = Member(broker.bootstrap, "classic", **{"group.protocol": "classic"})
    wait_until(lambda: len(modern.values()) == 30 and len(classic.values()) == 30)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def listed(types: set[Any]) -> dict[str, Any]:
        result = admin.list_consumer_groups(types=types).result(10)
        return {g.group_id: g for g in result.valid}

    assert set(listed({ConsumerGroupType.CONSUMER})) == {"modern"}
    assert set(listed({ConsumerGroupType.CLASSIC})) == {"classic"}
    both = listed(set())
    assert both["modern"].type == ConsumerGroupType.CONSUMER
    assert both["classic"].type == ConsumerGroupType.CLASSIC
    described = admin.describe_consumer_groups(["modern"])["modern"].result(10)
    assert described.type == ConsumerGroupType.CONSUMER
    (member,) = described.members
    assert {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions} == ALL
    # DescribeGroups (kafka-python has nothing else) shows it in the classic shape.
    from kafka.admin import KafkaAdminClient

    old_admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        info = old_admin.describe_groups(["modern"])["modern"]
        listed_types = {g["group_id"]: g["group_type"] for g in old_admin.list_groups()}
    finally:
        old_admin.close()
    assert (info["group_state"], info["protocol_type"], info["protocol_data"]) == (
        "Stable",
        "consumer",
        "uniform",
    )
    (old_member,) = info["members"]
    assert old_member["member_metadata"]["topics"] == [TOPIC]
    assigned = old_member["member_assignment"]["assigned_partitions"]
    assert {(tp["topic"], p) for tp in assigned for p in tp["partitions"]} == ALL
    assert listed_types == {"modern": "consumer", "classic": "classic"}
    modern.stop()
    classic.stop()
    assert sorted(modern.values()) == sorted(values) == sorted(classic.values())
    deleted = admin.delete_consumer_groups(["modern", "classic"])
    for future in deleted.values():
        future.result(10)
    assert listed(set()) == {}


def test_committed_offsets_survive_a_restart(tmp_path: Path) -> None:
    config = broker_config(tmp_path / "data")
    with running_broker(config) as running:
        internals(running).create_topic(TOPIC, PARTITIONS)
        first = produce(running.bootstrap, 30)
        m = Member(running.bootstrap, "durable")
        wait_until(lambda: len(m.values()) == 30, what="the first batch")
        m.stop()
    with running_broker(config) as running:
        second = produce(running.bootstrap, 30, start=30)
        m = Member(running.bootstrap, "durable")
        wait_until(lambda: len(m.values()) >= 30, what="the second batch")
        time.sleep(0.5)
        m.stop()
        assert sorted(m.values()) == sorted(second)
        assert not (set(m.values()) & first)


# -- the wire, raw ---------------------------------------------------------------------------------


def heartbeat(raw: RawClient, version: int = 1, **fields: Any) -> Any:
    return raw.call(68, version, ConsumerGroupHeartbeatRequest(**fields))


def test_heartbeat_and_describe_on_the_wire(broker: BrokerThread) -> None:
    topic_id = internals(broker).find_topic(TOPIC).topic_id  # type: ignore[union-attr]
    with RawClient(broker.port) as raw:
        v0 = heartbeat(
            raw, 0, group_id="w", member_epoch=0, rebalance_timeout_ms=5000,
            subscribed_topic_names=[TOPIC], topic_partitions=[],
        )  # fmt: skip
        assert (v0.error_code, v0.member_epoch, v0.heartbeat_interval_ms) == (0, 1, 300)
        assert v0.member_id and v0.assignment.topic_partitions[0].topic_id == topic_id
        assert sorted(v0.assignment.topic_partitions[0].partitions) == list(range(PARTITIONS))
        bad = heartbeat(
            raw, group_id="w", member_id="m1", member_epoch=0, rebalance_timeout_ms=5000,
            subscribed_topic_regex="[", topic_partitions=[],
        )  # fmt: skip
        assert bad.error_code == 128  # INVALID_REGULAR_EXPRESSION
        fenced = heartbeat(raw, group_id="w", member_id=v0.member_id, member_epoch=7)
        assert fenced.error_code == 110  # FENCED_MEMBER_EPOCH
        stale = raw.call(
            8,
            9,
            OffsetCommitRequest(
                group_id="w",
                generation_id_or_member_epoch=0,
                member_id=v0.member_id,
                topics=[OffsetCommitRequestTopic(TOPIC, [OffsetCommitRequestPartition(0, 1)])],
            ),
        )
        assert stale.topics[0].partitions[0].error_code == 113  # STALE_MEMBER_EPOCH
        described = raw.call(69, 0, ConsumerGroupDescribeRequest(group_ids=["w", "nope"]))
        group, missing = described.groups
        assert (group.error_code, group.group_state, group.group_epoch) == (0, "Stable", 1)
        assert group.assignor_name == "uniform"
        (member,) = group.members
        assert member.member_id == v0.member_id and member.member_epoch == 1
        assert member.assignment.topic_partitions[0].topic_name == TOPIC
        assert missing.error_code == 69  # GROUP_ID_NOT_FOUND
        left = heartbeat(raw, group_id="w", member_id=v0.member_id, member_epoch=-1)
        assert (left.error_code, left.member_epoch) == (0, -1)


def test_advertised_only_natively_and_when_emulating_4_0(tmp_path: Path) -> None:
    from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest

    for release, expected in (
        ("", {68: (0, 1), 69: (0, 0)}),
        ("4.0", {68: (0, 1), 69: (0, 0)}),
        ("3.7", {}),  # KIP-848's early access: served there only when opted in
        ("3.8", {}),
        ("3.9", {}),
    ):
        config = local_config(tmp_path / f"data{release}").with_settings(
            settings={"kafkacompat.emulate.kafka.version": release}
        )
        with running_broker(config) as running, RawClient(running.port) as raw:
            response = raw.call(18, 3, ApiVersionsRequest("t", "1"))
            served = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
            assert {k: v for k, v in served.items() if k in (68, 69)} == expected, release
