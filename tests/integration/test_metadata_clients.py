"""Stock clients connect, negotiate versions and read cluster metadata from a real broker."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

from kafkacompat.testing import BrokerThread
from tests.internals import internals

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(broker: BrokerThread) -> dict[str, int]:
    created = {"alpha": 3, "beta.events_1": 1}
    for name, partitions in created.items():
        internals(broker).create_topic(name, partitions)
    return created


def test_kafka_python_reads_metadata(broker: BrokerThread, topics: dict[str, int]) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="parity-test")
    try:
        assert sorted(admin.list_topics()) == sorted(topics)
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"] == broker.running.broker.cluster_id
        assert cluster["controller_id"] == 1
        assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
            (1, "127.0.0.1", broker.port)
        ]
        described = {t["name"]: t for t in admin.describe_topics(list(topics))}
        for name, count in topics.items():
            assert described[name]["error_code"] == 0
            assert described[name]["topic_id"] == str(internals(broker).find_topic(name).topic_id)
            partitions = sorted(described[name]["partitions"], key=lambda p: p["partition_index"])
            assert [p["partition_index"] for p in partitions] == list(range(count))
            assert {p["leader_id"] for p in partitions} == {1}
            assert all(p["replica_nodes"] == [1] and p["isr_nodes"] == [1] for p in partitions)
        advertised = {
            h.api_key: (h.min_version, h.max_version)
            for h in broker.running.broker.pipeline.handlers.values()
        }
        assert {int(key): tuple(v) for key, v in admin.api_versions().items()} == advertised
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert consumer.topics() == set(topics)
        assert consumer.partitions_for_topic("alpha") == {0, 1, 2}
    finally:
        consumer.close()


def test_aiokafka_reads_metadata(broker: BrokerThread, topics: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def read() -> tuple[list[str], dict[str, object]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.list_topics(), await admin.describe_cluster()
        finally:
            await admin.close()

    names, cluster = asyncio.run(read())
    assert sorted(names) == sorted(topics)
    assert cluster["cluster_id"] == broker.running.broker.cluster_id
    assert cluster["controller_id"] == 1
    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
        (1, "127.0.0.1", broker.port)
    ]


def test_confluent_kafka_reads_metadata(broker: BrokerThread, topics: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert metadata.cluster_id == broker.running.broker.cluster_id
    assert metadata.controller_id == 1
    assert {b.id: (b.host, b.port) for b in metadata.brokers.values()} == {
        1: ("127.0.0.1", broker.port)
    }
    assert {name: len(t.partitions) for name, t in metadata.topics.items()} == topics
    for topic in metadata.topics.values():
        assert topic.error is None
        for partition in topic.partitions.values():
            assert (partition.leader, partition.replicas, partition.isrs) == (1, [1], [1])


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_lists_metadata(broker: BrokerThread, topics: dict[str, int]) -> None:
    result = subprocess.run(
        ["kcat", "-L", "-J", "-b", broker.bootstrap, "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listing = json.loads(result.stdout)
    assert listing["controllerid"] == 1
    assert [(b["id"], b["name"]) for b in listing["brokers"]] == [(1, broker.bootstrap)]
    found = {t["topic"]: len(t["partitions"]) for t in listing["topics"]}
    assert found == topics
