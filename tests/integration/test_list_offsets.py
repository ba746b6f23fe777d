"""ListOffsets and OffsetForLeaderEpoch, from stock clients and hand-made requests."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
from kafka.record.memory_records import MemoryRecordsBuilder

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import (
    list_offsets_request,
    offset_for_leader_epoch_request,
)
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkacompat.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kafkacompat.testing import BrokerThread
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

TOPIC = "timed"
T0 = 1_700_000_000_000
#: Record timestamps by offset: not monotonic, so the largest is not the last.
TIMESTAMPS = [T0, T0 + 10, T0 + 20, T0 + 50, T0 + 30, T0 + 40]


def fill(broker: BrokerThread) -> None:
    """Partition 0: three batches of two records with TIMESTAMPS; partition 1 stays empty."""
    replicas = internals(broker)
    replicas.create_topic(TOPIC, 2)
    for b in range(3):
        builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
        for i in (2 * b, 2 * b + 1):
            builder.append(timestamp=TIMESTAMPS[i], key=f"k{i}".encode(), value=b"v", headers=[])
        builder.close()
        broker.call(partial(replicas.append, TOPIC, 0, bytes(builder.buffer())))


def list_offsets(
    client: RawClient,
    version: int,
    queries: list[tuple[str, int, int]],
    *,
    isolation_level: int = 0,
    current_leader_epoch: int = -1,
    max_num_offsets: int = 1,
) -> dict[tuple[str, int], Any]:
    topics: list[ListOffsetsTopic] = []
    for topic, partition, timestamp in queries:
        if not topics or topics[-1].name != topic:
            topics.append(ListOffsetsTopic(name=topic))
        topics[-1].partitions.append(
            ListOffsetsPartition(
                partition_index=partition,
                timestamp=timestamp,
                current_leader_epoch=current_leader_epoch,
                max_num_offsets=max_num_offsets,
            )
        )
    request = ListOffsetsRequest(replica_id=-1, isolation_level=isolation_level, topics=topics)
    response = client.call(list_offsets_request.API_KEY, version, request)
    return {(t.name, p.partition_index): p for t in response.topics for p in t.partitions}


def answer(p: Any) -> tuple[int, int, int, int]:
    return (p.error_code, p.timestamp, p.offset, p.leader_epoch)


# --- stock clients --------------------------------------------------------------------------


def test_kafka_python_offsets(broker: BrokerThread) -> None:
    from kafka import KafkaConsumer, TopicPartition

    fill(broker)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
        assert consumer.beginning_offsets([p0, p1]) == {p0: 0, p1: 0}
        assert consumer.end_offsets([p0, p1]) == {p0: 6, p1: 0}
        found = consumer.offsets_for_times({p0: T0 + 15, p1: T0})
        assert (found[p0].offset, found[p0].timestamp) == (2, T0 + 20)
        assert found[p1] is None
        found = consumer.offsets_for_times({p0: T0 + 45})
        assert (found[p0].offset, found[p0].timestamp) == (3, T0 + 50)
        assert consumer.offsets_for_times({p0: T0 + 51}) == {p0: None}
    finally:
        consumer.close()


def test_confluent_kafka_offsets(broker: BrokerThread) -> None:
    from confluent_kafka import Consumer, TopicPartition

    fill(broker)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10) == (0, 6)
        assert consumer.get_watermark_offsets(TopicPartition(TOPIC, 1), timeout=10) == (0, 0)
        found = consumer.offsets_for_times(
            [TopicPartition(TOPIC, 0, T0 + 31), TopicPartition(TOPIC, 1, T0)], timeout=10
        )
        assert [(tp.partition, tp.offset) for tp in found] == [(0, 3), (1, -1)]
        assert all(tp.error is None for tp in found)
        found = consumer.offsets_for_times([TopicPartition(TOPIC, 0, T0 + 60)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in found] == [(0, -1)]
        assert all(tp.error is None for tp in found)
    finally:
        consumer.close()


def test_aiokafka_offsets(broker: BrokerThread) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    fill(broker)

    async def ask() -> tuple[Any, Any, Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition(TOPIC, 0)
            return (
                await consumer.beginning_offsets([tp]),
                await consumer.end_offsets([tp]),
                await consumer.offsets_for_times({tp: T0 + 5}),
            )
        finally:
            await consumer.stop()

    begin, end, found = asyncio.run(ask())
    tp = next(iter(begin))
    assert (begin[tp], end[tp]) == (0, 6)
    assert (found[tp].offset, found[tp].timestamp) == (1, T0 + 10)


# --- raw requests ---------------------------------------------------------------------------


def test_special_targets(broker: BrokerThread) -> None:
    fill(broker)
    replicas = internals(broker)
    with RawClient(broker.port) as client:
        got = list_offsets(client, 9, [(TOPIC, 0, -1), (TOPIC, 1, -2)])
        assert answer(got[(TOPIC, 0)]) == (0, -1, 6, 0)
        assert answer(got[(TOPIC, 1)]) == (0, -1, 0, 0)
        # Max timestamp: the first record holding the largest timestamp.
        assert answer(list_offsets(client, 9, [(TOPIC, 0, -3)])[(TOPIC, 0)]) == (0, T0 + 50, 3, 0)
        assert answer(list_offsets(client, 9, [(TOPIC, 1, -3)])[(TOPIC, 1)]) == (0, -1, -1, -1)
        # Earliest local equals earliest; latest tiered is unknown without tiered storage.
        assert answer(list_offsets(client, 9, [(TOPIC, 0, -4)])[(TOPIC, 0)]) == (0, -1, 0, 0)
        assert answer(list_offsets(client, 10, [(TOPIC, 0, -5)])[(TOPIC, 0)]) == (0, -1, -1, -1)
        # The log start offset moves with DeleteRecords.
        broker.call(replicas.partition(TOPIC, 0).delete_records, 2)
        assert answer(list_offsets(client, 9, [(TOPIC, 0, -2)])[(TOPIC, 0)]) == (0, -1, 2, 0)
        assert answer(list_offsets(client, 9, [(TOPIC, 0, T0)])[(TOPIC, 0)]) == (0, T0 + 20, 2, 0)


def test_by_timestamp_and_versions(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        for version in range(1, 11):
            got = list_offsets(client, version, [(TOPIC, 0, T0 + 35), (TOPIC, 1, T0)])
            epoch = 0 if version >= 4 else -1
            assert answer(got[(TOPIC, 0)]) == (0, T0 + 50, 3, epoch)
            assert answer(got[(TOPIC, 1)]) == (0, -1, -1, -1)
            latest = list_offsets(client, version, [(TOPIC, 0, -1)], isolation_level=1)
            assert latest[(TOPIC, 0)].offset == 6


def test_errors(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        got = list_offsets(client, 7, [("missing", 0, -1), (TOPIC, 9, -1)])
        assert answer(got[("missing", 0)]) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)
        assert answer(got[(TOPIC, 9)]) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)
        got = list_offsets(client, 7, [(TOPIC, 0, -1)], current_leader_epoch=3)
        assert got[(TOPIC, 0)].error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
        got = list_offsets(client, 7, [(TOPIC, 0, -1)], current_leader_epoch=0)
        assert got[(TOPIC, 0)].error_code == ErrorCode.NONE
        got = list_offsets(client, 7, [(TOPIC, 0, -1), (TOPIC, 0, -2)])
        assert got[(TOPIC, 0)].error_code == ErrorCode.INVALID_REQUEST


def test_v0_old_style_offsets(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:

        def offsets(partition: int, timestamp: int, count: int = 1) -> Any:
            got = list_offsets(client, 0, [(TOPIC, partition, timestamp)], max_num_offsets=count)
            p = got[(TOPIC, partition)]
            return p.error_code, p.old_style_offsets

        assert offsets(0, -1) == (0, [6])
        assert offsets(0, -2) == (0, [0])
        # Every segment start and the log end, newest first.
        assert offsets(0, -1, 10) == (0, [6, 0])
        # By time, v0 compares segment file times: none is older than the epoch start.
        assert offsets(0, 0, 10) == (0, [])
        assert offsets(0, int(time.time() * 1000) + 60_000, 10) == (0, [6, 0])
        assert offsets(1, -1, 10) == (0, [0])
        got = list_offsets(client, 0, [("missing", 0, -1)])
        assert (got[("missing", 0)].error_code, got[("missing", 0)].old_style_offsets) == (3, [])


def test_offset_for_leader_epoch(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:

        def ask(version: int, topic: str, partition: int, epoch: int, current: int = -1) -> Any:
            request = OffsetForLeaderEpochRequest(
                topics=[
                    OffsetForLeaderTopic(
                        topic=topic,
                        partitions=[
                            OffsetForLeaderPartition(
                                partition=partition,
                                leader_epoch=epoch,
                                current_leader_epoch=current,
                            )
                        ],
                    )
                ]
            )
            response = client.call(offset_for_leader_epoch_request.API_KEY, version, request)
            p = response.topics[0].partitions[0]
            return p.error_code, p.leader_epoch, p.end_offset

        for version in range(5):
            epoch = 0 if version >= 1 else -1
            assert ask(version, TOPIC, 0, 0) == (0, epoch, 6)
            assert ask(version, TOPIC, 1, 0) == (0, epoch, 0)
            assert ask(version, TOPIC, 0, 1) == (0, -1, -1)
            assert ask(version, "missing", 0, 0) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
        assert ask(4, TOPIC, 0, -1) == (0, -1, -1)
        assert ask(4, TOPIC, 0, 0, current=2) == (ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1)
        assert ask(4, TOPIC, 0, 0, current=0) == (0, 0, 6)
