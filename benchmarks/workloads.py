"""Load-generator workloads for `run.py`, each run in its own process (pickled by name).

Every function takes plain arguments and returns plain data, so a spawn-context process pool
can run it. The clients are confluent-kafka (librdkafka), the fastest stock client in Python.
"""

from __future__ import annotations

import os
import resource
import statistics
import struct
import time
import uuid
from pathlib import Path
from typing import Any

#: Producer settings for throughput runs: linger 5 ms, 64 KiB batches, a bounded local queue so
#: the run measures what the broker acknowledges, not what the client buffers.
THROUGHPUT_PRODUCER = {
    "linger.ms": 5,
    "batch.size": 65536,
    "enable.idempotence": False,
    "queue.buffering.max.kbytes": 32768,
    "message.timeout.ms": 60000,
}
STAMP = struct.Struct(">q")


def _producer(bootstrap: str, **conf: Any) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, **conf})


def delete_topic(bootstrap: str, topic: str) -> None:
    """Delete a topic a workload is done with, so that what earlier workloads wrote (a peer's
    memory, our page cache and disk writeback) weighs on later ones as little as possible."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic]).values():
        future.result(30)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create a topic and wait until the broker reports all its partitions."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = admin.list_topics(topic, timeout=10).topics.get(topic)
        if (
            described is not None
            and not described.error
            and len(described.partitions) == partitions
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topic {topic} did not appear")


def produce_for(
    bootstrap: str,
    topic: str,
    size: int,
    partitions: int,
    acks: int,
    seconds: float,
    settings: dict[str, Any] | None = None,
    max_messages: int | None = None,
) -> dict[str, float]:
    """Produce as fast as the broker acknowledges for `seconds` (or `max_messages`), then flush.

    Delivery reports come only for failures (`delivery.report.only.error`): a Python callback
    per message would make the client, not the broker, the bottleneck at small sizes. Once the
    flush leaves nothing outstanding, every message sent and not reported failed was acked.
    """
    failed: list[object] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    conf = dict(THROUGHPUT_PRODUCER, **{"delivery.report.only.error": True})
    conf.update(settings or {})
    conf["on_delivery"] = delivered
    producer = _producer(bootstrap, acks=acks, **conf)
    payload = os.urandom(size)
    produce = producer.produce
    limit = max_messages if max_messages is not None else 2**62
    sent = 0
    cpu_start = _process_cpu_seconds()
    start = time.perf_counter()
    stop_at = start + seconds
    while sent < limit:
        try:
            produce(topic, payload, partition=sent % partitions)
        except BufferError:
            producer.poll(0.001)
            continue
        sent += 1
        if sent % 512 == 0:
            producer.poll(0)
            if max_messages is None and time.perf_counter() >= stop_at:
                break
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    client_cpu = _process_cpu_seconds() - cpu_start
    if failed or remaining:
        raise RuntimeError(f"{len(failed)} failed, {remaining} unflushed: {failed[:1]}")
    return {"messages": sent, "bytes": sent * size, "seconds": elapsed, "client_cpu": client_cpu}


def _process_cpu_seconds() -> float:
    """CPU time of this client process, librdkafka's threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[str, float]:
    """Read `expected` messages from the earliest offset of every partition (assigned, no group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
            # librdkafka pauses fetching for this long once its local queue is full, which a
            # broker faster than the Python loop draining the queue causes: keep pauses short.
            "fetch.queue.backoff.ms": 10,
        }
    )
    received = 0
    size = 0
    start = time.perf_counter()
    first: float | None = None
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = start + 180
    while received < expected and time.perf_counter() < deadline:
        batch = consumer.consume(10000, 0.5)
        if batch and first is None:
            first = time.perf_counter()
        for message in batch:
            if message.error() is None:
                received += 1
                size += len(message.value())
    end = time.perf_counter()
    consumer.close()
    if received < expected or first is None:
        raise RuntimeError(f"consumed {received} of {expected}")
    # The rate counts from the first batch received: client start-up (connections, coordinator
    # look-up) is reported apart, as the time to the first message.
    return {
        "messages": received,
        "bytes": size,
        "seconds": end - first,
        "first_message_s": first - start,
    }


def _wait_for_file(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def e2e_producer(
    bootstrap: str,
    topic: str,
    rate: int,
    seconds: float,
    ready: str,
    acks: int = 1,
    linger_ms: int = 0,
) -> int:
    """Send `rate` msg/s stamped with CLOCK_MONOTONIC (shared by processes) once `ready` exists."""
    producer = _producer(bootstrap, acks=acks, **{"linger.ms": linger_ms})
    producer.produce(topic, STAMP.pack(0) + bytes(92), partition=0)
    producer.flush(30)
    _wait_for_file(ready, 60)
    count = int(rate * seconds)
    interval = 1 / rate
    start = time.monotonic()
    for i in range(count):
        due = start + i * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        producer.produce(topic, STAMP.pack(time.monotonic_ns()) + bytes(92), partition=0)
        producer.poll(0)
    producer.flush(30)
    return count


def e2e_consumer(bootstrap: str, topic: str, count: int, ready: str) -> dict[str, float]:
    """Receive `count` stamped messages with the client's default fetch settings."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"e2e-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    latencies: list[float] = []
    warmed = False
    deadline = time.monotonic() + count / 100 + 60
    while len(latencies) < count and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is None or message.error() is not None:
            continue
        now = time.monotonic_ns()
        (sent,) = STAMP.unpack_from(message.value(), 0)
        if sent == 0:
            if not warmed:
                warmed = True
                Path(ready).touch()
            continue
        latencies.append((now - sent) / 1e6)
    consumer.close()
    if len(latencies) < count:
        raise RuntimeError(f"received {len(latencies)} of {count}")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "p50": pct(0.50),
        "p99": pct(0.99),
        "p999": pct(0.999),
        "mean": statistics.fmean(latencies),
        "samples": len(latencies),
    }


def group_join_first_message(bootstrap: str, topic: str) -> float:
    """Seconds from constructing a consumer in a new group to its first message."""
    from confluent_kafka import Consumer

    start = time.perf_counter()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"join-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = start + 60
        while time.perf_counter() < deadline:
            message = consumer.poll(0.01)
            if message is not None and message.error() is None:
                return time.perf_counter() - start
        raise TimeoutError("no message within 60 s")
    finally:
        consumer.close()


def first_ack(bootstrap: str, topic: str, timeout: float = 30) -> None:
    """Produce one message (auto-creating the topic) and wait for its acknowledgement."""
    producer = _producer(
        bootstrap,
        acks=-1,
        **{
            "linger.ms": 0,
            "reconnect.backoff.ms": 1,
            "reconnect.backoff.max.ms": 10,
            "retry.backoff.ms": 5,
            "topic.metadata.refresh.fast.interval.ms": 10,
        },
    )
    failed: list[object] = []
    producer.produce(topic, b"hello", on_delivery=lambda err, _m: err and failed.append(err))
    if producer.flush(timeout) or failed:
        raise RuntimeError(f"first message not acknowledged: {failed[:1]}")


def inprocess_start_to_ack(runs: int) -> list[float]:
    """Seconds from `BrokerThread.start()` to the first acknowledged message, per fresh broker."""
    import tempfile

    from kafkacompat.testing import BrokerThread, local_config

    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            broker = BrokerThread(local_config(Path(tmp))).start()
            try:
                first_ack(broker.bootstrap, "start")
                samples.append(time.perf_counter() - start)
            finally:
                broker.stop()
    return samples


def topic_name(prefix: str) -> str:
    """A fresh topic name, so one row's data never meets another's."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
