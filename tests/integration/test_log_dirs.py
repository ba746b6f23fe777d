"""A single broker with two log directories: DescribeLogDirs, and AlterReplicaLogDirs moving
a partition between them while clients produce and consume."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_replica_log_dirs_request import (
    AlterReplicaLogDir,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirTopic,
)
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.describe_log_dirs_request import (
    DescribableLogDirTopic,
    DescribeLogDirsRequest,
)
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.raw import RawClient
from tests.internals import internals


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return (tmp_path / "logs-a").resolve(), (tmp_path / "logs-b").resolve()


@pytest.fixture
def broker(tmp_path: Path, dirs: tuple[Path, Path]) -> Iterator[BrokerThread]:
    with running_broker(_config(tmp_path, dirs)) as running:
        yield running


def _config(tmp_path: Path, dirs: tuple[Path, Path]) -> Any:
    return local_config(tmp_path / "data", settings={"log.dirs": f"{dirs[0]},{dirs[1]}"})


def _produce(bootstrap: str, topic: str, values: range) -> list[int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    try:
        futures = [producer.send(topic, f"v{i}".encode(), partition=0) for i in values]
        return [f.get(timeout=10).offset for f in futures]
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[tuple[int, bytes]] = []
        for _ in range(60):
            for messages in consumer.poll(timeout_ms=500).values():
                out += [(m.offset, m.value) for m in messages]
            if len(out) >= count:
                break
        return out
    finally:
        consumer.close()


def _move(broker: BrokerThread, path: str, topic: str, *partitions: int, version: int = 1) -> Any:
    request = AlterReplicaLogDirsRequest(
        [AlterReplicaLogDir(path, [AlterReplicaLogDirTopic(topic, list(partitions))])]
    )
    with RawClient(broker.port, timeout=30) as client:
        response = client.call(34, version, request)
    return [
        (t.topic_name, p.partition_index, p.error_code)
        for t in response.results
        for p in t.partitions
    ]


def _moved(broker: BrokerThread, path: Path, topic: str, partition: int) -> None:
    """Wait until DescribeLogDirs shows the partition in ``path`` alone, with no future copy
    (AlterReplicaLogDirs answers before the move is made, as Kafka)."""
    key = (topic, partition)
    deadline = time.monotonic() + 30
    while True:
        where = _where(broker)
        holding = sorted(
            (d, replicas[key][1]) for d, (_, replicas) in where.items() if key in replicas
        )
        if holding == [(str(path), False)]:
            return
        assert time.monotonic() < deadline, f"{topic}-{partition} not moved to {path}: {where}"
        time.sleep(0.02)


def _where(broker: BrokerThread, version: int = 4) -> dict[str, Any]:
    """log dir -> (error code, {(topic, partition): (size > 0, is_future)})."""
    with RawClient(broker.port) as client:
        response = client.call(35, version, DescribeLogDirsRequest(topics=None))
    assert response.error_code == 0
    return {
        result.log_dir: (
            result.error_code,
            {
                (t.name, p.partition_index): (p.partition_size > 0, p.is_future_key)
                for t in result.topics
                for p in t.partitions
            },
        )
        for result in response.results
    }


def test_move_a_partition_while_producing_and_restart(
    tmp_path: Path, broker: BrokerThread, dirs: tuple[Path, Path]
) -> None:
    from kafka import KafkaAdminClient

    a, b = dirs
    internals(broker).create_topic("moving", 1)
    assert (a / "moving-0").is_dir() and not (b / "moving-0").exists()
    assert _produce(broker.bootstrap, "moving", range(5)) == [0, 1, 2, 3, 4]

    assert _move(broker, str(b), "moving", 0) == [("moving", 0, ErrorCode.NONE)]
    _moved(broker, b, "moving", 0)
    assert not (a / "moving-0").exists()
    assert sorted(p.name for p in a.iterdir() if p.name.startswith("moving")) == []
    assert sorted(p.name for p in b.iterdir() if p.name.startswith("moving")) == ["moving-0"]
    assert _produce(broker.bootstrap, "moving", range(5, 10)) == [5, 6, 7, 8, 9]
    expected = [(i, f"v{i}".encode()) for i in range(10)]
    assert _consume(broker.bootstrap, "moving", 10) == expected

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        (entry,) = admin.describe_log_dirs()
    finally:
        admin.close()
    described = {
        d["log_dir"]: {
            (t["name"], p["partition_index"]) for t in d["topics"] for p in t["partitions"]
        }
        for d in entry["log_dirs"]
    }
    assert described == {str(a): set(), str(b): {("moving", 0)}}
    assert _where(broker) == {str(a): (0, {}), str(b): (0, {("moving", 0): (True, False)})}

    broker.stop()
    with running_broker(_config(tmp_path, dirs)) as again:
        assert (b / "moving-0").is_dir() and not (a / "moving-0").exists()
        assert _where(again) == {str(a): (0, {}), str(b): (0, {("moving", 0): (True, False)})}
        assert _consume(again.bootstrap, "moving", 10) == expected
        assert _produce(again.bootstrap, "moving", range(10, 12)) == [10, 11]


def test_moves_back_and_forth_under_load_lose_nothing(
    broker: BrokerThread, dirs: tuple[Path, Path]
) -> None:
    from kafka import KafkaProducer

    internals(broker).create_topic("busy", 1, {"segment.bytes": "2048"})
    offsets: list[int] = []

    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks=1)
        try:
            for i in range(300):
                sent = producer.send("busy", f"v{i}".encode(), partition=0)
                offsets.append(sent.get(timeout=10).offset)
        finally:
            producer.close()

    producing = threading.Thread(target=produce)
    producing.start()
    answers = []
    while producing.is_alive() or len(answers) < 6:  # every move overlaps the producer
        target = dirs[(len(answers) + 1) % 2]
        answers += _move(broker, str(target), "busy", 0)
        _moved(broker, target, "busy", 0)
    producing.join()
    assert answers == [("busy", 0, ErrorCode.NONE)] * len(answers)
    assert offsets == list(range(300))
    assert _consume(broker.bootstrap, "busy", 300) == [(i, f"v{i}".encode()) for i in range(300)]
    home, other = (dirs[0], dirs[1]) if len(answers) % 2 == 0 else (dirs[1], dirs[0])
    assert (home / "busy-0").is_dir() and not (other / "busy-0").exists()
    assert [p.name for p in other.iterdir() if p.name.startswith("busy")] == []


def test_move_errors_and_no_op(broker: BrokerThread, dirs: tuple[Path, Path]) -> None:
    a, b = dirs
    internals(broker).create_topic("t", 2)
    assert _produce(broker.bootstrap, "t", range(3)) == [0, 1, 2]
    placed = {(p.parent.name, p.name) for d in dirs for p in d.iterdir() if p.name[0] == "t"}
    assert placed == {("logs-a", "t-0"), ("logs-b", "t-1")}
    before = sorted((a / "t-0").iterdir())
    for version in (0, 1, 2):
        assert _move(broker, str(a), "t", 0, version=version) == [("t", 0, ErrorCode.NONE)]
        assert _move(broker, str(a) + "/x", "t", 0, version=version) == [
            ("t", 0, ErrorCode.LOG_DIR_NOT_FOUND)
        ]
        assert _move(broker, str(b), "t", 5, version=version) == [
            ("t", 5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        ]
        assert _move(broker, str(b), "nope", 0, version=version) == [
            ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        ]
    assert sorted((a / "t-0").iterdir()) == before
    assert sorted(p.name for p in b.iterdir()) == [".lock", "t-1"]
    assert _consume(broker.bootstrap, "t", 3) == [(i, f"v{i}".encode()) for i in range(3)]


def test_describe_log_dirs_every_version(broker: BrokerThread, dirs: tuple[Path, Path]) -> None:
    a, b = dirs
    internals(broker).create_topic("d", 2)
    _produce(broker.bootstrap, "d", range(2))
    request = DescribeLogDirsRequest(
        [DescribableLogDirTopic("d", [1, 0, 9]), DescribableLogDirTopic("x", [0])]
    )
    with RawClient(broker.port) as client:
        for version in (0, 1, 2, 3, 4):
            response = client.call(35, version, request)
            shown = [
                (
                    r.log_dir,
                    r.error_code,
                    [(t.name, [p.partition_index for p in t.partitions]) for t in r.topics],
                )
                for r in response.results
            ]
            assert shown == [(str(a), 0, [("d", [0])]), (str(b), 0, [("d", [1])])]
            for result in response.results:
                if version >= 4:
                    assert result.total_bytes > 0 and 0 <= result.usable_bytes <= result.total_bytes
        versions = client.call(18, 0, ApiVersionsRequest())
    served = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
    assert served[34] == (0, 2) and served[35] == (0, 4)
    # A directory gone from under the broker answers KAFKA_STORAGE_ERROR.
    assert _move(broker, str(a), "d", 1) == [("d", 1, ErrorCode.NONE)]
    _moved(broker, a, "d", 1)
    shutil.rmtree(b)
    assert _where(broker) == {
        str(a): (0, {("d", 0): (True, False), ("d", 1): (False, False)}),
        str(b): (ErrorCode.KAFKA_STORAGE_ERROR, {}),
    }
    assert _move(broker, str(b), "d", 0) == [("d", 0, ErrorCode.KAFKA_STORAGE_ERROR)]
    assert (a / "d-0").is_dir()
