"""Fetch from stock clients and hand-made requests: exact records, long polling, byte limits,
errors, fetch sessions and down-converted message sets for fetch v0-v3."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
import uuid
from functools import partial
from typing import Any

import pytest
from kafka.record import MemoryRecords
from kafka.record.memory_records import MemoryRecordsBuilder

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import fetch_request
from kafkacompat.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
    ForgottenTopic,
)
from kafkacompat.protocol.messages.fetch_response import FetchResponse, PartitionData
from kafkacompat.testing import BrokerThread
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

Headers = list[tuple[str, bytes]]
Message = tuple[bytes | None, bytes | None, Headers]
TOPIC = "events"
BASE_TS = 1_700_000_000_000

#: Partition 0: three batches (plain, gzip, plain); partition 1: one batch.
P0: list[list[Message]] = [
    [(b"k0", b"v0", [("h1", b"x"), ("h2", b"")]), (None, b"v1", [])],
    [(b"k2", b"v2" * 50, [("trace", b"abc")]), (b"k3", None, [])],
    [(b"k4", b"", [])],
]
P1: list[list[Message]] = [[(b"p1-k0", b"p1-v0", [])]]
CODECS = [0, 1, 0]  # kafka-python's codec ids: none, gzip


def build_batch(messages: list[Message], first_ts: int, codec: int = 0) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=codec, batch_size=1 << 20)
    for i, (key, value, headers) in enumerate(messages):
        builder.append(timestamp=first_ts + i, key=key, value=value, headers=headers)
    builder.close()
    return bytes(builder.buffer())


def fill(broker: BrokerThread, topic: str = TOPIC) -> list[tuple[int, int, Message, int]]:
    """Create the topic and store P0/P1; return (partition, offset, message, timestamp) rows."""
    replicas = internals(broker)
    replicas.create_topic(topic, 2)
    rows: list[tuple[int, int, Message, int]] = []
    for partition, batches in ((0, P0), (1, P1)):
        offset = 0
        for b, messages in enumerate(batches):
            first_ts = BASE_TS + 10 * (offset + 1)
            codec = CODECS[b] if partition == 0 else 0
            batch = build_batch(messages, first_ts, codec)
            broker.call(partial(replicas.append, topic, partition, batch))
            for i, message in enumerate(messages):
                rows.append((partition, offset, message, first_ts + i))
                offset += 1
    return rows


def append_on_loop(broker: BrokerThread, topic: str, partition: int, data: bytes) -> None:
    """Append through the broker's own loop, as Produce does, so waiting fetches wake up."""
    replicas = internals(broker)
    broker.call(partial(replicas.append, topic, partition, data))


# --- raw requests ---------------------------------------------------------------------------


def fetch(
    client: RawClient,
    version: int,
    partitions: list[tuple[str | uuid.UUID, int, int]] | None = None,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 1 << 30,
    partition_max_bytes: int = 1 << 20,
    isolation_level: int = 0,
    session_id: int = 0,
    session_epoch: int = -1,
    forgotten: list[tuple[str | uuid.UUID, int]] | None = None,
    current_leader_epoch: int = -1,
) -> FetchResponse:
    topics: list[FetchTopic] = []
    for topic, partition, offset in partitions or []:
        if not topics or (topics[-1].topic_id != topic and topics[-1].topic != topic):
            topics.append(
                FetchTopic(topic_id=topic)
                if isinstance(topic, uuid.UUID)
                else FetchTopic(topic=topic)
            )
        topics[-1].partitions.append(
            FetchPartition(
                partition=partition,
                fetch_offset=offset,
                partition_max_bytes=partition_max_bytes,
                current_leader_epoch=current_leader_epoch,
            )
        )
    request = FetchRequest(
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
        session_id=session_id,
        session_epoch=session_epoch,
        topics=topics,
        forgotten_topics_data=[
            ForgottenTopic(topic_id=t, partitions=[p])
            if isinstance(t, uuid.UUID)
            else ForgottenTopic(topic=t, partitions=[p])
            for t, p in forgotten or []
        ],
    )
    response: FetchResponse = client.call(fetch_request.API_KEY, version, request)
    return response


def partitions_of(response: FetchResponse) -> dict[tuple[str | uuid.UUID, int], PartitionData]:
    out: dict[tuple[str | uuid.UUID, int], PartitionData] = {}
    for topic in response.responses:
        key: str | uuid.UUID = topic.topic_id if topic.topic == "" else topic.topic
        for p in topic.partitions:
            out[(key, p.partition_index)] = p
    return out


def decoded(
    records: bytes | memoryview | None,
) -> list[tuple[int, int | None, bytes | None, bytes | None, Headers]]:
    """Every record in a fetched record set, via kafka-python's reader (any magic)."""
    out = []
    memory = MemoryRecords(bytes(records or b""))
    while memory.has_next():
        batch = memory.next_batch()
        if batch is None:
            break
        for r in batch:
            out.append((r.offset, r.timestamp, r.key, r.value, list(r.headers)))
    return out


def magics(records: bytes | memoryview | None) -> set[int]:
    memory = MemoryRecords(bytes(records or b""))
    found = set()
    while memory.has_next():
        batch = memory.next_batch()
        if batch is None:
            break
        found.add(batch.magic)
    return found


# --- stock clients --------------------------------------------------------------------------


def expected(
    rows: list[tuple[int, int, Message, int]], partition: int
) -> list[tuple[int, bytes | None, bytes | None, Headers]]:
    return [(o, m[0], m[1], m[2]) for p, o, m, _ in rows if p == partition]


def test_kafka_python_consumes_exact_records(broker: BrokerThread) -> None:
    from kafka import KafkaConsumer, TopicPartition

    rows = fill(broker)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: dict[int, list[Any]] = {0: [], 1: []}
        deadline = time.monotonic() + 15
        while len(got[0]) + len(got[1]) < len(rows) and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                got[tp.partition] += [(m.offset, m.key, m.value, m.headers) for m in messages]
                assert all(m.timestamp_type == 0 for m in messages)
        assert got[0] == expected(rows, 0)
        assert got[1] == expected(rows, 1)
        assert consumer.position(tps[0]) == 5
        # kafka-python fetches incrementally in a fetch session (KIP-227) ...
        (session,) = broker.running.broker.services.fetch_sessions.sessions.values()
        assert set(session.partitions) == {(TOPIC, 0), (TOPIC, 1)}
        epoch = session.epoch
        # ... in which data appended later arrives, and the session keeps its epochs.
        append_on_loop(broker, TOPIC, 0, build_batch([(b"more", b"data", [])], BASE_TS))
        late: list[Any] = []
        while not late and time.monotonic() < deadline:
            late += [
                (m.offset, m.value) for ms in consumer.poll(timeout_ms=500).values() for m in ms
            ]
        assert late == [(5, b"data")]
        assert session.epoch > epoch and len(broker.running.broker.services.fetch_sessions) == 1
    finally:
        consumer.close()


def test_aiokafka_consumes_exact_records(broker: BrokerThread) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    rows = fill(broker)

    async def consume() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(TOPIC, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            out: list[Any] = []
            async with asyncio.timeout(15):
                while len(out) < 5:
                    batches = await consumer.getmany(timeout_ms=500)
                    for messages in batches.values():
                        out += [
                            (m.offset, m.key, m.value, [(k, v) for k, v in m.headers], m.timestamp)
                            for m in messages
                        ]
            return out
        finally:
            await consumer.stop()

    got = asyncio.run(consume())
    assert got == [(o, m[0], m[1], m[2], ts) for p, o, m, ts in rows if p == 0]


def test_confluent_kafka_consumes_exact_records_and_new_data(
    broker: BrokerThread,
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    rows = fill(broker)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0), TopicPartition(TOPIC, 1, 0)])
        got: dict[int, list[Any]] = {0: [], 1: []}

        def poll_until(count: int) -> None:
            deadline = time.monotonic() + 15
            while sum(map(len, got.values())) < count and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                got[message.partition()].append(
                    (message.offset(), message.key(), message.value(), message.headers() or [])
                )

        poll_until(len(rows))
        assert got[0] == expected(rows, 0)
        assert got[1] == expected(rows, 1)
        # librdkafka (2.x) fetches without a session: session id 0, epoch -1.
        assert len(broker.running.broker.services.fetch_sessions) == 0
        append_on_loop(
            broker, TOPIC, 1, build_batch([(b"late", b"arrival", [("x", b"y")])], BASE_TS)
        )
        poll_until(len(rows) + 1)
        assert got[1][-1] == (1, b"late", b"arrival", [("x", b"y")])
    finally:
        consumer.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_consumes_exact_records(broker: BrokerThread) -> None:
    rows = fill(broker)
    result = subprocess.run(
        ["kcat", "-C", "-b", broker.bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-J"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    got = sorted(
        (m["partition"], m["offset"], m["key"], m["payload"], m.get("headers", []), m["ts"])
        for m in messages
    )

    def text(b: bytes | None) -> str | None:
        return None if b is None else b.decode()

    assert got == sorted(
        (p, o, text(m[0]), text(m[1]), [x for k, v in m[2] for x in (k, v.decode())], ts)
        for p, o, m, ts in rows
    )


# --- long polling ---------------------------------------------------------------------------


def test_a_waiting_fetch_returns_soon_after_an_append(broker: BrokerThread) -> None:
    internals(broker).create_topic("quiet", 1)
    appender = threading.Timer(
        0.3, append_on_loop, (broker, "quiet", 0, build_batch([(b"k", b"woke", [])], BASE_TS))
    )
    with RawClient(broker.port, timeout=20) as client:
        started = time.monotonic()
        appender.start()
        response = fetch(client, 11, [("quiet", 0, 0)], max_wait_ms=10_000)
        elapsed = time.monotonic() - started
    appender.join()
    assert 0.25 <= elapsed < 5
    data = partitions_of(response)[("quiet", 0)]
    assert [(r[0], r[3]) for r in decoded(data.records)] == [(0, b"woke")]
    assert data.high_watermark == 1


def test_a_fetch_with_nothing_to_return_waits_max_wait_ms(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port, timeout=20) as client:
        started = time.monotonic()
        response = fetch(client, 11, [(TOPIC, 0, 5), (TOPIC, 1, 1)], max_wait_ms=400)
        elapsed = time.monotonic() - started
        assert 0.35 <= elapsed < 3
        assert {
            k: (p.error_code, p.high_watermark, bytes(p.records or b""))
            for k, p in partitions_of(response).items()
        } == {
            (TOPIC, 0): (0, 5, b""),
            (TOPIC, 1): (0, 1, b""),
        }
        # Less than min_bytes available: it waits too, then answers what there is.
        started = time.monotonic()
        response = fetch(client, 11, [(TOPIC, 1, 0)], max_wait_ms=300, min_bytes=1 << 20)
        assert time.monotonic() - started >= 0.25
        assert len(decoded(partitions_of(response)[(TOPIC, 1)].records)) == 1
        # Enough data: it answers at once.
        started = time.monotonic()
        fetch(client, 11, [(TOPIC, 1, 0)], max_wait_ms=5_000, min_bytes=1)
        assert time.monotonic() - started < 2


def test_kafka_python_consumer_blocked_on_an_empty_partition_gets_a_later_message(
    broker: BrokerThread,
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    internals(broker).create_topic("quiet", 1)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5_000
    )
    try:
        tp = TopicPartition("quiet", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert consumer.poll(timeout_ms=300) == {}
        appender = threading.Timer(
            0.2, append_on_loop, (broker, "quiet", 0, build_batch([(b"k", b"hello", [])], BASE_TS))
        )
        appender.start()
        started = time.monotonic()
        got: list[Any] = []
        while not got and time.monotonic() - started < 10:
            got += [
                (m.offset, m.value) for ms in consumer.poll(timeout_ms=200).values() for m in ms
            ]
        appender.join()
        assert got == [(0, b"hello")]
        assert time.monotonic() - started < 4
    finally:
        consumer.close()


# --- byte limits ----------------------------------------------------------------------------


def batch_sizes(broker: BrokerThread, partition: int) -> list[int]:
    log = internals(broker).log(TOPIC, partition)
    result = log.read(0, 1 << 30)
    data = result.read_bytes()
    sizes, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
        sizes.append(size)
        pos += size
    return sizes


def test_v4_plus_returns_the_stored_batches_byte_for_byte(broker: BrokerThread) -> None:
    fill(broker)
    stored = internals(broker).log(TOPIC, 0).read(0, 1 << 30).read_bytes()
    with RawClient(broker.port) as client:
        topic_id = internals(broker).find_topic(TOPIC).topic_id
        for version in (4, 11, 12, 13, 16, 17):
            topic: str | uuid.UUID = topic_id if version >= 13 else TOPIC
            response = fetch(client, version, [(topic, 0, 0)])
            assert bytes(partitions_of(response)[(topic, 0)].records or b"") == stored


def test_partition_and_response_limits_with_the_first_batch_always_returned(
    broker: BrokerThread,
) -> None:
    fill(broker)
    sizes = batch_sizes(broker, 0)
    with RawClient(broker.port) as client:
        # A partition limit below the first batch still returns it (KIP-74) ...
        response = fetch(client, 11, [(TOPIC, 0, 0)], partition_max_bytes=10)
        assert [r[0] for r in decoded(partitions_of(response)[(TOPIC, 0)].records)] == [0, 1]
        # ... and a limit covering two batches returns exactly two.
        response = fetch(client, 11, [(TOPIC, 0, 0)], partition_max_bytes=sizes[0] + sizes[1])
        assert [r[0] for r in decoded(partitions_of(response)[(TOPIC, 0)].records)] == [0, 1, 2, 3]
        # The response limit: the first partition's first batch, nothing for the next one.
        response = fetch(client, 11, [(TOPIC, 0, 0), (TOPIC, 1, 0)], max_bytes=10)
        parts = partitions_of(response)
        assert len(parts[(TOPIC, 0)].records or b"") == sizes[0]
        assert (bytes(parts[(TOPIC, 1)].records or b""), parts[(TOPIC, 1)].high_watermark) == (
            b"",
            1,
        )
        # What is left of the response budget goes to the next partition.
        response = fetch(
            client,
            11,
            [(TOPIC, 1, 0), (TOPIC, 0, 0)],
            max_bytes=batch_sizes(broker, 1)[0] + sizes[0],
        )
        parts = partitions_of(response)
        assert len(parts[(TOPIC, 0)].records or b"") == sizes[0]
        # A partition after one with data gets nothing if its first batch does not fit.
        response = fetch(
            client, 11, [(TOPIC, 1, 0), (TOPIC, 0, 0)], max_bytes=batch_sizes(broker, 1)[0] + 5
        )
        assert bytes(partitions_of(response)[(TOPIC, 0)].records or b"") == b""


def test_fetch_v0_to_v2_limits_are_hard(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        for version in (0, 1, 2):
            response = fetch(client, version, [(TOPIC, 0, 0)], partition_max_bytes=25)
            records = bytes(partitions_of(response)[(TOPIC, 0)].records or b"")
            # An oversized first message comes back cut at the limit: too large for the client.
            assert len(records) == 25
            assert decoded(records) == []
            response = fetch(client, version, [(TOPIC, 0, 0)], partition_max_bytes=0)
            assert bytes(partitions_of(response)[(TOPIC, 0)].records or b"") == b""


# --- down-conversion ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_old_versions_get_down_converted_message_sets(broker: BrokerThread, version: int) -> None:
    rows = fill(broker)
    magic = 0 if version <= 1 else 1
    with RawClient(broker.port) as client:
        response = fetch(client, version, [(TOPIC, 0, 0), (TOPIC, 1, 0)])
        parts = partitions_of(response)
        for partition in (0, 1):
            records = parts[(TOPIC, partition)].records
            assert magics(records) == {magic}
            assert decoded(records) == [
                (o, ts if magic == 1 else None, m[0], m[1], [])
                for p, o, m, ts in rows
                if p == partition
            ]
            assert parts[(TOPIC, partition)].high_watermark == (5 if partition == 0 else 1)
        # From the middle of an uncompressed batch: the records before the offset are left out.
        response = fetch(client, version, [(TOPIC, 0, 1)], partition_max_bytes=10_000)
        assert [r[0] for r in decoded(partitions_of(response)[(TOPIC, 0)].records)] == [1, 2, 3, 4]


def test_zstd_topics_are_not_served_to_fetch_before_v10(broker: BrokerThread) -> None:
    replicas = internals(broker)
    replicas.create_topic("z", 1, {"compression.type": "zstd"})
    batch = build_batch([(b"k", b"v", [])], BASE_TS, codec=4)
    broker.call(partial(replicas.append, "z", 0, batch))
    with RawClient(broker.port) as client:
        for version in (3, 9):
            response = fetch(client, version, [("z", 0, 0)])
            assert (
                partitions_of(response)[("z", 0)].error_code
                == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
            )
        response = fetch(client, 10, [("z", 0, 0)])
        assert [r[3] for r in decoded(partitions_of(response)[("z", 0)].records)] == [b"v"]


# --- errors ---------------------------------------------------------------------------------


def test_offset_out_of_range_reports_the_watermarks(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        response = fetch(
            client, 11, [(TOPIC, 0, 6), (TOPIC, 0, -1), (TOPIC, 1, 1)], max_wait_ms=5_000
        )
        parts = partitions_of(response)
        bad = parts[(TOPIC, 0)]
        assert (bad.error_code, bad.high_watermark, bad.log_start_offset) == (
            ErrorCode.OFFSET_OUT_OF_RANGE,
            5,
            0,
        )
        assert bytes(bad.records or b"") == b""
        assert parts[(TOPIC, 1)].error_code == ErrorCode.NONE  # at the end: nothing, no error


def test_clients_reset_an_out_of_range_offset(broker: BrokerThread) -> None:
    from confluent_kafka import Consumer, TopicPartition
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    rows = fill(broker)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tp = KTopicPartition(TOPIC, 1)
        consumer.assign([tp])
        consumer.seek(tp, 50)
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got += [
                (m.offset, m.value) for ms in consumer.poll(timeout_ms=300).values() for m in ms
            ]
        assert got == [(0, b"p1-v0")]
    finally:
        consumer.close()
    confluent = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "unused",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        confluent.assign([TopicPartition(TOPIC, 0, 99)])
        offsets: list[int] = []
        deadline = time.monotonic() + 10
        while len(offsets) < 5 and time.monotonic() < deadline:
            message = confluent.poll(0.2)
            if message is not None:
                assert message.error() is None, message.error()
                offsets.append(message.offset())
        assert offsets == [o for p, o, _, _ in rows if p == 0]
    finally:
        confluent.close()


def test_unknown_topics_partitions_and_topic_ids(broker: BrokerThread) -> None:
    fill(broker)
    topic_id = internals(broker).find_topic(TOPIC).topic_id
    with RawClient(broker.port) as client:
        parts = partitions_of(fetch(client, 12, [("nope", 0, 0), (TOPIC, 7, 0)], max_wait_ms=5_000))
        assert {k: (p.error_code, p.high_watermark) for k, p in parts.items()} == {
            ("nope", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
            (TOPIC, 7): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
        }
        stranger = uuid.uuid4()
        response = fetch(client, 13, [(stranger, 0, 0), (topic_id, 1, 0)])
        parts = partitions_of(response)
        assert parts[(stranger, 0)].error_code == ErrorCode.UNKNOWN_TOPIC_ID
        assert [r[3] for r in decoded(parts[(topic_id, 1)].records)] == [b"p1-v0"]
        assert all(t.topic == "" for t in response.responses)


def test_current_leader_epoch_checks(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        for epoch, code in (
            (-1, ErrorCode.NONE),
            (0, ErrorCode.NONE),
            (1, ErrorCode.UNKNOWN_LEADER_EPOCH),
        ):
            parts = partitions_of(fetch(client, 11, [(TOPIC, 1, 0)], current_leader_epoch=epoch))
            assert parts[(TOPIC, 1)].error_code == code
        topic_id = internals(broker).find_topic(TOPIC).topic_id
        response = fetch(client, 16, [(topic_id, 1, 0)], current_leader_epoch=-5)
        fenced = partitions_of(response)[(topic_id, 1)]
        assert fenced.error_code == ErrorCode.FENCED_LEADER_EPOCH
        assert (fenced.current_leader.leader_id, fenced.current_leader.leader_epoch) == (1, 0)
        assert [(n.node_id, n.port) for n in response.node_endpoints] == [(1, broker.port)]


def test_isolation_levels(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port) as client:
        for version in (4, 11):
            committed = partitions_of(fetch(client, version, [(TOPIC, 0, 0)], isolation_level=1))
            uncommitted = partitions_of(fetch(client, version, [(TOPIC, 0, 0)], isolation_level=0))
            for parts, aborted in ((committed, []), (uncommitted, None)):
                p = parts[(TOPIC, 0)]
                assert (p.high_watermark, p.last_stable_offset, p.aborted_transactions) == (
                    5,
                    5,
                    aborted,
                )
                assert len(decoded(p.records)) == 5
            if version >= 5:
                assert committed[(TOPIC, 0)].log_start_offset == 0


# --- fetch sessions over the wire -----------------------------------------------------------


def test_fetch_session_full_then_incremental(broker: BrokerThread) -> None:
    fill(broker)
    with RawClient(broker.port, timeout=20) as client:
        full = fetch(client, 12, [(TOPIC, 0, 0), (TOPIC, 1, 0)], session_epoch=0)
        assert full.error_code == ErrorCode.NONE and full.session_id > 0
        assert set(partitions_of(full)) == {(TOPIC, 0), (TOPIC, 1)}
        sid = full.session_id
        # Nothing changed: the incremental answer is empty (after max_wait_ms).
        empty = fetch(
            client,
            12,
            [(TOPIC, 0, 5), (TOPIC, 1, 1)],
            session_id=sid,
            session_epoch=1,
            max_wait_ms=50,
        )
        assert (empty.error_code, empty.session_id, empty.responses) == (ErrorCode.NONE, sid, [])
        # New data in partition 1 only: only partition 1 is answered.
        append_on_loop(broker, TOPIC, 1, build_batch([(b"n", b"new", [])], BASE_TS))
        inc = fetch(client, 12, [], session_id=sid, session_epoch=2, max_wait_ms=2_000)
        assert list(partitions_of(inc)) == [(TOPIC, 1)]
        assert [r[3] for r in decoded(partitions_of(inc)[(TOPIC, 1)].records)] == [b"new"]
        # A wrong epoch and an unknown session are session-level errors.
        stale = fetch(client, 12, [], session_id=sid, session_epoch=9)
        assert (stale.error_code, stale.session_id, stale.responses) == (
            ErrorCode.INVALID_FETCH_SESSION_EPOCH,
            0,
            [],
        )
        lost = fetch(client, 12, [], session_id=sid + 1, session_epoch=1)
        assert lost.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        # Forgetting partition 0 and closing the session.
        fetch(
            client, 12, [], session_id=sid, session_epoch=3, forgotten=[(TOPIC, 0)], max_wait_ms=10
        )
        session = broker.running.broker.services.fetch_sessions.get(sid)
        assert session is not None and list(session.partitions) == [(TOPIC, 1)]
        closed = fetch(client, 12, [(TOPIC, 0, 0)], session_id=sid, session_epoch=-1)
        assert closed.session_id == 0
        assert broker.running.broker.services.fetch_sessions.get(sid) is None
