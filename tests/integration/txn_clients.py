"""Transactional producers and isolation-aware consumers of the stock clients, for the
transaction tests. Each driver runs the same script: commit a1 a2, abort b1, commit c1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: (offset, value) as a consumer sees it.
Seen = list[tuple[int, bytes | None]]

TIMEOUT = 20.0
#: Offsets of the script's records: markers take offsets 2 (commit), 4 (abort), 6 (commit).
COMMITTED: Seen = [(0, b"a1"), (1, b"a2"), (5, b"c1")]
EVERYTHING: Seen = [(0, b"a1"), (1, b"a2"), (3, b"b1"), (5, b"c1")]
END_OFFSET = 7


def script_confluent(bootstrap: str, topic: str, txn_id: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, b"a1", partition=0)
    producer.produce(topic, b"a2", partition=0)
    producer.commit_transaction(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, b"b1", partition=0)
    producer.flush(TIMEOUT)  # the aborted record reaches the log before the abort
    producer.abort_transaction(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, b"c1", partition=0)
    producer.commit_transaction(TIMEOUT)


def script_kafka_python(bootstrap: str, topic: str, txn_id: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"a1", partition=0)
        producer.send(topic, b"a2", partition=0)
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send(topic, b"b1", partition=0).get(timeout=TIMEOUT)
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send(topic, b"c1", partition=0)
        producer.commit_transaction()
    finally:
        producer.close(timeout=5)


def script_aiokafka(bootstrap: str, topic: str, txn_id: str) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"a1", partition=0)
                await producer.send_and_wait(topic, b"a2", partition=0)
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"b1", partition=0)
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"c1", partition=0)
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def consume_confluent(bootstrap: str, topic: str, isolation: str, partition: int = 0) -> Seen:
    """Everything up to the end of the partition (the LSO for read_committed)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{isolation}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    seen: Seen = []
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message: Any = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return seen
                raise AssertionError(str(message.error()))
            seen.append((message.offset(), message.value()))
        raise AssertionError(f"no end of partition within {TIMEOUT}s; got {seen}")
    finally:
        consumer.close()


def consume_kafka_python(bootstrap: str, topic: str, isolation: str, count: int) -> Seen:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
    seen: Seen = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend((r.offset, r.value) for r in records)
        # Nothing more arrives: the next position is the end (LSO or HW).
        for records in consumer.poll(timeout_ms=300).values():
            seen.extend((r.offset, r.value) for r in records)
        return seen
    finally:
        consumer.close()


def consume_aiokafka(bootstrap: str, topic: str, isolation: str, count: int) -> Seen:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> Seen:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
        await consumer.start()
        seen: Seen = []
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while len(seen) < count:
                batch = await consumer.getmany(tp, timeout_ms=500)
                seen.extend((r.offset, r.value) for r in batch.get(tp, []))
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.extend((r.offset, r.value) for r in records)
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), TIMEOUT))
