"""confluent-kafka (librdkafka): every scenario."""

from __future__ import annotations

import threading
import time
from typing import Any

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from compat_tests.harness import (
    Context,
    Message,
    check,
    compressible_messages,
    expect_equal,
    find_config_value,
    keyed_messages,
    large_value,
    run,
    wait_until,
)

MAX_BYTES = 2 * 1024 * 1024
Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


def producer(ctx: Context, **config: Any) -> Producer:
    settings = {
        "bootstrap.servers": ctx.bootstrap,
        "acks": "all",
        "message.max.bytes": MAX_BYTES,
        "linger.ms": 5,
    }
    settings.update(config)
    return Producer(settings)


def consumer(ctx: Context, group: str = "compat-unused", **config: Any) -> Consumer:
    settings = {
        "bootstrap.servers": ctx.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "fetch.message.max.bytes": MAX_BYTES,
        "auto.offset.reset": "earliest",
    }
    settings.update(config)
    return Consumer(settings)


def admin(ctx: Context) -> AdminClient:
    return AdminClient({"bootstrap.servers": ctx.bootstrap})


def create_topic(ctx: Context, topic: str, partitions: int = 1, **configs: str) -> None:
    client = admin(ctx)  # kept referenced until the answer is in: dropping it cancels the call
    client.create_topics([NewTopic(topic, partitions, 1, config=configs)])[topic].result(15)


def produce(ctx: Context, topic: str, messages: list[Message], **config: Any) -> list[int]:
    p = producer(ctx, **config)
    reports: list[Any] = [None] * len(messages)

    def delivered(index: int) -> Any:
        def callback(err: Any, msg: Any) -> None:
            reports[index] = err if err is not None else msg.offset()

        return callback

    for i, (k, v, h) in enumerate(messages):
        p.produce(topic, key=k, value=v, headers=h or None, on_delivery=delivered(i))
        p.poll(0)
    remaining = p.flush(20)
    check(remaining == 0, f"{remaining} records not delivered in 20s")
    errors = [r for r in reports if not isinstance(r, int)]
    check(not errors, f"delivery errors: {errors[:3]}")
    return reports


def read(ctx: Context, topic: str, count: int, **config: Any) -> list[Record]:
    c = consumer(ctx, **config)
    try:
        c.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        out: list[Record] = []
        deadline = time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error() is not None:
                raise KafkaException(m.error())
            out.append((m.offset(), m.key(), m.value(), list(m.headers() or [])))
        return out
    finally:
        c.close()


def round_trip(ctx: Context, messages: list[Message], **config: Any) -> None:
    topic = ctx.topic()
    create_topic(ctx, topic)
    offsets = produce(ctx, topic, messages, **config)
    expect_equal(offsets, list(range(len(messages))), "acknowledged offsets")
    got = read(ctx, topic, len(messages))
    expect_equal(len(got), len(messages), "records consumed")
    for i, ((offset, key, value, headers), (k, v, h)) in enumerate(zip(got, messages, strict=True)):
        expect_equal((offset, key, value, headers), (i, k, v, h), f"record {i}")


def metadata(ctx: Context) -> None:
    topic = ctx.topic()
    produce(ctx, topic, [(b"k", b"v", [])])  # auto-creates the topic
    cluster = admin(ctx).list_topics(timeout=10)
    expect_equal(len(cluster.brokers), 1, "brokers")
    check(topic in cluster.topics, "topic listed")
    partitions = cluster.topics[topic].partitions
    expect_equal(set(partitions), {0}, "partitions")
    check(partitions[0].leader in cluster.brokers, f"leader {partitions[0].leader} is a broker")
    check(cluster.controller_id in cluster.brokers, "the controller is a broker")


def admin_topics(ctx: Context) -> None:
    topic = ctx.topic()
    client = admin(ctx)
    client.create_topics([NewTopic(topic, 3, 1)])[topic].result(15)
    described = client.list_topics(topic, timeout=10).topics[topic]
    expect_equal(set(described.partitions), {0, 1, 2}, "partitions")
    client.delete_topics([topic])[topic].result(15)
    wait_until(lambda: topic not in client.list_topics(timeout=10).topics, 10, "the topic to go")


def keyed_headers(ctx: Context) -> None:
    round_trip(ctx, keyed_messages())


def codec(name: str) -> Any:
    def scenario(ctx: Context) -> None:
        round_trip(ctx, compressible_messages(), **{"compression.type": name, "linger.ms": 20})

    return scenario


def large_message(ctx: Context) -> None:
    round_trip(ctx, [(b"big", large_value(), [("size", b"900KiB")])])


def tombstone(ctx: Context) -> None:
    round_trip(ctx, [(b"user-1", b"alive", []), (b"user-1", None, []), (b"user-2", b"x", [])])


class Member(threading.Thread):
    def __init__(self, ctx: Context, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = consumer(
            ctx, group, **{"session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
        )
        self.consumer.subscribe([topic])
        self.stopping = threading.Event()
        self.assigned: set[int] = set()
        self.values: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                m = self.consumer.poll(0.2)
                if m is not None and m.error() is None:
                    self.values.append(m.value())
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
        except BaseException as exc:
            self.error = exc
        finally:
            self.consumer.close()

    def leave(self) -> None:
        self.stopping.set()
        self.join(20)
        if self.error is not None:
            raise self.error


def group_rebalance(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    create_topic(ctx, topic, partitions=2)
    first = Member(ctx, topic, group)
    first.start()
    second = None
    try:
        wait_until(lambda: first.assigned == {0, 1}, 30, "the first member to hold both partitions")
        second = Member(ctx, topic, group)
        second.start()
        wait_until(
            lambda: len(first.assigned) == 1 and first.assigned | second.assigned == {0, 1},
            30,
            f"a split (first {first.assigned}, second {second.assigned})",
        )
        p = producer(ctx)
        for i in range(20):
            p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
        check(p.flush(20) == 0, "produced")
        wanted = {f"v{i}".encode() for i in range(20)}
        wait_until(lambda: set(first.values) | set(second.values) >= wanted, 30, "both halves read")
        check(first.values and second.values, "each member read its own partition")
        second.leave()
        second = None
        wait_until(lambda: first.assigned == {0, 1}, 30, "the first member to take both back")
        p.produce(topic, value=b"after", partition=0)
        p.produce(topic, value=b"after", partition=1)
        check(p.flush(20) == 0, "produced")
        wait_until(lambda: first.values.count(b"after") == 2, 30, "records after the hand-back")
    finally:
        if second is not None:
            second.leave()
        first.leave()


def group_resume(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    create_topic(ctx, topic)
    produce(ctx, topic, [(None, f"a{i}".encode(), []) for i in range(10)])

    def consume(count: int) -> list[tuple[int, bytes]]:
        c = consumer(ctx, group)
        c.subscribe([topic])
        out: list[tuple[int, bytes]] = []
        try:
            deadline = time.monotonic() + 30
            while len(out) < count and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    out.append((m.offset(), m.value()))
            c.commit(asynchronous=False)
            committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
            expect_equal(committed, out[-1][0] + 1 if out else None, "committed offset")
        finally:
            c.close()
        return out

    first = consume(10)
    expect_equal([o for o, _ in first], list(range(10)), "first member's offsets")
    produce(ctx, topic, [(None, f"b{i}".encode(), []) for i in range(5)])
    second = consume(5)
    expect_equal(second, [(10 + i, f"b{i}".encode()) for i in range(5)], "resumed records")


def group_consumer_protocol(ctx: Context) -> None:
    """librdkafka 2.4+ speaks KIP-848 (the broker assigns partitions through heartbeats)."""
    topic, group = ctx.topic(), ctx.group()
    create_topic(ctx, topic)
    produce(ctx, topic, [(None, f"v{i}".encode(), []) for i in range(3)])
    c = Consumer(
        {
            "bootstrap.servers": ctx.bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        c.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < 3 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                if m.error() is not None:
                    raise KafkaException(m.error())
                values.append(m.value())
        expect_equal(values, [b"v0", b"v1", b"v2"], "records read by a KIP-848 member")
    finally:
        c.close()


def offsets_by_time(ctx: Context) -> None:
    topic = ctx.topic()
    create_topic(ctx, topic)
    base = int(time.time() * 1000) - 60_000
    p = producer(ctx)
    for i in range(3):
        p.produce(topic, value=f"t{i}".encode(), timestamp=base + i * 10_000)
    check(p.flush(20) == 0, "produced")
    c = consumer(ctx)
    try:

        def lookup(timestamp: int) -> int:
            found = c.offsets_for_times([TopicPartition(topic, 0, timestamp)], timeout=10)
            return int(found[0].offset)

        expect_equal(lookup(base + 5_000), 1, "offset for base+5s")
        expect_equal(lookup(base), 0, "offset for base")
        expect_equal(lookup(base + 100_000), -1, "offset after the end (OFFSET_END)")
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        expect_equal((low, high), (0, 3), "watermarks")
    finally:
        c.close()


def idempotent_producer(ctx: Context) -> None:
    messages: list[Message] = [(f"k{i % 3}".encode(), f"v{i}".encode(), []) for i in range(200)]
    round_trip(ctx, messages, **{"enable.idempotence": True})


def transactional_producer(ctx: Context) -> None:
    topic = ctx.topic()
    create_topic(ctx, topic)
    p = producer(ctx, **{"transactional.id": ctx.prefix + "-txn"})
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"committed-{i}".encode())
    p.commit_transaction(15)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"aborted-{i}".encode())
    p.abort_transaction(15)
    got = read(ctx, topic, 5, **{"isolation.level": "read_committed"})
    want = [f"committed-{i}".encode() for i in range(5)]
    expect_equal([r[2] for r in got], want, "read_committed")


def describe_configs(ctx: Context) -> None:
    topic = ctx.topic()
    create_topic(ctx, topic, **{"retention.ms": "123456789"})
    resource = ConfigResource("topic", topic)
    client = admin(ctx)
    entries = client.describe_configs([resource])[resource].result(15)
    expect_equal(find_config_value(entries, "retention.ms"), "123456789", "retention.ms")


IMPLS = {
    "metadata": metadata,
    "admin_topics": admin_topics,
    "keyed_headers": keyed_headers,
    "codec_gzip": codec("gzip"),
    "codec_snappy": codec("snappy"),
    "codec_lz4": codec("lz4"),
    "codec_zstd": codec("zstd"),
    "large_message": large_message,
    "tombstone": tombstone,
    "group_rebalance": group_rebalance,
    "group_resume": group_resume,
    "group_consumer_protocol": group_consumer_protocol,
    "offsets_by_time": offsets_by_time,
    "idempotent_producer": idempotent_producer,
    "transactional_producer": transactional_producer,
    "describe_configs": describe_configs,
}


def version() -> str:
    version = confluent_kafka.version()  # a string in recent releases, (string, int) before
    text = version[0] if isinstance(version, tuple) else version
    return f"{text} (librdkafka {confluent_kafka.libversion()[0]})"


if __name__ == "__main__":
    run(IMPLS, version)
