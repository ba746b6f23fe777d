"""The transaction service on real partitions: markers written under the partition lock,
offsets settled, and a failed marker write retried by the timer task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata
from kafkacompat.coordinators.group_service import GroupService
from kafkacompat.coordinators.internal_records import GROUP_RECORDS, TRANSACTION_RECORDS
from kafkacompat.coordinators.internal_topic import INTERNAL_TOPIC_CONFIGS, InternalTopic
from kafkacompat.coordinators.transaction_service import TransactionService
from kafkacompat.coordinators.transaction_state import TxnState
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import iter_batches
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import AppendResult, ReadResult
from kafkacompat.storage.topic_names import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kafkacompat.testing import local_config


class ReplicaManager:
    """The calls these tests make, by topic and partition index."""

    def __init__(self, manager: PartitionManager) -> None:
        self.manager = manager

    async def append(self, topic: str, index: int, data: bytes, **kw: Any) -> AppendResult:
        return await self.manager.partition(topic, index).append(data, **kw)

    def read(self, topic: str, index: int, offset: int, max_bytes: int) -> ReadResult:
        return self.manager.partition(topic, index).read(offset, max_bytes)

    def last_stable_offset(self, topic: str, index: int) -> int:
        return self.manager.partition(topic, index).last_stable_offset()

    def log(self, topic: str, index: int) -> PartitionLog:
        return self.manager.partition(topic, index).log

    def partition_lock(self, topic: str, index: int) -> trio.Lock:
        return self.manager.partition(topic, index).lock

    async def delete_records(self, topic: str, index: int, offset: int) -> int:
        return await self.manager.partition(topic, index).delete_records(offset)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[ReplicaManager, TransactionService]]:
    config = local_config(tmp_path / "data")
    manager = PartitionManager(
        config.data_dir,
        topic_defaults(config),
        producer_expiration_ms=config.get_int("producer.id.expiration.ms"),
        fsync_state=False,
    )

    async def create(name: str, partitions: int) -> None:
        await manager.create_topic(name, partitions, INTERNAL_TOPIC_CONFIGS)

    offsets = InternalTopic(OFFSETS_TOPIC, 4, GROUP_RECORDS, manager, create)
    txn_state = InternalTopic(TRANSACTION_STATE_TOPIC, 4, TRANSACTION_RECORDS, manager, create)
    offsets.load_all_now()
    txn_state.load_all_now()
    groups = GroupService(config, offsets)
    service = TransactionService(
        config, manager.state, manager, groups.coordinator, txn_state, offsets
    )
    await manager.create_topic("t", 2)
    yield ReplicaManager(manager), service
    manager.close()


def batch(pid: int, epoch: int, value: bytes, seq: int = 0) -> bytes:
    record = Record(0, 1_700_000_000_000, None, value)
    return encode_batch(
        [record], producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True
    )


def controls(replicas: ReplicaManager, partition: int) -> list[tuple[int, int]]:
    data = replicas.read("t", partition, 0, 1 << 20).read_bytes()
    return [(h.base_offset, h.producer_epoch) for _, h in iter_batches(data) if h.is_control]


async def test_commit_writes_markers_and_settles_offsets(
    parts: tuple[ReplicaManager, TransactionService],
) -> None:
    replicas, service = parts
    coordinator = service.coordinator
    init = coordinator.init_producer_id("x", 10_000)
    pid, epoch = init.producer_id, init.producer_epoch
    assert coordinator.add_partitions("x", pid, epoch, [("t", 0), ("t", 1)]) == ErrorCode.NONE
    assert coordinator.add_offsets("x", pid, epoch, "g") == ErrorCode.NONE
    await replicas.append("t", 0, batch(pid, epoch, b"a"))
    service.offsets.add("g", pid, {("t", 0): OffsetAndMetadata(1)})
    assert replicas.last_stable_offset("t", 0) == 0
    assert service.offsets.is_pending("g", ("t", 0))
    error, completion = coordinator.end_txn("x", pid, epoch, commit=True)
    assert error == ErrorCode.NONE and completion is not None
    await service.complete(completion)
    assert (controls(replicas, 0), controls(replicas, 1)) == ([(1, epoch)], [(0, epoch)])
    assert (replicas.last_stable_offset("t", 0), replicas.last_stable_offset("t", 1)) == (2, 1)
    committed = service.groups.fetch_offsets("g", [("t", 0)])[("t", 0)]
    assert committed is not None and committed.offset == 1
    assert not service.offsets.is_pending("g", ("t", 0))
    txn = coordinator.describe("x")
    assert txn is not None and txn.state is TxnState.COMPLETE_COMMIT


async def test_failed_marker_write_is_retried(
    parts: tuple[ReplicaManager, TransactionService], monkeypatch: Any
) -> None:
    replicas, service = parts
    coordinator = service.coordinator
    init = coordinator.init_producer_id("y", 10_000)
    pid, epoch = init.producer_id, init.producer_epoch
    coordinator.add_partitions("y", pid, epoch, [("t", 0)])
    await replicas.append("t", 0, batch(pid, epoch, b"a"))
    partition = replicas.manager.partition("t", 0)
    real = partition.write_marker
    failures = [KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, "disk")]

    async def flaky(*args: Any, **kwargs: Any) -> int:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(partition, "write_marker", flaky)
    _, completion = coordinator.end_txn("y", pid, epoch, commit=False)
    assert completion is not None
    await service.complete_or_retry(completion)
    txn = coordinator.describe("y")
    assert txn is not None and txn.state is TxnState.PREPARE_ABORT
    assert controls(replicas, 0) == []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run_timers)
            while txn.state is not TxnState.COMPLETE_ABORT:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert controls(replicas, 0) == [(1, epoch)]
    assert replicas.log("t", 0).txn_index.collect(0, 10)[0].first_offset == 0


async def test_verification_happens_under_the_partition_lock(
    parts: tuple[ReplicaManager, TransactionService],
) -> None:
    replicas, service = parts
    coordinator = service.coordinator
    init = coordinator.init_producer_id("z", 10_000)
    pid, epoch = init.producer_id, init.producer_epoch
    coordinator.add_partitions("z", pid, epoch, [("t", 0)])

    def verify() -> None:
        code = coordinator.check_produce("z", pid, epoch, ("t", 0))
        if code != ErrorCode.NONE:
            raise KafkaError(code)

    outcome: list[ErrorCode] = []

    async def produce() -> None:
        try:
            await replicas.append("t", 0, batch(pid, epoch, b"late"), verify=verify)
            outcome.append(ErrorCode.NONE)
        except KafkaError as exc:
            outcome.append(exc.code)

    async with trio.open_nursery() as nursery, replicas.partition_lock("t", 0):
        nursery.start_soon(produce)
        await trio.testing.wait_all_tasks_blocked()
        verify()  # the transaction is still open when the produce request arrives
        coordinator.end_txn("z", pid, epoch, commit=True)
    assert outcome == [ErrorCode.INVALID_TXN_STATE]
    assert replicas.log("t", 0).log_end_offset == 0


async def test_last_stable_offset_is_not_below_the_log_start(
    parts: tuple[ReplicaManager, TransactionService],
) -> None:
    replicas, service = parts
    init = service.coordinator.init_producer_id("w", 10_000)
    service.coordinator.add_partitions("w", init.producer_id, 0, [("t", 0)])
    await replicas.append("t", 0, batch(init.producer_id, 0, b"a"))
    await replicas.append("t", 0, batch(init.producer_id, 0, b"b", seq=1))
    assert (replicas.last_stable_offset("t", 0), replicas.log("t", 0).high_watermark) == (0, 2)
    assert await replicas.delete_records("t", 0, 1) == 1
    assert replicas.last_stable_offset("t", 0) == 1
