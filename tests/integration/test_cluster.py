"""Three `kafkacompat serve` brokers on a real etcd, driven by stock clients: every client sees
three brokers and one controller, a six-partition topic has leaders on all three, records go to
and come from every leader exactly, a broker that does not lead a partition says so, and when
the controller is killed another takes over within the session timeout and creates topics."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available
from tests.integration.raw import RawClient
from tests.integration.test_fetch import build_batch

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SESSION_MS = 2000
SETTINGS = {"broker.session.timeout.ms": SESSION_MS, "broker.heartbeat.interval.ms": 500}
API_PRODUCE, API_METADATA = 0, 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), 3, SETTINGS) as running:
        yield running


def metadata_from(port: int, topics: list[str] | None = None) -> object:
    with RawClient(port) as client:
        wanted = None if topics is None else [MetadataRequestTopic(name=t) for t in topics]
        return client.call(API_METADATA, 9, MetadataRequest(topics=wanted))


def test_every_broker_and_client_sees_three_brokers_and_one_controller(
    cluster: LocalCluster,
) -> None:
    answers = [metadata_from(b.port) for b in cluster.brokers.values()]
    controllers = {a.controller_id for a in answers}  # type: ignore[attr-defined]
    assert len(controllers) == 1
    [controller] = controllers
    assert controller in (1, 2, 3)
    for answer in answers:
        assert sorted(  # type: ignore[attr-defined]
            (b.node_id, b.host, b.port)
            for b in answer.brokers  # type: ignore[attr-defined]
        ) == sorted((n, "127.0.0.1", b.port) for n, b in cluster.brokers.items())
    metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=10)
    assert (sorted(metadata.brokers), metadata.controller_id) == ([1, 2, 3], controller)
    kcat = subprocess.run(
        ["kcat", "-b", cluster.brokers[2].bootstrap, "-L", "-J"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert sorted(b["id"] for b in json.loads(kcat.stdout)["brokers"]) == [1, 2, 3]
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.brokers[3].bootstrap)
    described = kadmin.describe_cluster()
    kadmin.close()
    assert described["controller_id"] == controller
    assert sorted(_node_id(b) for b in described["brokers"]) == [1, 2, 3]
    assert asyncio.run(_aiokafka_view(cluster.brokers[1].bootstrap)) == ([1, 2, 3], controller)
    assert _kafkajs_view(cluster.brokers[2].bootstrap) == ([1, 2, 3], controller)


async def _aiokafka_view(bootstrap: str) -> tuple[list[int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    return sorted(_node_id(b) for b in described["brokers"]), described["controller_id"]


def _node_id(broker: dict[str, object]) -> int:
    """A described broker's id (kafka-python and aiokafka name the key differently)."""
    return int(broker.get("node_id", broker.get("broker_id", -1)))  # type: ignore[call-overload]


def _kafkajs_view(bootstrap: str) -> tuple[list[int], int]:
    node = shutil.which("node")
    modules = Path(__file__).resolve().parents[2] / "compat_tests" / "kafkajs" / "node_modules"
    if node is None or not (modules / "kafkajs").exists():
        pytest.skip("node or kafkajs is not installed (cd compat_tests/kafkajs && npm ci)")
    script = (
        "const { Kafka, logLevel } = require('kafkajs');"
        "const admin = new Kafka({ brokers: [process.argv[1]], logLevel: logLevel.NOTHING }).admin();"
        "(async () => { await admin.connect(); const c = await admin.describeCluster();"
        "console.log(JSON.stringify({ brokers: c.brokers.map(b => b.nodeId).sort(),"
        " controller: c.controller })); await admin.disconnect(); })()"
        ".catch(e => { console.error(e); process.exit(1); });"
    )
    done = subprocess.run(
        [node, "-e", script, bootstrap],
        capture_output=True,
        timeout=60,
        check=True,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    found = json.loads(done.stdout)
    return found["brokers"], found["controller"]


def test_a_topic_spans_every_broker_and_records_round_trip(cluster: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.create_topics([NewTopic("orders", 6, 1)]).values():
        assert future.result(20) is None
    topic = admin.list_topics(timeout=10).topics["orders"]
    leaders = {index: p.leader for index, p in topic.partitions.items()}
    assert Counter(leaders.values()) == {1: 2, 2: 2, 3: 2}
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5})
    for i in range(60):
        producer.produce("orders", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 6)
    assert producer.flush(20) == 0
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    consumer.assign([TopicPartition("orders", p) for p in range(6)])
    seen: dict[int, list[bytes]] = {}
    for message in consumer:
        seen.setdefault(message.partition, []).append(message.value)
    consumer.close()
    assert seen == {p: [f"v{i}".encode() for i in range(p, 60, 6)] for p in range(6)}
    # A consumer group spans the brokers; its offsets commit through its coordinator.
    group = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "spanning",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    group.subscribe(["orders"])
    received = 0
    deadline = time.monotonic() + 30
    while received < 60 and time.monotonic() < deadline:
        message = group.poll(0.5)
        if message is not None and message.error() is None:
            received += 1
    assert received == 60
    group.commit(asynchronous=False)
    committed = group.committed([ConfluentPartition("orders", p) for p in range(6)], timeout=10)
    assert sorted(c.offset for c in committed) == [10] * 6
    group.close()


def test_a_broker_that_does_not_lead_says_so(cluster: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.create_topics([NewTopic("led", 1, 1)]).values():
        assert future.result(20) is None
    leader = admin.list_topics(timeout=10).topics["led"].partitions[0].leader
    other = next(b for n, b in cluster.brokers.items() if n != leader)
    batch = build_batch([(b"k", b"v", [])], 0)
    request = ProduceRequest(
        acks=1,
        timeout_ms=5000,
        topic_data=[TopicProduceData("led", [PartitionProduceData(0, batch)])],
    )
    with RawClient(other.port) as client:
        answer = client.call(API_PRODUCE, 8, request)
    [partition] = answer.responses[0].partition_responses
    assert partition.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # A client sent to the wrong broker first recovers through a metadata refresh.
    producer = KafkaProducer(bootstrap_servers=other.bootstrap)
    assert producer.send("led", b"v").get(timeout=20).offset == 0
    producer.close()


def test_killing_the_controller_moves_control_within_the_session(cluster: LocalCluster) -> None:
    controller = metadata_from(cluster.brokers[1].port).controller_id  # type: ignore[attr-defined]
    survivor = next(b for n, b in cluster.brokers.items() if n != controller)
    killed = time.monotonic()
    cluster.kill(controller)
    while True:
        now = metadata_from(survivor.port).controller_id  # type: ignore[attr-defined]
        if now not in (-1, controller):
            break
        assert time.monotonic() - killed < SESSION_MS / 1000 + 5
        time.sleep(0.05)
    failover = time.monotonic() - killed
    print(f"controller {controller} killed; broker {now} took over in {failover:.2f} s")
    assert failover < SESSION_MS / 1000 + 2
    admin = AdminClient({"bootstrap.servers": survivor.bootstrap})
    for future in admin.create_topics([NewTopic("after", 2, 1)]).values():
        assert future.result(20) is None
    leaders = {p.leader for p in admin.list_topics(timeout=10).topics["after"].partitions.values()}
    assert controller not in leaders
    cluster.start_broker(controller)
    deadline = time.monotonic() + 15
    while len(metadata_from(survivor.port).brokers) < 3:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.1)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def reported(cluster: LocalCluster, node_id: int) -> tuple[int, list[int]]:
    """(controller, brokers) as broker ``node_id`` reports them."""
    answer = metadata_from(cluster.brokers[node_id].port)
    return answer.controller_id, sorted(b.node_id for b in answer.brokers)  # type: ignore[attr-defined]


def test_a_paused_controller_changes_nothing_when_it_resumes(kafka_cluster: LocalCluster) -> None:
    old = kafka_cluster.controller()
    others = [n for n in kafka_cluster.brokers if n != old]
    kafka_cluster.brokers[old].pause()
    took = wait_until(
        lambda: reported(kafka_cluster, others[0])[0] in others, 10, "a new controller"
    )
    print(f"controller {old} paused; another took over in {took:.2f} s")
    new = reported(kafka_cluster, others[0])[0]
    admin = AdminClient({"bootstrap.servers": kafka_cluster.brokers[new].bootstrap})
    for future in admin.create_topics([NewTopic("while-paused", 4, 1)]).values():
        assert future.result(20) is None
    before = {p: kafka_cluster.leader("while-paused", p) for p in range(4)}
    assert old not in before.values() and -1 not in before.values()
    kafka_cluster.brokers[old].resume()
    # It rejoins as a broker, not as the controller, and leadership stays as written.
    wait_until(
        lambda: reported(kafka_cluster, old) == (new, [1, 2, 3]), 10, "the old one to rejoin"
    )
    time.sleep(1.0)
    for node in kafka_cluster.brokers:
        assert reported(kafka_cluster, node) == (new, [1, 2, 3])
    assert {p: kafka_cluster.leader("while-paused", p) for p in range(4)} == before


def test_etcd_down_for_ten_seconds_loses_nothing(kafka_cluster: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    for future in admin.create_topics([NewTopic("through-outage", 3, 1)]).values():
        assert future.result(20) is None
    producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap})
    for i in range(30):
        producer.produce("through-outage", f"before-{i}".encode(), partition=i % 3)
    assert producer.flush(20) == 0
    kafka_cluster.etcd.kill()
    time.sleep(10)
    kafka_cluster.etcd.start()
    wait_until(
        lambda: all(reported(kafka_cluster, n)[1] == [1, 2, 3] for n in kafka_cluster.brokers),
        20,
        "every broker registered again",
    )
    controller = kafka_cluster.controller()
    assert controller in (1, 2, 3)
    for i in range(30):
        producer.produce("through-outage", f"after-{i}".encode(), partition=i % 3)
    assert producer.flush(20) == 0
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_cluster.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    consumer.assign([TopicPartition("through-outage", p) for p in range(3)])
    values = sorted(m.value.decode() for m in consumer)
    consumer.close()
    assert values == sorted([f"before-{i}" for i in range(30)] + [f"after-{i}" for i in range(30)])


def test_a_broker_that_looks_down_holds_back_only_its_partitions(
    kafka_cluster: LocalCluster,
) -> None:
    """A fault makes one broker refuse connections (alive, but unreachable): a confluent-kafka
    producer delivers to the other leaders at once and to that one once it is back."""
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    for future in admin.create_topics([NewTopic("looks-down", 3, 1)]).values():
        assert future.result(20) is None
    leaders = {p: kafka_cluster.leader("looks-down", p) for p in range(3)}
    assert sorted(leaders.values()) == [1, 2, 3]
    down = leaders[0]
    others = ",".join(b.bootstrap for n, b in kafka_cluster.brokers.items() if n != down)
    delivered: dict[int, float] = {}
    started = time.monotonic()

    def on_delivery(error: object, message: Any) -> None:
        assert error is None
        delivered[message.partition()] = time.monotonic() - started

    with kafka_cluster.faults[down].refuse_connections(3.0) as fault:
        producer = Producer({"bootstrap.servers": others, "message.timeout.ms": 30000})
        for partition in range(3):
            producer.produce("looks-down", b"v", partition=partition, on_delivery=on_delivery)
        producer.flush(2.0)
        assert sorted(delivered) == [1, 2]
        assert fault.hits >= 1
    assert producer.flush(20) == 0
    assert sorted(delivered) == [0, 1, 2]
    assert delivered[0] > max(delivered[1], delivered[2])


def test_the_readme_cluster_fault_example(kafka_cluster: LocalCluster) -> None:
    """README, "Fault injection for your tests": a producer fails over to the brokers that
    answer while one looks down."""
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    admin.create_topics([NewTopic("orders", 3, 1)])["orders"].result(20)
    down = kafka_cluster.leader("orders", 0)
    others = ",".join(b.bootstrap for n, b in kafka_cluster.brokers.items() if n != down)
    delivered: list[int] = []
    with kafka_cluster.faults[down].refuse_connections(3.0) as fault:  # alive, unreachable
        producer = Producer({"bootstrap.servers": others})
        for partition in range(3):
            producer.produce(
                "orders",
                b"paid",
                partition=partition,
                on_delivery=lambda err, msg: delivered.append(msg.partition()),
            )
        producer.flush(2.0)
        assert sorted(delivered) == [1, 2]  # the other leaders answered at once
        assert fault.hits >= 1  # the producer really tried broker `down`
    assert producer.flush(20) == 0  # and delivered there once it was back
    assert sorted(delivered) == [0, 1, 2]
