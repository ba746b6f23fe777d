"""Fault injection: stock clients meet a broker that errs, waits, stalls and hangs up on purpose."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.faults import Faults, api_key_of
from kafkacompat.protocol.headers import request_header_version, response_header_version
from kafkacompat.protocol.messages import APIS
from kafkacompat.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.heartbeat_request import HeartbeatRequest
from kafkacompat.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestTopic,
)
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.testing import BrokerThread, KafkaBroker
from tests.integration.clients import consume_aiokafka
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER


def batch(*values: bytes) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    now = int(time.time() * 1000)
    for i, value in enumerate(values):
        builder.append(i, now, None, value, [])
    return bytes(builder.build())


def values(broker: BrokerThread, topic: str, partition: int = 0) -> list[bytes | None]:
    return [r.value for r in internals(broker).log(topic, partition).iter_records()]


def send(client: RawClient, api_key: int, version: int, request: Any, correlation: int = 3) -> None:
    body = bytearray()
    APIS[api_key][0].ENCODERS[version](request, body)
    header = request_header_version(api_key, version)
    client.request(api_key, version, bytes(body), correlation, header)


def receive(client: RawClient, api_key: int, version: int) -> Any:
    frame = memoryview(client.read_frame())
    pos = 4 + (1 if response_header_version(api_key, version) >= 1 else 0)
    response, _ = APIS[api_key][1].DECODERS[version](frame, pos)
    return response


def produce_request(topic: str, *partitions: int) -> ProduceRequest:
    data = [PartitionProduceData(p, batch(f"p{p}".encode())) for p in partitions]
    return ProduceRequest(None, -1, 5000, [TopicProduceData(topic, data)])


def metadata_request(topic: str) -> MetadataRequest:
    return MetadataRequest(
        topics=[MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False
    )


@pytest.fixture
def raw(broker: BrokerThread) -> Iterator[RawClient]:
    with RawClient(broker.port) as client:
        yield client


# --- the worked example of the README -------------------------------------------------------------


def test_my_producer_survives_a_leader_change(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaProducer

    with kafka_broker.faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", times=2) as fault:
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, retry_backoff_ms=10)
        sent = producer.send("orders", b"paid").get(timeout=10)
        producer.close()

    assert fault.hits == 2  # the client really met both errors
    assert sent.offset == 0  # and stored the record once
    assert values(kafka_broker.thread, "orders") == [b"paid"]


# --- stock clients --------------------------------------------------------------------------------


def test_confluent_sees_a_non_retriable_error(broker: BrokerThread) -> None:
    from confluent_kafka import KafkaError, Producer

    internals(broker).create_topic("denied", 1)
    errors: list[Any] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000})
    with broker.faults.fail("Produce", ErrorCode.TOPIC_AUTHORIZATION_FAILED) as fault:
        producer.produce("denied", b"v", on_delivery=lambda err, msg: errors.append(err))
        assert producer.flush(15) == 0
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert fault.hits == 1
    assert values(broker, "denied") == []


def produce_three(broker: BrokerThread, topic: str) -> None:
    internals(broker).create_topic(topic, 1)
    with RawClient(broker.port) as client:
        response = client.call(0, 9, produce_request(topic, 0))
    assert response.responses[0].partition_responses[0].error_code == 0
    with RawClient(broker.port) as client:
        response = client.call(
            0,
            9,
            ProduceRequest(
                None,
                -1,
                5000,
                [TopicProduceData(topic, [PartitionProduceData(0, batch(b"a", b"b"))])],
            ),
        )
    assert response.responses[0].partition_responses[0].error_code == 0


def test_aiokafka_consumes_through_slow_fetches(broker: BrokerThread) -> None:
    produce_three(broker, "slow")
    with broker.faults.delay("Fetch", 0.3) as delay:
        started = time.monotonic()
        consumed = consume_aiokafka(broker.bootstrap, "slow", 3)
        elapsed = time.monotonic() - started
    assert [value for _, _, value, _ in consumed] == [b"p0", b"a", b"b"]
    assert delay.hits >= 1
    assert elapsed >= 0.3  # a later fetch may be in flight when the consumer stops
    assert broker.faults.hits("Fetch") == delay.hits


def test_aiokafka_refreshes_metadata_after_an_error(broker: BrokerThread) -> None:
    produce_three(broker, "flaky")
    fault = broker.faults.fail("Metadata", ErrorCode.LEADER_NOT_AVAILABLE, topic="flaky")
    consumed = consume_aiokafka(broker.bootstrap, "flaky", 3)
    assert len(consumed) == 3
    assert fault.hits == 1
    assert broker.faults.hits("Metadata") == 1
    assert not fault.active


def test_kafka_python_retries_a_dropped_produce_exactly_once(broker: BrokerThread) -> None:
    from kafka import KafkaProducer

    internals(broker).create_topic("dropped", 1)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, enable_idempotence=True, retry_backoff_ms=10
    )
    try:
        with broker.faults.drop_connection("Produce") as drop:
            sent = producer.send("dropped", b"once").get(timeout=15)
    finally:
        producer.close()
    assert drop.hits == 1
    assert sent.offset == 0
    assert values(broker, "dropped") == [b"once"]


def test_connections_are_refused_for_a_while(broker: BrokerThread) -> None:
    from kafka import KafkaProducer

    internals(broker).create_topic("later", 1)
    with broker.faults.refuse_connections(0.5) as refuse:
        started = time.monotonic()
        with RawClient(broker.port) as client:
            assert client.is_closed_by_peer()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, reconnect_backoff_ms=50)
        try:
            sent = producer.send("later", b"v").get(timeout=10)
        finally:
            producer.close()
    assert sent.offset == 0
    assert time.monotonic() - started >= 0.5
    assert refuse.hits >= 1


# --- hand-made requests ---------------------------------------------------------------------------


def test_throttle_time_is_in_the_response(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("throttled", 1)
    with broker.faults.throttle("Produce", 250) as throttle:
        response = raw.call(0, 9, produce_request("throttled", 0))
    assert response.throttle_time_ms == 250
    assert response.responses[0].partition_responses[0].error_code == 0
    assert throttle.hits == 1
    assert raw.call(0, 9, produce_request("throttled", 0)).throttle_time_ms == 0


def test_a_partition_fails_the_other_is_stored(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("halves", 2)
    fault = broker.faults.fail("Produce", NOT_LEADER, topic="halves", partition=1)
    response = raw.call(0, 9, produce_request("halves", 0, 1))
    answers = {p.index: p for p in response.responses[0].partition_responses}
    assert (answers[0].error_code, answers[0].base_offset) == (0, 0)
    assert (answers[1].error_code, answers[1].base_offset) == (NOT_LEADER, -1)
    assert values(broker, "halves", 0) == [b"p0"]
    assert values(broker, "halves", 1) == []
    assert fault.hits == 1 and not fault.active


def test_stalled_answers_wait_for_the_release(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("held", 1)
    stall = broker.faults.stall("Metadata")
    send(raw, 3, 9, metadata_request("held"))
    raw.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        raw.read_frame()
    assert stall.hits == 1
    stall.release()
    raw.sock.settimeout(5)
    response = receive(raw, 3, 9)
    assert [(t.name, t.error_code) for t in response.topics] == [("held", 0)]
    assert not stall.active
    assert broker.running.broker.pipeline.intercept is None


def test_drop_before_answering_stores_nothing(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("unanswered", 1)
    with broker.faults.drop_connection("Produce", before_answer=True):
        send(raw, 0, 9, produce_request("unanswered", 0))
        assert raw.is_closed_by_peer()
    assert values(broker, "unanswered") == []


def test_scope_client_id_and_clear(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("scoped", 1)
    faults = broker.faults
    pipeline = broker.running.broker.pipeline

    def metadata_error() -> int:
        response = raw.call(3, 9, metadata_request("scoped"))
        return response.topics[0].error_code  # type: ignore[no-any-return]

    with faults.fail("Metadata", NOT_LEADER, times=None) as fault:
        assert pipeline.intercept is faults
        assert [metadata_error(), metadata_error()] == [NOT_LEADER, NOT_LEADER]
    assert metadata_error() == 0
    assert fault.hits == 2 and pipeline.intercept is None
    with faults.fail("Metadata", NOT_LEADER, client_id="someone-else"):
        assert metadata_error() == 0
    with faults.fail("Metadata", NOT_LEADER, topic="other-topic"):
        assert metadata_error() == 0
    assert faults.hits("Metadata") == 2
    faults.delay("Fetch", 1.0)
    stall = faults.stall("Produce")
    faults.clear()
    assert faults.active == [] and faults.hits() == 0
    assert stall.released and pipeline.intercept is None


def test_bad_faults_are_refused_when_set(broker: BrokerThread) -> None:
    with pytest.raises(ValueError, match="unknown Kafka API"):
        broker.faults.fail("Produse", NOT_LEADER)
    with pytest.raises(ValueError, match="name no topics"):
        broker.faults.fail("Heartbeat", NOT_LEADER, topic="t")
    with pytest.raises(ValueError, match="times"):
        broker.faults.fail("Produce", NOT_LEADER, times=0)
    assert broker.faults.active == []


def test_a_subprocess_broker_sets_faults_only_while_running(tmp_path: Path) -> None:
    """Its faults go over its HTTP listener (tests/integration/test_faults_http.py)."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = KafkaBroker(tmp_path, mode="subprocess").faults


def codes(response: Any) -> list[int]:
    """Every error code in a response, top level first, then depth first."""
    found: list[int] = []

    def walk(obj: Any) -> None:
        for name in getattr(obj, "__slots__", ()):
            value = getattr(obj, name)
            if name == "error_code":
                found.append(value)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

    walk(response)
    return found


ERR = ErrorCode.COORDINATOR_NOT_AVAILABLE
ERROR_ANSWERS: list[tuple[str, int, Any, list[int]]] = [
    (
        "Fetch",
        12,
        FetchRequest(
            max_wait_ms=5000,
            topics=[
                FetchTopic(
                    "answers",
                    partitions=[FetchPartition(0, fetch_offset=0, partition_max_bytes=1024)],
                )
            ],
        ),
        [0, ERR],
    ),
    (
        "ListOffsets",
        7,
        ListOffsetsRequest(-1, topics=[ListOffsetsTopic("answers", [ListOffsetsPartition(0)])]),
        [ERR],
    ),
    ("FindCoordinator", 3, FindCoordinatorRequest("g"), [ERR]),
    ("FindCoordinator", 4, FindCoordinatorRequest(coordinator_keys=["g", "h"]), [0, ERR, ERR]),
    ("Heartbeat", 4, HeartbeatRequest("g", 1, "m"), [ERR]),
    ("InitProducerId", 4, InitProducerIdRequest(None, 60000), [ERR]),
    (
        "OffsetCommit",
        8,
        OffsetCommitRequest(
            "g",
            -1,
            "",
            topics=[OffsetCommitRequestTopic("answers", [OffsetCommitRequestPartition(0, 5)])],
        ),
        [ERR],
    ),
    (
        "OffsetFetch",
        7,
        OffsetFetchRequest("g", [OffsetFetchRequestTopic("answers", [0])]),
        [ERR, ERR],
    ),
]


@pytest.mark.parametrize(("api", "version", "request_", "expected"), ERROR_ANSWERS)
def test_error_answers(
    broker: BrokerThread, raw: RawClient, api: str, version: int, request_: Any, expected: list[int]
) -> None:
    internals(broker).create_topic("answers", 1)
    faults: Faults = broker.faults
    with faults.fail(api, ERR) as fault:
        started = time.monotonic()
        response = raw.call(api_key_of(api), version, request_)
    assert codes(response) == expected
    assert fault.hits == 1
    assert time.monotonic() - started < 2  # a failed Fetch does not long-poll


def test_stored_offsets_survive_a_failed_commit(broker: BrokerThread, raw: RawClient) -> None:
    internals(broker).create_topic("commits", 2)
    commit = OffsetCommitRequest(
        "g",
        -1,
        "",
        topics=[
            OffsetCommitRequestTopic(
                "commits", [OffsetCommitRequestPartition(0, 5), OffsetCommitRequestPartition(1, 7)]
            )
        ],
    )
    with broker.faults.fail("OffsetCommit", ERR, partition=1):
        response = raw.call(8, 8, commit)
    answered = {p.partition_index: p.error_code for p in response.topics[0].partitions}
    assert answered == {0: 0, 1: ERR}
    fetched = raw.call(9, 7, OffsetFetchRequest("g", [OffsetFetchRequestTopic("commits", [0, 1])]))
    offsets = {p.partition_index: p.committed_offset for p in fetched.topics[0].partitions}
    assert offsets == {0: 5, 1: -1}
