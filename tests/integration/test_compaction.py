"""Log compaction with real clients: the latest value of every key survives, tombstones and
aborted transactions go, offsets never change, and idempotent retries are still recognised."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.clients import read_to_end
from tests.integration.raw import RawClient
from tests.integration.test_produce import init_producer_id, produce, v2_batch
from tests.internals import internals

pytestmark = pytest.mark.integration

COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "1048576",
    "segment.ms": "300",
    "delete.retention.ms": "0",
    "min.cleanable.dirty.ratio": "0.01",
}


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    # The background cleaner waits: the tests clean when they choose to.
    config = local_config(tmp_path / "data", settings={"log.cleaner.backoff.ms": 3_600_000})
    with running_broker(config) as running:
        yield running


def clean_now(broker: BrokerThread) -> list[Any]:
    return broker.call(broker.running.broker.cleaner.clean_now)  # type: ignore[no-any-return]


def roll(broker: BrokerThread, topic: str, key: bytes) -> None:
    """Close the segment written so far: segment.ms passes, then one more record arrives."""
    time.sleep(0.4)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, key=key, value=b"end")
    assert producer.flush(10) == 0


def test_100k_records_over_1k_keys_compact_to_the_latest_value_of_each(
    broker: BrokerThread,
) -> None:
    internals(broker).create_topic("state", 1, COMPACTED)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for i in range(100_000):
        key = f"key-{i % 1000}".encode()
        # The last round deletes every tenth key.
        value = None if i >= 99_000 and i % 10 == 0 else f"value-{i}".encode()
        producer.produce("state", key=key, value=value)
        latest[key] = (i, value)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    roll(broker, "state", b"end")
    before = internals(broker).partition("state", 0).size_in_bytes
    (first,) = clean_now(broker)
    assert first.records_read >= 100_000 and first.records_kept == 1000
    # Tombstones go in a later cleaning (past delete.retention.ms): more data makes one due.
    roll(broker, "state", b"end")
    (second,) = clean_now(broker)
    assert second.records_kept == 901  # 900 live keys and the first "end"
    after = internals(broker).partition("state", 0).size_in_bytes
    assert after < before / 20
    records = read_to_end(broker.bootstrap, "state")
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert {key: (offset, value) for offset, key, value in records} == {
        **{key: entry for key, entry in latest.items() if entry[1] is not None},
        b"end": (100_001, b"end"),
    }
    # Every live key once; "end" twice: the active segment is never part of a cleaning.
    assert len(records) == 902


def test_aborted_transactions_are_removed(broker: BrokerThread) -> None:
    internals(broker).create_topic("txn", 1, COMPACTED)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t-1"})
    producer.init_transactions(10)
    producer.begin_transaction()
    for i in range(50):
        producer.produce("txn", key=f"k{i}".encode(), value=b"aborted")
    producer.abort_transaction(10)
    producer.begin_transaction()
    for i in range(0, 50, 2):
        producer.produce("txn", key=f"k{i}".encode(), value=b"committed")
    producer.commit_transaction(10)
    roll(broker, "txn", b"end")
    clean_now(broker)
    roll(broker, "txn", b"end")
    clean_now(broker)  # the abort marker goes once no data of its transaction is left
    values = [(k, v) for _, k, v in read_to_end(broker.bootstrap, "txn")]
    expected = [(f"k{i}".encode(), b"committed") for i in range(0, 50, 2)]
    expected += [(b"end", b"end")] * 2  # one cleaned, one in the active segment
    # Even a read_uncommitted consumer sees nothing of the aborted transaction any more.
    assert values == expected
    assert [
        (k, v)
        for _, k, v in read_to_end(broker.bootstrap, "txn", **{"isolation.level": "read_committed"})
    ] == expected


def test_an_idempotent_retry_is_still_a_duplicate_after_compaction(broker: BrokerThread) -> None:
    internals(broker).create_topic("idem", 1, COMPACTED)
    with RawClient(broker.port) as client:
        ids = init_producer_id(client)
        pid, epoch = ids.producer_id, ids.producer_epoch
        batches = [v2_batch([f"v{n}".encode()], pid=pid, epoch=epoch, seq=n) for n in range(3)]
        offsets = [produce(client, "idem", b).base_offset for b in batches]
        assert offsets == [0, 1, 2]
        roll(broker, "idem", b"other")
        clean_now(broker)  # all three share one key: only the last survives
        assert [v for _, _, v in read_to_end(broker.bootstrap, "idem")] == [b"v2", b"end"]
        retry = produce(client, "idem", batches[2])
        assert (retry.error_code, retry.base_offset) == (0, 2)
        follow_up = produce(client, "idem", v2_batch([b"v3"], pid=pid, epoch=epoch, seq=3))
        assert (follow_up.error_code, follow_up.base_offset) == (0, 4)


def test_a_state_store_restores_exactly_its_latest_state(tmp_path: Path) -> None:
    config = local_config(
        tmp_path / "data",
        settings={"log.cleaner.backoff.ms": 100, "log.cleaner.min.cleanable.ratio": "0.01"},
    )
    with running_broker(config) as broker:
        internals(broker).create_topic("changelog", 1, COMPACTED)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        state: dict[bytes, bytes] = {}
        for i in range(20_000):
            key = f"account-{i % 250}".encode()
            if i % 97 == 0:
                producer.send("changelog", key=key, value=None)
                state.pop(key, None)
            else:
                value = f"balance={i}".encode()
                producer.send("changelog", key=key, value=value)
                state[key] = value
        producer.flush()
        producer.close()
        roll(broker, "changelog", b"account-0")
        state[b"account-0"] = b"end"
        partition = internals(broker).partition("changelog", 0)
        deadline = time.monotonic() + 20
        while partition.log.log_start_offset == 0 and _records_in(broker) > 2 * len(state):
            assert time.monotonic() < deadline, "the background cleaner did not run"
            time.sleep(0.2)
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        tp = KafkaTopicPartition("changelog", 0)
        consumer.assign([tp])
        restored: dict[bytes, bytes] = {}
        end = consumer.end_offsets([tp])[tp]
        read = 0
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    read += 1
                    if record.value is None:
                        restored.pop(record.key, None)
                    else:
                        restored[record.key] = record.value
        consumer.close()
        assert restored == state
        assert read < 2 * len(state) + 50  # compacted: about one record per key


def _records_in(broker: BrokerThread) -> int:
    log = internals(broker).partition("changelog", 0).log
    return sum(1 for _ in log.iter_records())
