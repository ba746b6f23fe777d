"""A partition following its leader: verbatim appends that keep leader epochs, producer state
and aborted transactions as the leader has them; truncation of a divergent tail (KIP-101/279)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from kafkacompat.clock import now_ms
from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.partitions.partition import Partition
from kafkacompat.partitions.producer_snapshots import snapshot_files
from kafkacompat.protocol.control_records import control_batch
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.storage.results import AppendResult
from kafkacompat.storage.txn_index import AbortedTxn

#: Recent: producers idle for a day are expired when state is snapshotted.
TS = now_ms() - 60_000


def open_manager(data_dir: Path) -> PartitionManager:
    return PartitionManager(
        data_dir,
        topic_defaults(Config(data_dir=data_dir)),
        producer_expiration_ms=86_400_000,
        fsync_state=False,
    )


async def open_partition(data_dir: Path) -> tuple[PartitionManager, Partition]:
    manager = open_manager(data_dir)
    if manager.topic("t") is None:
        await manager.create_topic("t", 1)
    return manager, manager.partition("t", 0)


def records(count: int, first: int = 0) -> list[Record]:
    return [Record(first + i, TS + first + i, None, b"v%d" % (first + i)) for i in range(count)]


def plain(count: int, *, base: int = 0, epoch: int = -1) -> bytes:
    return encode_batch(records(count, base), partition_leader_epoch=epoch)


def idempotent(count: int, seq: int, *, pid: int = 7, transactional: bool = False) -> bytes:
    return encode_batch(
        records(count),
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        transactional=transactional,
    )


#: The leader's idempotent batches, kept to be retried against the follower-turned-leader.
FIRST = idempotent(2, 0)  # offsets 3..4
THIRD = idempotent(3, 2)  # offsets 9..11
LEADER_EPOCHS = [(0, 0), (1, 5), (2, 9)]
ABORTED = [AbortedTxn(9, 5, 8, 9)]


async def write_leader(leader: Partition) -> None:
    """Epoch 0: 0..2 plain, 3..4 idempotent; epoch 1: 5..6 transactional, 7 plain, 8 abort
    marker; epoch 2: 9..11 idempotent, 12..13 plain."""
    await leader.append(plain(3))
    await leader.append(FIRST)
    leader.leader_epochs.assign(1, leader.log_end_offset)
    await leader.append(idempotent(2, 0, pid=9, transactional=True))
    await leader.append(plain(1))
    await leader.write_marker(control_batch(9, 0, commit=False, timestamp=TS + 8), commit=False)
    leader.leader_epochs.assign(2, leader.log_end_offset)
    await leader.append(THIRD)
    await leader.append(plain(2))
    assert leader.log_end_offset == 14


def leader_bytes(leader: Partition, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
    return leader.log.read(offset, max_bytes).read_bytes()


async def replicate(leader: Partition, follower: Partition, max_bytes: int = 1 << 20) -> None:
    """Fetch from the leader until the follower has its log end."""
    while follower.log_end_offset < leader.log_end_offset:
        chunk = leader_bytes(leader, follower.log_end_offset, max_bytes)
        assert await follower.append_as_follower(chunk) == follower.log_end_offset


@pytest.mark.parametrize("max_bytes", [1, 300, 1 << 20])
async def test_follower_keeps_the_leaders_epochs_and_transactions(
    tmp_path: Path, max_bytes: int
) -> None:
    leader_manager, leader = await open_partition(tmp_path / "leader")
    follower_manager, follower = await open_partition(tmp_path / "follower")
    await write_leader(leader)
    await replicate(leader, follower, max_bytes)
    assert follower.log_end_offset == 14
    assert follower.high_watermark == 0  # the caller takes the leader's
    assert leader_bytes(follower) == leader_bytes(leader)
    assert follower.leader_epochs.entries() == leader.leader_epochs.entries() == LEADER_EPOCHS
    assert follower.log.txn_index.collect(0, 14) == ABORTED
    assert follower.aborted_transactions(0, 14) == leader.aborted_transactions(0, 14)
    follower_state = follower.producer_state_now()
    assert follower_state.entries == leader.producer_state_now().entries
    assert follower_state.ongoing == {}
    # A fetch answered again, or empty, changes nothing.
    assert await follower.append_as_follower(leader_bytes(leader, 9)) == 14
    assert await follower.append_as_follower(b"") == 14
    assert follower.leader_epochs.entries() == LEADER_EPOCHS
    leader_manager.close()
    follower_manager.close()


async def test_follower_turned_leader_detects_duplicates(tmp_path: Path) -> None:
    leader_manager, leader = await open_partition(tmp_path / "leader")
    follower_manager, follower = await open_partition(tmp_path / "follower")
    await write_leader(leader)
    await replicate(leader, follower)
    follower.leader_epochs.assign(3, follower.log_end_offset)  # the failover
    follower.high_watermark = follower.log_end_offset
    assert await follower.append(THIRD) == AppendResult(9, 11, -1, 0, 0)
    assert await follower.append(FIRST) == AppendResult(3, 4, -1, 0, 0)
    assert follower.log_end_offset == 14
    with pytest.raises(KafkaError) as raised:
        await follower.append(idempotent(1, 9))
    assert raised.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    appended = await follower.append(idempotent(1, 5))
    assert (appended.base_offset, appended.last_offset) == (14, 14)
    assert follower.leader_epochs.entries() == [*LEADER_EPOCHS, (3, 14)]
    leader_manager.close()
    follower_manager.close()


async def test_truncation_removes_the_tail_and_survives_a_restart(tmp_path: Path) -> None:
    leader_manager, leader = await open_partition(tmp_path / "leader")
    follower_manager, follower = await open_partition(tmp_path / "follower")
    directory = follower.log.directory
    await write_leader(leader)
    await replicate(leader, follower)
    follower.high_watermark = 14
    follower.snapshot_producer_state()
    assert [offset for offset, _ in snapshot_files(directory)] == [14]

    await follower.truncate_to(7)  # the plain batch at 7 and everything after go
    assert follower.log_end_offset == 7
    assert follower.high_watermark == 7
    assert follower.leader_epochs.entries() == [(0, 0), (1, 5)]
    assert snapshot_files(directory) == []
    assert follower.aborted_transactions(0, 7) == []
    assert follower.producer_state_now().ongoing == {9: 5}  # open again: its marker went
    assert follower.last_stable_offset() == 5
    await follower.truncate_to(7)  # at the log end: nothing to do
    assert follower.log_end_offset == 7

    follower_manager.close()
    follower_manager, follower = await open_partition(tmp_path / "follower")
    assert follower.log_end_offset == 7
    assert follower.leader_epochs.entries() == [(0, 0), (1, 5)]
    assert follower.aborted_transactions(0, 7) == []
    assert follower.producer_state_now().ongoing == {9: 5}
    assert follower.producer_state_now().entries[7].last_seq == 1

    await replicate(leader, follower)  # catches up again from 7
    assert leader_bytes(follower) == leader_bytes(leader)
    assert follower.leader_epochs.entries() == LEADER_EPOCHS
    assert follower.aborted_transactions(0, 14) == ABORTED
    assert follower.producer_state_now().entries == leader.producer_state_now().entries
    leader_manager.close()
    follower_manager.close()


async def test_truncating_below_the_log_start_starts_over_there(tmp_path: Path) -> None:
    manager, follower = await open_partition(tmp_path)
    await follower.append_as_follower(plain(3, epoch=0) + plain(2, base=3, epoch=1))
    follower.high_watermark = 5
    await follower.truncate_fully(100)  # behind the leader's log start
    assert (follower.log_start_offset, follower.log_end_offset) == (100, 100)
    assert follower.leader_epochs.entries() == []
    assert follower.high_watermark == 100
    assert await follower.append_as_follower(plain(2, base=100, epoch=4)) == 102
    assert follower.leader_epochs.entries() == [(4, 100)]
    manager.close()


async def follower_with(tmp_path: Path, *batches: tuple[int, int, int]) -> Partition:
    """A follower holding ``(epoch, base offset, count)`` batches."""
    _, follower = await open_partition(tmp_path)
    data = b"".join(plain(count, base=base, epoch=epoch) for epoch, base, count in batches)
    await follower.append_as_follower(data)
    return follower


async def test_end_offset_for_an_epoch(tmp_path: Path) -> None:
    follower = await follower_with(tmp_path, (0, 0, 5), (1, 5, 3))
    assert follower.leader_epochs.entries() == [(0, 0), (1, 5)]
    assert follower.end_offset_for_epoch(1) == (1, 8)
    assert follower.end_offset_for_epoch(0) == (0, 5)
    assert follower.end_offset_for_epoch(2) == (-1, -1)
    assert follower.end_offset_for_epoch(-1) == (-1, -1)


async def test_two_quick_failovers_truncate_by_epoch(tmp_path: Path) -> None:
    # Follower [0@0, 1@5] up to 8; the leader [0@0, 2@5] never had epoch 1's records. Asked
    # for epoch 1, it answers with epoch 0 ending at 5.
    follower = await follower_with(tmp_path, (0, 0, 5), (1, 5, 3))
    follower.high_watermark = 8  # truncating to the HW (pre-KIP-101) would keep epoch 1's data
    assert follower.diverging_truncation_offset(0, 5) == 5
    await follower.truncate_to(5)
    assert follower.leader_epochs.entries() == [(0, 0)]
    assert follower.log_end_offset == 5


async def test_leader_knows_our_epoch_with_another_end(tmp_path: Path) -> None:
    follower = await follower_with(tmp_path, (0, 0, 5), (1, 5, 5))
    assert follower.diverging_truncation_offset(1, 7) == 7  # shorter on the leader
    assert follower.diverging_truncation_offset(1, 20) == 10  # never above our log end
    assert follower.diverging_truncation_offset(0, 5) == 5
    assert follower.diverging_truncation_offset(0, 3) == 3  # epoch 0 ended sooner there


async def test_leader_epoch_unknown_here(tmp_path: Path) -> None:
    # Follower [0@0, 2@5] up to 9; the leader [0@0, 1@3, 3@7] answers epoch 2 with (1, 7).
    follower = await follower_with(tmp_path, (0, 0, 5), (2, 5, 4))
    assert follower.diverging_truncation_offset(1, 7) == 5  # the end of our epoch 0
    await follower.truncate_to(5)
    # Asked again with epoch 0, the leader answers (0, 3).
    assert follower.diverging_truncation_offset(0, 3) == 3


async def test_leader_without_an_answer(tmp_path: Path) -> None:
    follower = await follower_with(tmp_path, (0, 0, 5), (1, 5, 3))
    follower.high_watermark = 6
    assert follower.diverging_truncation_offset(-1, -1) == 6  # unknown: the high watermark
    assert follower.diverging_truncation_offset(-1, 4) == 4  # no epoch: the leader's end
    assert follower.diverging_truncation_offset(-1, 40) == 8
    await follower.truncate_to(0)
    assert follower.leader_epochs.entries() == []
    assert follower.diverging_truncation_offset(0, 3) == 0  # nothing tracked, nothing held


async def test_an_epoch_led_here_without_batches_is_dropped_when_truncating_at_the_end(
    tmp_path: Path,
) -> None:
    _manager, partition = await open_partition(tmp_path / "f")
    await partition.append_as_follower(plain(3, base=0, epoch=1))
    partition.leader_epochs.assign(4, 3)  # this broker led epoch 4 briefly, wrote nothing
    assert partition.leader_epoch == 4
    await partition.truncate_to(3)  # the new leader's answer: diverged at our log end
    assert partition.leader_epoch == 1 and partition.leader_epochs.entries()[-1] == (1, 0)
    assert partition.log_end_offset == 3


async def test_a_late_answer_of_the_leader_followed_before_changes_nothing(
    tmp_path: Path,
) -> None:
    """The soak's finding: a broker elected leader of epoch 6 applied a fetch answer of the
    epoch-5 leader that was still in flight, so its log held an epoch-5 batch past the start of
    epoch 6, and its followers diverged from it on every fetch, never to rejoin the ISR."""
    _manager, partition = await open_partition(tmp_path / "f")
    partition.follow(5)
    assert await partition.append_as_follower(plain(3, base=0, epoch=5), 5) == 3
    await partition.begin_leader_epoch(6)
    assert not partition.following and partition.leader_epochs.entries()[-1] == (6, 3)

    assert await partition.append_as_follower(plain(2, base=3, epoch=5), 5) == 3
    await partition.truncate_to(1, 5)
    await partition.truncate_fully(100, 5)
    assert partition.log_end_offset == 3 and partition.log_start_offset == 0
    assert partition.leader_epochs.entries()[-1] == (6, 3)

    partition.follow(7)  # following again, another leader: only its answers apply
    assert await partition.append_as_follower(plain(2, base=3, epoch=6), 5) == 3
    assert await partition.append_as_follower(plain(2, base=3, epoch=7), 7) == 5
    # Epoch 6 began at 3 and holds no batch: epoch 7's start at 3 replaces it, as in Kafka.
    assert partition.leader_epochs.entries()[-2:] == [(5, 0), (7, 3)]


async def test_an_append_in_progress_finishes_before_a_new_epoch_begins(tmp_path: Path) -> None:
    """The leader's epoch begins under the partition lock: a follower append already holding
    it lands wholly before the epoch's start."""
    _manager, partition = await open_partition(tmp_path / "f")
    partition.follow(5)
    async with trio.open_nursery() as nursery:
        await partition.lock.acquire()
        nursery.start_soon(partition.append_as_follower, plain(4, base=0, epoch=5), 5)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(partition.begin_leader_epoch, 6)
        await trio.testing.wait_all_tasks_blocked()
        partition.lock.release()
    assert partition.log_end_offset == 4
    assert partition.leader_epochs.entries()[-2:] == [(5, 0), (6, 4)]
