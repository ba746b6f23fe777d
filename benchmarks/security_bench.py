"""Produce and consume 1 KiB messages over SASL_SSL beside PLAINTEXT, on one broker.

    python benchmarks/security_bench.py [--messages 100000] [--size 1024] [--repeat 3]
                                        [--mechanism SCRAM-SHA-512]

The broker runs as a subprocess with two listeners (PLAINTEXT and SASL_SSL with a test CA made by
trustme); confluent-kafka (librdkafka) produces with acks=1 and linger 5 ms and then consumes
everything from the earliest offset, on each listener in turn. Reported: the median msgs/s and
MB/s of ``--repeat`` runs and the broker's CPU time per message (from /proc).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_process import BrokerProcess, compile_package
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkacompat.testing_security import BrokerSecurity

_PORTS = re.compile(r"127\.0\.0\.1:(\d+) \((PLAINTEXT|SASL_SSL),")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def produce(options: dict[str, str], topic: str, count: int, payload: bytes) -> float:
    producer = Producer(
        {**options, "acks": 1, "linger.ms": 5, "batch.size": 65536, "enable.idempotence": False}
    )
    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, payload, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("messages left undelivered")
    return time.perf_counter() - start


def consume(options: dict[str, str], topic: str, count: int) -> float:
    consumer = Consumer(
        {**options, "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    received = 0
    start = time.perf_counter()
    while received < count and time.perf_counter() - start < 120:
        received += sum(1 for m in consumer.consume(10000, 1.0) if m.error() is None)
    elapsed = time.perf_counter() - start
    consumer.close()
    if received < count:
        raise RuntimeError(f"consumed {received} of {count}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mechanism", default="SCRAM-SHA-512")
    args = parser.parse_args()
    payload = b"x" * args.size
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        security = BrokerSecurity(Path(tmp) / "tls", acls=False).prepare()
        settings = security.broker_settings()
        settings["listeners"] = "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0"
        extra = [a for k, v in settings.items() for a in ("-o", f"{k}={v}")]
        user, password = security.admin
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            extra += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        broker = BrokerProcess(Path(tmp) / "data", *extra).start()
        try:
            time.sleep(0.2)
            ports = dict((name, port) for port, name in _PORTS.findall(broker.log_path.read_text()))
            listeners = {
                "PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"},
                "SASL_SSL": {
                    "bootstrap.servers": f"127.0.0.1:{ports['SASL_SSL']}",
                    **security.librdkafka(user, args.mechanism),
                },
            }
            rows = []
            for name, options in listeners.items():
                produced, consumed = [], []
                for run in range(args.repeat):
                    topic = f"bench-{name.lower()}-{run}"
                    produce(options, topic, 1000, payload)  # creates the topic, warms up
                    before = cpu_seconds(broker.pid)
                    produce_s = produce(options, topic, args.messages, payload)
                    middle = cpu_seconds(broker.pid)
                    consume_s = consume(options, topic, args.messages + 1000)
                    after = cpu_seconds(broker.pid)
                    produced.append((args.messages / produce_s, (middle - before) / args.messages))
                    total = args.messages + 1000
                    consumed.append((total / consume_s, (after - middle) / total))
                rows.append((f"produce 1 KiB, {name}", produced))
                rows.append((f"consume 1 KiB, {name}", consumed))
        finally:
            broker.stop()
    label = f"{args.mechanism}" if args.mechanism else ""
    print(f"{'workload':<30}{'msgs/s':>12}{'MB/s':>9}{'broker µs CPU/msg':>20}   ({label})")
    for name, runs in rows:
        rate = statistics.median(r for r, _c in runs)
        cpu = statistics.median(c for _r, c in runs) * 1e6
        print(f"{name:<30}{rate:>12,.0f}{rate * args.size / 1e6:>9.1f}{cpu:>20.2f}")


if __name__ == "__main__":
    main()
