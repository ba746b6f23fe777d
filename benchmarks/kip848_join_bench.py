"""Join-to-first-message with confluent-kafka: group.protocol=consumer (KIP-848) next to classic.

    python benchmarks/kip848_join_bench.py [--runs 5]

Starts an in-process broker with the ``--dev`` group settings (no initial rebalance delay;
KIP-848's heartbeat interval and session timeout at Kafka's defaults), writes one message to each
of 4 partitions, then for each run creates a new consumer in a new group and times construction
→ first message; then, for a second member joining a group whose first member already reads,
the time until the newcomer's first message (a classic rebalance against KIP-848's incremental
hand-over).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from kafkacompat.testing import local_config, running_broker

TOPIC = "bench"
PARTITIONS = 4


def consumer(bootstrap: str, group: str, protocol: str) -> Any:
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": protocol,
            "auto.offset.reset": "earliest",
            # Nothing committed: a newcomer reads its partitions from the start.
            "enable.auto.commit": False,
        }
    )
    c.subscribe([TOPIC])
    return c


def first_message(c: Any, start: float, others: tuple[Any, ...] = (), limit: float = 60.0) -> float:
    while time.perf_counter() - start < limit:
        message = c.poll(0.01)
        for other in others:
            other.poll(0)
        if message is not None and not message.error():
            return time.perf_counter() - start
    raise TimeoutError("no message")


def join_empty(bootstrap: str, group: str, protocol: str) -> float:
    start = time.perf_counter()
    c = consumer(bootstrap, group, protocol)
    try:
        return first_message(c, start)
    finally:
        c.close()


def join_second(bootstrap: str, group: str, protocol: str) -> float:
    """A second member joins a group whose first member reads: until the newcomer's first
    message (it gets partitions the first member must give up)."""
    first = consumer(bootstrap, group, protocol)
    try:
        first_message(first, time.perf_counter())
        for _ in range(50):  # let the first member settle on all partitions
            first.poll(0.01)
        start = time.perf_counter()
        second = consumer(bootstrap, group, protocol)
        try:
            return first_message(second, start, (first,))
        finally:
            second.close()
    finally:
        first.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = {"group.initial.rebalance.delay.ms": 0}
    with (
        tempfile.TemporaryDirectory() as data,
        running_broker(local_config(Path(data)).with_settings(settings=settings)) as broker,
    ):
        from confluent_kafka import Producer

        controller = broker.running.broker.controller
        broker.call(partial(controller.create_topic, TOPIC, PARTITIONS, None))
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for p in range(PARTITIONS):
            producer.produce(TOPIC, b"hello", partition=p)
        producer.flush(10)
        print(f"confluent-kafka, {args.runs} runs each, median (min-max) ms")
        for what, run in (("join empty group", join_empty), ("second member joins", join_second)):
            for protocol in ("classic", "consumer"):
                samples = [
                    run(broker.bootstrap, f"{what}-{protocol}-{i}", protocol) * 1000
                    for i in range(args.runs)
                ]
                print(
                    f"{what:20} group.protocol={protocol:8}: {statistics.median(samples):7.1f}"
                    f"  ({min(samples):.1f}-{max(samples):.1f})"
                )


if __name__ == "__main__":
    main()
