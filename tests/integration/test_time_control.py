"""Time control with the stock clients: ``kafka_broker.clock.advance`` makes retention, session
and transaction timeouts and offsets expiry happen at once, without sleeping through them.

Each test times the part from the first advance to its last check: time-based behaviour is
checked in well under a second of wall time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.testing import KafkaBroker, local_config, running_broker

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
#: Wall time the checked part of each test may take, waiting for clients included.
BUDGET_S = 1.0


def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(
        name, partitions, 1, config={k.replace("_", "."): v for k, v in configs.items()}
    )
    admin.create_topics([topic])[name].result(TIMEOUT)


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for value in values:
            producer.send(topic, value, partition=partition).get(TIMEOUT)
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str, isolation: str = "read_uncommitted") -> list[bytes]:
    """Every record from the earliest offset to the end (the LSO under read_committed)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    seen: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message: Any = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return seen
                raise AssertionError(str(message.error()))
            seen.append(message.value())
        raise AssertionError(f"no end of partition within {TIMEOUT}s; got {seen}")
    finally:
        consumer.close()


def earliest_offset(bootstrap: str, topic: str) -> int:
    """ListOffsets earliest, as kafka-python asks it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.beginning_offsets([tp])[tp])
    finally:
        consumer.close()


def test_retention_removes_old_segments_after_advance(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    bootstrap = kafka_broker.bootstrap
    # Record times are the broker's (LogAppendTime), so they follow its clock; segment.ms rolls
    # the segment when newer records come.
    create_topic(
        bootstrap,
        "aged",
        retention_ms="60000",
        segment_ms="20000",
        message_timestamp_type="LogAppendTime",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    offsets = KafkaConsumer(bootstrap_servers=bootstrap)
    aged = TopicPartition("aged", 0)
    try:
        for i in range(5):
            producer.send("aged", b"old-%d" % i, partition=0).get(TIMEOUT)
        assert offsets.beginning_offsets([aged])[aged] == 0
        started = time.monotonic()
        kafka_broker.clock.advance(seconds=30)
        for value in (b"new-0", b"new-1"):  # 30 s younger: they roll a segment
            producer.send("aged", value, partition=0).get(TIMEOUT)
        assert offsets.beginning_offsets([aged])[aged] == 0  # nothing past retention.ms yet
        kafka_broker.clock.advance(seconds=31)  # the old records are 61 s old, the new ones 31 s
        assert offsets.beginning_offsets([aged])[aged] == 5
        assert read_all(bootstrap, "aged") == [b"new-0", b"new-1"]
        elapsed = time.monotonic() - started
        assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"
    finally:
        producer.close()
        offsets.close()
    files = sorted(p.name for p in (kafka_broker.data_dir / "aged-0").glob("*.log"))
    assert files == ["00000000000000000005.log"]


# --- the worked example of the README -------------------------------------------------------------


def test_a_week_old_order_is_gone(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    day_ms = 24 * 3600 * 1000
    configs = {
        "retention.ms": str(7 * day_ms),
        "segment.ms": str(day_ms),
        "message.timestamp.type": "LogAppendTime",  # record times follow the broker's clock
    }
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    admin.create_topics([NewTopic("orders", 1, 1, topic_configs=configs)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    producer.send("orders", b"old").get(timeout=10)
    kafka_broker.clock.advance(days=2)
    producer.send("orders", b"new").get(timeout=10)  # in a new segment (segment.ms: a day)
    kafka_broker.clock.advance(days=6)  # "old" is 8 days old: retention deletes it at once
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    orders = TopicPartition("orders", 0)
    assert consumer.beginning_offsets([orders]) == {orders: 1}  # only "new" is left
    consumer.close()


# --- time-based behaviour, each in well under a second ----------------------------------------


@pytest.fixture
def group_topic(kafka_broker: KafkaBroker) -> Iterator[str]:
    create_topic(kafka_broker.bootstrap, "work", 4)
    yield "work"


def _member(bootstrap: str, name: str) -> Any:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="workers",
        client_id=name,
        session_timeout_ms=6000,
        heartbeat_interval_ms=50,
        enable_auto_commit=False,
    )
    consumer.subscribe(["work"])
    return consumer


def _partitions(consumer: Any) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def _poll_until(consumers: list[Any], done: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, [_partitions(c) for c in consumers]
        for consumer in consumers:
            consumer.poll(timeout_ms=50)


def _describe_members(bootstrap: str, group: str) -> tuple[str, list[str]]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(TIMEOUT)
    return str(description.state.name), sorted(m.client_id for m in description.members)


def test_member_that_stops_heartbeating_is_expelled_after_advance(
    kafka_broker: KafkaBroker, group_topic: str
) -> None:
    bootstrap = kafka_broker.bootstrap
    a = _member(bootstrap, "member-a")
    _poll_until([a], lambda: _partitions(a) == {0, 1, 2, 3})
    b = _member(bootstrap, "member-b")
    silence = None
    try:
        _poll_until([a, b], lambda: len(_partitions(a)) == len(_partitions(b)) == 2)
        # member-a goes silent: its heartbeats (and its connection) hang.
        silence = kafka_broker.faults.stall("Heartbeat", client_id="member-a")
        # A delay of nothing: it counts member-b's heartbeats.
        beats = kafka_broker.faults.delay("Heartbeat", 0, client_id="member-b")
        started = time.monotonic()
        # Half the session timeout, member-b heartbeats on the new time, then the rest:
        # member-a is past session.timeout.ms, member-b is not.
        kafka_broker.clock.advance(seconds=3)
        heard = beats.hits
        deadline = time.monotonic() + TIMEOUT
        while beats.hits < heard + 2:
            assert time.monotonic() < deadline, "member-b stopped heartbeating"
            time.sleep(0.01)
        kafka_broker.clock.advance(seconds=3.1)
        state, members = _describe_members(bootstrap, "workers")
        assert members == ["member-b"] and state.endswith("_REBALANCING")
        _poll_until([b], lambda: _partitions(b) == {0, 1, 2, 3})
        assert _describe_members(bootstrap, "workers") == ("STABLE", ["member-b"])
        elapsed = time.monotonic() - started
        assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"
    finally:
        if silence is not None:
            silence.release()
        b.close(autocommit=False)
        a.close(autocommit=False)


def test_hanging_transaction_is_aborted_after_advance(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    bootstrap = kafka_broker.bootstrap
    create_topic(bootstrap, "orders")
    hanging = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": "t-hanging",
            "transaction.timeout.ms": 60000,
        }
    )
    hanging.init_transactions(TIMEOUT)
    hanging.begin_transaction()
    hanging.produce("orders", b"never-committed", partition=0)
    hanging.flush(TIMEOUT)
    produce(bootstrap, "orders", [b"after"])  # held back behind the open transaction
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "committed-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        reader.assign([TopicPartition("orders", 0, OFFSET_BEGINNING)])
        assert reader.poll(0.5) is None  # stuck at the last stable offset
        started = time.monotonic()
        kafka_broker.clock.advance(seconds=60)
        message: Any = None
        deadline = time.monotonic() + TIMEOUT
        while message is None and time.monotonic() < deadline:
            message = reader.poll(0.05)
        assert message is not None and not message.error()
        assert (message.offset(), message.value()) == (1, b"after")
        elapsed = time.monotonic() - started
        assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"
    finally:
        reader.close()
    assert read_all(bootstrap, "orders", "read_committed") == [b"after"]
    del hanging  # before the broker stops: its connections close now


def test_compaction_lag_is_reached_after_advance(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaProducer

    bootstrap = kafka_broker.bootstrap
    # Every record in a segment of its own; records younger than a minute are not compacted.
    create_topic(
        bootstrap,
        "latest",
        cleanup_policy="compact",
        min_compaction_lag_ms="60000",
        min_cleanable_dirty_ratio="0.01",
        segment_bytes="200",
        message_timestamp_type="LogAppendTime",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for key, value in [(b"k", b"v1" * 40), (b"k", b"v2" * 40), (b"other", b"o" * 80)]:
            producer.send("latest", value, key=key, partition=0).get(TIMEOUT)
    finally:
        producer.close()
    kafka_broker.clock.advance(seconds=30)
    assert [v[:2] for v in read_all(bootstrap, "latest")] == [b"v1", b"v2", b"oo"]
    started = time.monotonic()
    kafka_broker.clock.advance(seconds=31)  # past min.compaction.lag.ms: cleaned at once
    assert [v[:2] for v in read_all(bootstrap, "latest")] == [b"v2", b"oo"]
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"


def test_tombstones_go_after_delete_retention_ms_after_advance(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaProducer

    bootstrap = kafka_broker.bootstrap
    create_topic(
        bootstrap,
        "keyed",
        cleanup_policy="compact",
        delete_retention_ms="60000",
        min_cleanable_dirty_ratio="0.01",
        segment_bytes="200",
        message_timestamp_type="LogAppendTime",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for key, value in [(b"k", b"v" * 80), (b"k", None), (b"other", b"1" * 80)]:
            producer.send("keyed", value, key=key, partition=0).get(TIMEOUT)
        kafka_broker.clock.advance(ms=1)  # cleaned: the tombstone stays for delete.retention.ms
        assert [v and v[:1] for v in read_all(bootstrap, "keyed")] == [None, b"1"]
        producer.send("keyed", b"2" * 80, key=b"other", partition=0).get(TIMEOUT)
    finally:
        producer.close()
    started = time.monotonic()
    kafka_broker.clock.advance(seconds=61)  # the tombstone is past delete.retention.ms
    assert [v and v[:1] for v in read_all(bootstrap, "keyed")] == [b"1", b"2"]
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    found = [o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset >= 0]
    return found[0] if found else None


def test_committed_offsets_expire_after_advance(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    bootstrap = kafka_broker.bootstrap
    create_topic(bootstrap, "events")
    produce(bootstrap, "events", [b"e-0", b"e-1", b"e-2"])
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="auditors")
    tp = TopicPartition("events", 0)
    consumer.commit({tp: OffsetAndMetadata(2, "", -1)})
    consumer.close(autocommit=False)  # the group is empty: its offsets start to age
    assert _committed(bootstrap, "auditors", "events") == 2
    started = time.monotonic()
    kafka_broker.clock.advance(days=6)
    assert _committed(bootstrap, "auditors", "events") == 2  # offsets.retention.minutes: 7 days
    kafka_broker.clock.advance(days=1, minutes=1)
    assert _committed(bootstrap, "auditors", "events") is None
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_S, f"took {elapsed:.2f} s"


def test_brokers_in_one_process_keep_their_own_clocks(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, TopicPartition

    hour_ms = 3_600_000
    with (
        running_broker(local_config(tmp_path / "one")) as one,
        running_broker(local_config(tmp_path / "two")) as two,
    ):
        one.clock.advance(hours=1)
        assert one.clock.offset_ms == hour_ms and two.clock.offset_ms == 0
        stamps = []
        for broker in (one, two):
            create_topic(broker.bootstrap, "stamped", message_timestamp_type="LogAppendTime")
            before = int(time.time() * 1000)
            produce(broker.bootstrap, "stamped", [b"x"])
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
            consumer.assign([TopicPartition("stamped", 0, 0)])
            message: Any = None
            while message is None:
                message = consumer.poll(TIMEOUT)
            consumer.close()
            stamps.append(message.timestamp()[1] - before)
        # LogAppendTime is stamped by each broker's own clock.
        assert hour_ms - 1000 < stamps[0] < hour_ms + 5000
        assert -1000 < stamps[1] < 5000


def test_clock_keeps_its_time_over_a_restart(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "data")
    broker.clock.advance(minutes=5)  # not running: from the next start
    with broker:
        assert broker.clock.offset_ms == 300_000
        broker.clock.advance(ms=1)
        broker.restart()
        assert broker.clock.offset_ms == 300_001
        assert broker.clock.now_ms() - int(time.time() * 1000) >= 300_000


def test_subprocess_brokers_refuse_time_control(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "data", mode="subprocess")
    with pytest.raises(NotImplementedError, match="in-process brokers only"):
        broker.clock.advance(seconds=1)
