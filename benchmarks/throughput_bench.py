"""Produce and consume throughput with confluent-kafka (librdkafka) against a kafkacompat broker.

    python benchmarks/throughput_bench.py [--messages 200000] [--size 1024]

One partition, acks=1, linger 5 ms; the consumer reads everything back from the earliest offset.
The broker runs as a subprocess, so its CPU is separate from the load generator's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_process import BrokerProcess
from confluent_kafka import Consumer, Producer


def produce(bootstrap: str, topic: str, count: int, payload: bytes) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": 5,
            "batch.size": 65536,
            "enable.idempotence": False,
        }
    )
    failures = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, payload, partition=0, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} deliveries failed: {failures[0]}")
    return elapsed


def consume(bootstrap: str, topic: str, count: int) -> float:
    from confluent_kafka import TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    received = 0
    start = time.perf_counter()
    deadline = start + 120
    while received < count and time.perf_counter() < deadline:
        for message in consumer.consume(10000, 1.0):
            if message.error() is None:
                received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    if received != count:
        raise RuntimeError(f"consumed {received} of {count}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    payload = b"x" * args.size
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "data").start()
        try:
            topic = "bench"
            produce(broker.bootstrap, topic, 1000, payload)  # creates the topic, warms up
            produce_s = produce(broker.bootstrap, topic, args.messages, payload)
            consume_s = consume(broker.bootstrap, topic, args.messages + 1000)
        finally:
            broker.stop()
    mb = args.messages * args.size / 1e6
    total = args.messages + 1000
    print(f"{'workload':<28}{'msgs/s':>12}{'MB/s':>10}")
    print(f"{'produce acks=1':<28}{args.messages / produce_s:>12,.0f}{mb / produce_s:>10.1f}")
    print(
        f"{'consume from earliest':<28}{total / consume_s:>12,.0f}"
        f"{total * args.size / 1e6 / consume_s:>10.1f}"
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"broker CPU: {children.ru_utime + children.ru_stime:.1f} s")


if __name__ == "__main__":
    main()
