"""aiokafka: every scenario, for 0.10 through the latest release."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

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
)

MAX_BYTES = 2 * 1024 * 1024
Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


def sync(scenario: Callable[[Context], Awaitable[None]]) -> Callable[[Context], None]:
    def runner(ctx: Context) -> None:
        asyncio.run(scenario(ctx))

    return runner


async def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def admin_client(ctx: Context) -> Any:
    try:
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:  # aiokafka before 0.8
        raise Skip(f"aiokafka {aiokafka.__version__} has no admin client") from None
    return AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap)


def new_topic(name: str, partitions: int, configs: dict[str, str] | None = None) -> Any:
    from aiokafka.admin import NewTopic

    return NewTopic(name, partitions, 1, topic_configs=configs or {})


def producer(ctx: Context, **config: Any) -> AIOKafkaProducer:
    codec = config.get("compression_type")
    if codec and codec not in getattr(AIOKafkaProducer, "_COMPRESSORS", {codec: None}):
        raise Skip(f"aiokafka {aiokafka.__version__} has no {codec} codec")
    config.setdefault("acks", "all")
    return AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap,
        max_request_size=MAX_BYTES,
        request_timeout_ms=15000,
        **config,
    )


def consumer(ctx: Context, *topics: str, **config: Any) -> AIOKafkaConsumer:
    config.setdefault("enable_auto_commit", False)
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=ctx.bootstrap,
        max_partition_fetch_bytes=MAX_BYTES,
        fetch_max_bytes=4 * MAX_BYTES,
        request_timeout_ms=15000,
        **config,
    )


async def create_topic(ctx: Context, topic: str, partitions: int = 1, **configs: str) -> None:
    """With the admin client; without one (before 0.8) a plain topic is auto-created instead."""
    try:
        admin = admin_client(ctx)
    except Skip:
        if partitions == 1 and not configs:
            return
        raise
    await admin.start()
    try:
        await admin.create_topics([new_topic(topic, partitions, configs)])
    finally:
        await admin.close()


async def produce(ctx: Context, topic: str, messages: list[Message], **config: Any) -> list[int]:
    p = producer(ctx, **config)
    await p.start()
    try:
        waits = [await p.send(topic, key=k, value=v, headers=h or None) for k, v, h in messages]
        return [(await w).offset for w in waits]
    finally:
        await p.stop()


async def read(ctx: Context, topic: str, count: int, **config: Any) -> list[Record]:
    c = consumer(ctx, **config)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        out: list[Record] = []
        deadline = time.monotonic() + 20
        while len(out) < count and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=300)).values():
                out += [(r.offset, r.key, r.value, list(r.headers or [])) for r in records]
        return out
    finally:
        await c.stop()


async def round_trip(ctx: Context, messages: list[Message], **config: Any) -> None:
    topic = ctx.topic()
    await create_topic(ctx, topic)
    offsets = await produce(ctx, topic, messages, **config)
    expect_equal(offsets, list(range(len(messages))), "acknowledged offsets")
    got = await read(ctx, topic, len(messages))
    expect_equal(len(got), len(messages), "records consumed")
    for i, ((offset, key, value, headers), (k, v, h)) in enumerate(zip(got, messages, strict=True)):
        expect_equal((offset, key, value, headers), (i, k, v, h), f"record {i}")


@sync
async def metadata(ctx: Context) -> None:
    topic = ctx.topic()
    await produce(ctx, topic, [(b"k", b"v", [])])  # auto-creates the topic
    c = consumer(ctx)
    await c.start()
    try:
        check(topic in await c.topics(), "topic listed")
        cluster = await c._client.fetch_all_metadata()
        expect_equal(cluster.partitions_for_topic(topic), {0}, "partitions")
        check(len(cluster.brokers()) == 1, f"one broker, got {cluster.brokers()}")
        leader = cluster.leader_for_partition(TopicPartition(topic, 0))
        check(leader in {b.nodeId for b in cluster.brokers()}, f"leader {leader} is a broker")
    finally:
        await c.stop()


@sync
async def admin_topics(ctx: Context) -> None:
    topic = ctx.topic()
    admin = admin_client(ctx)
    await admin.start()
    try:
        await admin.create_topics([new_topic(topic, 3)])
        check(topic in await admin.list_topics(), "created topic listed")
        c = consumer(ctx)
        await c.start()
        cluster = await c._client.fetch_all_metadata()
        expect_equal(cluster.partitions_for_topic(topic), {0, 1, 2}, "partitions")
        await c.stop()
        await admin.delete_topics([topic])
        deadline = time.monotonic() + 10
        while topic in await admin.list_topics():
            check(time.monotonic() < deadline, "the topic is still listed 10s after deletion")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@sync
async def keyed_headers(ctx: Context) -> None:
    await round_trip(ctx, keyed_messages())


def codec(name: str) -> Callable[[Context], None]:
    @sync
    async def scenario(ctx: Context) -> None:
        await round_trip(ctx, compressible_messages(), compression_type=name, linger_ms=20)

    return scenario


@sync
async def large_message(ctx: Context) -> None:
    await round_trip(ctx, [(b"big", large_value(), [("size", b"900KiB")])])


@sync
async def tombstone(ctx: Context) -> None:
    await round_trip(ctx, [(b"user-1", b"alive", []), (b"user-1", None, []), (b"user-2", b"x", [])])


class Member:
    def __init__(self, ctx: Context, topic: str, group: str) -> None:
        self.consumer = consumer(
            ctx,
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=500,
        )
        self.values: list[bytes] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                self.values += [r.value for r in records]

    async def leave(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.consumer.stop()


@sync
async def group_rebalance(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    await create_topic(ctx, topic, partitions=2)
    first = Member(ctx, topic, group)
    second = Member(ctx, topic, group)
    await first.start()
    try:
        await wait_for(lambda: first.assigned == {0, 1}, 30, "the first member to hold both")
        await second.start()
        await wait_for(
            lambda: len(first.assigned) == 1 and first.assigned | second.assigned == {0, 1},
            30,
            "the partitions to be split",
        )
        p = producer(ctx)
        await p.start()
        for i in range(20):
            await p.send(topic, value=f"v{i}".encode(), partition=i % 2)
        await p.flush()
        wanted = {f"v{i}".encode() for i in range(20)}
        await wait_for(
            lambda: set(first.values) | set(second.values) >= wanted, 30, "both halves read"
        )
        check(first.values and second.values, "each member read its own partition")
        await second.leave()
        await wait_for(lambda: first.assigned == {0, 1}, 30, "the first member to take both back")
        await p.send_and_wait(topic, value=b"after", partition=0)
        await p.send_and_wait(topic, value=b"after", partition=1)
        await p.stop()
        await wait_for(lambda: first.values.count(b"after") == 2, 30, "records after hand-back")
    finally:
        await second.leave()
        await first.leave()


@sync
async def group_resume(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    await create_topic(ctx, topic)
    await produce(ctx, topic, [(None, f"a{i}".encode(), []) for i in range(10)])
    tp = TopicPartition(topic, 0)

    async def consume(count: int) -> list[tuple[int, bytes]]:
        c = consumer(ctx, topic, group_id=group, auto_offset_reset="earliest")
        await c.start()
        out: list[tuple[int, bytes]] = []
        try:
            deadline = time.monotonic() + 30
            while len(out) < count and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=300)).values():
                    out += [(r.offset, r.value) for r in records]
            await c.commit()
            expect_equal(await c.committed(tp), out[-1][0] + 1 if out else None, "committed")
        finally:
            await c.stop()
        return out

    first = await consume(10)
    expect_equal([o for o, _ in first], list(range(10)), "first member's offsets")
    await produce(ctx, topic, [(None, f"b{i}".encode(), []) for i in range(5)])
    second = await consume(5)
    expect_equal(second, [(10 + i, f"b{i}".encode()) for i in range(5)], "resumed records")


@sync
async def offsets_by_time(ctx: Context) -> None:
    topic = ctx.topic()
    await create_topic(ctx, topic)
    base = int(time.time() * 1000) - 60_000
    p = producer(ctx)
    await p.start()
    for i in range(3):
        await p.send_and_wait(topic, value=f"t{i}".encode(), timestamp_ms=base + i * 10_000)
    await p.stop()
    c = consumer(ctx)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        found = (await c.offsets_for_times({tp: base + 5_000}))[tp]
        check(found is not None, "an offset at or after base+5s")
        expect_equal((found.offset, found.timestamp), (1, base + 10_000), "offset for base+5s")
        expect_equal((await c.offsets_for_times({tp: base}))[tp].offset, 0, "offset for base")
        expect_equal((await c.offsets_for_times({tp: base + 100_000}))[tp], None, "after the end")
        expect_equal((await c.beginning_offsets([tp]))[tp], 0, "beginning offset")
        expect_equal((await c.end_offsets([tp]))[tp], 3, "end offset")
    finally:
        await c.stop()


@sync
async def idempotent_producer(ctx: Context) -> None:
    messages: list[Message] = [(f"k{i % 3}".encode(), f"v{i}".encode(), []) for i in range(200)]
    await round_trip(ctx, messages, enable_idempotence=True)


@sync
async def transactional_producer(ctx: Context) -> None:
    topic = ctx.topic()
    await create_topic(ctx, topic)
    p = producer(ctx, transactional_id=ctx.prefix + "-txn", enable_idempotence=True)
    await asyncio.wait_for(p.start(), 20)
    try:
        async with p.transaction():
            for i in range(5):
                await p.send(topic, value=f"committed-{i}".encode())
        await p.begin_transaction()
        for i in range(5):
            await p.send(topic, value=f"aborted-{i}".encode())
        await p.abort_transaction()
    finally:
        await p.stop()
    got = await read(ctx, topic, 5, isolation_level="read_committed")
    want = [f"committed-{i}".encode() for i in range(5)]
    expect_equal([r[2] for r in got], want, "read_committed")


@sync
async def describe_configs(ctx: Context) -> None:
    admin = admin_client(ctx)
    try:
        from aiokafka.admin import ConfigResource, ConfigResourceType  # type: ignore[attr-defined]
    except ImportError:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topic = ctx.topic()
    await create_topic(ctx, topic, **{"retention.ms": "123456789"})
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        expect_equal(find_config_value(described, "retention.ms"), "123456789", "retention.ms")
    finally:
        await admin.close()


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
    run(IMPLS, lambda: aiokafka.__version__)
