"""Drivers for the stock clients: produce and consume with kafka-python, aiokafka,
confluent-kafka and kcat, as their users do."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import pytest

Headers = list[tuple[str, bytes]]
Message = tuple[bytes | None, bytes | None, Headers]
#: (offset, key, value, headers) as a consumer sees it.
Consumed = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]

MAX_REQUEST = 2 * 1024 * 1024
CONSUME_TIMEOUT = 20.0


def produce_kafka_python(
    bootstrap: str, topic: str, messages: list[Message], codec: str
) -> list[tuple[int, int]]:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        max_request_size=MAX_REQUEST,
        acks="all",
    )
    try:
        futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
        producer.flush(timeout=20)
        return [(m.partition, m.offset) for m in (f.get(timeout=20) for f in futures)]
    finally:
        producer.close(timeout=5)


def produce_aiokafka(
    bootstrap: str, topic: str, messages: list[Message], codec: str
) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            max_request_size=MAX_REQUEST,
            enable_idempotence=True,
            request_timeout_ms=10000,
        )
        await producer.start()
        try:
            waits = [
                await producer.send(topic, key=k, value=v, headers=h or None)
                for k, v, h in messages
            ]
            return [(m.partition, m.offset) for m in [await w for w in waits]]
        finally:
            await producer.stop()

    return asyncio.run(asyncio.wait_for(run(), 30))


def produce_confluent(
    bootstrap: str, topic: str, messages: list[Message], codec: str
) -> list[tuple[int, int]]:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": MAX_REQUEST,
        }
    )
    reports: list[Any] = [None] * len(messages)

    def delivered(index: int) -> Any:
        def callback(err: Any, msg: Any) -> None:
            reports[index] = err or (msg.partition(), msg.offset())

        return callback

    for i, (k, v, h) in enumerate(messages):
        headers: list[tuple[str, str | bytes | None]] = [(name, value) for name, value in h]
        producer.produce(topic, key=k, value=v, headers=headers or None, on_delivery=delivered(i))
    assert producer.flush(20) == 0
    return reports


def kcat_path() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.skip("kcat is not installed")
    return path


def produce_kcat(
    bootstrap: str,
    topic: str,
    messages: list[Message],
    codec: str,
    *,
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    """kcat reads ``key<TAB>value`` lines; -Z sends empty keys and values as null."""
    lines = b"".join((k or b"") + b"\t" + (v or b"") + b"\n" for k, v, _ in messages)
    command = [kcat_path(), "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-Z", "-z", codec]
    for name, value in headers:
        command += ["-H", f"{name}={value.decode()}"]
    command += ["-X", f"message.max.bytes={MAX_REQUEST}", "-X", "acks=all"]
    subprocess.run(command, input=lines, check=True, timeout=30, capture_output=True)


def consume_kafka_python(
    bootstrap: str, topic: str, count: int, partition: int = 0
) -> list[Consumed]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_REQUEST,
        fetch_max_bytes=4 * MAX_REQUEST,
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[Consumed] = []
        deadline = time.monotonic() + CONSUME_TIMEOUT
        while len(out) < count and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                out += [(m.offset, m.key, m.value, list(m.headers)) for m in messages]
        return out
    finally:
        consumer.close()


def consume_aiokafka(bootstrap: str, topic: str, count: int, partition: int = 0) -> list[Consumed]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[Consumed]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=MAX_REQUEST,
            fetch_max_bytes=4 * MAX_REQUEST,
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            out: list[Consumed] = []
            async with asyncio.timeout(CONSUME_TIMEOUT):
                while len(out) < count:
                    for messages in (await consumer.getmany(timeout_ms=500)).values():
                        out += [(m.offset, m.key, m.value, list(m.headers)) for m in messages]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def consume_confluent(bootstrap: str, topic: str, count: int, partition: int = 0) -> list[Consumed]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-with-assign",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": MAX_REQUEST,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        out: list[Consumed] = []
        deadline = time.monotonic() + CONSUME_TIMEOUT
        while len(out) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            out.append((message.offset(), message.key(), message.value(), message.headers() or []))
        return out
    finally:
        consumer.close()


def consume_kcat(bootstrap: str, topic: str, count: int, partition: int = 0) -> list[Consumed]:
    """kcat's JSON output carries text: for messages whose keys, values and headers are UTF-8."""
    command = [kcat_path(), "-C", "-b", bootstrap, "-t", topic, "-p", str(partition)]
    command += ["-o", "beginning", "-c", str(count), "-e", "-J"]
    command += ["-X", f"fetch.message.max.bytes={MAX_REQUEST}"]
    result = subprocess.run(command, capture_output=True, check=True, timeout=30)
    out: list[Consumed] = []
    for line in result.stdout.splitlines():
        m = json.loads(line)
        raw = m.get("headers") or []
        headers = [(raw[i], raw[i + 1].encode()) for i in range(0, len(raw), 2)]
        key = None if m["key"] is None else m["key"].encode()
        value = None if m["payload"] is None else m["payload"].encode()
        out.append((m["offset"], key, value, headers))
    return out


def read_to_end(
    bootstrap: str, topic: str, partition: int = 0, **config: Any
) -> list[tuple[int, bytes | None, bytes | None]]:
    """``(offset, key, value)`` of a partition from its start to its end, read by librdkafka
    checking every CRC (``config`` adds consumer settings, e.g. the isolation level)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{topic}-{time.monotonic_ns()}",
            "check.crcs": True,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            **config,
        }
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    out: list[tuple[int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                return out
            out.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of {topic}-{partition} seen after {len(out)} records")
