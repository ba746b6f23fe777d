"""`InternalTopic`: a keyed store over an internal topic's partitions. Changes apply at once and
are appended in order; partitions are held, loaded and released as leadership moves; a key
whose partition is elsewhere or loading gets Kafka's coordinator errors."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.coordinators import internal_topic
from kafkacompat.coordinators.internal_records import TRANSACTION_RECORDS, partition_for
from kafkacompat.coordinators.internal_topic import INTERNAL_TOPIC_CONFIGS, InternalTopic
from kafkacompat.errors import ErrorCode
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.testing import local_config

NAME = "__transaction_state"
PARTITIONS = 4


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[PartitionManager]:
    config = local_config(tmp_path / "data")
    made = PartitionManager(
        config.data_dir,
        topic_defaults(config),
        producer_expiration_ms=86_400_000,
        fsync_state=False,
    )
    yield made
    made.close()


def topic_over(manager: PartitionManager, created: list[str] | None = None) -> InternalTopic:
    async def create(name: str, partitions: int) -> None:
        if created is not None:
            created.append(name)
        if manager.topic(name) is None:
            await manager.create_topic(name, partitions, INTERNAL_TOPIC_CONFIGS)

    return InternalTopic(NAME, PARTITIONS, TRANSACTION_RECORDS, manager, create)


def txn(state: str, pid: int) -> bytes:
    return (
        b'{"pid": %d, "epoch": 0, "last_pid": -1, "last_epoch": -1, "timeout_ms": 1000, '
        b'"state": "%s", "partitions": [], "groups": [], "start_ms": -1, "last_update_ms": 5}'
        % (pid, state.encode())
    )


async def test_changes_apply_at_once_and_are_written_in_order(manager: PartitionManager) -> None:
    created: list[str] = []
    topic = topic_over(manager, created)
    topic.load_all_now()
    topic.put(b"a", txn("Empty", 1))
    topic.put(b"a", txn("Ongoing", 1))
    topic.put_many([(b"b", txn("Empty", 2)), (b"c", txn("Empty", 3))])
    topic.delete(b"c")
    assert (topic.get(b"a"), topic.get(b"c"), len(topic)) == (txn("Ongoing", 1), None, 2)
    assert created == [] and topic.pending
    written: list[bool] = []
    topic.when_written(lambda: written.append(True))
    await topic.flush()
    assert created == [NAME] and written == [True] and not topic.pending
    # Read back from the logs alone: the latest record per key, tombstones applied.
    again = topic_over(manager)
    again.load_all_now()
    assert dict(again.items()) == {b"a": txn("Ongoing", 1), b"b": txn("Empty", 2)}
    hosted = manager.partition(NAME, partition_for("a", PARTITIONS))
    assert hosted.log_end_offset >= 2


async def test_partitions_move_with_leadership(
    manager: PartitionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = topic_over(manager)
    writer.load_all_now()
    keys = {partition_for(k, PARTITIONS): k for k in ("t0", "t1", "t2", "t3", "t4", "t5", "t6")}
    for key in keys.values():
        writer.put(key.encode(), txn("Empty", 9))
    await writer.flush()
    topic = topic_over(manager)  # a broker that leads nothing yet
    some = sorted(keys)[0]
    assert topic.coordinator_error(keys[some]) == ErrorCode.NOT_COORDINATOR
    # The read on the worker thread waits until the test has seen the load in progress.
    seen = threading.Event()
    read = internal_topic._read_log

    def held_read(*args: Any) -> Any:
        assert seen.wait(10)
        return read(*args)

    monkeypatch.setattr(internal_topic, "_read_log", held_read)
    async with trio.open_nursery() as nursery:
        loaded: list[set[int]] = []

        async def acquire() -> None:
            loaded.append(await topic.acquire({some}))

        nursery.start_soon(acquire)
        await trio.testing.wait_all_tasks_blocked()
        assert topic.coordinator_error(keys[some]) == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        # Read under the partition's lock: no log-directory move swaps the log meanwhile.
        assert manager.partition(topic.name, some).lock.locked()
        seen.set()
    assert loaded == [{some}] and topic.owned == {some}
    assert topic.coordinator_error(keys[some]) == ErrorCode.NONE
    assert dict(topic.items()) == {keys[some].encode(): txn("Empty", 9)}
    # A change for a partition held elsewhere is not taken.
    other = next(p for p in keys if p != some)
    topic.put(keys[other].encode(), txn("Ongoing", 9))
    assert topic.get(keys[other].encode()) is None and not topic.pending
    topic.release({some})
    assert topic.owned == set() and len(topic) == 0
    assert topic.coordinator_error(keys[some]) == ErrorCode.NOT_COORDINATOR
