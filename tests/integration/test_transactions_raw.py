"""Transaction APIs over hand-made requests: error codes per version, verify-only
AddPartitionsToTxn, produce verification, fetch's aborted transactions, unstable offsets and the
introspection APIs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import (
    add_offsets_to_txn_request,
    describe_transactions_request,
    end_txn_request,
    list_transactions_request,
)
from kafkacompat.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkacompat.protocol.messages.describe_producers_request import (
    DescribeProducersRequest,
    TopicRequest,
)
from kafkacompat.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestTopic,
)
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.txn_offset_commit_request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.raw import RawClient
from tests.integration.test_produce import init_producer_id
from tests.internals import internals

E = ErrorCode


@pytest.fixture
def raw(broker: BrokerThread) -> Iterator[RawClient]:
    internals(broker).create_topic("t", 2)
    with RawClient(broker.port) as client:
        yield client


def add_partitions(
    raw: RawClient, txn: str, pid: int, epoch: int, partitions: list[int], version: int = 3
) -> dict[int, int]:
    request = AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=txn,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[AddPartitionsToTxnTopic("t", partitions)],
    )
    response = raw.call(24, version, request)
    (topic,) = response.results_by_topic_v3_and_below
    return {r.partition_index: r.partition_error_code for r in topic.results_by_partition}


def end_txn(raw: RawClient, txn: str, pid: int, epoch: int, commit: bool, version: int = 3) -> int:
    request = end_txn_request.EndTxnRequest(txn, pid, epoch, commit)
    response = raw.call(26, version, request)
    return int(response.error_code)


def txn_batch(pid: int, epoch: int, values: list[bytes], seq: int = 0) -> bytes:
    records = [Record(i, 1_700_000_000_000, None, v) for i, v in enumerate(values)]
    return encode_batch(
        records, producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True
    )


def produce_txn(raw: RawClient, txn: str | None, partition: int, batch: bytes) -> int:
    request = ProduceRequest(
        transactional_id=txn,
        acks=-1,
        timeout_ms=5000,
        topic_data=[TopicProduceData("t", [PartitionProduceData(partition, batch)])],
    )
    response = raw.call(0, 9, request)
    return int(response.responses[0].partition_responses[0].error_code)


def fetch(raw: RawClient, isolation: int, offset: int = 0) -> Any:
    request = FetchRequest(
        max_wait_ms=0,
        isolation_level=isolation,
        topics=[FetchTopic(topic="t", partitions=[FetchPartition(0, -1, offset, -1, -1, 1 << 20)])],
    )
    response = raw.call(1, 11, request)
    return response.responses[0].partitions[0]


def begin(raw: RawClient, txn: str, partitions: list[int]) -> tuple[int, int]:
    init = init_producer_id(raw, transactional_id=txn)
    assert init.error_code == E.NONE
    assert add_partitions(
        raw, txn, init.producer_id, init.producer_epoch, partitions
    ) == dict.fromkeys(partitions, E.NONE)
    return init.producer_id, init.producer_epoch


def test_fenced_error_depends_on_version(raw: RawClient) -> None:
    pid, epoch = begin(raw, "v", [0])
    assert add_partitions(raw, "v", pid, epoch + 5, [0], version=1) == {0: E.INVALID_PRODUCER_EPOCH}
    assert add_partitions(raw, "v", pid, epoch + 5, [0], version=2) == {0: E.PRODUCER_FENCED}
    assert add_partitions(raw, "v", pid + 9, epoch, [0]) == {0: E.INVALID_PRODUCER_ID_MAPPING}
    assert end_txn(raw, "v", pid, epoch + 5, True, version=1) == E.INVALID_PRODUCER_EPOCH
    assert end_txn(raw, "v", pid, epoch + 5, True, version=2) == E.PRODUCER_FENCED
    stale = init_producer_id(raw, transactional_id="v", producer_id=pid, epoch=epoch + 5, version=3)
    assert stale.error_code == E.INVALID_PRODUCER_EPOCH
    stale = init_producer_id(raw, transactional_id="v", producer_id=pid, epoch=epoch + 5, version=4)
    assert stale.error_code == E.PRODUCER_FENCED
    # Unknown partitions fail; the others of the request are not attempted.
    request_errors = add_partitions(raw, "v", pid, epoch, [1, 7])
    assert request_errors == {1: E.OPERATION_NOT_ATTEMPTED, 7: E.UNKNOWN_TOPIC_OR_PARTITION}
    assert end_txn(raw, "v", pid, epoch, True) == E.NONE
    assert end_txn(raw, "v", pid, epoch, False) == E.INVALID_TXN_STATE


def test_invalid_transaction_timeout(broker: BrokerThread, raw: RawClient) -> None:
    from kafkacompat.protocol.messages import init_producer_id_request

    request = init_producer_id_request.InitProducerIdRequest("x", 900_001, -1, -1)
    response = raw.call(22, 4, request)
    assert (response.error_code, response.producer_id) == (E.INVALID_TRANSACTION_TIMEOUT, -1)


def test_verify_only_add_partitions_v4(raw: RawClient) -> None:
    pid, epoch = begin(raw, "batched", [0])
    request = AddPartitionsToTxnRequest(
        transactions=[
            AddPartitionsToTxnTransaction(
                "batched", pid, epoch, True, [AddPartitionsToTxnTopic("t", [0, 1])]
            ),
            AddPartitionsToTxnTransaction(
                "missing", 77, 0, True, [AddPartitionsToTxnTopic("t", [0])]
            ),
        ]
    )
    response = raw.call(24, 4, request)
    assert response.error_code == E.NONE
    found = {
        (r.transactional_id, p.partition_index): p.partition_error_code
        for r in response.results_by_transaction
        for t in r.topic_results
        for p in t.results_by_partition
    }
    assert found == {
        ("batched", 0): E.NONE,
        ("batched", 1): E.INVALID_TXN_STATE,
        ("missing", 0): E.INVALID_PRODUCER_ID_MAPPING,
    }


def test_produce_must_target_a_partition_of_the_transaction(raw: RawClient) -> None:
    pid, epoch = begin(raw, "p", [0])
    assert produce_txn(raw, "p", 1, txn_batch(pid, epoch, [b"x"])) == E.INVALID_TXN_STATE
    assert produce_txn(raw, None, 0, txn_batch(pid, epoch, [b"x"])) == E.INVALID_PRODUCER_ID_MAPPING
    assert produce_txn(raw, "p", 0, txn_batch(pid, epoch + 1, [b"x"])) == E.INVALID_PRODUCER_EPOCH
    assert produce_txn(raw, "p", 0, txn_batch(pid, epoch, [b"ok"])) == E.NONE


def test_fetch_reports_aborted_transactions_and_stops_at_the_lso(raw: RawClient) -> None:
    pid, epoch = begin(raw, "f", [0])
    assert produce_txn(raw, "f", 0, txn_batch(pid, epoch, [b"a", b"b"])) == E.NONE  # 0-1
    assert end_txn(raw, "f", pid, epoch, False) == E.NONE  # marker 2
    assert add_partitions(raw, "f", pid, epoch, [0]) == {0: E.NONE}
    assert produce_txn(raw, "f", 0, txn_batch(pid, epoch, [b"c"], seq=2)) == E.NONE  # 3, open
    committed = fetch(raw, isolation=1)
    assert (committed.high_watermark, committed.last_stable_offset) == (4, 3)
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions] == [(pid, 0)]
    assert len(committed.records) > 0
    assert fetch(raw, isolation=1, offset=3).records == b""
    uncommitted = fetch(raw, isolation=0)
    assert (uncommitted.last_stable_offset, uncommitted.aborted_transactions) == (3, None)
    assert len(uncommitted.records) > len(committed.records)
    assert end_txn(raw, "f", pid, epoch, True) == E.NONE  # marker 4
    after = fetch(raw, isolation=1, offset=3)
    assert (after.last_stable_offset, after.aborted_transactions) == (5, [])


def test_transactional_offsets_are_unstable_until_commit(
    broker: BrokerThread, raw: RawClient
) -> None:
    pid, epoch = begin(raw, "o", [0])
    request = add_offsets_to_txn_request.AddOffsetsToTxnRequest("o", pid, epoch, "grp")
    assert raw.call(25, 3, request).error_code == E.NONE
    commit = TxnOffsetCommitRequest(
        "o",
        "grp",
        pid,
        epoch,
        topics=[TxnOffsetCommitRequestTopic("t", [TxnOffsetCommitRequestPartition(0, 42)])],
    )
    response = raw.call(28, 3, commit)
    assert [(p.partition_index, p.error_code) for p in response.topics[0].partitions] == [(0, 0)]
    wrong_group = TxnOffsetCommitRequest("o", "other", pid, epoch, topics=commit.topics)
    response = raw.call(28, 3, wrong_group)
    assert response.topics[0].partitions[0].error_code == E.INVALID_TXN_STATE

    def fetched(require_stable: bool) -> tuple[int, int]:
        request = OffsetFetchRequest(
            "grp", [OffsetFetchRequestTopic("t", [0])], require_stable=require_stable
        )
        response = raw.call(9, 7, request)
        partition = response.topics[0].partitions[0]
        return partition.committed_offset, partition.error_code

    assert fetched(True) == (-1, E.UNSTABLE_OFFSET_COMMIT)
    assert fetched(False) == (-1, E.NONE)
    assert end_txn(raw, "o", pid, epoch, True) == E.NONE
    assert fetched(True) == (42, E.NONE)


def test_describe_and_list_transactions_and_producers(raw: RawClient) -> None:
    pid, epoch = begin(raw, "d", [1])
    assert produce_txn(raw, "d", 1, txn_batch(pid, epoch, [b"x", b"y"])) == E.NONE
    request = describe_transactions_request.DescribeTransactionsRequest(["d", "nobody"])
    found, missing = raw.call(65, 0, request).transaction_states
    assert (missing.transactional_id, missing.error_code) == (
        "nobody",
        E.TRANSACTIONAL_ID_NOT_FOUND,
    )
    assert (found.error_code, found.transaction_state, found.producer_id) == (0, "Ongoing", pid)
    assert (found.producer_epoch, found.transaction_timeout_ms) == (epoch, 60000)
    assert [(t.topic, t.partitions) for t in found.topics] == [("t", [1])]
    assert found.transaction_start_time_ms > 0

    def listed(states: list[str], pids: list[int]) -> tuple[list[str], list[tuple[str, str]]]:
        request = list_transactions_request.ListTransactionsRequest(states, pids)
        response = raw.call(66, 1, request)
        return response.unknown_state_filters, [
            (t.transactional_id, t.transaction_state) for t in response.transaction_states
        ]

    assert listed([], []) == ([], [("d", "Ongoing")])
    assert listed(["Ongoing", "Bogus"], [pid]) == (["Bogus"], [("d", "Ongoing")])
    assert listed(["Empty"], []) == ([], [])
    assert listed(["Bogus"], []) == (["Bogus"], [])
    assert listed([], [pid + 1]) == ([], [])

    request = DescribeProducersRequest([TopicRequest("t", [1, 9])])
    (topic,) = raw.call(61, 0, request).topics
    active, unknown = topic.partitions
    assert unknown.error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    (producer,) = active.active_producers
    assert (producer.producer_id, producer.producer_epoch, producer.last_sequence) == (
        pid,
        epoch,
        1,
    )
    assert producer.current_txn_start_offset == 0


def test_idle_transactional_ids_expire(tmp_path: Path) -> None:
    settings = {
        "transactional.id.expiration.ms": 300,
        "transaction.remove.expired.transaction.cleanup.interval.ms": 100,
    }
    config = local_config(tmp_path / "data", settings=settings)
    with running_broker(config) as broker, RawClient(broker.port) as raw:
        assert init_producer_id(raw, transactional_id="idle").error_code == E.NONE
        request = describe_transactions_request.DescribeTransactionsRequest(["idle"])
        (state,) = raw.call(65, 0, request).transaction_states
        assert (state.error_code, state.transaction_state) == (E.NONE, "Empty")
        deadline = time.monotonic() + 5
        while broker.running.broker.transactions.coordinator.describe("idle") is not None:
            assert time.monotonic() < deadline, "not expired within 5 s"
            time.sleep(0.05)
        (state,) = raw.call(65, 0, request).transaction_states
        assert state.error_code == E.TRANSACTIONAL_ID_NOT_FOUND


def test_write_txn_markers_aborts_a_hanging_transaction(
    broker: BrokerThread, raw: RawClient
) -> None:
    from kafkacompat.protocol.messages.write_txn_markers_request import (
        WritableTxnMarker,
        WritableTxnMarkerTopic,
        WriteTxnMarkersRequest,
    )

    pid, epoch = begin(raw, "hang", [0])
    assert produce_txn(raw, "hang", 0, txn_batch(pid, epoch, [b"stuck"])) == E.NONE
    replicas = internals(broker)
    assert replicas.last_stable_offset("t", 0) == 0

    def markers(epoch: int, partitions: list[int]) -> list[tuple[int, int]]:
        topic = WritableTxnMarkerTopic("t", partitions)
        request = WriteTxnMarkersRequest([WritableTxnMarker(pid, epoch, False, [topic], 0)])
        (result,) = raw.call(27, 1, request).markers
        return [(p.partition_index, p.error_code) for p in result.topics[0].partitions]

    assert markers(epoch, [0, 5]) == [(0, E.NONE), (5, E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert replicas.last_stable_offset("t", 0) == 2
    assert [(a.producer_id, a.first_offset) for a in fetch(raw, 1).aborted_transactions] == [
        (pid, 0)
    ]
    assert markers(epoch - 1, [0]) == [(0, E.INVALID_PRODUCER_EPOCH)]


def test_kafka_python_admin_sees_and_aborts_transactions(
    broker: BrokerThread, raw: RawClient
) -> None:
    from kafka import TopicPartition
    from kafka.admin import AbortTransactionSpec, KafkaAdminClient

    pid, epoch = begin(raw, "adm", [1])
    assert produce_txn(raw, "adm", 1, txn_batch(pid, epoch, [b"x"])) == E.NONE
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (described,) = admin.describe_transactions(["adm"]).values()
        assert (described.state.value, described.producer_id) == ("Ongoing", pid)
        assert described.topic_partitions == {TopicPartition("t", 1)}
        listed = admin.list_transactions(state_filters=["Ongoing"])
        assert [(t.transactional_id, t.producer_id) for t in listed[1]] == [("adm", pid)]
        states = admin.describe_producers([TopicPartition("t", 1)])
        (producer,) = states[TopicPartition("t", 1)].active_producers
        assert (producer.producer_id, producer.current_transaction_start_offset) == (pid, 0)
        spec = AbortTransactionSpec(TopicPartition("t", 1), pid, epoch, 0)
        admin.abort_transaction(spec)
    finally:
        admin.close()
    assert internals(broker).last_stable_offset("t", 1) == 2
