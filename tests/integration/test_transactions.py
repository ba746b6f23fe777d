"""Transactions with the stock clients: commit and abort, isolation levels, exactly-once
consume-transform-produce, fencing and timeouts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.coordinators.transaction_state import TxnState
from kafkacompat.protocol.records import iter_batches
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.txn_clients import (
    COMMITTED,
    END_OFFSET,
    EVERYTHING,
    TIMEOUT,
    consume_aiokafka,
    consume_confluent,
    consume_kafka_python,
    script_aiokafka,
    script_confluent,
    script_kafka_python,
)
from tests.internals import internals

Script = Callable[[str, str, str], None]


def control_offsets(broker: BrokerThread, topic: str, partition: int = 0) -> list[int]:
    data = internals(broker).read(topic, partition, 0, 1 << 30).read_bytes()
    return [h.base_offset for _, h in iter_batches(data) if h.is_control]


def txn_state(broker: BrokerThread, txn_id: str) -> Any:
    return broker.running.broker.transactions.coordinator.describe(txn_id)


@pytest.mark.parametrize(
    "script",
    [script_confluent, script_kafka_python, script_aiokafka],
    ids=["confluent", "kafka-python", "aiokafka"],
)
def test_commit_and_abort(broker: BrokerThread, script: Script) -> None:
    internals(broker).create_topic("tx", 1)
    script(broker.bootstrap, "tx", "tx-script")
    assert control_offsets(broker, "tx") == [2, 4, 6]
    assert internals(broker).last_stable_offset("tx", 0) == END_OFFSET
    assert consume_confluent(broker.bootstrap, "tx", "read_committed") == COMMITTED
    assert consume_confluent(broker.bootstrap, "tx", "read_uncommitted") == EVERYTHING
    state = txn_state(broker, "tx-script")
    assert (state.state, state.producer_epoch, state.partitions) == (
        TxnState.COMPLETE_COMMIT,
        0,
        set(),
    )


def test_isolation_levels_of_kafka_python_and_aiokafka(broker: BrokerThread) -> None:
    internals(broker).create_topic("tx", 1)
    script_confluent(broker.bootstrap, "tx", "tx-iso")
    assert consume_kafka_python(broker.bootstrap, "tx", "read_committed", 3) == COMMITTED
    assert consume_kafka_python(broker.bootstrap, "tx", "read_uncommitted", 4) == EVERYTHING
    assert consume_aiokafka(broker.bootstrap, "tx", "read_committed", 3) == COMMITTED
    assert consume_aiokafka(broker.bootstrap, "tx", "read_uncommitted", 4) == EVERYTHING


def test_open_transaction_holds_back_read_committed(broker: BrokerThread) -> None:
    from confluent_kafka import Consumer as CConsumer
    from confluent_kafka import Producer, TopicPartition

    internals(broker).create_topic("open", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t-open"})
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    producer.produce("open", b"pending", partition=0)
    producer.flush(TIMEOUT)
    replicas = internals(broker)
    assert (replicas.last_stable_offset("open", 0), replicas.log("open", 0).high_watermark) == (
        0,
        1,
    )
    assert consume_confluent(broker.bootstrap, "open", "read_committed") == []
    assert consume_confluent(broker.bootstrap, "open", "read_uncommitted") == [(0, b"pending")]
    # ListOffsets latest: the last stable offset under read_committed, else the high watermark.
    for isolation, expected in (("read_committed", (0, 0)), ("read_uncommitted", (0, 1))):
        consumer = CConsumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "w", "isolation.level": isolation}
        )
        low_high = consumer.get_watermark_offsets(TopicPartition("open", 0), timeout=TIMEOUT)
        consumer.close()
        assert low_high == expected
    producer.commit_transaction(TIMEOUT)
    assert replicas.last_stable_offset("open", 0) == 2
    assert consume_confluent(broker.bootstrap, "open", "read_committed") == [(0, b"pending")]


def test_second_producer_fences_the_first(broker: BrokerThread) -> None:
    from confluent_kafka import KafkaException, Producer

    internals(broker).create_topic("fence", 1)
    config = {"bootstrap.servers": broker.bootstrap, "transactional.id": "t-fence"}
    zombie = Producer(config)
    zombie.init_transactions(TIMEOUT)
    zombie.begin_transaction()
    zombie.produce("fence", b"zombie", partition=0)
    zombie.flush(TIMEOUT)
    successor = Producer(config)
    successor.init_transactions(TIMEOUT)  # aborts the zombie's open transaction
    state = txn_state(broker, "t-fence")
    # Fencing aborted with epoch 1; the successor's own InitProducerId then got epoch 2.
    assert (state.state, state.producer_epoch) == (TxnState.EMPTY, 2)
    successor.begin_transaction()
    successor.produce("fence", b"successor", partition=0)
    successor.commit_transaction(TIMEOUT)
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(TIMEOUT)
    assert info.value.args[0].fatal() or "fenced" in str(info.value).lower()
    assert consume_confluent(broker.bootstrap, "fence", "read_committed") == [(2, b"successor")]
    assert consume_confluent(broker.bootstrap, "fence", "read_uncommitted") == [
        (0, b"zombie"),
        (2, b"successor"),
    ]


def test_open_transaction_is_aborted_after_its_timeout(broker: BrokerThread) -> None:
    from confluent_kafka import KafkaException, Producer

    internals(broker).create_topic("slow", 1)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": "t-slow",
            "transaction.timeout.ms": 1000,
        }
    )
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    producer.produce("slow", b"late", partition=0)
    producer.flush(TIMEOUT)
    deadline = time.monotonic() + 10
    while txn_state(broker, "t-slow").state is not TxnState.COMPLETE_ABORT:
        assert time.monotonic() < deadline, "not aborted within 10 s"
        time.sleep(0.05)
    state = txn_state(broker, "t-slow")
    assert (state.producer_epoch, control_offsets(broker, "slow")) == (1, [1])
    with pytest.raises(KafkaException):
        producer.commit_transaction(TIMEOUT)
    assert consume_confluent(broker.bootstrap, "slow", "read_committed") == []
    assert consume_confluent(broker.bootstrap, "slow", "read_uncommitted") == [(0, b"late")]


def _transform_batch(
    bootstrap: str, producer: Any, group: str, limit: int, crash_before_commit: bool = False
) -> int:
    """Read up to ``limit`` inputs in group ``group``, write their upper-cased copies and the
    consumer offsets in one transaction. Returns how many inputs were handled."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition("in", 0)])  # from the group's committed offset
    handled: list[Any] = []
    deadline = time.monotonic() + TIMEOUT
    while len(handled) < limit and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            handled.append(message)
    producer.begin_transaction()
    for message in handled:
        producer.produce("out", message.value().upper(), partition=0)
    producer.send_offsets_to_transaction(
        consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), TIMEOUT
    )
    if crash_before_commit:
        producer.flush(TIMEOUT)
        producer.abort_transaction(TIMEOUT)
    else:
        producer.commit_transaction(TIMEOUT)
    consumer.close()
    return len(handled)


def test_consume_transform_produce_is_exactly_once(broker: BrokerThread) -> None:
    from confluent_kafka import Producer

    replicas = internals(broker)
    replicas.create_topic("in", 1)
    replicas.create_topic("out", 1)
    source = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(6):
        source.produce("in", b"m%d" % i, partition=0)
    source.flush(TIMEOUT)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t-eos"})
    producer.init_transactions(TIMEOUT)
    assert _transform_batch(broker.bootstrap, producer, "eos", 3) == 3
    # A failed attempt: output and offsets are both dropped.
    assert _transform_batch(broker.bootstrap, producer, "eos", 3, crash_before_commit=True) == 3
    # A restarted consumer resumes after the committed offsets, not the aborted ones.
    assert _transform_batch(broker.bootstrap, producer, "eos", 3) == 3
    committed = consume_confluent(broker.bootstrap, "out", "read_committed")
    assert [v for _, v in committed] == [b"M%d" % i for i in range(6)]
    offsets = broker.running.broker.groups.coordinator.fetch_offsets("eos", [("in", 0)])
    assert offsets[("in", 0)] is not None and offsets[("in", 0)].offset == 6
    assert not broker.running.broker.transactions.offsets.has_group("eos")


def _offsets_kafka_python(bootstrap: str, group: str, offset: int, commit: bool) -> None:
    from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"kp-{group}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("out", b"v%d" % offset, partition=0).get(timeout=TIMEOUT)
        offsets = {TopicPartition("in", 0): OffsetAndMetadata(offset, "", -1)}
        producer.send_offsets_to_transaction(offsets, group)
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    finally:
        producer.close(timeout=5)


def _offsets_aiokafka(bootstrap: str, group: str, offset: int, commit: bool) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"ak-{group}")
        await producer.start()
        try:
            await producer.begin_transaction()
            await producer.send_and_wait("out", b"v%d" % offset, partition=0)
            await producer.send_offsets_to_transaction({TopicPartition("in", 0): offset}, group)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


@pytest.mark.parametrize(
    "send", [_offsets_kafka_python, _offsets_aiokafka], ids=["kafka-python", "aiokafka"]
)
def test_send_offsets_to_transaction(
    broker: BrokerThread, send: Callable[[str, str, int, bool], None]
) -> None:
    replicas = internals(broker)
    replicas.create_topic("in", 1)
    replicas.create_topic("out", 1)
    groups = broker.running.broker.groups.coordinator
    send(broker.bootstrap, "g", 3, True)
    send(broker.bootstrap, "g", 9, False)
    committed = groups.fetch_offsets("g", [("in", 0)])[("in", 0)]
    assert committed is not None and committed.offset == 3
    assert consume_confluent(broker.bootstrap, "out", "read_committed") == [(0, b"v3")]
    assert consume_confluent(broker.bootstrap, "out", "read_uncommitted") == [
        (0, b"v3"),
        (2, b"v9"),
    ]


def test_offsets_of_a_group_member_are_checked_and_committed(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, Producer

    settings = {"group.initial.rebalance.delay.ms": 0}
    with running_broker(local_config(tmp_path / "data", settings=settings)) as broker:
        replicas = internals(broker)
        replicas.create_topic("in", 1)
        replicas.create_topic("out", 1)
        source = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(3):
            source.produce("in", b"s%d" % i, partition=0)
        source.flush(TIMEOUT)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t-m"})
        producer.init_transactions(TIMEOUT)
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "members",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe(["in"])
        seen: list[Any] = []
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 3 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                seen.append(message)
        producer.begin_transaction()
        for message in seen:
            producer.produce("out", message.value().upper(), partition=0)
        metadata = consumer.consumer_group_metadata()
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, metadata, TIMEOUT)
        producer.commit_transaction(TIMEOUT)
        consumer.close()
        committed = broker.running.broker.groups.coordinator.fetch_offsets("members", [("in", 0)])[
            ("in", 0)
        ]
        assert committed is not None and committed.offset == 3
        assert consume_confluent(broker.bootstrap, "out", "read_committed") == [
            (0, b"S0"),
            (1, b"S1"),
            (2, b"S2"),
        ]
