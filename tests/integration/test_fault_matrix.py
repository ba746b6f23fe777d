"""Every fault kind met by each of kafka-python, aiokafka and confluent-kafka: what the client
does about it (retries, waits, reconnects), asserted through the fault's own counter and the
records the broker stored — each record exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kafkacompat.testing import BrokerThread, dev_config, running_broker
from tests.internals import internals

pytestmark = pytest.mark.integration

CLIENTS = ("kafka-python", "aiokafka", "confluent-kafka")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    with running_broker(dev_config(tmp_path_factory.mktemp("matrix") / "data")) as running:
        yield running


def produce_one(client: str, bootstrap: str, topic: str, value: bytes) -> None:
    """Send one record with a fresh client of kind ``client`` and wait for its ack."""
    if client == "kafka-python":
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=bootstrap, retries=5, retry_backoff_ms=50, max_block_ms=20000
        )
        try:
            producer.send(topic, value, partition=0).get(timeout=20)
        finally:
            producer.close(timeout=5)
    elif client == "aiokafka":
        from aiokafka import AIOKafkaProducer

        async def run() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, retry_backoff_ms=50)
            try:
                await producer.start()
                await asyncio.wait_for(producer.send_and_wait(topic, value, partition=0), 20)
            finally:
                await producer.stop()

        asyncio.run(run())
    else:
        from confluent_kafka import Producer

        errors: list[object] = []
        producer = Producer({"bootstrap.servers": bootstrap, "retry.backoff.ms": 50})
        producer.produce(topic, value, partition=0, on_delivery=lambda e, _m: errors.append(e))
        assert producer.flush(20) == 0
        assert errors == [None]


@dataclass
class Case:
    """A topic of its own, created before the fault is set, and its records."""

    broker: BrokerThread
    client: str
    topic: str

    def send(self, value: bytes = b"v") -> float:
        started = time.monotonic()
        produce_one(self.client, self.broker.bootstrap, self.topic, value)
        return time.monotonic() - started

    def stored(self) -> list[bytes | None]:
        return [r.value for r in internals(self.broker).log(self.topic, 0).iter_records()]


@pytest.fixture(params=CLIENTS)
def case(request: pytest.FixtureRequest, broker: BrokerThread) -> Iterator[Case]:
    topic = f"matrix-{uuid.uuid4().hex[:8]}"
    internals(broker).create_topic(topic, 1)
    yield Case(broker, request.param, topic)
    broker.faults.clear()


def test_an_error_answer_is_retried(case: Case) -> None:
    with case.broker.faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", times=2) as fault:
        case.send(b"once")
    assert fault.hits == 2
    assert case.stored() == [b"once"]


def test_a_delayed_answer_is_waited_for(case: Case) -> None:
    with case.broker.faults.delay("Produce", 0.5, times=1) as fault:
        took = case.send(b"late")
    assert fault.hits == 1
    assert took >= 0.5
    assert case.stored() == [b"late"]


def test_a_stalled_answer_comes_when_released(case: Case) -> None:
    fault = case.broker.faults.stall("Produce", topic=case.topic)
    done = threading.Event()
    sender = threading.Thread(target=lambda: (case.send(b"held"), done.set()))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while fault.hits == 0:
            assert time.monotonic() < deadline, "the produce never reached the broker"
            time.sleep(0.02)
        assert not done.wait(0.5)  # held while stalled
        fault.release()
        assert done.wait(20)
    finally:
        fault.release()
        fault.clear()
        sender.join(20)
    assert case.stored() == [b"held"]


def test_a_connection_dropped_before_the_answer_is_retried(case: Case) -> None:
    with case.broker.faults.drop_connection("Produce", before_answer=True, times=1) as fault:
        case.send(b"again")
    assert fault.hits == 1
    assert case.stored() == [b"again"]


def test_a_throttled_answer_loses_and_repeats_nothing(case: Case) -> None:
    """The throttled answer still carries the ack (each send is a fresh client, so how long a
    client then holds back is shown in test_faults.py and test_quotas.py, not here)."""
    with case.broker.faults.throttle("Produce", 300, times=1) as fault:
        case.send(b"first")
        case.send(b"second")
    assert fault.hits == 1
    assert case.stored() == [b"first", b"second"]


def test_refused_connections_are_retried(case: Case) -> None:
    """kafka-python and librdkafka retry the bootstrap; aiokafka's start() gives up at once
    ("Unable to bootstrap"), so the application retries once the broker is back."""
    with case.broker.faults.refuse_connections(1.0) as fault:
        if case.client == "aiokafka":
            from aiokafka.errors import KafkaConnectionError

            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
                case.send(b"patient")
            time.sleep(1.0)
        took = case.send(b"patient")
    assert fault.hits >= 1
    if case.client != "aiokafka":
        assert took >= 0.5
    assert case.stored() == [b"patient"]
