"""Acknowledged data survives broker restarts: clean (SIGTERM) and kill -9 with fsync per message.

The broker runs as a subprocess; what it stored is read through the storage engine once it has
stopped (it holds the data directory's lock while running).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.partitions.producer_snapshots import snapshot_files
from kafkacompat.storage.log_manager import LogManager
from kafkacompat.testing import BrokerProcess
from tests.integration.raw import RawClient
from tests.integration.test_produce import init_producer_id, produce, v2_batch

pytestmark = pytest.mark.integration

StoredRecord = tuple[int, bytes | None, bytes | None]


@contextmanager
def storage(data_dir: Path) -> Iterator[LogManager]:
    logs = LogManager(data_dir)
    try:
        yield logs
    finally:
        logs.close()


def stored(data_dir: Path, topic: str, partitions: int) -> dict[int, list[StoredRecord]]:
    with storage(data_dir) as logs:
        return {
            p: [(r.offset, r.key, r.value) for r in logs.log(topic, p).iter_records()]
            for p in range(partitions)
        }


def produce_kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> list[tuple[int, int]]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    try:
        futures = [producer.send(topic, key=v[-1:], value=v) for v in values]
        producer.flush(timeout=20)
        return [(m.partition, m.offset) for m in (f.get(timeout=20) for f in futures)]
    finally:
        producer.close(timeout=5)


def test_clean_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir, {"num.partitions": 3}, dev=False)
    first = [b"first-%03d" % i for i in range(150)]
    second = [b"second-%03d" % i for i in range(150)]
    try:
        broker.start()
        acked_first = produce_kafka_python(broker.bootstrap, "events", first)
        assert broker.stop() == 0
        assert snapshot_files(data_dir / "events-0"), "producer state snapshotted on shutdown"
        broker.start()
        acked_second = produce_kafka_python(broker.bootstrap, "events", second)
        assert broker.stop() == 0
    finally:
        broker.kill()
    expected: dict[int, list[StoredRecord]] = {p: [] for p in range(3)}
    for value, (partition, offset) in zip(first + second, acked_first + acked_second, strict=True):
        expected[partition].append((offset, value[-1:], value))
    for records in expected.values():
        records.sort()
        assert [offset for offset, _, _ in records] == list(range(len(records)))
    assert sum(map(len, expected.values())) == 300
    assert stored(data_dir, "events", 3) == expected


def test_kill_9_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    """acks=all with log.flush.interval.messages=1: an ack means the data was fsynced."""
    from confluent_kafka import Producer

    data_dir = tmp_path / "data"
    broker = BrokerProcess(
        data_dir, {"log.flush.interval.messages": 1, "num.partitions": 2}, dev=False
    )
    acked: dict[bytes, tuple[int, int]] = {}
    failed: list[bytes] = []
    lock = threading.Lock()

    def delivered(err: Any, msg: Any) -> None:
        with lock:
            if err is None:
                acked[msg.value()] = (msg.partition(), msg.offset())
            else:
                failed.append(msg.value())

    total = 600
    try:
        broker.start()
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "batch.num.messages": 20,
                "message.timeout.ms": 3000,
                "reconnect.backoff.max.ms": 200,
            }
        )
        killed_after = -1
        for i in range(total):
            producer.produce(
                "crash", key=b"%d" % (i % 7), value=b"m-%04d" % i, on_delivery=delivered
            )
            producer.poll(0.002)  # a steady stream: acks keep arriving while producing
            if killed_after < 0 and len(acked) >= 150:
                broker.kill()
                killed_after = len(acked)
        producer.flush(15)
        assert killed_after >= 150, "the broker was killed mid-stream"
        assert len(acked) + len(failed) == total
        assert failed, "messages in flight at the kill were not acknowledged"
        broker.start()  # recovery on the same data dir
        assert broker.stop() == 0
    finally:
        broker.kill()
    records = stored(data_dir, "crash", 2)
    by_value = {value: (p, offset) for p, rs in records.items() for offset, _, value in rs}
    missing = {v: where for v, where in acked.items() if by_value.get(v) != where}
    assert missing == {}, f"{len(missing)} acknowledged messages lost or moved"
    for rs in records.values():
        assert [offset for offset, _, _ in rs] == list(range(len(rs)))
    values = [value for rs in records.values() for _, _, value in rs]
    assert len(values) == len(set(values)), "nothing stored twice"


def test_duplicate_detected_after_kill_9(tmp_path: Path) -> None:
    """With no snapshot written, producer state is rebuilt from the log's batch headers."""
    data_dir = tmp_path / "data"
    broker = BrokerProcess(
        data_dir, {"log.flush.interval.messages": 1, "num.partitions": 1}, dev=False
    )
    batches = [v2_batch([b"v%d" % s, b"w%d" % s], pid=0, epoch=0, seq=2 * s) for s in range(4)]
    try:
        broker.start()
        with RawClient(broker.port) as client:
            client.request(3, 1, b"\x00\x00\x00\x01\x00\x04idem")  # Metadata: auto-create "idem"
            client.read_frame()
            assert init_producer_id(client).producer_id == 0
            for s, batch in enumerate(batches[:3]):
                assert produce(client, "idem", batch).base_offset == 2 * s
        broker.kill()
        assert snapshot_files(data_dir / "idem-0") == []
        broker.start()
        with RawClient(broker.port) as client:
            assert init_producer_id(client).producer_id == 1000, "ids are not reused"
            for s in (2, 0):
                result = produce(client, "idem", batches[s])
                assert (result.error_code, result.base_offset) == (ErrorCode.NONE, 2 * s)
            assert produce(client, "idem", batches[3]).base_offset == 6
        assert broker.stop() == 0
    finally:
        broker.kill()
    values = [value for _, _, value in stored(data_dir, "idem", 1)[0]]
    assert values == [b"%s%d" % (w, s) for s in range(4) for w in (b"v", b"w")]
