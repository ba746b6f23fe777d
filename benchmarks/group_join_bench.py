"""How long a fresh consumer takes to join an empty group and receive its first message.

    python benchmarks/group_join_bench.py [--runs 5] [--delay-ms 0]

Starts an in-process broker (``group.initial.rebalance.delay.ms`` as given: 0 is the ``--dev``
setting), writes one message, then for each run creates a new consumer in a new group and times
construction → first message, for confluent-kafka and kafka-python.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kafkacompat.testing import local_config, running_broker

TOPIC = "bench"


def confluent_first_message(bootstrap: str, group: str) -> float:
    from confluent_kafka import Consumer

    start = time.perf_counter()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([TOPIC])
    try:
        while True:
            message = consumer.poll(0.01)
            if message is not None and not message.error():
                return time.perf_counter() - start
    finally:
        consumer.close()


def kafka_python_first_message(bootstrap: str, group: str) -> float:
    from kafka import KafkaConsumer

    start = time.perf_counter()
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    try:
        while True:
            if any(consumer.poll(timeout_ms=10).values()):
                return time.perf_counter() - start
    finally:
        consumer.close()


CLIENTS: dict[str, Callable[[str, str], float]] = {
    "confluent-kafka": confluent_first_message,
    "kafka-python": kafka_python_first_message,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()
    settings = {"group.initial.rebalance.delay.ms": args.delay_ms}
    with (
        tempfile.TemporaryDirectory() as data,
        running_broker(local_config(Path(data)).with_settings(settings=settings)) as broker,
    ):
        from confluent_kafka import Producer

        broker.running.broker.replicas.create_topic(TOPIC, 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce(TOPIC, b"hello")
        producer.flush(10)
        print(f"group.initial.rebalance.delay.ms={args.delay_ms}, {args.runs} runs each")
        for name, run in CLIENTS.items():
            samples = [run(broker.bootstrap, f"{name}-{i}") * 1000 for i in range(args.runs)]
            print(
                f"{name:16} join empty group -> first message: median {statistics.median(samples):7.1f} ms"
                f"  (min {min(samples):.1f}, max {max(samples):.1f})"
            )


if __name__ == "__main__":
    main()
