"""kafka-python: every scenario, written so that 1.4.x, 2.0.x, 2.2.x and 3.x all run it.

``COMPAT_KAFKA_PYTHON_API_VERSION=0.11.0`` (say) makes every client pin that broker version
instead of asking ApiVersions, so a current kafka-python speaks the old request versions
(and, below 0.11, the old message format) that version used.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from compat_tests.harness import (
    Context,
    Message,
    Skip,
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
_PINNED = os.environ.get("COMPAT_KAFKA_PYTHON_API_VERSION")
PINNED: dict[str, Any] = (
    {"api_version": tuple(int(part) for part in _PINNED.split("."))} if _PINNED else {}
)


def producer(ctx: Context, **config: Any) -> KafkaProducer:
    unknown = set(config) - set(KafkaProducer.DEFAULT_CONFIG)
    if unknown:
        raise Skip(f"kafka-python {kafka.__version__} has no producer setting {sorted(unknown)}")
    codec = config.get("compression_type")
    if codec and codec not in getattr(KafkaProducer, "_COMPRESSORS", {codec: None}):
        raise Skip(f"kafka-python {kafka.__version__} has no {codec} codec")
    if codec == "zstd" and pinned_below(2, 1):
        raise Skip(f"zstd needs 2.1, pinned {PINNED['api_version']}")
    if (config.get("enable_idempotence") or config.get("transactional_id")) and pinned_below(0, 11):
        raise Skip(f"idempotence needs 0.11, pinned {PINNED['api_version']}")
    config.setdefault("acks", "all")
    config = {**PINNED, **config}
    return KafkaProducer(bootstrap_servers=ctx.bootstrap, max_request_size=MAX_BYTES, **config)


def consumer(ctx: Context, *topics: str, **config: Any) -> KafkaConsumer:
    unknown = set(config) - set(KafkaConsumer.DEFAULT_CONFIG)
    if unknown:
        raise Skip(f"kafka-python {kafka.__version__} has no consumer setting {sorted(unknown)}")
    config.setdefault("enable_auto_commit", False)
    config = {**PINNED, **config}
    return KafkaConsumer(
        *topics,
        bootstrap_servers=ctx.bootstrap,
        max_partition_fetch_bytes=MAX_BYTES,
        fetch_max_bytes=4 * MAX_BYTES,
        **config,
    )


def pinned_below(*version: int) -> bool:
    return bool(PINNED) and PINNED["api_version"] < version


def supported(messages: list[Message]) -> list[Message]:
    """Before 0.11 (the v0/v1 message formats) records carry no headers."""
    return [(k, v, []) for k, v, _ in messages] if pinned_below(0, 11) else messages


def admin(ctx: Context) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=ctx.bootstrap, **PINNED)


def list_topics(ctx: Context, client: KafkaAdminClient) -> set[str]:
    if hasattr(client, "list_topics"):
        return set(client.list_topics())
    c = consumer(ctx)  # kafka-python 1.4 has no KafkaAdminClient.list_topics
    try:
        return set(c.topics())
    finally:
        c.close()


def create_topic(ctx: Context, topic: str, partitions: int = 1, **configs: str) -> None:
    if pinned_below(0, 10, 1):  # no CreateTopics yet: a plain topic is auto-created instead
        if partitions == 1 and not configs:
            return
        raise Skip(f"CreateTopics needs 0.10.1, pinned {PINNED['api_version']}")
    client = admin(ctx)
    try:
        client.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        client.close()


def produce(ctx: Context, topic: str, messages: list[Message], **config: Any) -> list[int]:
    p = producer(ctx, **config)
    try:
        futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
        p.flush(timeout=20)
        return [f.get(timeout=20).offset for f in futures]
    finally:
        p.close(timeout=5)


def read(ctx: Context, topic: str, count: int, partition: int = 0, **config: Any) -> list[Record]:
    c = consumer(ctx, **config)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[Record] = []
        deadline = time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=300).values():
                out += [(r.offset, r.key, r.value, list(r.headers or [])) for r in records]
        return out
    finally:
        c.close()


def round_trip(ctx: Context, messages: list[Message], **config: Any) -> None:
    messages = supported(messages)
    topic = ctx.topic()
    create_topic(ctx, topic)
    offsets = produce(ctx, topic, messages, **config)
    expect_equal(offsets, list(range(len(messages))), "acknowledged offsets")
    got = read(ctx, topic, len(messages))
    expect_equal(len(got), len(messages), "records consumed")
    for (offset, key, value, headers), (k, v, h), want in zip(
        got, messages, range(len(messages)), strict=True
    ):
        expect_equal((offset, key, value, headers), (want, k, v, h), f"record {want}")


def metadata(ctx: Context) -> None:
    topic = ctx.topic()
    produce(ctx, topic, [(b"k", b"v", [])])  # auto-creates the topic
    c = consumer(ctx)
    try:
        expect_equal(c.partitions_for_topic(topic), {0}, "partitions")
        check(topic in c.topics(), "topic listed")
        cluster = c._client.cluster
        check(len(cluster.brokers()) == 1, f"one broker, got {cluster.brokers()}")
        leader = cluster.leader_for_partition(TopicPartition(topic, 0))
        ids = {getattr(b, "nodeId", getattr(b, "node_id", None)) for b in cluster.brokers()}
        check(leader in ids, f"leader {leader} is one of the brokers {ids}")
    finally:
        c.close()


def admin_topics(ctx: Context) -> None:
    if pinned_below(0, 10, 1):
        raise Skip(f"CreateTopics needs 0.10.1, pinned {PINNED['api_version']}")
    topic = ctx.topic()
    client = admin(ctx)
    try:
        client.create_topics([NewTopic(topic, 3, 1)])
        check(topic in list_topics(ctx, client), "created topic listed")
        c = consumer(ctx)
        expect_equal(
            wait_until(lambda: c.partitions_for_topic(topic), 10, "partitions"),
            {0, 1, 2},
            "partitions",
        )
        c.close()
        client.delete_topics([topic])
        wait_until(lambda: topic not in list_topics(ctx, client), 10, "the topic to go")
    finally:
        client.close()


def keyed_headers(ctx: Context) -> None:
    round_trip(ctx, keyed_messages())


def codec(name: str) -> Any:
    def scenario(ctx: Context) -> None:
        round_trip(ctx, compressible_messages(), compression_type=name, linger_ms=20)

    return scenario


def large_message(ctx: Context) -> None:
    round_trip(ctx, [(b"big", large_value(), [("size", b"900KiB")])])


def tombstone(ctx: Context) -> None:
    round_trip(ctx, [(b"user-1", b"alive", []), (b"user-1", None, []), (b"user-2", b"x", [])])


class Member(threading.Thread):
    """A group member polling on its own thread; records what it holds and what it read."""

    def __init__(self, ctx: Context, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = consumer(
            ctx,
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=500,
        )
        self.stopping = threading.Event()
        self.assigned: set[int] = set()
        self.values: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                for records in self.consumer.poll(timeout_ms=200).values():
                    self.values += [r.value for r in records]
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
            p.send(topic, value=f"v{i}".encode(), partition=i % 2)
        p.flush(timeout=20)
        wanted = {f"v{i}".encode() for i in range(20)}
        wait_until(lambda: set(first.values) | set(second.values) >= wanted, 30, "both halves read")
        check(first.values and second.values, "each member read its own partition")
        second.leave()
        second = None
        wait_until(lambda: first.assigned == {0, 1}, 30, "the first member to take both back")
        p.send(topic, value=b"after", partition=0)
        p.send(topic, value=b"after", partition=1)
        p.flush(timeout=20)
        p.close(timeout=5)
        wait_until(lambda: first.values.count(b"after") == 2, 30, "records after the hand-back")
    finally:
        if second is not None:
            second.leave()
        first.leave()


def group_resume(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    create_topic(ctx, topic)
    produce(ctx, topic, [(None, f"a{i}".encode(), []) for i in range(10)])
    tp = TopicPartition(topic, 0)

    def consume(count: int) -> list[tuple[int, bytes]]:
        c = consumer(ctx, topic, group_id=group, auto_offset_reset="earliest")
        out: list[tuple[int, bytes]] = []
        try:
            deadline = time.monotonic() + 30
            while len(out) < count and time.monotonic() < deadline:
                for records in c.poll(timeout_ms=300).values():
                    out += [(r.offset, r.value) for r in records]
            c.commit()
            expect_equal(c.committed(tp), out[-1][0] + 1 if out else None, "committed offset")
        finally:
            c.close()
        return out

    first = consume(10)
    expect_equal([o for o, _ in first], list(range(10)), "first member's offsets")
    produce(ctx, topic, [(None, f"b{i}".encode(), []) for i in range(5)])
    second = consume(5)
    expect_equal(second, [(10 + i, f"b{i}".encode()) for i in range(5)], "resumed records")


def offsets_by_time(ctx: Context) -> None:
    if pinned_below(0, 10, 1):
        raise Skip(f"ListOffsets v1 (by time) needs 0.10.1, pinned {PINNED['api_version']}")
    topic = ctx.topic()
    create_topic(ctx, topic)
    base = int(time.time() * 1000) - 60_000
    p = producer(ctx)
    for i in range(3):
        p.send(topic, value=f"t{i}".encode(), timestamp_ms=base + i * 10_000)
    p.flush(timeout=20)
    p.close(timeout=5)
    c = consumer(ctx)
    try:
        tp = TopicPartition(topic, 0)
        found = c.offsets_for_times({tp: base + 5_000})[tp]
        check(found is not None, "an offset at or after base+5s")
        expect_equal((found.offset, found.timestamp), (1, base + 10_000), "offset for base+5s")
        expect_equal(c.offsets_for_times({tp: base})[tp].offset, 0, "offset for base")
        expect_equal(c.offsets_for_times({tp: base + 100_000})[tp], None, "offset after the end")
        expect_equal(c.beginning_offsets([tp])[tp], 0, "beginning offset")
        expect_equal(c.end_offsets([tp])[tp], 3, "end offset")
    finally:
        c.close()


def idempotent_producer(ctx: Context) -> None:
    messages = [(f"k{i % 3}".encode(), f"v{i}".encode(), []) for i in range(200)]
    round_trip(ctx, messages, enable_idempotence=True)  # type: ignore[arg-type]


def transactional_producer(ctx: Context) -> None:
    topic = ctx.topic()
    create_topic(ctx, topic)
    p = producer(
        ctx, transactional_id=ctx.prefix + "-txn", enable_idempotence=True, max_block_ms=15000
    )
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"committed-{i}".encode())
        p.commit_transaction()
        p.begin_transaction()
        for i in range(5):
            p.send(topic, value=f"aborted-{i}".encode())
        p.abort_transaction()
    finally:
        p.close(timeout=5)
    got = read(ctx, topic, 5, isolation_level="read_committed")
    expect_equal(
        [r[2] for r in got], [f"committed-{i}".encode() for i in range(5)], "read_committed"
    )


def describe_configs(ctx: Context) -> None:
    if pinned_below(0, 11):
        raise Skip(f"DescribeConfigs needs 0.11, pinned {PINNED['api_version']}")
    topic = ctx.topic()
    create_topic(ctx, topic, **{"retention.ms": "123456789"})
    client = admin(ctx)
    try:
        described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        expect_equal(find_config_value(described, "retention.ms"), "123456789", "retention.ms")
    finally:
        client.close()


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
    "offsets_by_time": offsets_by_time,
    "idempotent_producer": idempotent_producer,
    "transactional_producer": transactional_producer,
    "describe_configs": describe_configs,
}

if __name__ == "__main__":
    run(IMPLS, lambda: kafka.__version__)
