"""Replication on three brokers and etcd: acks=all throughput, end-to-end latency, failover.

    python benchmarks/replication_bench.py [--seconds 6] [--failovers 5]

Reported (brokers as `kafkacompat serve` subprocesses on loopback, confluent-kafka clients in
worker processes; clients and brokers share the machine's cores):
- produce 1 KiB to 6 partitions, RF=3 with acks=all (min.insync.replicas=2) beside RF=1 with
  acks=1 on the same cluster;
- end-to-end latency (producer send to consumer receipt) at 1,000 msg/s, RF=3, acks=all, with
  linger.ms 0 (a request per record: one connection's requests are handled in order, as in
  Kafka, so each waits for the previous one's replication) and 5;
- failover: kill -9 of a partition's leader under a steady acks=all producer until the first
  record sent after the kill is acknowledged (broker.session.timeout.ms 2000).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workloads

from kafkacompat.testing_cluster import LocalCluster

SESSION_MS = 2000
SETTINGS = {
    "broker.session.timeout.ms": SESSION_MS,
    "broker.heartbeat.interval.ms": 500,
    "replica.lag.time.max.ms": 5000,
    "log.flush.interval.messages": 9223372036854775807,
}


def create(bootstrap: str, topic: str, partitions: int, replicas: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"min.insync.replicas": "2"} if replicas > 1 else {}
    new = NewTopic(topic, partitions, replicas, config=configs)
    admin.create_topics([new])[topic].result(30)
    time.sleep(1)  # followers start fetching


def throughput(
    bootstrap: str, partitions: int, replicas: int, acks: int, seconds: float, pool: Any
) -> float:
    topic = workloads.topic_name(f"rf{replicas}")
    create(bootstrap, topic, partitions, replicas)
    calls = [
        pool.submit(workloads.produce_for, bootstrap, topic, 1024, partitions, acks, seconds)
        for _ in range(2)
    ]
    results = [c.result() for c in calls]
    return sum(r["messages"] for r in results) / max(r["seconds"] for r in results)


def end_to_end(bootstrap: str, seconds: float, pool: Any, linger_ms: int) -> dict[str, float]:
    topic = workloads.topic_name("e2e")
    create(bootstrap, topic, 1, 3)
    with tempfile.TemporaryDirectory() as tmp:
        ready = str(Path(tmp) / "ready")
        count = int(1000 * seconds)
        consumer = pool.submit(workloads.e2e_consumer, bootstrap, topic, count, ready)
        producer = pool.submit(
            workloads.e2e_producer, bootstrap, topic, 1000, seconds, ready, -1, linger_ms
        )
        producer.result()
        return dict(consumer.result())


def failover(cluster: LocalCluster, topic: str) -> float:
    """Seconds from kill -9 of the leader of partition 0 to the first acknowledged record sent
    after it."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "socket.timeout.ms": 5000,
        }
    )
    acked_after: list[float] = []
    killed_at = 0.0
    stop = threading.Event()

    def delivered(err: Any, msg: Any) -> None:
        sent = float(msg.value().decode())
        if err is None and killed_at and sent >= killed_at:
            acked_after.append(time.monotonic())

    def run() -> None:
        while not stop.is_set():
            producer.produce(
                topic, str(time.monotonic()).encode(), partition=0, on_delivery=delivered
            )
            producer.poll(0.002)
        producer.flush(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(1)
    victim = cluster.leader(topic, 0)
    killed_at = time.monotonic()
    cluster.kill(victim)
    deadline = killed_at + 30
    while not acked_after and time.monotonic() < deadline:
        time.sleep(0.01)
    took = acked_after[0] - killed_at if acked_after else float("nan")
    stop.set()
    thread.join(60)
    cluster.restart(victim)
    deadline = time.monotonic() + 30
    while cluster.isr(topic, 0) != [1, 2, 3] and time.monotonic() < deadline:
        time.sleep(0.1)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(4) as pool,
        LocalCluster(Path(tmp) / "cluster", 3, SETTINGS) as cluster,
    ):
        bootstrap = cluster.bootstrap
        rf3 = throughput(bootstrap, 6, 3, -1, args.seconds, pool)
        rf1 = throughput(bootstrap, 6, 1, 1, args.seconds, pool)
        latency = {ms: end_to_end(bootstrap, args.seconds, pool, ms) for ms in (0, 5)}
        create(bootstrap, "failover", 1, 3)
        took = [failover(cluster, "failover") for _ in range(args.failovers)]
    print(f"produce 1 KiB, 6 partitions, RF=3 acks=all: {rf3:,.0f} msgs/s")
    print(f"produce 1 KiB, 6 partitions, RF=1 acks=1:   {rf1:,.0f} msgs/s")
    for linger, stats in latency.items():
        print(
            f"end-to-end at 1,000 msg/s, RF=3 acks=all, linger.ms={linger}: "
            f"p50 {stats['p50']:.2f} ms, p99 {stats['p99']:.2f} ms, p99.9 {stats['p999']:.2f} ms"
        )
    print(
        f"failover (leader killed -> first ack of a record sent after): median "
        f"{statistics.median(took):.2f} s, max {max(took):.2f} s over {len(took)} "
        f"(session {SESSION_MS} ms)"
    )


if __name__ == "__main__":
    main()
