"""A cluster on etcd beside one broker: failover, Metadata latency and throughput.

    python benchmarks/cluster_bench.py [--seconds 8] [--failovers 5]

Reported (brokers as `kafkacompat serve` subprocesses on loopback, confluent-kafka clients in
worker processes so the client side is not one Python thread):
- controller failover: kill -9 of the controller until another broker reports itself the
  controller (broker.session.timeout.ms 2000, median and max of ``--failovers``);
- Metadata latency: median and p99 of 2000 Metadata v9 requests (all topics) on one connection;
- produce 1 KiB (acks=1, 6 partitions) and consume it back, 3 brokers beside 1;
- one message per request (linger.ms 0, one in flight), 8 producers over 8 partitions, 2 and 3
  brokers beside 1, with the CPU per message of the brokers (/proc) and of the clients, which
  share the machine's cores: when the machine is busy, brokers and clients split its cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workloads

from kafkacompat.client import AdminClient
from kafkacompat.testing import BrokerProcess
from kafkacompat.testing_cluster import LocalCluster
from tests.integration.raw import RawClient

TICKS = os.sysconf("SC_CLK_TCK")
SESSION_MS = 2000
SETTINGS = {
    "broker.session.timeout.ms": SESSION_MS,
    "broker.heartbeat.interval.ms": 500,
    "log.flush.interval.messages": 9223372036854775807,
}
ONE_PER_REQUEST = {
    "linger.ms": 0,
    "batch.num.messages": 1,
    "max.in.flight.requests.per.connection": 1,
    "queue.buffering.max.messages": 1000,
}


def controller_of(port: int) -> int:
    with AdminClient(f"127.0.0.1:{port}", timeout=2) as admin:
        return int(admin.metadata([]).controller_id)


def failovers(directory: Path, count: int) -> list[float]:
    took = []
    with LocalCluster(directory, 3, SETTINGS) as cluster:
        for _ in range(count):
            old = cluster.controller()
            survivor = next(b for n, b in cluster.brokers.items() if n != old)
            killed = time.monotonic()
            cluster.kill(old)
            while controller_of(survivor.port) in (-1, old):
                time.sleep(0.01)
            took.append(time.monotonic() - killed)
            cluster.start_broker(old)
            while len(AdminClient(cluster.bootstrap).metadata([]).brokers) < 3:
                time.sleep(0.05)
    return took


def metadata_latency(port: int, requests: int = 2000) -> list[float]:
    from kafkacompat.protocol.messages.metadata_request import MetadataRequest

    times = []
    with RawClient(port) as client:
        for _ in range(requests):
            started = time.perf_counter()
            client.call(3, 9, MetadataRequest(topics=None))
            times.append(time.perf_counter() - started)
    return times


def throughput(bootstrap: str, seconds: float, pool: ProcessPoolExecutor) -> dict[str, float]:
    topic = workloads.topic_name("cluster")
    workloads.create_topic(bootstrap, topic, 6)
    producers = [
        pool.submit(workloads.produce_for, bootstrap, topic, 1024, 6, 1, seconds) for _ in range(2)
    ]
    produced = [p.result() for p in producers]
    messages = sum(p["messages"] for p in produced)
    produce_rate = messages / max(p["seconds"] for p in produced)
    consumed = pool.submit(workloads.consume_all, bootstrap, topic, 6, messages).result()
    return {
        "produce": produce_rate,
        "consume": consumed["messages"] / consumed["seconds"],
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_per_request(
    bootstrap: str, pids: list[int], seconds: float, pool: ProcessPoolExecutor
) -> dict[str, float]:
    """msgs/s, and the CPU per message of the brokers and of the clients (which share the
    machine's cores with the brokers)."""
    topic = workloads.topic_name("single")
    workloads.create_topic(bootstrap, topic, 8)
    before = sum(cpu_seconds(pid) for pid in pids)
    calls = [
        pool.submit(workloads.produce_for, bootstrap, topic, 100, 8, 1, seconds, ONE_PER_REQUEST)
        for _ in range(8)
    ]
    results = [c.result() for c in calls]
    broker_cpu = sum(cpu_seconds(pid) for pid in pids) - before
    messages = sum(r["messages"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    client_cpu = sum(r["client_cpu"] for r in results)
    return {
        "single": messages / elapsed,
        "single_broker_us": broker_cpu / messages * 1e6,
        "single_client_us": client_cpu / messages * 1e6,
        "single_busy": (broker_cpu + client_cpu) / elapsed / (os.cpu_count() or 1) * 100,
    }


def measure(directory: Path, brokers: int, seconds: float, pool: ProcessPoolExecutor) -> Any:
    if brokers == 1:
        with BrokerProcess(directory / "single" / "data", SETTINGS, dev=True) as broker:
            assert broker.proc is not None
            return {
                "metadata": metadata_latency(broker.port),
                **throughput(broker.bootstrap, seconds, pool),
                **one_per_request(broker.bootstrap, [broker.proc.pid], seconds, pool),
            }
    with LocalCluster(directory / f"cluster-{brokers}", brokers, SETTINGS) as cluster:
        first = next(iter(cluster.brokers.values()))
        pids = [b.proc.pid for b in cluster.brokers.values() if b.proc is not None]
        return {
            "metadata": metadata_latency(first.port),
            **throughput(cluster.bootstrap, seconds, pool),
            **one_per_request(cluster.bootstrap, pids, seconds, pool),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(8) as pool:
        directory = Path(tmp)
        took = failovers(directory / "failover", args.failovers)
        print(
            f"controller failover (session {SESSION_MS} ms): median {statistics.median(took):.2f} s,"
            f" max {max(took):.2f} s over {len(took)}"
        )
        rows = {n: measure(directory, n, args.seconds, pool) for n in (1, 2, 3)}
    print(f"{'':38}{'1 broker':>14}{'2 brokers':>14}{'3 brokers':>14}")
    for key, label, fmt in (
        ("produce", "produce 1 KiB, acks=1 (msgs/s)", "{:,.0f}"),
        ("consume", "consume 1 KiB (msgs/s)", "{:,.0f}"),
        ("single", "one message per request, 8 producers", "{:,.0f}"),
        ("single_broker_us", "  brokers' CPU per message (µs)", "{:.1f}"),
        ("single_client_us", "  clients' CPU per message (µs)", "{:.1f}"),
        ("single_busy", "  machine busy (% of all cores)", "{:.0f}"),
    ):
        print(f"{label:38}" + "".join(f"{fmt.format(rows[n][key]):>14}" for n in (1, 2, 3)))
    for n in (1, 2, 3):
        times = sorted(rows[n]["metadata"])
        print(
            f"Metadata latency, {n} broker(s): median {statistics.median(times) * 1e6:.0f} µs, "
            f"p99 {times[int(len(times) * 0.99)] * 1e6:.0f} µs"
        )


if __name__ == "__main__":
    main()
