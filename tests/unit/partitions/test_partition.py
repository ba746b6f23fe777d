"""Partition: leader epochs kept on disk, a high watermark apart from the log end, and wake-ups
of only the fetches waiting on the partition that got data."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.leader_epoch import CHECKPOINT_NAME, LeaderEpochCache
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import iter_batches

TS = 1_700_000_000_000


def open_manager(data_dir: Path) -> PartitionManager:
    return PartitionManager(
        data_dir,
        topic_defaults(Config(data_dir=data_dir)),
        producer_expiration_ms=86_400_000,
        fsync_state=False,
    )


def batch(*values: bytes) -> bytes:
    return encode_batch([Record(i, TS + i, None, v) for i, v in enumerate(values)])


async def test_leader_epochs_survive_a_restart_in_kafkas_checkpoint_format(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 1)
    partition = manager.partition("t", 0)
    assert partition.leader_epoch == 0
    partition.leader_epochs.assign(3, 5)
    partition.leader_epochs.assign(2, 9)  # older than the latest: ignored
    manager.close()
    assert (tmp_path / "t-0" / CHECKPOINT_NAME).read_text() == "0\n2\n0 0\n3 5\n"
    reopened = open_manager(tmp_path)
    assert reopened.partition("t", 0).leader_epoch == 3
    assert reopened.partition("t", 0).leader_epochs.entries() == [(0, 0), (3, 5)]
    reopened.close()


def test_end_offset_for_an_epoch_as_kafkas_cache_answers(tmp_path: Path) -> None:
    cache = LeaderEpochCache(tmp_path, durable=False)
    assert cache.end_offset_for(0, 10) == (-1, -1)  # nothing known yet
    for epoch, start in ((1, 0), (3, 4), (6, 9)):
        cache.assign(epoch, start)
    assert cache.end_offset_for(6, 12) == (6, 12)  # the latest ends at the log end
    assert cache.end_offset_for(3, 12) == (3, 9)
    assert cache.end_offset_for(4, 12) == (3, 9)  # unknown in between: the one below
    assert cache.end_offset_for(0, 12) == (0, 0)  # below the first: its start
    assert cache.end_offset_for(7, 12) == (-1, -1)
    assert cache.end_offset_for(-1, 12) == (-1, -1)
    cache.truncate_from_end(5)
    assert cache.entries() == [(1, 0), (3, 4)]
    cache.truncate_from_start(6)
    assert cache.entries() == [(3, 6)]


def test_an_epoch_that_wrote_nothing_is_replaced_by_the_next_at_its_start(
    tmp_path: Path,
) -> None:
    """As Kafka's cache: epochs starting at or after a new epoch's start go, so starts stay
    increasing (two leaderships in a row at the same log end keep only the newer)."""
    cache = LeaderEpochCache(tmp_path, durable=False)
    for epoch, start in ((1, 0), (3, 4), (4, 4), (5, 4)):
        cache.assign(epoch, start)
    assert cache.entries() == [(1, 0), (5, 4)]
    assert cache.end_offset_for(3, 9) == (1, 4)


def test_damaged_checkpoint_is_ignored_and_rewritten(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_NAME).write_text("0\n5\n1 2\n")
    cache = LeaderEpochCache(tmp_path, durable=False)
    assert cache.entries() == []
    cache.assign(0, 0)
    assert (tmp_path / CHECKPOINT_NAME).read_text() == "0\n1\n0 0\n"


async def test_high_watermark_is_apart_from_the_log_end(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 1)
    partition = manager.partition("t", 0)
    await partition.append(batch(b"a", b"b"))
    await partition.append(batch(b"c"))
    assert (partition.high_watermark, partition.log_end_offset) == (3, 3)
    # As on a leader whose followers have not caught up: only committed batches are served.
    partition.high_watermark = 2
    offsets = [h.base_offset for _, h in iter_batches(partition.read(0, 1 << 20).read_bytes())]
    assert offsets == [0]
    assert partition.last_stable_offset() == 2
    with pytest.raises(KafkaError) as raised:
        partition.read(3, 1 << 20)
    assert raised.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    with pytest.raises(KafkaError) as raised:
        await partition.delete_records(3)
    assert raised.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    # The next append moves it to the log end again (this broker is the whole ISR).
    await partition.append(batch(b"d"))
    assert (partition.high_watermark, partition.log_end_offset) == (4, 4)
    manager.close()


async def test_an_append_wakes_only_the_fetches_of_its_partition(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 2)
    p0, p1 = manager.partition("t", 0), manager.partition("t", 1)
    woken: list[str] = []

    async def wait(name: str, partitions: list[object]) -> None:
        await manager.wait_for_data(partitions, trio.current_time() + 30)  # type: ignore[arg-type]
        woken.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, "on p0", [p0])
        nursery.start_soon(wait, "on p1", [p1])
        nursery.start_soon(wait, "on both", [p0, p1])
        await trio.testing.wait_all_tasks_blocked()
        assert (p0.waiting_fetches, p1.waiting_fetches) == (2, 2)
        await p0.append(batch(b"x"))
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woken) == ["on both", "on p0"]
        # The fetch waiting on both left p1's waiters when it woke.
        assert (p0.waiting_fetches, p1.waiting_fetches) == (0, 1)
        await p1.append(batch(b"y"))
    assert sorted(woken) == ["on both", "on p0", "on p1"]
    manager.close()


async def test_a_wait_ends_at_its_deadline_and_leaves_no_waiter(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 1)
    partition = manager.partition("t", 0)
    with trio.fail_after(5):
        await manager.wait_for_data([partition], trio.current_time() + 0.01)
    assert partition.waiting_fetches == 0
    manager.close()


async def test_appends_to_a_deleted_topic_are_refused(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 1)
    partition = manager.partition("t", 0)
    await manager.delete_topic("t")
    with pytest.raises(KafkaError) as raised:
        await partition.append(batch(b"late"))
    assert raised.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert manager.partition_or_none("t", 0) is None
    manager.close()


async def test_host_only_keeps_exactly_the_given_partitions(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    await manager.create_topic("t", 3, hosted=[0])
    assert [p.index for p in manager.partitions()] == [0]
    await manager.partition("t", 0).append(batch(b"kept"))
    await manager.host_only("t", [0, 2])
    assert sorted(p.index for p in manager.partitions()) == [0, 2]
    dropped = manager.partition("t", 0)
    await manager.host_only("t", [2])
    assert dropped.deleted
    assert [p.index for p in manager.partitions()] == [2]
    with pytest.raises(KafkaError) as refused:
        manager.partition("t", 0)
    assert refused.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t-")) == ["t-2"]
    await manager.delete_topic("t")
    assert manager.partitions() == [] and manager.topic("t") is None
    manager.close()
