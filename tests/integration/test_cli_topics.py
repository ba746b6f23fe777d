"""`python -m kafkacompat topics ...` as a subprocess against a running broker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kafkacompat.testing import BrokerThread
from tests.internals import internals

pytestmark = pytest.mark.integration


def topics(broker: BrokerThread, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kafkacompat", "topics", *args]
    command += ["--bootstrap-server", broker.bootstrap, "--timeout", "10"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_create_list_describe_alter_delete(broker: BrokerThread) -> None:
    replicas = internals(broker)
    created = topics(
        broker, "create", "orders", "--partitions", "3", "--config", "retention.ms=5000"
    )
    assert (created.returncode, created.stdout, created.stderr) == (
        0,
        "Created topic orders.\n",
        "",
    )
    assert replicas.find_topic("orders").partitions == 3
    assert replicas.log("orders", 0).config.retention_ms == 5000
    assert topics(broker, "create", "--topic", "audit").returncode == 0
    assert replicas.find_topic("audit").partitions == 1

    listed = topics(broker, "list")
    assert (listed.returncode, listed.stdout) == (0, "audit\norders\n")

    described = topics(broker, "describe", "orders")
    topic_id = replicas.find_topic("orders").topic_id
    assert described.returncode == 0
    assert described.stdout.splitlines() == [
        f"Topic: orders\tTopicId: {topic_id}\tPartitionCount: 3\tReplicationFactor: 1"
        "\tConfigs: retention.ms=5000",
        "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1",
        "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1",
        "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1",
    ]
    every = topics(broker, "describe", "orders", "--all-configs").stdout
    assert "\t\tretention.ms=5000 (DYNAMIC_TOPIC_CONFIG)" in every.splitlines()
    assert "\t\tsegment.bytes=1073741824 (DEFAULT_CONFIG)" in every.splitlines()

    altered = topics(
        broker, "alter", "orders", "--partitions", "4", "--add-config", "cleanup.policy=compact",
        "--delete-config", "retention.ms",
    )  # fmt: skip
    assert (altered.returncode, altered.stdout) == (0, "Altered topic orders.\n")
    assert replicas.find_topic("orders").partitions == 4
    assert dict(replicas.find_topic("orders").configs) == {"cleanup.policy": "compact"}

    deleted = topics(broker, "delete", "orders")
    assert (deleted.returncode, deleted.stdout) == (0, "Deleted topic orders.\n")
    assert replicas.find_topic("orders") is None
    assert not (replicas.data_dir / "orders-0").exists()


def test_errors_exit_non_zero(broker: BrokerThread) -> None:
    internals(broker).create_topic("exists", 1)
    again = topics(broker, "create", "exists")
    assert again.returncode == 1
    assert (
        again.stderr == "kafkacompat topics: TOPIC_ALREADY_EXISTS: Topic 'exists' already exists.\n"
    )
    assert topics(broker, "create", "exists", "--if-not-exists").returncode == 0
    bad = topics(broker, "create", "bad", "--config", "retention.ms=soon")
    assert bad.returncode == 1 and "INVALID_CONFIG" in bad.stderr
    assert topics(broker, "create", "rf", "--replication-factor", "2").returncode == 1
    dry = topics(broker, "create", "dry", "--validate-only")
    assert (dry.returncode, dry.stdout) == (0, "Topic creation would succeed for dry.\n")
    assert internals(broker).find_topic("dry") is None
    missing = topics(broker, "describe", "missing")
    assert missing.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
    assert topics(broker, "delete", "missing").returncode == 1
    assert topics(broker, "delete", "missing", "--if-exists").returncode == 0
    assert topics(broker, "create").returncode == 2
    assert topics(broker, "create", "x", "--config", "novalue").returncode == 2


def test_unreachable_broker() -> None:
    command = [sys.executable, "-m", "kafkacompat", "topics", "list"]
    command += ["--bootstrap-server", "127.0.0.1:1", "--timeout", "5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("kafkacompat topics: cannot talk to 127.0.0.1:1")
